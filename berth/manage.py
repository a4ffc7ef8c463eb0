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

The kernel imports no service: it finds each service's part by name (``berth.SERVICES``). A
service may have ``services/<name>/manage.py`` with ``initialise() -> str`` (run by ``init``
after the migrations; users: the first admin) and ``COMMANDS = {"name": function() -> str}``
(extra commands; containers and users: ``reseal``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

import berth
from berth.db import ensure_database
from berth.settings import DEVELOPMENT_SECRETS_FILE, InsecureConfiguration, get_settings


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


def check_rate_limit_store(uri: str | None = None) -> str | None:
    """None if the rate limits' store answers (or counts in memory), else what is wrong."""
    uri = uri or get_settings().rate_limit_storage
    if not uri.startswith("redis"):
        return None
    try:
        from limits.storage import storage_from_string
        if storage_from_string(uri, socket_connect_timeout=2, socket_timeout=2).check():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"Redis is not reachable at {uri}: {exc}"
    return f"Redis is not reachable at {uri}"


def service_modules(leaf: str) -> dict:
    """``services.<name>.<leaf>`` of every service that has one, by service name."""
    found = {}
    for name in berth.SERVICES:
        module_name = f"services.{name}.{leaf}"
        try:
            found[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the module exists but something it imports does not
                raise
    return found


def model_bases() -> dict:
    """Each service's declarative base, for those that own tables."""
    return {name: module.Base for name, module in service_modules("models").items()}


def service_commands() -> dict:
    """The extra commands services declare (``COMMANDS`` in their ``manage.py``); a command
    several services declare (``reseal``) runs each one's, one line each."""
    found: dict[str, list] = {}
    for module in service_modules("manage").values():
        for command, function in getattr(module, "COMMANDS", {}).items():
            found.setdefault(command, []).append(function)
    return {command: (lambda functions=functions: "\n".join(f() for f in functions))
            for command, functions in found.items()}


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


def initialise_services() -> list[str]:
    """Each service's own step of ``init`` (``initialise()`` in its manage.py), in order."""
    return [module.initialise() for module in service_modules("manage").values()
            if hasattr(module, "initialise")]


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
        problem = check_rate_limit_store()
        if problem:  # not fatal: the gateway then runs its rate limits open (README, Auth)
            print(f"warning: {problem}; the gateway's rate limits will not apply until it "
                  f"answers. Start it with `redis-server --daemonize yes` (Debian: apt-get "
                  f"install redis-server) or point BERTH_RATE_LIMIT_STORAGE at one.",
                  file=sys.stderr)
        return 0
    if command == "init":
        settings = get_settings()
        try:  # fail early, before anything starts: an unsafe secret, development off loopback
            settings.secret  # development: this installation's secrets are made here
            settings.require_loopback_in_development(None, *berth.SERVICES)
        except InsecureConfiguration as exc:
            print(f"init: {exc}", file=sys.stderr)
            return 1
        if settings.is_development:
            print(f"development secrets: {settings.var_dir / DEVELOPMENT_SECRETS_FILE} "
                  f"(made for this installation; not for production)")
        for line in migrate():
            print(f"schema {line}")
        for line in initialise_services():
            print(line)
        return 0
    if command == "migrate":
        for line in migrate():
            print(f"schema {line}")
        return 0
    if command == "current":
        return current_command()
    if command == "revision":
        return revision_command(argv[1:])
    commands = service_commands()
    if command in commands:
        print(commands[command]())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
