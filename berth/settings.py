"""Every setting Berth reads, from ``BERTH_*`` environment variables (see README)."""
from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "berth-development-secret-do-not-use-in-production"
MIN_SECRET_LENGTH = 32


class InsecureConfiguration(RuntimeError):
    """Raised at start-up when a setting is unsafe for the environment."""


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
    rpc_timeout: float = 10.0
    health_timeout: float = 3.0
    service_max_workers: int = 32
    metrics_host: str = "127.0.0.1"
    metrics_port_base: int = 8100
    metrics_address: str | None = None

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_security: str = Field("none", description="none, starttls or ssl")
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

    login_max_failures: int = 5
    login_window_seconds: int = 900
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

    @property
    def secret(self) -> str:
        """The JWT signing secret, refusing unsafe ones outside development."""
        secret = self.jwt_secret
        if self.is_development:
            return secret or DEVELOPMENT_SECRET
        if not secret or secret == DEVELOPMENT_SECRET or len(secret) < MIN_SECRET_LENGTH:
            raise InsecureConfiguration(
                f"BERTH_JWT_SECRET must be set to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters when BERTH_ENV={self.env!r} "
                f"(only BERTH_ENV=development has a built-in secret)")
        return secret

    @property
    def sealing_keys(self) -> list[str]:
        """The keys of BERTH_SECRETS_KEY, newest first (development has a built-in one)."""
        keys = [k.strip() for k in (self.secrets_key or "").split(",") if k.strip()]
        if not keys and self.is_development:
            return [DEVELOPMENT_SECRET]
        if not keys or any(len(k) < MIN_SECRET_LENGTH for k in keys):
            raise InsecureConfiguration(
                f"BERTH_SECRETS_KEY must hold keys of at least {MIN_SECRET_LENGTH} characters "
                f"when BERTH_ENV={self.env!r}: Berth seals TLS client keys with it")
        return keys

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

