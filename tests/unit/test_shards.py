"""make test's two shards (tests/shards.py): how the suite is split, and the exit status."""
from __future__ import annotations

from pathlib import Path

from tests.shards import NO_TESTS, SHARDS, combined, split


class Item:
    def __init__(self, path: str, *fixtures: str, deploy: bool = False):
        self.path, self.fixturenames, self.deploy = Path(path), list(fixtures), deploy

    def get_closest_marker(self, name):
        return object() if name == "deploy" and self.deploy else None


ITEMS = [Item("a.py", "databases"), Item("a.py", "docker_url", "docker_client"),
         Item("b.py", "platform"), Item("b.py"), Item("c.py", deploy=True), Item("d.py")]


def test_the_shards_split_the_suite_by_module_with_the_default_engine_in_one():
    engine, rest = split(ITEMS, "engine")
    assert [i.path.name for i in engine] == ["a.py", "a.py", "c.py"]  # the whole module a.py
    assert split(ITEMS, "rest") == (rest, engine)  # together, every item once
    assert SHARDS == ("engine", "rest")


def test_the_suite_fails_when_either_shard_fails():
    for selected in (True, False):
        assert combined([0, 0], selected) == 0
        assert combined([1, 0], selected) == 1 and combined([0, 2], selected) == 2
        assert combined([NO_TESTS, 1], selected) == 1
        assert combined([NO_TESTS, NO_TESTS], selected) == NO_TESTS
    # a selection (-k, -m, a path) may leave one shard nothing; without one, the split failed
    assert combined([NO_TESTS, 0], selected=True) == 0
    assert combined([0, NO_TESTS], selected=False) == NO_TESTS
