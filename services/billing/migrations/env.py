"""Alembic environment of the billing service: its own database and version table.

Run through berth.migrations (there is no alembic.ini). A new revision after changing
models.py: python -m berth.manage revision billing -m "what changed"
"""
from berth.migrations import run_environment
from services.billing.models import Base

run_environment(Base.metadata)
