"""Private RabbitMQ and PostgreSQL instances that a chaos test may stop and restart.

The machine's shared broker (5672) and database (5432) serve every other test running at the
same time: chaos tests never touch them. Each instance here is a real server of its own, on
free ports, with its data in a folder under /tmp, removed on ``close()``.

* ``PrivateRabbit``: a RabbitMQ node ``chaos-<hex>@localhost`` run as the ``rabbitmq`` user
  (its Erlang cookie, its epmd), with its own config file (no plugins, one loopback listener)
  and its own Mnesia folder, so durable queues and persistent messages survive ``restart()``.
  ``stop()`` is ``rabbitmqctl stop``: the node closes every client connection and exits.
* ``PrivatePostgres``: a cluster made by ``initdb`` (trust auth), run by ``pg_ctl`` as the
  ``postgres`` user, listening on 127.0.0.1 only. ``restart()`` is ``pg_ctl restart -m fast``:
  every session is terminated, as when a database server restarts; ``stop()`` and
  ``start()`` (``-m fast`` too) hold it down for as long as a test wants.
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port, poll


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


class PrivateRabbit:
    """``with PrivateRabbit() as rabbit: rabbit.uri ...; rabbit.stop(); rabbit.start()``."""

    START_TIMEOUT = 90.0

    def __init__(self):
        self.root = Path(f"/tmp/chaos-rmq-{secrets.token_hex(4)}")
        self.node = f"chaos-{self.root.name[-8:]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.uri = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._proc: subprocess.Popen | None = None
        self.last_start_seconds: float | None = None

    def __enter__(self) -> PrivateRabbit:
        self.root.mkdir(parents=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's NODENAME
        _chown_tree(self.root, "rabbitmq")
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def start(self) -> float:
        """Start the node on its folder; returns the seconds until it accepted AMQP."""
        began = time.monotonic()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": "/var/lib/rabbitmq",  # the rabbitmq user's cookie, shared with rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "LANG": "C.UTF-8",
        }
        log = open(self.root / "server.out", "ab")
        self._proc = subprocess.Popen(
            ["runuser", "-u", "rabbitmq", "--", "env", *(f"{k}={v}" for k, v in env.items()),
             "/usr/lib/rabbitmq/bin/rabbitmq-server"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

        def listening() -> bool:
            if self._proc.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.node} exited:\n{self.log_tail()}")
            return _listening(self.port)
        poll(listening, timeout=self.START_TIMEOUT, what=f"RabbitMQ node {self.node} to listen",
             details=self.log_tail, error=RuntimeError)
        self.last_start_seconds = time.monotonic() - began
        return self.last_start_seconds

    def stop(self) -> None:
        """``rabbitmqctl stop``: connections are closed, the node exits; waits for the exit."""
        if self.pid is None:
            return
        subprocess.run(["rabbitmqctl", "-q", "-n", self.node, "stop"], capture_output=True,
                       timeout=60)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def ctl(self, *args: str) -> str:
        return subprocess.run(["rabbitmqctl", "-q", "-n", self.node, *args], check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "server.out").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        if self.pid is not None:
            try:
                self.stop()
            except Exception:  # noqa: BLE001 - the kill below ends it anyway
                pass
        if self.pid is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql/*/bin (apt-get install "
                           "postgresql)")
    return found[-1]


class PrivatePostgres:
    """``with PrivatePostgres() as pg: pg.template ...; pg.restart()``."""

    def __init__(self):
        self.root = Path(f"/tmp/chaos-pg-{secrets.token_hex(4)}")
        self.data = self.root / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.template = f"postgresql://postgres@127.0.0.1:{self.port}/berth_{{service}}"
        self.options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c max_connections=300 -c fsync=off")

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", _pg_bin("pg_ctl"), "-D", str(self.data),
             "-l", str(self.root / "server.log"), "-w", "-t", str(int(timeout)), *args],
            check=True, capture_output=True, timeout=timeout + 10)

    def __enter__(self) -> PrivatePostgres:
        self.root.mkdir(parents=True)
        _chown_tree(self.root, "postgres")
        try:
            subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D",
                            str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                            "--no-sync"], check=True, capture_output=True, timeout=120)
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions terminated, the server shut down cleanly."""
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> float:
        """Start (again); the seconds until it accepts connections."""
        began = time.monotonic()
        self._pg_ctl("-o", self.options, "start")
        return time.monotonic() - began

    def restart(self) -> float:
        """``pg_ctl restart -m fast`` (every session terminated); the seconds it took."""
        began = time.monotonic()
        self._pg_ctl("-m", "fast", "restart")
        return time.monotonic() - began

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._pg_ctl("-m", "immediate", "stop")
            except Exception:  # noqa: BLE001 - best effort; the folder goes anyway
                pass
        shutil.rmtree(self.root, ignore_errors=True)
