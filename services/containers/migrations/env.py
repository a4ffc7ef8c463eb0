"""Alembic environment of the containers service: its own database and version table.

Run through berth.migrations (there is no alembic.ini). A new revision after changing
models.py: python -m berth.manage revision containers -m "what changed"
"""
from berth.migrations import run_environment
from services.containers.models import Base

run_environment(Base.metadata)
