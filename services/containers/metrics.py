"""Gauges the containers service computes from its database at each scrape (berth.metrics)."""
from __future__ import annotations

from sqlalchemy import case

from berth.metrics import counts_by, gauge
from services.containers.models import CONTAINER_STATUSES, SERVER_STATUSES, Container, Server


def servers_by_status(session):
    # a server in maintenance counts as such, whatever its probe says
    status = case((Server.maintenance.is_(True), "maintenance"), else_=Server.status)
    yield gauge("berth_servers", "Docker hosts by status (online, offline, maintenance)",
                "status", counts_by(session, status, (*SERVER_STATUSES, "maintenance")))


def containers_by_status(session):
    yield gauge("berth_containers", "Containers by the status last observed on their engine",
                "status", counts_by(session, Container.status, CONTAINER_STATUSES))


FAMILIES = (servers_by_status, containers_by_status)
