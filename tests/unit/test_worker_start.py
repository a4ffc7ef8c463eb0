"""berth.nameko_patches: when the consumer may start an RPC worker itself (without waiting),
and how the worker runs (``run_worker``, against nameko's own)."""
import logging

import eventlet
import nameko.containers
import pytest
from eventlet.greenpool import GreenPool

from berth.nameko_patches import _RUN_WORKER, _has_room, run_worker


def test_a_slot_counted_free_is_no_room_while_a_spawner_is_queued_for_it():
    """A worker that ends frees its slot in the count before the hub hands the slot to the
    greenthread queued for it; ``GreenPool.spawn`` would queue behind that one (the consumer
    would wait), so there is no room until the queue is empty."""
    pool = GreenPool(1)
    finish = eventlet.Event()
    pool.spawn(finish.wait)
    assert pool.free() == 0 and not _has_room(pool)
    queued = eventlet.spawn(pool.spawn, eventlet.sleep, 0.05)
    eventlet.sleep(0)  # it queues for the slot
    finish.send()
    seen = []
    for _ in range(20):
        eventlet.sleep(0)
        seen.append((pool.free(), bool(pool.sem._waiters), _has_room(pool)))
    assert (1, True, False) in seen  # the window exists, and it is not room
    assert all(not room for free, waiting, room in seen if waiting)
    queued.wait()
    pool.waitall()
    assert _has_room(pool)


# --- run_worker: nameko's _run_worker without its debug lines -------------------------------

class Expected(Exception):
    pass


class _Calls:
    """A container and a worker context that record what the worker does, in order."""

    def __init__(self, outcome):
        self.calls = []
        outcome_ = outcome

        class Service:
            def method(self_, *args, **kwargs):
                self.calls.append(("method", args, kwargs))
                if isinstance(outcome_, Exception):
                    raise outcome_
                return outcome_

        class Entrypoint:
            method_name = "method"
            expected_exceptions = (Expected,)

        class Ctx:
            service = Service()
            entrypoint = Entrypoint()
            args = (1, 2)
            kwargs = {"k": 3}
            data = {}
            call_id_stack = ["caller.1"]  # what nameko's debug line joins

            def __repr__(self_):
                return "<ctx>"

        self.ctx = Ctx()

    def _inject_dependencies(self, ctx):
        self.calls.append(("_inject_dependencies",))

    def _worker_setup(self, ctx):
        self.calls.append(("_worker_setup",))

    def _worker_teardown(self, ctx):
        self.calls.append(("_worker_teardown",))

    def _worker_result(self, ctx, result, exc_info):
        self.calls.append(("_worker_result", result, exc_info and exc_info[0]))

    def handle_result(self, ctx, result, exc_info):
        self.calls.append(("handle_result", result, exc_info and exc_info[0]))
        return result, exc_info


@pytest.mark.parametrize("outcome", ["a result", Expected("no"), ValueError("bug")])
def test_run_worker_does_what_nameko_does(outcome, caplog):
    """The same steps, in the same order, with the same result and error, and the method's
    error logged at the same level as nameko's own ``_run_worker`` logs it."""
    seen = {}
    for name, run in (("nameko", _RUN_WORKER), ("berth", run_worker)):
        caplog.clear()
        calls = _Calls(outcome)
        with caplog.at_level(logging.INFO, logger=nameko.containers._log.name):
            assert run(calls, calls.ctx, calls.handle_result) is None
        seen[name] = (calls.calls, [(r.levelname, r.getMessage(), bool(r.exc_info))
                                    for r in caplog.records])
    assert seen["berth"] == seen["nameko"]
    steps = [c[0] for c in seen["berth"][0]]
    assert steps == ["_inject_dependencies", "_worker_setup", "method", "handle_result",
                     "_worker_result", "_worker_teardown"]


def test_run_worker_without_handle_result_and_with_debug_on_is_namekos(caplog):
    calls = _Calls("x")
    run_worker(calls, calls.ctx, None)
    assert "handle_result" not in [c[0] for c in calls.calls]
    calls = _Calls("x")
    with caplog.at_level(logging.DEBUG, logger=nameko.containers._log.name):
        run_worker(calls, calls.ctx, calls.handle_result)
    assert any("call stack for <ctx>: caller.1" in r.getMessage() for r in caplog.records)
