"""Every setting Berth reads, from ``BERTH_*`` environment variables (see README)."""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import secrets as random_secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32
# development's secrets are made per installation, here under BERTH_VAR_DIR
DEVELOPMENT_SECRETS_FILE = "dev-secrets.json"
# secrets that are public (earlier versions shipped a built-in development secret in the
# repository), by SHA-256: refused as BERTH_JWT_SECRET or a BERTH_SECRETS_KEY key everywhere
PUBLISHED_SECRETS = frozenset({
    "2a5f33d201caa12c00b2ee5520a997f35e24121f3390294b746187de6bd4be92"})


class InsecureConfiguration(RuntimeError):
    """Raised at start-up when a setting is unsafe for the environment."""


def is_published(secret: str) -> bool:
    return hashlib.sha256(secret.encode()).hexdigest() in PUBLISHED_SECRETS


def _read_development_secrets(path: Path) -> dict:
    if os.stat(path).st_mode & 0o077:
        raise InsecureConfiguration(f"{path} holds this installation's development secrets "
                                    f"and must be readable by its owner only: chmod 600 {path}")
    try:
        found = json.loads(path.read_text())
        if all(isinstance(found.get(k), str) and len(found[k]) >= MIN_SECRET_LENGTH
               for k in ("jwt_secret", "secrets_key")):
            return found
    except (ValueError, AttributeError):
        pass
    raise InsecureConfiguration(f"{path} is not a development secrets file Berth wrote; "
                                f"remove it to have new secrets made (tokens signed and TLS "
                                f"keys sealed with the old ones stop working)")


@functools.lru_cache(maxsize=8)
def development_secrets(var_dir: str) -> dict:
    """This installation's development secrets, ``jwt_secret`` and ``secrets_key``: random,
    made the first time any process asks (``make run``'s init does first) and kept in
    ``<var_dir>/dev-secrets.json``, mode 0600; every process of the installation reads the
    same ones. Made in a private temporary file and linked into place, so processes starting
    together never see half a file and all end up with one pair."""
    folder = Path(var_dir)
    path = folder / DEVELOPMENT_SECRETS_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fresh = {"jwt_secret": random_secrets.token_urlsafe(48),
                 "secrets_key": random_secrets.token_urlsafe(48)}
        scratch = folder / (f".{DEVELOPMENT_SECRETS_FILE}.{os.getpid()}."
                            f"{random_secrets.token_hex(4)}")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(fresh, file)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(scratch, path)
            except FileExistsError:  # another process made them first: theirs are the ones
                pass
        finally:
            scratch.unlink(missing_ok=True)
    return _read_development_secrets(path)


def bind_host(bind: str) -> str | None:
    """The host part of a listening address as gunicorn reads it (``HOST:PORT``,
    ``[IPV6]:PORT``, ``tcp://...``, ``HOST``); None for a unix socket, which only this
    machine can reach; ``""`` (every interface) for ``:PORT`` or a file descriptor."""
    bind = bind.strip()
    if bind.startswith("unix:"):
        return None
    if bind.startswith("fd://"):
        return ""
    if bind.startswith("tcp://"):
        bind = bind[len("tcp://"):]
    if bind.startswith("["):
        return bind[1:bind.index("]")] if "]" in bind else bind[1:]
    if bind.count(":") > 1:  # a bare IPv6 address and a port, as nameko reads it
        return bind.rsplit(":", 1)[0]
    return bind.split(":", 1)[0]


