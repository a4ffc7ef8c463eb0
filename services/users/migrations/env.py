"""Alembic environment of the users service: its own database and version table.

Run through berth.migrations (there is no alembic.ini). A new revision after changing
models.py: python -m berth.manage revision users -m "what changed"
"""
from berth.migrations import run_environment
from services.users.models import Base

run_environment(Base.metadata)
