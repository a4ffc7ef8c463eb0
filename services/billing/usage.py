"""What a customer has used of what their plan allows (no nameko): their containers (the
containers service counts them) and their traffic this month (the traffic service meters
it). ``Peers`` is what is asked of those services; a peer that does not answer leaves its
figure null and is named in ``unavailable``, so the rental summary still answers."""
from __future__ import annotations

import logging
from typing import Protocol

from berth.concurrency import run_all
from berth.errors import BerthError

log = logging.getLogger(__name__)


class Peers(Protocol):
    def containers_of(self, user_id: int) -> int:
        """How many containers the user holds."""

    def traffic_this_month(self, user_id: int) -> dict:
        """``{"month": "YYYY-MM", "used_bytes": n, ...}``."""


def used(peers: Peers, user_id: int) -> dict:
    """Both peers are asked at once (the peers bound each call's wait)."""
    def asking(service: str, call):
        def ask():
            try:
                return call(user_id)
            except BerthError as exc:
                log.warning("rental summary: no answer from %s for user %d: %s", service,
                            user_id, exc)
                return None
        return ask
    containers, month = run_all([asking("containers", peers.containers_of),
                                 asking("traffic", peers.traffic_this_month)])
    return {"containers": containers,
            "traffic_month": month["month"] if month else None,
            "traffic_bytes": month["used_bytes"] if month else None,
            "unavailable": [name for name, answer in (("containers", containers),
                                                      ("traffic", month)) if answer is None]}
