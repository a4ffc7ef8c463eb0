"""A plan's CPUs and memory against the hosts' size (services.billing.plans.require_room)."""
from __future__ import annotations

import pytest

from berth.errors import BadRequest
from services.billing import plans

HOSTS = {"servers": [{"server_id": 1, "server_name": "a", "cpus": 8, "memory_mib": 4096},
                     {"server_id": 2, "server_name": "b", "cpus": 2, "memory_mib": 16384}],
         "cpus": 8, "memory_mib": 16384}


def refused(fields, capacity=HOSTS) -> list[dict]:
    with pytest.raises(BadRequest) as caught:
        plans.require_room(fields, capacity)
    return caught.value.details


def test_a_plan_one_server_holds_is_accepted():
    plans.require_room({"cpus": 8, "memory_mib": 4096}, HOSTS)
    plans.require_room({"cpus": 1.5, "memory_mib": 16000}, HOSTS)
    plans.require_room({"cpus": 8}, HOSTS)  # an update of one field


def test_a_field_larger_than_every_server_is_a_400_naming_it_with_the_largest():
    assert refused({"cpus": 9, "memory_mib": 512}) == [
        {"field": "cpus", "message": "9 CPUs is more than any server has (the most: 8)"}]
    assert refused({"cpus": 1, "memory_mib": 20000}) == [
        {"field": "memory_mib",
         "message": "20000 MiB is more than any server has (the most: 16384 MiB)"}]
    assert [d["field"] for d in refused({"cpus": 16, "memory_mib": 20000})] == [
        "cpus", "memory_mib"]


def test_both_fields_fitting_different_servers_but_no_one_server_is_refused():
    details = refused({"cpus": 8, "memory_mib": 8192})
    assert [d["field"] for d in details] == ["cpus", "memory_mib"]
    assert "no one server has both 8 CPUs and 8192 MiB" in details[0]["message"]


@pytest.mark.parametrize("capacity", [None, {"servers": [], "cpus": None, "memory_mib": None}])
def test_without_an_answer_or_a_known_server_a_plan_is_accepted(capacity):
    plans.require_room({"cpus": 256, "memory_mib": 1_048_576}, capacity)
