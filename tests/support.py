"""Real infrastructure for tests: RabbitMQ vhosts, databases, an SMTP server, the platform;
and ``poll``, the one way tests wait for something to happen."""
from __future__ import annotations

import contextlib
import email
import json
import mailbox
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from tests import shards

ROOT = Path(__file__).resolve().parent.parent
REPORT: list[str] = []  # lines printed at the end of the run (root conftest), pass or fail


def report(*lines: str) -> None:
    REPORT.extend(lines)
PG_ADMIN_URL = os.environ.get("BERTH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("BERTH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


# Ports handed to servers the tests start lie below the kernel's ephemeral range: a port
# from that range can be taken by any process's outgoing connection between our choosing it
# and the server binding it ("Address already in use" seen once in a full run), and below
# Berth's default customer port range (20000-29999), which containers publish on. The two
# shards `make test` runs at once (BERTH_TEST_SHARD, conftest.py) each take half, so neither
# hands out a port the other has chosen but not yet bound.
TEST_PORTS = {"engine": (10000, 14999), "rest": (15000, 19999)}.get(
    shards.current(), (10000, 19999))


# Every port handed out in this process, never handed out again: a port is free when chosen
# but taken only when its server binds, so two choices before either binds (a platform's
# gateway port and its block of /metrics ports) could otherwise be the same port.
_HANDED_OUT: set[int] = set()


def _claim(ports: range) -> bool:
    """Hand out ``ports`` if none was handed out before and each is free now on 127.0.0.1."""
    if ports.start < TEST_PORTS[0] or ports.stop - 1 > TEST_PORTS[1]:
        return False
    if any(port in _HANDED_OUT for port in ports):
        return False
    socks = []
    try:
        for port in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()
    _HANDED_OUT.update(ports)
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, outside the ephemeral range, and not handed out
    before in this process."""
    low, high = TEST_PORTS
    for _ in range(1000):
        port = random.randint(low, high)
        if _claim(range(port, port + 1)):
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def free_port_block(count: int) -> int:
    """A base port such that base+1 .. base+count are free now and not handed out before."""
    low, high = TEST_PORTS
    for _ in range(1000):
        base = random.randint(low, high - count)
        if _claim(range(base + 1, base + count + 1)):
            return base
    raise RuntimeError("no free block of ports")


# --- waiting ----------------------------------------------------------------------------------

def timeouts() -> tuple[type[BaseException], ...]:
    """What ``subprocess`` raises on a timeout, for an ``except`` clause. Once nameko's eventlet
    is imported, ``subprocess.Popen`` is a green subclass whose ``communicate()`` (and so
    ``subprocess.run(timeout=...)``) raises the ``TimeoutExpired`` of the stdlib module eventlet
    set aside: another class, which ``except subprocess.TimeoutExpired`` lets through."""
    original = sys.modules.get("__original_module_subprocess", subprocess)
    return subprocess.TimeoutExpired, original.TimeoutExpired


def poll(probe, until=bool, *, timeout: float = 20.0, interval: float = 0.1,
         what: str = "the condition", retry_on=(), details=None, error=AssertionError):
    """Call ``probe()`` every ``interval`` seconds until ``until(value)`` holds; return that value.

    * ``poll(lambda: mails_to(smtp, address))``: until the probe returns something truthy;
    * ``poll(lambda: rpc.alerts.list_alerts({})["total"], until=lambda n: n == 3)``: until
      the value satisfies a condition;
    * ``poll(download, until=None, retry_on=OSError)``: until the probe stops raising (any
      value it returns then will do).

    An attempt that raises one of ``retry_on`` (from the probe or from ``until``) is a miss;
    any other exception propagates at once. After ``timeout`` seconds (the probe is always
    tried at least once, and once more at the end) it raises ``error`` (AssertionError: a test
    failure; fixtures that start a server pass their own) saying what was awaited, how long and
    how many tries it took, and the last value the probe returned or the last exception it
    raised, repr'd and cut to a readable length; ``details()``, if given, is called then and
    appended (logs, a mailbox).
    """
    accept = until if until is not None else (lambda _value: True)
    began = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            value = probe()
            if accept(value):
                return value
            last, raised = value, None
        except retry_on as exc:
            last, raised = None, exc
        waited = time.monotonic() - began
        if waited >= timeout:
            break
        time.sleep(min(interval, timeout - waited))
    if raised is not None:
        seen = f"last raised {_shorten(f'{type(raised).__name__}: {raised}')}"
    else:
        seen = f"last returned {_shorten(repr(last))}"
    attempts = "1 try" if tries == 1 else f"{tries} tries"
    message = f"timed out after {waited:.1f} s ({attempts}) waiting for {what}; {seen}"
    if details is not None:
        try:
            message += f"\n{details()}"
        except Exception as exc:  # noqa: BLE001 - the timeout is the news, not this
            message += f"\n(details unavailable: {exc!r})"
    raise error(message) from raised


def _shorten(text: str, limit: int = 800) -> str:
    """``text`` if short enough, else its head and tail around how much was cut."""
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]} ...[{len(text) - 2 * keep} characters]... {text[-keep:]}"


# --- RabbitMQ -------------------------------------------------------------------------------

def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Vhost:
    """An isolated RabbitMQ vhost, deleted afterwards."""

    def __init__(self):
        self.name = f"berth-test-{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return f"{RABBIT_URL}/{self.name}"

    def __exit__(self, *exc):
        try:
            rabbitmqctl("delete_vhost", self.name)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


# --- databases ------------------------------------------------------------------------------

class DatabaseSet:
    """URL template for one backend: SQLite files in a folder or fresh PostgreSQL databases."""

    def __init__(self, backend: str, folder: Path):
        self.backend = backend
        self.prefix = f"berth_t{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            self.template = f"sqlite:///{folder}/{{service}}.sqlite3"
        else:
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            self.template = f"{base}/{self.prefix}_{{service}}"

    def url(self, service: str) -> str:
        return self.template.format(service=service)

    @contextlib.contextmanager
    def scratch_sessions(self, name: str, base):
        """A session factory on database ``name`` holding ``base``'s tables, emptied (for
        domain tests that need no service around them)."""
        from sqlalchemy.orm import sessionmaker

        from berth.db import create_schema, make_engine
        url = self.url(name)
        create_schema(base, url)
        engine = make_engine(url)
        with engine.begin() as conn:
            for table in reversed(base.metadata.sorted_tables):
                conn.execute(table.delete())
        try:
            yield sessionmaker(bind=engine, expire_on_commit=False)
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self.backend != "postgresql":
            return
        from berth.db import normalise_url
        admin = create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                 {"p": f"{self.prefix}_%"}).scalars().all()
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- SMTP -----------------------------------------------------------------------------------

class SmtpServer:
    """A real SMTP server (aiosmtpd) in its own process, delivering into a Maildir; with
    ``starttls=(cert, key)`` it requires STARTTLS before any mail, with ``smtps=(cert, key)``
    it speaks TLS from the first byte (PEM file paths)."""

    def __init__(self, folder: Path, port: int | None = None,
                 starttls: tuple[str, str] | None = None,
                 smtps: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.maildir = folder / "maildir"
        self.proc = None
        self.tls_args = []
        if starttls:
            self.tls_args += ["--tlscert", str(starttls[0]), "--tlskey", str(starttls[1])]
        if smtps:
            self.tls_args += ["--smtpscert", str(smtps[0]), "--smtpskey", str(smtps[1])]

    def start(self) -> SmtpServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             *self.tls_args, "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 15)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def messages(self) -> list[email.message.Message]:
        if not self.maildir.exists():
            return []
        return [email.message_from_bytes(m.as_bytes()) for m in mailbox.Maildir(self.maildir)]

    def summary(self) -> str:
        """Every mail there, as (To, Subject): what a failed wait for a mail shows."""
        return f"mailbox: {[(m['To'], m['Subject']) for m in self.messages()]}"

    def wait_for(self, predicate, timeout: float = 20.0) -> list:
        """The mails ``predicate`` accepts, once there is one."""
        return poll(lambda: [m for m in self.messages() if predicate(m)], timeout=timeout,
                    interval=0.2, what="a mail the predicate accepts", details=self.summary)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float) -> None:
    poll(lambda: listening(port), timeout=timeout, what=f"a listener on 127.0.0.1:{port}",
         error=TimeoutError)


# --- the whole platform ---------------------------------------------------------------------

SERVICES = ("users", "containers", "traffic", "billing", "alerts")
REDIS_URL = os.environ.get("BERTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def generous_rate_limits() -> dict:
    """A platform's rate limits for tests that do not test them: counted in Redis under a key
    prefix of its own (platforms never share counters), every limit far above what a test
    sends from its one address. tests/e2e/test_rate_limits.py sets real ones."""
    from berth.settings import Settings
    env = {"BERTH_RATE_LIMIT_STORAGE": REDIS_URL,
           "BERTH_RATE_LIMIT_PREFIX": f"berth-test-{uuid.uuid4().hex[:12]}"}
    for field in Settings.model_fields:
        if field.startswith("rate_limit_") and field not in ("rate_limit_storage",
                                                              "rate_limit_prefix"):
            env[f"BERTH_{field.upper()}"] = "1000000/minute"
    return env



class Platform:
    """Every process real: five services and gunicorn, started as ``make run`` starts them."""

    admin = {"username": "root-admin", "password": "admin-password-1", "email": "admin@example.com"}

    def __init__(self, folder: Path, amqp_uri: str, database_template: str,
                 smtp_port: int | None = None, extra_env: dict | None = None):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_base = free_port_block(len(SERVICES))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BERTH_")},
            "BERTH_ENV": "test",
            "BERTH_CONTAINER_PULL_REGISTRIES": "",  # never pull from outside 127.0.0.1
            "BERTH_JWT_SECRET": os.environ["BERTH_JWT_SECRET"],
            "BERTH_SECRETS_KEY": os.environ["BERTH_SECRETS_KEY"],
            "BERTH_AMQP_URI": amqp_uri,
            "BERTH_DATABASE_URL": database_template,
            "BERTH_VAR_DIR": str(folder),
            "BERTH_PUBLIC_URL": self.url,
            "BERTH_GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "BERTH_GATEWAY_WORKERS": "2",
            "BERTH_METRICS_PORT_BASE": str(self.metrics_base),
            "BERTH_RPC_TIMEOUT": "4",
            "BERTH_HEALTH_TIMEOUT": "2",
            "BERTH_MAIL_RETRY_INTERVAL": "1",
            "BERTH_MAIL_MAX_BACKOFF": "2",
            "BERTH_OUTBOX_RELAY_INTERVAL": "1",
            "BERTH_VALIDATE_RESPONSES": "1",
            "BERTH_ADMIN_USERNAME": self.admin["username"],
            "BERTH_ADMIN_PASSWORD": self.admin["password"],
            "BERTH_ADMIN_EMAIL": self.admin["email"],
            "PYTHONUNBUFFERED": "1",
            **generous_rate_limits(),
        }
        if smtp_port:
            self.env.update(BERTH_SMTP_HOST="127.0.0.1", BERTH_SMTP_PORT=str(smtp_port))
        self.env.update(extra_env or {})
        self.procs: dict[str, subprocess.Popen] = {}
        self.replica_metrics: dict[str, str] = {}

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.metrics_base + 1 + SERVICES.index(service)}/metrics"

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = open(self.folder / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(env or {})},
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start_service(self, name: str) -> None:
        self._spawn(name, [sys.executable, "-m", "berth.run", name])

    def start_replica(self, name: str) -> str:
        """Another process of service ``name`` (same broker and databases); returns its key
        in ``procs`` and ``replica_metrics`` (its own /metrics port)."""
        key = f"{name}-{sum(1 for k in self.procs if k.startswith(name + '-')) + 2}"
        port = free_port()
        self._spawn(key, [sys.executable, "-m", "berth.run", name],
                    env={"BERTH_METRICS_ADDRESS": f"127.0.0.1:{port}"})
        self.replica_metrics[key] = f"http://127.0.0.1:{port}/metrics"
        return key

    def stop_service(self, name: str, sig=signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def start(self, timeout: float = 60) -> Platform:
        subprocess.run([sys.executable, "-m", "berth.manage", "init"], cwd=ROOT, env=self.env,
                       check=True, capture_output=True, timeout=120)
        for name in SERVICES:
            self.start_service(name)
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self._spawn("gateway", [gunicorn, "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"])
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60, interval: float = 0.5) -> None:
        """Until the gateway's health check says every service answers (TimeoutError with
        the last answer and every process's log tail otherwise)."""
        poll(lambda: self.request("GET", "/api/server/health_check", timeout=10),
             until=lambda answer: answer[0] == 200, timeout=timeout, interval=interval,
             retry_on=OSError, what="GET /api/server/health_check to answer 200",
             details=self.logs, error=TimeoutError)

    def logs(self) -> str:
        out = []
        for path in sorted(self.folder.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM every process at once, then wait (SIGKILL whatever lingers)."""
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    # HTTP helpers (urllib: no connection pooling surprises across restarts)
    def fetch(self, method: str, path: str, body=None, token: str | None = None,
              raw: bytes | None = None, headers: dict | None = None, timeout: float = 30):
        """One request: (status, response headers, raw body)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def request(self, method: str, path: str, body=None, token: str | None = None,
                raw: bytes | None = None, headers: dict | None = None, timeout: float = 30):
        """One request: (status, body decoded from JSON when it is JSON)."""
        status, response_headers, content = self.fetch(method, path, body, token, raw,
                                                       headers, timeout)
        if "json" in response_headers.get("Content-Type", ""):
            try:
                return status, json.loads(content)
            except ValueError:
                pass
        return status, content

    def login(self, username: str, password: str) -> str:
        status, body = self.request("POST", "/api/login",
                                    {"username": username, "password": password})
        assert status == 200, body
        return body["token"]

    def admin_token(self) -> str:
        return self.login(self.admin["username"], self.admin["password"])

    def new_user(self, username: str, password: str = "user-password-1",
                 email_address: str | None = None) -> tuple[int, str]:
        status, body = self.request("POST", "/api/add_user", {
            "username": username, "password": password,
            "email": email_address or f"{username}@example.com"})
        assert status == 200, body
        return body["user_id"], self.login(username, password)


@contextlib.contextmanager
def running_platform(folder: Path, amqp_uri: str, smtp_port: int | None = None,
                     extra_env: dict | None = None, database_template: str | None = None):
    """A started Platform (SQLite in ``folder`` unless a template is given), always stopped."""
    stack = Platform(folder, amqp_uri,
                     database_template or f"sqlite:///{folder}/{{service}}.sqlite3",
                     smtp_port=smtp_port, extra_env=extra_env)
    try:
        yield stack.start()
    finally:
        stack.stop()


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
