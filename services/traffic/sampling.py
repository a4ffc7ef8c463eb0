"""Reading every container's network counters from its engine, all requests in flight together.

Docker answers a one-shot stats request at its next collection tick (up to about a second) and
concurrent requests share that tick, so a sweep issues every request at once (greenthreads; the
services are eventlet-patched) and takes about one tick however many containers there are.

After an engine's stats are in, one ``/events`` request asks which of its Berth containers
*started* since the oldest previous read: a restart resets the counters, and a start event
between two reads says so even when the new counters have already grown past the old ones.
No nameko here.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field

from docker.errors import APIError, DockerException
from docker.errors import NotFound as EngineNotFound

from berth.concurrency import Pool, run_all
from berth.docker.engines import LABEL_MANAGED, Endpoint, EnginePool, EngineUnavailable
from services.traffic.counters import NS, Reading, reading_from_stats

log = logging.getLogger(__name__)


@dataclass
class EngineStarts:
    """Start events of one engine: times (ns, engine clock) per engine container id, complete
    for the interval (since_ns, until_ns]."""
    since_ns: int
    until_ns: int
    by_engine_id: dict[str, list[int]] = field(default_factory=dict)

    def covers(self, after_ns: int) -> bool:
        return self.since_ns <= after_ns

    def started_between(self, engine_id: str, after_ns: int, until_ns: int) -> bool:
        return any(after_ns < t <= until_ns for t in self.by_engine_id.get(engine_id, ()))


@dataclass
class SweepReadings:
    readings: list[Reading] = field(default_factory=list)
    starts: dict[int, EngineStarts] = field(default_factory=dict)  # by server id
    failed: dict[int, str] = field(default_factory=dict)  # container id -> why
    not_running: list[int] = field(default_factory=list)  # answered without network counters
    seconds: float = 0.0


def endpoint_of(server: dict) -> Endpoint:
    return Endpoint(server["server_id"], server["server_name"], server["docker_url"],
                    server.get("tls_ca_cert"), server.get("tls_client_cert"),
                    server.get("tls_client_key"))


def _engine_time(ns: int) -> str:
    seconds, rest = divmod(ns, NS)
    return f"{seconds}.{rest:09d}"


class Sampler:
    def __init__(self, pool: EnginePool, concurrency: int = 256):
        self.pool = pool
        self.concurrency = concurrency

    def read(self, servers: list[dict], containers: list[dict],
             previous_read_ns: dict[int, int] | None = None) -> SweepReadings:
        """Counters of ``containers`` (rows of containers.sampling_targets) on ``servers``.

        ``previous_read_ns``: server id -> the oldest stored read of its containers, the start
        of the interval whose start events are fetched (none: no events are needed).
        """
        started = time.monotonic()
        out = SweepReadings()
        endpoints = {s["server_id"]: endpoint_of(s) for s in servers}
        by_server: dict[int, list[dict]] = {}
        for row in containers:
            if row["server_id"] in endpoints and row.get("engine_id"):
                by_server.setdefault(row["server_id"], []).append(row)
        pool = Pool(self.concurrency)
        run_all(functools.partial(self._read_engine, pool, endpoints[server_id], rows,
                                  (previous_read_ns or {}).get(server_id), out)
                for server_id, rows in by_server.items())
        out.seconds = time.monotonic() - started
        return out

    def _read_engine(self, pool: Pool, endpoint: Endpoint, rows: list[dict],
                     since_ns: int | None, out: SweepReadings) -> None:
        outcomes = pool.map(functools.partial(self._stats, endpoint), rows)
        readings = []
        for row, outcome in zip(rows, outcomes):
            if isinstance(outcome, Reading):
                readings.append(outcome)
            elif outcome is None:
                out.not_running.append(row["container_id"])
            else:
                out.failed[row["container_id"]] = outcome
        out.readings.extend(readings)
        if readings and since_ns is not None:
            until_ns = max(r.read_ns for r in readings)
            if since_ns < until_ns:
                try:
                    out.starts[endpoint.server_id] = self.start_events(endpoint, since_ns,
                                                                       until_ns)
                except Exception as exc:  # noqa: BLE001 - counters going down still tell
                    log.warning("traffic: no start events from %s: %s", endpoint.name, exc)

    def _stats(self, endpoint: Endpoint, row: dict):
        """A Reading; None for a container without counters (not running); else why not."""
        try:
            with self.pool.reach(endpoint) as api:
                stats = api.stats(row["engine_id"], stream=False, one_shot=True)
        except EngineNotFound:
            return None  # removed since the targets were listed
        except (EngineUnavailable, APIError, DockerException) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        except Exception as exc:  # noqa: BLE001 - one odd reply must not end the sweep
            log.exception("traffic: stats of container %s failed", row["container_id"])
            return f"{type(exc).__name__}: {exc}"[:300]
        return reading_from_stats(row["container_id"], row["engine_id"], stats)

    def start_events(self, endpoint: Endpoint, since_ns: int, until_ns: int) -> EngineStarts:
        """The engine's ``start`` events of Berth containers in (since, until], engine clock."""
        filters = {"type": ["container"], "event": ["start"], "label": [LABEL_MANAGED]}
        with self.pool.reach(endpoint) as api:
            response = api._get(api._url("/events"), params={
                "since": _engine_time(since_ns), "until": _engine_time(until_ns),
                "filters": json.dumps(filters)}, timeout=self.pool.timeout)
            api._raise_for_status(response)
            text = response.text
        starts = EngineStarts(since_ns, until_ns)
        for line in text.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            engine_id = event.get("id") or event.get("Actor", {}).get("ID")
            moment = event.get("timeNano") or int(event.get("time", 0)) * NS
            if engine_id and moment:
                starts.by_engine_id.setdefault(engine_id, []).append(int(moment))
        return starts
