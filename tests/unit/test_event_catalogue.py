"""The event catalogue (the table in ``berth.events``'s docstring) says who consumes each event:
that column must name exactly the services with a handler for it, and the source column the
service the event class says dispatches it. A handler added or removed without the table
following (or the reverse) fails here."""
from __future__ import annotations

import importlib
import inspect

import pytest
from nameko.events import EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

import berth
from berth import events


def catalogue_table() -> dict[str, tuple[str, set[str]]]:
    """event type -> (source, consumers), read from the docstring's table."""
    rows = {}
    for line in events.__doc__.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) != 4:
            continue
        name, source, consumed_by, _ = cells
        if name == "event" or set(name) <= {"-"}:
            continue  # the header and the rule under it
        rows[name] = (source, {c.strip() for c in consumed_by.split(",") if c.strip()})
    return rows


def service_class(name: str) -> type:
    module = importlib.import_module(f"services.{name}.service")
    [cls] = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if getattr(c, "name", None) == name and c.__module__ == module.__name__]
    return cls


def event_handlers(cls: type) -> list[tuple[str, EventHandler]]:
    """(method name, handler) for each event handler entrypoint of a service class."""
    found = []
    for method_name, method in inspect.getmembers(cls, inspect.isfunction):
        for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, EventHandler):
                found.append((method_name, entrypoint))
    return found


@pytest.fixture(scope="module")
def handled() -> dict[str, set[str]]:
    """event type -> the services that really handle it (checked against the source too)."""
    by_event: dict[str, set[str]] = {}
    for name in berth.SERVICES:
        for method_name, handler in event_handlers(service_class(name)):
            event_cls = events.CATALOGUE.get(handler.event_type)
            assert event_cls is not None, \
                f"{name}.{method_name} handles {handler.event_type!r}, not in the catalogue"
            assert handler.source_service == event_cls.SOURCE, \
                f"{name}.{method_name} listens to {handler.source_service!r} for " \
                f"{handler.event_type}, which {event_cls.SOURCE!r} dispatches"
            by_event.setdefault(handler.event_type, set()).add(name)
    return by_event


def test_the_table_lists_every_catalogued_event_with_its_source():
    table = catalogue_table()
    assert set(table) == set(events.CATALOGUE)
    assert {name: source for name, (source, _) in table.items()} == \
        {name: cls.SOURCE for name, cls in events.CATALOGUE.items()}


def test_consumed_by_names_exactly_the_services_that_handle_each_event(handled):
    table = catalogue_table()
    assert {name: consumers for name, (_, consumers) in table.items()} == \
        {name: handled.get(name, set()) for name in table}


def test_alerts_handles_every_event_under_its_old_handler_name():
    """The handler's name makes its queue's name (``evt-<source>-<type>--alerts.on_<type>``):
    renaming one would strand the events waiting in the old queue."""
    names = {handler.event_type: method_name
             for method_name, handler in event_handlers(service_class("alerts"))}
    assert names == {name: f"on_{name}" for name in events.CATALOGUE}
