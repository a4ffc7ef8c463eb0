"""What a customer has used of what their plan allows (no nameko): their containers (the
containers service counts them) and their traffic this month (the traffic service meters
it). ``Peers`` is what is asked of those services; a peer that does not answer leaves its
figure null and is named in ``unavailable``, so the rental summary still answers."""
from __future__ import annotations

import logging
from typing import Protocol

from berth.errors import BerthError

log = logging.getLogger(__name__)


class Peers(Protocol):
    def containers_of(self, user_id: int) -> int:
        """How many containers the user holds."""

    def traffic_this_month(self, user_id: int) -> dict:
        """``{"month": "YYYY-MM", "used_bytes": n, ...}``."""


def used(peers: Peers, user_id: int) -> dict:
    out = {"containers": None, "traffic_month": None, "traffic_bytes": None, "unavailable": []}
    try:
        out["containers"] = peers.containers_of(user_id)
    except BerthError as exc:
        log.warning("rental summary: no container count for user %d: %s", user_id, exc)
        out["unavailable"].append("containers")
    try:
        month = peers.traffic_this_month(user_id)
        out["traffic_month"], out["traffic_bytes"] = month["month"], month["used_bytes"]
    except BerthError as exc:
        log.warning("rental summary: no traffic for user %d: %s", user_id, exc)
        out["unavailable"].append("traffic")
    return out
