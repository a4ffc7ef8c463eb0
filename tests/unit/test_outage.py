"""tests.chaos.outage.outage_of, the chaos tests' one outage: the phases it moves a load
through, how long it keeps the part down, and that a failing body still brings the part back."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.chaos.outage import outage_of


class Part:
    """A part that records, with the load's phase at the time, each stop and start."""

    def __init__(self, load):
        self.load, self.calls = load, []

    def stop(self):
        self.calls.append(("stop", self.load.phase))
        time.sleep(0.02)

    def start(self):
        self.calls.append(("start", self.load.phase))


def test_phases_timing_and_figures():
    load = SimpleNamespace(phase="before")
    part = Part(load)
    waited = []
    with outage_of("the part", stop=part.stop, start=part.start, down_for=0.2,
                   back=lambda: waited.append(load.phase), load=load, stopping="stopping",
                   phase="outage", restarting="restarting", settle=0.05) as down:
        assert load.phase == "outage"
        inside = time.monotonic()
    assert part.calls == [("stop", "stopping"), ("start", "restarting")]
    assert waited == ["recovery"] and load.phase == "after"
    assert down.part == "the part"
    assert 0.02 <= down.stop_seconds < 0.2 and down.down_at - down.began == down.stop_seconds
    assert down.back_at - down.began >= 0.2  # down for down_for from the stop, body included
    assert down.back_at - inside >= 0.2 - down.stop_seconds - 0.01
    assert down.start_seconds < 0.1 and down.recovered < 0.1
    assert down.since_stop == pytest.approx(down.back_at + down.recovered - down.began)


def test_phase_defaults_and_no_load():
    load = SimpleNamespace(phase="before")
    part = Part(load)
    with outage_of("the part", stop=part.stop, start=part.start, down_for=0,
                   back=lambda: None, load=load):
        pass
    assert part.calls == [("stop", "down"), ("start", "down")]
    untouched = SimpleNamespace(phase="restarted")
    part = Part(untouched)
    with outage_of("the part", stop=part.stop, start=part.start, down_for=0,
                   back=lambda: None):
        pass
    assert untouched.phase == "restarted"


def test_a_failing_body_still_brings_the_part_back_and_names_it():
    load = SimpleNamespace(phase="before")
    part = Part(load)
    with pytest.raises(AssertionError) as failure:
        with outage_of("the broker", stop=part.stop, start=part.start, down_for=60,
                       back=lambda: None, load=load):
            raise AssertionError("the server was never marked offline")
    assert [name for name, _ in part.calls] == ["stop", "start"]  # at once, not after 60 s
    assert "while the broker was down" in "".join(failure.value.__notes__)


def test_a_platform_that_never_answers_again_names_the_part():
    def never():
        raise TimeoutError("GET /api/server/health_check never answered 200")
    part = Part(SimpleNamespace(phase="before"))
    with pytest.raises(TimeoutError) as failure:
        with outage_of("PostgreSQL", stop=part.stop, start=part.start, down_for=0,
                       back=never):
            pass
    assert "after PostgreSQL came back" in "".join(failure.value.__notes__)
