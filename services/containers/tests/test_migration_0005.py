"""Migration 0005 on existing rows (SQLite scratch, no broker, no engine): maintenance becomes
a flag, and every offline server gets a down_since (its created_at) so server_health rules
count its down-time from when it was added, not from forever (issue 13, item 2)."""
from __future__ import annotations

from sqlalchemy import create_engine, text

from berth import migrations


def test_offline_rows_get_down_since_and_maintenance_becomes_a_flag(tmp_path):
    url = f"sqlite:///{tmp_path}/containers.sqlite3"
    migrations.upgrade("containers", url, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        for name, status, down_since in (("never", "offline", None),
                                         ("was-down", "offline", "2026-01-02 00:00:00"),
                                         ("fixing", "maintenance", None),
                                         ("fine", "online", None)):
            conn.execute(text(
                "INSERT INTO servers (name, ip_address, docker_url, status, down_since, "
                "created_at) VALUES (:n, '127.0.0.1', :u, :s, :d, '2026-01-01 00:00:00')"),
                {"n": name, "u": f"unix:///{name}.sock", "s": status, "d": down_since})
    migrations.upgrade("containers", url)
    with engine.connect() as conn:
        rows = {name: (status, bool(maintenance), down_since) for name, status, maintenance,
                down_since in conn.execute(text(
                    "SELECT name, status, maintenance, down_since FROM servers"))}
    engine.dispose()
    assert rows == {"never": ("offline", False, "2026-01-01 00:00:00"),
                    "was-down": ("offline", False, "2026-01-02 00:00:00"),
                    "fixing": ("offline", True, "2026-01-01 00:00:00"),
                    "fine": ("online", False, None)}
