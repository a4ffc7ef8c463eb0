"""berth.nameko_patches: when the consumer may start an RPC worker itself (without waiting)."""
import eventlet
from eventlet.greenpool import GreenPool

from berth.nameko_patches import _has_room


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
