"""Helpers shared by the containers service tests."""
import json

from sqlalchemy import create_engine, text

from berth.db import normalise_url


def outbox(databases) -> list[tuple[str, dict]]:
    """Every event the containers service recorded, in order: (event type, payload)."""
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_type, payload FROM event_outbox ORDER BY id"))
        found = [(kind, json.loads(payload)) for kind, payload in rows]
    engine.dispose()
    return found
