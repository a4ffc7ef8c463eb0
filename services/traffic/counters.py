"""Network counters and the bytes between two reads (pure functions, no I/O).

Docker reports cumulative counters per interface since the container's network namespace was
made; a restart makes a new one, so the counters start again from 0. Berth stores differences:

- same life as the previous read: ``current - previous`` for rx and tx;
- the container (re)started since the previous read, known from the engine's ``start`` events
  or from a counter that went down: the new counters are all new bytes (delta from 0);
- never negative; a read that is not newer than the stored one counts nothing.

Bytes moved between the last read of a life and its end are lost (nobody can read them any
more); bytes are never counted twice.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
NS = 1_000_000_000


@dataclass(frozen=True)
class Reading:
    """One container's counters as one engine reported them."""
    container_id: int
    engine_id: str
    rx_bytes: int
    tx_bytes: int
    read_ns: int  # engine clock


@dataclass(frozen=True)
class Delta:
    bytes_in: int
    bytes_out: int
    window_seconds: float | None  # None: no previous read of this copy
    restarted: bool

    @property
    def rate_in(self) -> float | None:
        return self.bytes_in / self.window_seconds if self.window_seconds else None

    @property
    def rate_out(self) -> float | None:
        return self.bytes_out / self.window_seconds if self.window_seconds else None


def parse_engine_time(text: str | None) -> int | None:
    """Docker's RFC 3339 time with up to nanoseconds (``2024-01-01T00:00:00.123456789Z``) as
    ns since the epoch; None for the zero time a stopped container reports, or garbage."""
    if not text or text.startswith("0001-"):
        return None
    try:
        text = text.strip()
        if text.endswith("Z"):
            text, offset = text[:-1], dt.timezone.utc
        else:  # +hh:mm
            sign = 1 if text[-6] == "+" else -1
            hours, minutes = int(text[-5:-3]), int(text[-2:])
            offset = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
            text = text[:-6]
        head, _, fraction = text.partition(".")
        base = dt.datetime.fromisoformat(head).replace(tzinfo=offset)
        seconds = (base - EPOCH) // dt.timedelta(seconds=1)
        return seconds * NS + int((fraction or "0")[:9].ljust(9, "0"))
    except (ValueError, IndexError):
        return None


def network_totals(stats: dict) -> tuple[int, int] | None:
    """(rx, tx) summed over every interface of a stats reply; None when it has no networks
    (a stopped container, or one with networking off)."""
    networks = stats.get("networks")
    if not networks:
        return None
    rx = sum(int(n.get("rx_bytes") or 0) for n in networks.values())
    tx = sum(int(n.get("tx_bytes") or 0) for n in networks.values())
    return rx, tx


def reading_from_stats(container_id: int, engine_id: str, stats: dict) -> Reading | None:
    totals = network_totals(stats)
    read_ns = parse_engine_time(stats.get("read"))
    if totals is None or read_ns is None:
        return None
    return Reading(container_id, engine_id, totals[0], totals[1], read_ns)


def started_between(starts: list[int], after_ns: int, until_ns: int) -> bool:
    """True if one of the engine's ``start`` event times falls in (after, until]."""
    return any(after_ns < t <= until_ns for t in starts)


def delta(previous_rx: int | None, previous_tx: int | None, previous_read_ns: int | None,
          current: Reading, restarted: bool = False) -> Delta | None:
    """Bytes since the previous read of this copy; None if ``current`` is not newer.

    ``previous_*`` None: the copy was never read, so all its bytes are new. ``restarted``:
    the engine says the container started after the previous read.
    """
    if previous_read_ns is None:
        return Delta(max(current.rx_bytes, 0), max(current.tx_bytes, 0), None, False)
    if current.read_ns <= previous_read_ns:
        return None
    window = (current.read_ns - previous_read_ns) / NS
    went_down = current.rx_bytes < previous_rx or current.tx_bytes < previous_tx
    if restarted or went_down:
        return Delta(max(current.rx_bytes, 0), max(current.tx_bytes, 0), window, True)
    return Delta(current.rx_bytes - previous_rx, current.tx_bytes - previous_tx, window, False)


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def day_of(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.timezone.utc).date()


def month_of(moment: dt.datetime | dt.date) -> str:
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.timezone.utc)
    return f"{moment.year:04d}-{moment.month:02d}"
