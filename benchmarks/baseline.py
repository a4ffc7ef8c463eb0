"""The server a user would otherwise write, for ``make bench-gateway`` to measure Berth against
(issue 18): ONE Flask app with SQLAlchemy 2 answering ``GET /api/security/user_acl_info/<id>``
with the same JSON as Berth, served by gunicorn with the gateway's worker count, worker class
and threads, on the same database backend.

What it does per request, and why each part is the same as Berth's:

- The bearer token is checked by ``gateway.sessions.TokenChecker``, the gateway's own checker:
  ``berth.tokens.decode`` (PyJWT, HS256, the same required claims, ``typ``, ``sub``, ``sid``,
  ``ver``, leeway) and then the user's token state (version, disabled, revoked sessions) that
  makes a signed-out or demoted token stop working. Berth's gateway keeps that state per
  worker for BERTH_TOKEN_CHECK_SECONDS and refreshes it with one ``users.token_state`` RPC;
  here the same cache (same class, same max age) is refreshed by running the same
  ``services.users.sessions.token_state`` query on the local database instead. So both
  servers give the same guarantee (a revocation bites within that bound), and neither pays
  the check per request: in a 15 s run it is ~8 refreshes per worker either way.
- The role (any signed-in role) and the self-or-admin check (``Actor.require_self_or_admin``)
  as the route declares them in ``gateway/blueprints/users.py``.
- The read is ``services.users.acl.info``: the users service's one query (users outer join
  acls) on a database created from ``services.users.models``, with an engine from
  ``berth.db.make_engine`` (SQLite: one connection per process, WAL; PostgreSQL: psycopg2
  with the same pool), so the table shape, the row and the engine options are Berth's.
- Errors answer ``{"error": ...}`` with the same status codes (``BerthError.to_json``).

What it does not do, because a single server does not need it or Berth adds it on top: no RPC,
no broker, no request-id header, no Prometheus metrics, no audit hook, no rate limits (Berth's
benchmark platform counts them in Redis), no response validation.

``running_baseline`` (used by benchmarks/gateway.py) creates and seeds its database and runs
gunicorn in a session of its own, so the benchmark can account its CPU as one group.
``python -m benchmarks.baseline`` is not an entry point: gunicorn loads ``create_app()`` with
the settings in the environment variables below.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, jsonify, request
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from benchmarks.common import http_json
from berth import tokens
from berth.actor import Actor
from berth.db import create_schema, drop_database, make_engine, utcnow
from berth.errors import BerthError, Forbidden, Unauthorized
from gateway.sessions import TokenChecker
from services.users import acl, sessions
from services.users.models import Acl, Base, LoginSession, User

DATABASE_ENV = "BERTH_BASELINE_DATABASE_URL"
SECRET_ENV = "BERTH_BASELINE_JWT_SECRET"
TOKEN_CHECK_ENV = "BERTH_BASELINE_TOKEN_CHECK_SECONDS"
SIGNED_IN = ("admin", "distributor", "user")  # the route's access (gateway.api.SIGNED_IN)


def create_app() -> Flask:
    """The baseline app (gunicorn: ``benchmarks.baseline:create_app()``), configured by
    BERTH_BASELINE_DATABASE_URL, BERTH_BASELINE_JWT_SECRET and
    BERTH_BASELINE_TOKEN_CHECK_SECONDS."""
    engine = make_engine(os.environ[DATABASE_ENV])
    Session = sessionmaker(bind=engine, expire_on_commit=False)

    def token_state(user_id: int) -> dict:
        with Session() as session:
            return sessions.token_state(session, user_id, utcnow())

    checker = TokenChecker(os.environ[SECRET_ENV], token_state,
                           float(os.environ[TOKEN_CHECK_ENV]))
    app = Flask(__name__)
    app.json.sort_keys = False  # as the gateway: the services' key order

    def caller() -> Actor:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Missing bearer token")
        actor, _session_id = checker.check(token, request.url_rule.rule)
        if actor.role not in SIGNED_IN:
            raise Forbidden(f"This route requires the {' or '.join(SIGNED_IN)} role")
        return actor

    @app.get("/api/security/user_acl_info/<int:user_id>")
    def user_acl_info(user_id: int):
        caller().require_self_or_admin(user_id=user_id)
        with Session() as session:
            return jsonify(acl.info(session, user_id))

    @app.errorhandler(BerthError)
    def _domain_error(exc: BerthError):
        response = jsonify(exc.to_json())
        response.status_code = exc.status
        return response

    return app


# --- run by the benchmark -------------------------------------------------------------------

@dataclass
class RunningBaseline:
    url: str
    token: str
    user_id: int
    session_id: int            # gunicorn's session: the benchmark's CPU group
    database: str              # the database's name (SQLite: its file)
    description: str


def seed(url: str, user_id: int, claims: dict, permissions: list[str]) -> None:
    """The users tables (from the models, as Berth's migrations make them) with the benchmark
    user's row as Berth holds it: same id, role, name and token version, their login session,
    and the same ACL."""
    create_schema(Base, url)
    engine = make_engine(url)
    now = utcnow()
    try:
        with sessionmaker(bind=engine)() as session:
            session.add(User(id=user_id, username=claims["username"],
                             email=f"{claims['username']}@example.com",
                             password_hash="unused: the baseline has no login",
                             role=claims["role"], token_version=claims["ver"],
                             created_at=now, updated_at=now))
            session.flush()
            session.add(Acl(user_id=user_id, permissions=permissions, created_at=now,
                            updated_at=now))
            session.add(LoginSession(id=claims["sid"], user_id=user_id, created_at=now,
                                     expires_at=now + dt.timedelta(hours=1)))
            session.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def running_baseline(database_url: str, secret: str, berth_token: str, permissions: list[str],
                     folder: Path, port: int, workers: int, threads: int,
                     token_check_seconds: float):
    """Seed a database at ``database_url`` (SQLite file or a fresh PostgreSQL database, dropped
    afterwards) with the user ``berth_token`` names, issue a token for them with Berth's own
    ``tokens.issue_access_token`` and ``secret``, and run gunicorn on 127.0.0.1:``port``
    (``workers`` gthread workers x ``threads``) until the block ends. Raises RuntimeError
    with gunicorn's log when it does not answer."""
    claims = tokens.decode(secret, berth_token, tokens.ACCESS)
    user_id = int(claims["sub"])
    seed(database_url, user_id, claims, permissions)
    token = tokens.issue_access_token(secret, user_id, claims["role"], claims["username"],
                                      3600, claims["sid"], claims["ver"])
    log_path = folder / "baseline-gunicorn.log"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BERTH_")},
           DATABASE_ENV: database_url, SECRET_ENV: secret,
           TOKEN_CHECK_ENV: str(token_check_seconds)}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    argv = [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "5",
            "--timeout", "60", "--no-control-socket", "benchmarks.baseline:create_app()"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_answering(url, f"/api/security/user_acl_info/{user_id}", token, proc, log_path)
        yield RunningBaseline(url, token, user_id, os.getsid(proc.pid),
                              make_url(database_url).database,
                              f"gunicorn {workers} workers x {threads} threads (gthread), "
                              f"one Flask app + SQLAlchemy")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if not database_url.startswith("sqlite"):
            drop_database(database_url)


def wait_answering(url: str, path: str, token: str, proc: subprocess.Popen, log_path: Path,
                   timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, body = http_json(url, "GET", path, token=token, timeout=5)
            if status == 200:
                return
            last = (status, body)
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"the baseline did not answer 200 (last: {last}):\n"
                       f"{log_path.read_text(errors='replace')[-3000:]}")


def scratch_database_url(database: str, folder: Path, postgres_server: str) -> str:
    """Where the baseline keeps its data: a SQLite file in ``folder``, or a fresh database on
    the PostgreSQL server Berth's own databases live on (``postgres_server``: a URL ending in
    ``/<database>``, replaced)."""
    if database == "sqlite":
        return f"sqlite:///{folder}/baseline.sqlite3"
    return f"{postgres_server.rsplit('/', 1)[0]}/berth_baseline_{uuid.uuid4().hex[:8]}"
