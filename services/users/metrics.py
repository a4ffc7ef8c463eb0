"""Gauges the users service computes from its database at each scrape (berth.metrics)."""
from __future__ import annotations

from typing import get_args

from berth.metrics import counts_by, gauge
from services.users.models import User
from services.users.schemas import Role


def users_by_role(session):
    yield gauge("berth_users", "User accounts, disabled ones included, by role", "role",
                counts_by(session, User.role, get_args(Role)))


FAMILIES = (users_by_role,)
