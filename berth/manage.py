"""Set-up commands ``make run`` calls before starting the processes.

    python -m berth.manage check-broker   # exit 1 with advice if RabbitMQ is not reachable
    python -m berth.manage init           # create databases and schemas, then the first admin
"""
from __future__ import annotations

import importlib
import sys

import berth
from berth.db import create_schema, ensure_database, make_engine
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


def create_schemas() -> None:
    """Every service gets its database (even one with no tables yet: health checks it)."""
    settings = get_settings()
    bases = model_bases()
    for name in berth.SERVICES:
        url = settings.database_url_for(name)
        if name in bases:
            create_schema(bases[name], url)
        else:
            ensure_database(url)


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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
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
        create_schemas()
        print("schemas: ready")
        print(ensure_first_admin())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
