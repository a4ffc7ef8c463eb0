"""Gauges the traffic service computes from its database at each scrape (berth.metrics)."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from services.traffic.models import MonthlyTraffic, Sweep


def bytes_metered(session):
    """Every byte metered so far: the monthly rollups, which retention never deletes."""
    bytes_in, bytes_out = session.execute(select(
        func.coalesce(func.sum(MonthlyTraffic.bytes_in), 0),
        func.coalesce(func.sum(MonthlyTraffic.bytes_out), 0))).one()
    family = CounterMetricFamily(
        "berth_traffic_bytes", "Bytes metered over all containers (in: received, out: sent)",
        labels=["direction"])
    family.add_metric(["in"], int(bytes_in))
    family.add_metric(["out"], int(bytes_out))
    yield family


def last_sweep(session):
    finished = session.scalar(select(Sweep.finished_at).order_by(Sweep.tick.desc()).limit(1))
    family = GaugeMetricFamily(
        "berth_traffic_last_sweep_finished_timestamp_seconds",
        "When the latest traffic sweep finished (Unix time; 0: none yet or still running)")
    family.add_metric([], finished.timestamp() if finished else 0)
    yield family


FAMILIES = (bytes_metered, last_sweep)