def is_loopback(host: str | None) -> bool:
    """Whether only this machine can reach ``host`` (None: a unix socket): ``localhost``,
    127.0.0.0/8 or ::1."""
    if host is None:
        return True
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BERTH_", extra="ignore")

    env: str = Field("production", description="development, test or production")
    var_dir: Path = Path("var")
    amqp_uri: str = "amqp://guest:guest@localhost:5672/"
    database_url: str | None = Field(
        None, description="template with {service}; default SQLite files under var_dir")

    jwt_secret: str | None = None
    jwt_ttl_seconds: int = 3600
    secrets_key: str | None = Field(
        None, description="seals TLS client keys at rest (berth.docker.sealing): one or more keys "
                          "of 32+ characters, comma-separated, newest first")

    admin_username: str | None = None
    admin_password: str | None = None
    admin_email: str | None = None

    public_url: str = "http://127.0.0.1:8000"
    gateway_bind: str = Field("127.0.0.1:8000", description="where gunicorn listens: "
                              "HOST:PORT, [IPV6]:PORT or unix:PATH")
    web_dir: Path | None = Field(
        None, description="the built web console the gateway serves at /; default web/dist "
                          "of the source tree")
    rpc_timeout: float = 10.0
    health_timeout: float = 3.0
    service_max_workers: int = 32
    db_pool_size: int = Field(20, ge=1, description="PostgreSQL connections a service process "
                              "keeps open once used (the five services' 100 fit a default "
                              "PostgreSQL's max_connections)")
    db_pool_overflow: int = Field(10, ge=0, description="more it may open at a peak, closed "
                                  "when they come back: each one a PostgreSQL backend forked "
                                  "per use (the cap is the sum: keep every process's sum "
                                  "within PostgreSQL's max_connections)")
    metrics_host: str = "127.0.0.1"
    metrics_port_base: int = 8100
    metrics_address: str | None = None

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "none", description="none, starttls or ssl; with TLS the server's certificate and "
                            "name are always verified")
    smtp_ca_file: str | None = Field(
        None, description="PEM file of the CAs that sign the SMTP server's certificate (a "
                          "private CA); default: the system's CA store")
    smtp_from: str = "Berth <berth@localhost>"
    smtp_timeout: float = 10.0
    mail_retry_interval: float = 15.0
    mail_max_backoff: float = 600.0

    outbox_relay_interval: float = 5.0
    event_retention_days: float = Field(
        30.0, ge=0, description="published outbox rows and handled event ids older than this "
                                "are deleted (every service, hourly); an event redelivered "
                                "later than this would be handled again; 0 keeps them")
    event_retention_interval: float = Field(3600.0, gt=0, description="seconds between those "
                                            "deletions in each process")

    login_max_failures: int = Field(
        100, ge=1, description="users database backstop: failed logins of one account name "
                               "(from any address) in BERTH_LOGIN_WINDOW_SECONDS before every "
                               "login of it is 429; the gateway's limits come first")
    login_window_seconds: int = 900
    totp_max_failures: int = Field(
        10, ge=1, description="users database: wrong two-factor codes for one user (from any "
                              "address) in BERTH_LOGIN_WINDOW_SECONDS before the code steps "
                              "of that user are 429 everywhere (whoever types them has the "
                              "password); the user is mailed when it happens")
    token_check_seconds: float = Field(
        2.0, ge=0, le=4, description="gateway: how long each worker keeps a user's token state "
                                     "(version, disabled, revoked sessions) before asking the "
                                     "users service again; a revocation takes effect within "
                                     "this plus one RPC (0: ask on every request)")
    api_key_max_days: int = Field(
        365, ge=1, le=36500, description="an API key expires at most this many days after it "
                                         "is created (its expiry is required)")
    api_key_max_per_user: int = Field(
        20, ge=1, description="active API keys one user may hold; one more is a 409")
    stream_limit: int = Field(
        32, ge=1, le=1000, description="gateway: live event streams (GET /api/stream) one "
                                      "worker holds at once; gunicorn gives each worker this "
                                      "many threads on top of BERTH_GATEWAY_THREADS so streams "
                                      "never take an API thread; one more is a 503")
    stream_ticket_seconds: int = Field(
        30, ge=5, le=300, description="gateway: how long a stream ticket (POST "
                                      "/api/stream/ticket) may be used to open a stream")
    stream_heartbeat_seconds: float = Field(
        15.0, gt=0, le=60, description="gateway: a comment line on every open stream this "
                                       "often (keeps proxies from closing it; finds clients "
                                       "that went away)")
    stream_recheck_seconds: float = Field(
        5.0, gt=0, le=60, description="gateway: each open stream re-checks its session this "
                                      "often; an ended session ends the stream")
    stream_max_seconds: float = Field(
        3600.0, ge=1, le=86400, description="gateway: an open stream ends after this long and "
                                            "the browser opens a new one (with a fresh ticket): "
                                            "streams spread over new workers and replicas, and "
                                            "no ticket's stream lives for ever")
    stream_traffic_seconds: float = Field(
        5.0, ge=1, le=300, description="gateway: while any stream is open, each worker asks "
                                       "the traffic service for realtime rates this often "
                                       "(one RPC per worker, whatever the number of streams)")
    password_reset_ttl_seconds: int = Field(
        3600, ge=60, le=3600, description="a mailed password reset link works this long")
    require_2fa_for_admins: bool = Field(
        False, description="an admin without two-factor sign-in gets, at login, a token that "
                           "reaches only the enrolment routes (/api/2fa, /api/2fa/enrol, "
                           "/api/2fa/confirm, /api/logout); every other route is 403 until "
                           "they enrol, and admins cannot turn it off")
    require_verified_email: bool = Field(
        False, description="POST /api/serial/redeem refuses (403) a user whose e-mail address "
                           "is not verified")

    # rate limits (gateway.limits): "N/period" strings as the `limits` library reads them
    # ("20/15 minutes", "600/minute", "10/hour;100/day"); empty turns that one off
    rate_limit_storage: str = Field(
        "redis://127.0.0.1:6379/0", description="the store every gateway worker and replica "
        "counts in (redis://, rediss:// or redis+sentinel://); memory:// is per process, for "
        "development and tests only")
    rate_limit_prefix: str = Field("berth", description="prefix of every key in the store")
    trusted_proxies: str = Field(
        "", description="addresses or networks (comma-separated) of reverse proxies whose "
                        "X-Forwarded-For names the client; empty: the peer is the client")
    rate_limit_api: str = Field("600/minute", description="every request, per address")
    rate_limit_login: str = Field("20/15 minutes",
                                  description="failed logins per address")
    rate_limit_login_account: str = Field(
        "5/15 minutes", description="failed logins per account name and address")
    rate_limit_login_account_total: str = Field(
        "30/15 minutes", description="failed logins per account name from all addresses; past "
        "it an address that failed on the account is refused, others may still try")
    rate_limit_signup: str = Field("10/hour", description="sign-ups per address")
    rate_limit_verification_mail: str = Field("10/hour",
                                              description="verification mails per address")
    rate_limit_verification_mail_account: str = Field(
        "3/hour", description="verification mails per e-mail address and client address")
    rate_limit_verification_mail_account_total: str = Field(
        "10/hour", description="verification mails per e-mail address from all clients")
    rate_limit_password_forgot: str = Field("10/hour",
                                            description="forgot-password requests per address")
    rate_limit_password_forgot_account: str = Field(
        "3/hour", description="forgot-password requests per e-mail and client address")
    rate_limit_password_forgot_account_total: str = Field(
        "10/hour", description="forgot-password requests per e-mail from all clients")
    rate_limit_password_reset: str = Field("10/15 minutes",
                                           description="password resets per address")
    rate_limit_totp: str = Field("20/15 minutes",
                                 description="failed two-factor codes per address")
    rate_limit_totp_account: str = Field(
        "5/15 minutes", description="failed two-factor codes per account and address")
    rate_limit_totp_account_total: str = Field(
        "30/15 minutes", description="failed two-factor codes per account from all addresses")
    verification_ttl_seconds: int = 86400
    verification_resend_seconds: int = 60
    acl_link_ttl_seconds: int = 300

    traffic_interval: float = 60.0
    traffic_quota_bytes: int = Field(
        100 * 1024**3, ge=0, description="default monthly traffic quota (in+out bytes) of a "
                                         "user without their own traffic_limit; 0: none")
    traffic_raw_retention_days: float = Field(
        14.0, gt=0, description="raw traffic samples older than this are deleted")
    traffic_hourly_retention_days: float = Field(
        400.0, gt=0, description="hourly traffic rollups older than this are deleted "
                                 "(daily and monthly ones are kept)")
    traffic_retention_interval: float = 3600.0
    traffic_concurrency: int = Field(
        256, ge=1, description="stats requests a traffic sweep keeps in flight at once")
    health_interval: float = 30.0
    expiry_interval: float = 300.0
    reminder_days: str = Field("7,3,1", description="days before a rental ends to remind")
    distributor_max_days: int = Field(
        366, ge=1, le=36500, description="a distributor's rental serial may expire at most "
                                         "this many days after the day it is generated")

    webhook_url: str | None = Field(None, description="alerts are POSTed here when set")
    webhook_secret: str | None = Field(None, description="HMAC-SHA256 key of X-Berth-Signature")
    webhook_timeout: float = 10.0
    webhook_retry_interval: float = 15.0
    webhook_max_backoff: float = 600.0
    alert_check_interval: float = Field(60.0, description="fleet sweep raising and resolving "
                                        "server and container alerts")
    alert_digest_seconds: float = Field(
        60.0, ge=0, description="alert mails are collected this long, then sent as one digest "
                                "per admin")
    alert_mail_window_seconds: float = Field(
        3600.0, ge=0, description="a subject (server, container, user) has at most one raised "
                                  "alert mailed per window; flaps inside it are counted")
    audit_buffer: int = Field(10000, description="gateway: audit records held while the "
                              "broker is away")
    audit_retention_days: float = Field(
        365.0, ge=0, description="audit log rows older than this are deleted; 0 keeps them "
                                 "forever")
    audit_retention_interval: float = Field(
        3600.0, gt=0, description="seconds between audit retention runs (one replica each)")

    docker_timeout: float = Field(8.0, description="seconds for one Docker engine request")
    docker_ping_timeout: float = Field(2.0, description="seconds a health ping may take")
    container_stop_timeout: int = Field(3, description="grace seconds before SIGKILL on stop")
    container_restart_backoff: float = Field(
        10.0, ge=0, description="seconds before supervision restarts a container again when "
                                "its last restart did not hold; doubles with every attempt")
    container_restart_backoff_max: float = Field(
        300.0, ge=0, description="the longest wait between two restarts of a crash-looping "
                                 "container")
    container_stable_after: float = Field(
        60.0, ge=0, description="seconds a restarted container must stay up before its "
                                "restart count (and so its backoff) starts again from zero")
    # the confinement of every container Berth creates (services.containers.engine_ops);
    # a plan will supply its own, these are the operator's defaults
    container_memory_mib: int = Field(
        512, ge=6, description="memory limit (MiB) of each container; swap equal to it "
                               "(memory+swap is twice this)")
    container_cpus: float = Field(1.0, gt=0, le=1024, description="CPU quota of each container "
                                  "in CPUs (fractional: 0.5 is half of one CPU)")
    container_pids_limit: int = Field(256, ge=8, description="most processes and threads one "
                                      "container may hold at once")
    container_log_max_size_mib: int = Field(10, ge=1, description="json-file log: size (MiB) "
                                            "at which a container's log is rotated")
    container_log_max_files: int = Field(3, ge=1, description="json-file log: rotated files "
                                         "kept per container")
    container_pull_registries: str = Field(
        "docker.io", description="registries an image a host lacks may be pulled from, "
                                 "comma-separated (docker.io: Docker Hub; others as "
                                 "host[:port]); empty: never pull")
    container_network: str = Field(
        "berth", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="the bridge network (one per engine, inter-container traffic off) every "
                    "container joins; Berth creates it where missing")
    customer_port_min: int = Field(20000, ge=1024, le=65535, description="lowest host port "
                                   "Berth publishes a customer's container on")
    customer_port_max: int = Field(29999, ge=1024, le=65535, description="highest host port "
                                   "Berth publishes a customer's container on")
    failover_after: float = Field(
        300.0, description="seconds a server stays offline before its containers move "
                           "automatically; 0 turns automatic failover off")

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    def _development_secrets(self) -> dict:
        return development_secrets(str(self.var_dir.resolve()))

    @property
    def secret(self) -> str:
        """The JWT signing secret, refusing unsafe ones outside development; development
        without one uses this installation's own (``development_secrets``)."""
        secret = self.jwt_secret
        if secret and is_published(secret):
            raise InsecureConfiguration(
                "BERTH_JWT_SECRET is a secret published with Berth's source: set a random "
                f"string of at least {MIN_SECRET_LENGTH} characters")
        if self.is_development:
            return secret or self._development_secrets()["jwt_secret"]
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            raise InsecureConfiguration(
                f"BERTH_JWT_SECRET must be set to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters when BERTH_ENV={self.env!r} "
                f"(only BERTH_ENV=development makes its own, per installation, in "
                f"{self.var_dir / DEVELOPMENT_SECRETS_FILE})")
        return secret

    @property
    def sealing_keys(self) -> list[str]:
        """The keys of BERTH_SECRETS_KEY, newest first (development without any: this
        installation's own)."""
        keys = [k.strip() for k in (self.secrets_key or "").split(",") if k.strip()]
        if any(is_published(k) for k in keys):
            raise InsecureConfiguration("BERTH_SECRETS_KEY holds a key published with Berth's "
                                        "source: use random keys")
        if not keys and self.is_development:
            return [self._development_secrets()["secrets_key"]]
        if not keys or any(len(k) < MIN_SECRET_LENGTH for k in keys):
            raise InsecureConfiguration(
                f"BERTH_SECRETS_KEY must hold keys of at least {MIN_SECRET_LENGTH} characters "
                f"when BERTH_ENV={self.env!r}: Berth seals TLS client keys with it")
        return keys

    def listening_addresses(self, service: str | None = None) -> dict[str, str]:
        """Where a process listens, by the setting that says so: the gateway's bind
        (``service`` None) or a service's /metrics."""
        if service is None:
            return {"BERTH_GATEWAY_BIND": self.gateway_bind}
        if self.metrics_address:
            return {"BERTH_METRICS_ADDRESS": self.metrics_address}
        return {"BERTH_METRICS_HOST": self.metrics_host}

    def require_loopback_in_development(self, *services: str | None) -> None:
        """Development (its secrets on this disk, plaintext Docker engines allowed) listens
        on this machine only: a gateway bind (None in ``services``) or a service's /metrics
        address outside 127.0.0.0/8, ::1 and localhost stops the process, saying which."""
        if not self.is_development:
            return
        for service in services:
            for name, address in self.listening_addresses(service).items():
                host = address if name == "BERTH_METRICS_HOST" else bind_host(address)
                if not is_loopback(host):
                    raise InsecureConfiguration(
                        f"{name}={address!r}: BERTH_ENV=development listens on this machine "
                        f"only (127.0.0.1, ::1, localhost or a unix socket); set "
                        f"BERTH_ENV=production with real secrets to listen elsewhere")

    @property
    def reminder_days_tuple(self) -> tuple[int, ...]:
        return tuple(sorted({int(d) for d in self.reminder_days.split(",") if d.strip()},
                            reverse=True))

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url.format(service=service)
        path = (self.var_dir / f"{service}.sqlite3").resolve()
        return f"sqlite:///{path}"

    def metrics_address_for(self, service: str) -> str:
        if self.metrics_address:
            return self.metrics_address
        from berth import SERVICES
        return f"{self.metrics_host}:{self.metrics_port_base + 1 + SERVICES.index(service)}"

    def nameko_config(self, **extra) -> dict:
        config = {
            "AMQP_URI": self.amqp_uri,
            "serializer": "json",
            "max_workers": self.service_max_workers,
            "parent_calls_tracked": 10,
        }
        config.update(extra)
        return config


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()

