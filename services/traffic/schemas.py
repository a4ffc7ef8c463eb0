"""Shapes of the traffic API, with the seed's field names (bytes; realtime in bytes/s)."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from berth.schemas import Body, Reply


class InOut(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    in_: int = Field(alias="in", description="bytes received by the container")
    out: int = Field(description="bytes sent by the container")


class RealtimeRow(Reply):
    container_id: int
    container_name: str | None
    user_id: int
    server_id: int | None
    in_: int = Field(alias="in", description="bytes/s received over the latest window")
    out: int = Field(description="bytes/s sent over the latest window")
    window_seconds: float | None
    sampled_at: str


class RealtimeAll(Reply):
    traffic: InOut = Field(description="sum over every container: bytes/s in and out")
    containers: list[RealtimeRow]
    sampled_at: str | None = Field(description="when the latest sweep ended")


class ContainerRealtime(Reply):
    container_id: int
    traffic: InOut = Field(description="bytes/s over the latest sampling window (0 when the "
                                       "container was not read recently)")
    window_seconds: float | None
    sampled_at: str | None


def _moment(value: str | None) -> str | None:
    if value is None:
        return value
    from services.traffic.reports import parse_moment
    try:
        parse_moment(value)
    except ValueError:
        raise ValueError("a date (YYYY-MM-DD) or an ISO-8601 timestamp is required") from None
    return value


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str | None = Field(None, max_length=40, description="date or ISO-8601 timestamp; "
                              "default: end minus 1 h (raw), 1 day (hour), 31 days (day)")
    end: str | None = Field(None, max_length=40, description="date (its whole day is included) "
                            "or ISO-8601 timestamp (exclusive); default now")
    granularity: Literal["raw", "hour", "day"] = Field(
        "hour", description="raw: one point per sweep (up to 1 day); hour: up to 62 days; "
                            "day: up to 3 years")
    by_container: bool = Field(False, description="hour or day: also each container's bytes "
                               "at the same points (``containers``: the 50 busiest over the "
                               "points returned)")

    _check = field_validator("start", "end")(_moment)


class HistoryPoint(BaseModel):
    model_config = ConfigDict(extra="allow")
    timestamp: str
    in_: int = Field(alias="in")
    out: int


class ContainerSeries(Reply):
    container_id: int
    container_name: str | None = Field(description="as the traffic sweeps last saw it")
    total_in: int
    total_out: int
    bytes_in: list[int] = Field(description="per point of traffic_history, in its order")
    bytes_out: list[int] = Field(description="per point of traffic_history, in its order")


class TrafficHistory(Reply):
    user_id: int
    traffic_history: list[HistoryPoint]
    granularity: str
    start: str
    end: str
    total_in: int
    total_out: int
    truncated: bool
    containers: list[ContainerSeries] | None = Field(
        None, description="with by_container=true: the busiest containers' bytes, busiest "
                          "first")
    containers_truncated: bool | None = Field(
        None, description="with by_container=true: whether more containers moved bytes than "
                          "are listed")


class StatsBody(Body):
    start_date: dt.date
    end_date: dt.date


class UserTotal(Reply):
    user_id: int
    traffic_in: int
    traffic_out: int
    total: int


class TrafficStats(Reply):
    total_in: int
    total_out: int
    start_date: str
    end_date: str
    users: list[UserTotal] = Field(description="the 100 users with the most traffic")
    user_count: int


class OverlimitRow(Reply):
    user_id: int
    traffic_in: int
    traffic_out: int
    total: int
    limit: int
    month: str


class Overlimit(Reply):
    overlimit_users: list[OverlimitRow]
    month: str
    default_limit: int | None
