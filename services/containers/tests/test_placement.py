"""Placement: least-loaded choice and the moves that even out a fleet."""
from services.containers.placement import balance_moves, least_loaded


def test_least_loaded_prefers_fewest_then_lowest_id():
    assert least_loaded({1: 3, 2: 1, 3: 1}) == 2
    assert least_loaded({1: 3, 2: 1, 3: 1}, exclude={2}) == 3
    assert least_loaded({}) is None
    assert least_loaded({4: 0}, exclude={4}) is None


def test_balance_moves_even_out_with_the_fewest_moves():
    moves = balance_moves({1: [10, 11, 12, 13, 14, 15], 2: [], 3: [20]})
    assert moves == [(10, 1, 2), (11, 1, 2), (12, 1, 3)]


def test_an_even_or_single_server_fleet_needs_no_moves():
    assert balance_moves({1: [1, 2], 2: [3]}) == []
    assert balance_moves({1: [1, 2, 3]}) == []
    assert balance_moves({}) == []


def test_every_container_moves_at_most_once():
    fleet = {1: list(range(100)), 2: [], 3: [], 4: list(range(100, 103))}
    moves = balance_moves(fleet)
    moved = [m[0] for m in moves]
    assert len(moved) == len(set(moved))
    final = {s: len(c) for s, c in fleet.items()}
    for _, source, target in moves:
        final[source] -= 1
        final[target] += 1
    assert max(final.values()) - min(final.values()) <= 1


def test_failover_and_drain_send_each_container_only_to_a_server_that_holds_it():
    from services.containers.fleet import Fleet
    from services.containers.models import Container, Server
    small = Server(id=1, name="small", cpus=1, memory_mib=1024)
    large = Server(id=2, name="large", cpus=8, memory_mib=32768)
    unknown = Server(id=3, name="new", cpus=None, memory_mib=None)  # not probed yet: fits
    big = Container(id=10, name="big", limits={"cpus": 4, "memory_mib": 8192})
    tiny = [Container(id=i, name=f"t{i}", limits={"cpus": 0.5, "memory_mib": 256})
            for i in (11, 12)]
    fleet = Fleet(sessions=None, pool=None, record=None)
    plan = fleet._targets([big, *tiny], [small, large], {1: 0, 2: 3})
    assert [(c.name, target) for c, target in plan] == [("big", 2), ("t11", 1), ("t12", 1)]
    plan = fleet._targets([big], [small], {})
    assert plan == [(big, None)]  # nowhere: its recreate says why (409)
    assert fleet._targets([big], [small, unknown], {3: 5}) == [(big, 3)]
