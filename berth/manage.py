"""Set-up commands ``make run`` calls before starting the processes, and migration tools.

    python -m berth.manage check-broker   # exit 1 with advice if RabbitMQ is not reachable
    python -m berth.manage init           # create databases, migrate every schema to its
                                          # newest revision, then the first admin
    python -m berth.manage migrate        # only migrate every service's database
    python -m berth.manage current        # each service's revision, and whether it is the head
    python -m berth.manage revision SERVICE -m "what changed" [--url SCRATCH_DB_URL]
                                          # autogenerate a migration from SERVICE's models.py
    python -m berth.manage reseal         # after putting a new key first in
                                          # BERTH_SECRETS_KEY: seal stored secrets with it
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

import berth
from berth.db import ensure_database, make_engine
from berth.settings import get_settings


def check_broker(uri: str | None = None, timeout: float = 5.0) -> str | None:
    """None if RabbitMQ answers at ``uri``, else a sentence saying what is wrong."""
    from kombu import Connection
    uri = uri or get_settings().amqp_uri
    try:
        with Connection(uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"RabbitMQ is not reachable at {uri}: {exc}"
    return None


def model_bases() -> dict:
    """Each service's declarative base, for those that own tables."""
    bases = {}
    for name in berth.SERVICES:
        try:
            module = importlib.import_module(f"services.{name}.models")
        except ModuleNotFoundError:
            continue
        bases[name] = module.Base
    return bases


def migrate() -> list[str]:
    """Every service's database is created if missing and upgraded to its newest revision
    (Alembic, services/<name>/migrations); one line per service says what happened."""
    from berth import migrations

    settings = get_settings()
    bases = model_bases()
    said = []
    for name in berth.SERVICES:
        url = settings.database_url_for(name)
        if name in bases:
            said.append(migrations.upgrade(name, url))
        else:  # no tables yet, but health checks its database
            ensure_database(url)
    return said


def ensure_first_admin() -> str:
    from sqlalchemy.orm import Session

    from services.users.accounts import ensure_admin
    from services.users.passwords import hash_password
    from services.users.schemas import AddUser

    s = get_settings()
    if not (s.admin_username and s.admin_password and s.admin_email):
        return ("no first admin created: set BERTH_ADMIN_USERNAME, BERTH_ADMIN_PASSWORD "
                "and BERTH_ADMIN_EMAIL to create one")
    AddUser(username=s.admin_username, password=s.admin_password, email=s.admin_email)
    engine = make_engine(s.database_url_for("users"))
    try:
        with Session(engine) as session:
            created = ensure_admin(session, s.admin_username, s.admin_email,
                                   hash_password(s.admin_password))
            session.commit()
    finally:
        engine.dispose()
    return f"admin {s.admin_username!r} {'created' if created else 'already exists'}"


def revision_command(argv) -> int:
    from berth import migrations

    parser = argparse.ArgumentParser(prog="python -m berth.manage revision")
    parser.add_argument("service", choices=berth.SERVICES)
    parser.add_argument("-m", "--message", required=True)
    parser.add_argument("--postgres", metavar="SERVER_URL",
                        help="compare against a scratch database on this PostgreSQL server, "
                             "e.g. postgresql://postgres@127.0.0.1/postgres (recommended: "
                             "SQLite, the default, cannot see expression indexes)")
    args = parser.parse_args(argv)
    path = migrations.revision(args.service, args.message, args.postgres)
    if path is None:
        print(f"{args.service}: models.py matches the migrations; nothing to generate")
    else:
        print(f"{args.service}: wrote {path}\nRead it and edit it before committing "
              f"(autogenerate cannot see renames, data moves or server defaults).")
    return 0


def current_command() -> int:
    from berth import migrations

    settings = get_settings()
    behind = 0
    for name in model_bases():
        rev = migrations.current(name, settings.database_url_for(name))
        head = migrations.head(name)
        behind += rev != head
        print(f"{name}: {rev or 'not migrated'}{'' if rev == head else f' (head: {head})'}")
    return 1 if behind else 0


def reseal() -> str:
    """Seal every stored TLS client key again with the newest key of BERTH_SECRETS_KEY, so an
    older key can then be dropped from it (berth.sealing)."""
    from sqlalchemy import select, update

    from berth.sealing import seal, unseal
    from services.containers.models import Server

    keys = get_settings().sealing_keys
    engine = make_engine(get_settings().database_url_for("containers"))
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(Server.id, Server.tls_client_key)
                                .where(Server.tls_client_key.is_not(None))).all()
            for server_id, key in rows:
                conn.execute(update(Server).where(Server.id == server_id).values(
                    tls_client_key=seal(unseal(key, keys), keys)))
    finally:
        engine.dispose()
    return f"resealed {len(rows)} TLS client key(s) with the newest key"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    if command in ("init", "migrate"):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if command == "check-broker":
        problem = check_broker()
        if problem:
            print(f"{problem}\n\nStart RabbitMQ first, e.g. `rabbitmq-server -detached` "
                  f"(Debian: apt-get install rabbitmq-server), or point BERTH_AMQP_URI at "
                  f"a running broker.", file=sys.stderr)
            return 1
        print("broker: reachable")
        return 0
    if command == "init":
        settings = get_settings()
        settings.secret  # fail early on an unsafe secret
        for line in migrate():
            print(f"schema {line}")
        print(ensure_first_admin())
        return 0
    if command == "migrate":
        for line in migrate():
            print(f"schema {line}")
        return 0
    if command == "current":
        return current_command()
    if command == "reseal":
        print(reseal())
        return 0
    if command == "revision":
        return revision_command(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
