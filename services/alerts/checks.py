"""The checks: one server, one container, a container's traffic, a month of user traffic, and
the whole fleet, each asking the services that know (``Peers``) and then raising and
resolving alerts in one transaction (``services.alerts.fleet_checks`` judges). Each returns
a ``Checked``: the outcome, what to deliver after the commit, and the facts the reply
reports. No nameko here: the service gives the RPC proxies behind ``Peers``.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Protocol

from berth.db import utcnow
from berth.errors import NotOffered
from services.alerts import alerting, fleet_checks, webhook
from services.alerts.alerting import Outcome, Subject
from services.alerts.notifications import Pending

log = logging.getLogger(__name__)


class Peers(Protocol):
    """What the checks ask the other services. A peer that is down, or does not offer the
    method (``NotOffered``), is a ServiceUnavailable; its domain errors (404) pass through."""

    def server_health(self, server_id: int) -> dict: ...  # containers

    def container_info(self, container_id: int) -> dict: ...  # containers

    def fleet_summary(self) -> dict: ...  # containers

    def container_usage(self, container_id: int) -> dict: ...  # traffic

    def overlimit_users(self, month: str) -> dict: ...  # traffic

    def users_over(self, threshold: int, month: str) -> dict: ...  # traffic


@dataclass
class Checked:
    outcome: Outcome
    pending: Pending
    facts: dict = field(default_factory=dict)


def month_of(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m")


_hook = webhook.WebhookConfig.current  # the webhook settings in force now


class Checks:
    def __init__(self, session_factory, peers: Peers):
        self.session_factory = session_factory
        self.peers = peers

    def server_health(self, server_id: int) -> Checked:
        observed_at = utcnow()
        info = self.peers.server_health(server_id)
        now = utcnow()
        # online/offline/maintenance ("server_status" where "status" says healthy/unhealthy)
        state = info.get("server_status") or info.get("status")
        # down since Berth first saw it down (else since it was added): never "forever"
        down_for = fleet_checks.seconds_down(now, info.get("down_since"),
                                             info.get("last_seen_at"), info.get("added_at"))
        subject = Subject("server", server_id, info.get("server_name"))
        pending = Pending()
        with self.session_factory() as session:
            if info.get("maintenance") or state == "maintenance":
                outcome = fleet_checks.resolve_subject(session, subject, None, now,
                                                       fleet_checks.MAINTENANCE, _hook(),
                                                       pending)
            else:
                firing, keys = alerting.evaluate_server(
                    subject, state in ("offline", "unhealthy"), info.get("ip_address") or "?",
                    down_for, alerting.rules_of(session, "server_health"),
                    info.get("last_error"))
                outcome = fleet_checks.apply(session, subject, firing, keys, now, _hook(),
                                             pending, observed_at)
            session.commit()
        return Checked(outcome, pending, {"server_status": state})

    def container(self, container_id: int) -> Checked:
        observed_at = utcnow()
        info = self.peers.container_info(container_id)
        now = utcnow()
        subject = Subject("container", container_id, info.get("container_name"),
                          info.get("user_id"))
        pending = Pending()
        with self.session_factory() as session:
            outcome = fleet_checks.check_container(session, subject, info, now, observed_at,
                                                   _hook(), pending)
            session.commit()
        return Checked(outcome, pending, {"container_status": info["status"],
                                          "desired_state": info["desired_state"]})

    def container_traffic(self, container_id: int) -> Checked:
        observed_at = utcnow()
        info = self.peers.container_info(container_id)
        usage = self.peers.container_usage(container_id)
        now = utcnow()
        month = usage.get("month") or month_of(now)
        subject = Subject("container", container_id, info.get("container_name"),
                          info.get("user_id"))
        pending = Pending()
        with self.session_factory() as session:
            rules = alerting.rules_of(session, "docker_traffic")
            firing, keys = alerting.evaluate_container_traffic(subject, month,
                                                               int(usage["total"]), rules)
            outcome = fleet_checks.apply(session, subject, firing, keys, now, _hook(),
                                         pending, observed_at)
            session.commit()
        return Checked(outcome, pending, {"month": month, "total_bytes": int(usage["total"]),
                                          "rules": len(rules)})

    def traffic(self, month: str) -> Checked:
        """Users over their quota and users at or over a traffic rule's threshold (whatever
        their quota) in ``month``: alerts raised, and quota alerts of users back under it
        resolved."""
        observed_at = utcnow()
        with self.session_factory() as session:
            thresholds = [r.threshold for r in alerting.rules_of(session, "traffic")]
        report = self.peers.overlimit_users(month)
        over = {}
        if thresholds:
            try:
                over = self.peers.users_over(min(thresholds), month)
            except NotOffered:  # an older traffic service (rolling deploy): quota rows only
                log.warning("traffic has no users_over yet: traffic rules judged on the "
                            "users over their quota only")
        now = utcnow()
        quota_rows = [r for r in report.get("overlimit_users", []) if r.get("month") == month]
        covered = report.get("month", month) == month or bool(quota_rows)
        pending = Pending()
        with self.session_factory() as session:
            total = fleet_checks.traffic_month(session, month, quota_rows,
                                               over.get("users", []), covered, now,
                                               observed_at, _hook(), pending)
            session.commit()
        return Checked(total, pending, {"month": month, "overlimit_users": len(quota_rows),
                                        "month_reported": covered})

    def traffic_watched(self) -> bool:
        """Whether any traffic rule exists (the sweep then checks this month's traffic)."""
        with self.session_factory() as session:
            return bool(alerting.rules_of(session, "traffic"))

    def fleet(self) -> Checked:
        """Server and container alerts raised and resolved from the fleet summary."""
        observed_at = utcnow()
        fleet = self.peers.fleet_summary()
        now = utcnow()
        pending = Pending()
        with self.session_factory() as session:
            total = fleet_checks.sweep(session, fleet, now, observed_at, _hook(), pending)
            session.commit()
        return Checked(total, pending)
