"""The read views other services use: the traffic sampler's targets and the alerts sweep's
fleet summary (no nameko). ``ReadViews`` is mixed into ``Fleet`` (services.containers.fleet).
"""
from __future__ import annotations

from sqlalchemy import func, select

from berth.db import isoformat
from services.containers.models import Container, Server


class ReadViews:
    """What other services read of the fleet (a mixin of ``Fleet``)."""

    def sampling_targets(self) -> dict:
        """What the traffic sampler reads: online servers (how to reach their engines) and
        the containers on them that have an engine copy, with their owners."""
        with self.sessions() as session:
            servers = session.scalars(select(Server).where(Server.status == "online")
                                      .order_by(Server.id)).all()
            rows = session.scalars(select(Container).where(
                Container.server_id.in_([s.id for s in servers]),
                Container.engine_id.is_not(None)).order_by(Container.id)).all()
        return {"servers": [{"server_id": s.id, "server_name": s.name,
                             "docker_url": s.docker_url, "tls_ca_cert": s.tls_ca_cert,
                             "tls_client_cert": s.tls_client_cert,
                             "tls_client_key": s.tls_client_key} for s in servers],
                "containers": [{"container_id": c.id, "container_name": c.name,
                                "user_id": c.user_id, "server_id": c.server_id,
                                "engine_id": c.engine_id, "status": c.status} for c in rows]}

    def user_usage(self, user_id: int) -> dict:
        """What a user holds of what their plan allows: their containers (billing's
        rental summary)."""
        return {"user_id": user_id, "containers": self.count_of(user_id)}

    def fleet_summary(self) -> dict:
        """What the alerts service sweeps: every server, and the containers not as desired.
        A container in an open incident (``died_at`` set) is listed even while it runs
        between two crashes: until it has stayed up, the incident is not over."""
        servers = self.servers()
        in_maintenance = {s["server_id"] for s in servers if s["maintenance"]}
        with self.sessions() as session:
            by_status = dict(session.execute(select(Container.status, func.count())
                                             .group_by(Container.status)).all())
            off = session.scalars(select(Container).where(
                ((Container.desired_state == "running") & (Container.status != "running")
                 & (Container.status != "creating"))
                | ((Container.desired_state == "running") & Container.died_at.is_not(None))
                | ((Container.desired_state == "stopped") & (Container.status == "running")))
                .order_by(Container.id).limit(200))
            return {"servers": servers,
                    "containers": {"total": sum(by_status.values()), "by_status": by_status,
                                   "not_as_desired": [
                                       {"container_id": c.id, "container_name": c.name,
                                        "status": c.status, "desired_state": c.desired_state,
                                        "server_id": c.server_id,
                                        "maintenance": c.server_id in in_maintenance,
                                        "died_at": isoformat(c.died_at),
                                        "deaths": c.deaths, "restarts": c.restarts}
                                       for c in off]}}