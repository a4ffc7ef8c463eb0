"""Tables owned by the traffic service (database ``traffic``).

Bytes are stored, never rates: ``in`` is what a container received (rx), ``out`` what it sent
(tx). Every sweep writes, in one transaction:

- ``traffic_counters``: the last counters read from each engine copy of a container (keyed by
  container id *and* engine id, so a recreated copy starts its own baseline), updated by a
  compare-and-set on the previous read time: two sweeps can never both count one interval;
- ``traffic_samples``: one row per container and sweep in which it moved bytes, the bytes since
  the previous read (raw, kept ``BERTH_TRAFFIC_RAW_RETENTION_DAYS``; idle intervals only move
  the baseline);
- ``traffic_hourly`` / ``traffic_daily``: per user and container, incremented in the same
  transaction (upserts), so history, stats and quotas never scan raw samples;
- ``traffic_monthly``: per user and calendar month (UTC), what quotas compare against.

``traffic_quota_notices`` holds one row per user and month whose quota was passed, open while
they are over it: opening it sends ``traffic_quota_exceeded``, closing it (a raised limit, the
month's end) ``traffic_quota_cleared``, each once. ``traffic_sweeps`` holds one row per
timer tick: the replica that inserts it does that tick's sweep.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Float, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import LeaseMixin, OutboxEventMixin, ProcessedEventMixin, UTCDateTime, utcnow

# a 64-bit id on PostgreSQL; SQLite only auto-increments a column declared INTEGER
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class CounterBaseline(Base):
    """The last network counters read from one engine copy of a container."""
    __tablename__ = "traffic_counters"
    container_id: Mapped[int] = mapped_column(primary_key=True)
    engine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column()
    container_name: Mapped[str | None] = mapped_column(String(64))
    server_id: Mapped[int | None] = mapped_column()
    rx_bytes: Mapped[int] = mapped_column(BigInteger)
    tx_bytes: Mapped[int] = mapped_column(BigInteger)
    # the engine's own read time (ns since the epoch, engine clock): the compare-and-set key,
    # and the clock restart events are compared with
    read_ns: Mapped[int] = mapped_column(BigInteger)
    sampled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the sweep's time
    # the latest window: bytes/s over window_seconds (None on a copy's first read)
    rate_in: Mapped[float | None] = mapped_column(Float)
    rate_out: Mapped[float | None] = mapped_column(Float)
    window_seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_traffic_counters_sampled", "sampled_at"),
                      Index("ix_traffic_counters_container_sampled", "container_id",
                            "sampled_at"))


class TrafficSample(Base):
    """Bytes one container moved between two reads (raw; pruned after the retention)."""
    __tablename__ = "traffic_samples"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sampled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int] = mapped_column()
    container_id: Mapped[int] = mapped_column()
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    window_seconds: Mapped[float | None] = mapped_column(Float)
    # the counters had been reset (a restart) since the previous read
    restarted: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_traffic_samples_user_time", "user_id", "sampled_at"),
                      Index("ix_traffic_samples_container_time", "container_id", "sampled_at"),
                      Index("ix_traffic_samples_time", "sampled_at"))


class HourlyTraffic(Base):
    __tablename__ = "traffic_hourly"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    container_id: Mapped[int] = mapped_column(primary_key=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_traffic_hourly_hour", "hour"),)


class DailyTraffic(Base):
    __tablename__ = "traffic_daily"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    container_id: Mapped[int] = mapped_column(primary_key=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_traffic_daily_day", "day"),
                      Index("ix_traffic_daily_container_day", "container_id", "day"))


class MonthlyTraffic(Base):
    __tablename__ = "traffic_monthly"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM (UTC)
    user_id: Mapped[int] = mapped_column(primary_key=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)


class QuotaNotice(Base):
    """A user passed their quota in this month: open (``cleared_at`` NULL) while they are over
    it. Opening and closing it are conditional writes, so each edge's event goes out once."""
    __tablename__ = "traffic_quota_notices"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger)
    limit_bytes: Mapped[int] = mapped_column(BigInteger)
    noticed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # when the user was within their quota again (limit raised) or the month ended
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_traffic_quota_notices_open", "user_id",
                            sqlite_where=text("cleared_at IS NULL"),
                            postgresql_where=text("cleared_at IS NULL")),)


class Sweep(Base):
    """One timer tick (``floor(epoch / interval)``): the replica that inserted it sweeps."""
    __tablename__ = "traffic_sweeps"
    tick: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    containers: Mapped[int | None] = mapped_column()
    recorded: Mapped[int | None] = mapped_column()  # readings that moved a baseline
    skipped: Mapped[int | None] = mapped_column()  # readings another sweep had counted
    failed: Mapped[int | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column(Float)


class OutboxEvent(OutboxEventMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Lease(LeaseMixin, Base):
    pass
