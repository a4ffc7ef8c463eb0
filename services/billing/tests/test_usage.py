"""What a customer has used of their plan (services.billing.usage), with fake peers."""
from berth.errors import NotOffered, ServiceUnavailable
from services.billing import usage


class Peers:
    def __init__(self, containers=2, traffic=None, down=()):
        self.containers, self.down = containers, down
        self.traffic = traffic or {"month": "2026-11", "used_bytes": 12345}

    def containers_of(self, user_id):
        if "containers" in self.down:
            raise ServiceUnavailable("The containers service is not running")
        return self.containers

    def traffic_this_month(self, user_id):
        if "traffic" in self.down:
            raise NotOffered("The traffic service does not offer monthly traffic yet")
        return self.traffic


def test_both_figures_when_both_peers_answer():
    assert usage.used(Peers(), 7) == {"containers": 2, "traffic_month": "2026-11",
                                      "traffic_bytes": 12345, "unavailable": []}


def test_a_peer_that_does_not_answer_leaves_its_figure_null_and_is_named():
    assert usage.used(Peers(down=("containers",)), 7) == {
        "containers": None, "traffic_month": "2026-11", "traffic_bytes": 12345,
        "unavailable": ["containers"]}
    assert usage.used(Peers(down=("containers", "traffic")), 7)["unavailable"] == [
        "containers", "traffic"]
