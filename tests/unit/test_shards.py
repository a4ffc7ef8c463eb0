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
    assert combined([0, 0]) == 0
    assert combined([1, 0]) == 1 and combined([0, 2]) == 2
    assert combined([NO_TESTS, 0]) == 0  # a selection that left one shard nothing
    assert combined([NO_TESTS, 1]) == 1
    assert combined([NO_TESTS, NO_TESTS]) == NO_TESTS
