"""Who is asking: one type for the gateway and every service (no nameko, no flask).

The gateway reads an ``Actor`` from the bearer token and sends ``actor.to_wire()`` as an
explicit RPC argument; a service turns that dict back into an ``Actor`` with ``Actor.of`` at
its entrypoint, so domain code only ever sees an ``Actor``.
"""
from __future__ import annotations

from dataclasses import dataclass

from berth.errors import Forbidden

ADMIN_ROLE = "admin"
NOT_YOURS = "You may only access your own records"


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: str
    username: str = ""

    @classmethod
    def of(cls, wire: dict) -> Actor:
        """The actor a ``to_wire()`` dict describes. ``user_id`` is required; a missing
        ``username`` or ``role`` is empty (as the gateway reads a token without them), and an
        empty role is granted nothing a role grants."""
        return cls(int(wire["user_id"]), str(wire.get("role") or ""),
                   str(wire.get("username") or ""))

    def to_wire(self) -> dict:
        """The dict sent over RPC and in audit records: ``user_id``, ``role``, ``username``."""
        return {"user_id": self.user_id, "role": self.role, "username": self.username}

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE

    def require_self_or_admin(self, user_id: int | None = None,
                              username: str | None = None) -> None:
        """Forbidden unless this actor is an admin or is the user named (by id and/or by
        name, case-insensitively); a name or id left ``None`` restricts nothing."""
        if self.is_admin:
            return
        if user_id is not None and user_id != self.user_id:
            raise Forbidden(NOT_YOURS)
        if username is not None and username.lower() != self.username.lower():
            raise Forbidden(NOT_YOURS)
