"""The README is a newcomer's only guide: it stands on its own, its examples authenticate the
way the API wants, every route it names exists, and every setting is in its table."""
import re
from pathlib import Path

import pytest

from berth.settings import Settings
from gateway.app import create_app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROUTE = re.compile(r"(GET|POST|PUT|DELETE) (/api/[A-Za-z0-9_/<>:.{}-]+)")
PARAM = re.compile(r"<[^>]*>")


def test_it_relies_on_no_file_outside_the_repository():
    assert "../" not in README


def test_the_first_example_names_sign_up_and_sends_the_bearer_header():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    first_api_call = next(b for b in blocks if "/login" in b)
    assert "Authorization: Bearer" in first_api_call
    assert "/add_user" in first_api_call  # sign-up


@pytest.mark.parametrize("topic", ["**Serials**", "distributor flow", "**ACLs**", "**Times.**",
                                   "**Rental states.**"])
def test_it_explains_what_a_newcomer_asks_first(topic):
    assert topic in README


def test_every_route_it_names_exists():
    app = create_app()
    rules = {(method, PARAM.sub("<>", rule.rule))
             for rule in app.url_map.iter_rules() for method in rule.methods}
    named = {(method, PARAM.sub("<>", path.rstrip(".,;:)").rstrip("/")))
             for method, path in ROUTE.findall(README)}
    assert named, "the README names routes"
    missing = {(m, p) for m, p in named
               if (m, p) not in rules and (m, p.rsplit("?", 1)[0]) not in rules}
    assert not missing, sorted(missing)


def test_every_setting_is_in_the_configuration_table():
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in table.splitlines():  # `BERTH_SMTP_HOST` / `_PORT`: both documented
        names = re.findall(r"`(BERTH_[A-Z0-9_]+|_[A-Z0-9_]+)`", row)
        full = [n for n in names if n.startswith("BERTH_")]
        documented.update(full)
        for first in full[:1]:
            parts = first.split("_")
            for suffix in (n for n in names if n.startswith("_")):
                documented.update("_".join(parts[:i]) + suffix for i in range(1, len(parts)))
    missing = [f"BERTH_{name.upper()}" for name in Settings.model_fields
               if f"BERTH_{name.upper()}" not in documented]
    assert not missing, missing
