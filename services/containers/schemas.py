"""Shapes of the servers, containers and HA API, with the seed's field names."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from berth.schemas import Body, Message, PageQuery, Reply

MAX_LOG_LINES = 1000  # GET /api/containers/<name>/logs?tail=

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
ContainerName = Annotated[str, Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
    description="letters, digits, _ . - (Docker's rule), at most 63 characters")]
ImageName = Annotated[str, Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$",
    description="an image reference, e.g. nginx:1.27; pulled onto a server that lacks it")]
Pem = Annotated[str, Field(min_length=1, max_length=16384)]
Command = (Annotated[str, Field(min_length=1, max_length=4096)]
           | Annotated[list[Annotated[str, Field(max_length=4096)]],
                       Field(min_length=1, max_length=64)])
Environment = Annotated[dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
                             Annotated[str, Field(max_length=4096)]], Field(max_length=128)]
# add_server's status (the seed's field): maintenance sets the flag, the probe decides the rest
ServerStatus = Literal["online", "offline", "maintenance"]
# a server's status as the probe saw it; maintenance is its own flag beside it
ProbedStatus = Literal["online", "offline"]
ServerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DockerUrl = Annotated[str, Field(
    max_length=255,
    pattern=r"^(unix:///[^\s]{1,200}|tcp://[A-Za-z0-9.\-\[\]:]{1,200}:[0-9]{1,5})$",
    description="unix:///path or tcp://host:port; default tcp://<ip_address>:2376 (Docker's "
                "TLS port). Outside BERTH_ENV=development a tcp:// engine needs TLS client "
                "certificates (tls_client_cert, tls_client_key): plaintext is refused")]
ContainerStatus = Literal["running", "stopped", "paused", "restarting", "missing", "creating"]


def _check_ports(ports: dict[str, int]) -> dict[str, int]:
    normalised: dict[str, int] = {}
    for key, host_port in ports.items():
        number, _, proto = key.partition("/")
        if not 1 <= int(number) <= 65535:
            raise ValueError(f"container port {number} is out of range")
        normalised[f"{int(number)}/{proto or 'tcp'}"] = host_port
    bound = [(k.split("/")[1], v) for k, v in normalised.items()]
    if len(set(bound)) != len(bound):
        raise ValueError("two container ports are published on the same host port")
    return normalised


Ports = Annotated[dict[Annotated[str, Field(pattern=r"^[0-9]{1,5}(/(tcp|udp|sctp))?$")],
                       Annotated[int, Field(ge=1, le=65535)]], Field(
    max_length=32, description='container port → host port on the server\'s ip_address, '
                               'e.g. {"80/tcp": 18080}'), AfterValidator(_check_ports)]


def _given(field: str) -> dict:
    """JSON Schema: ``field`` is present and not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


_TLS_RULES = [{"if": _given("tls_client_cert"), "then": _given("tls_client_key")},
              {"if": _given("tls_client_key"), "then": _given("tls_client_cert")},
              {"if": _given("tls_ca_cert"), "then": _given("tls_client_cert")}]


def _check_tls(body):
    if bool(body.tls_client_cert) != bool(body.tls_client_key):
        raise ValueError("tls_client_cert and tls_client_key go together")
    if body.tls_ca_cert and not body.tls_client_cert:
        raise ValueError("tls_ca_cert needs tls_client_cert and tls_client_key")
    return body


class _EngineAccess(Body):
    """How Berth reaches a server's engine: add_server's and update_server's shared fields."""
    docker_url: DockerUrl | None = None
    tls_ca_cert: Pem | None = Field(None, description="PEM of the engine's CA; without it the "
                                    "engine's certificate is checked against the system's "
                                    "CA store (never unchecked)")
    tls_client_cert: Pem | None = Field(None, description="PEM client certificate")
    tls_client_key: Pem | None = Field(None, description="PEM client key")


class AddServer(_EngineAccess):
    model_config = ConfigDict(json_schema_extra={"allOf": _TLS_RULES})

    server_name: ServerName
    ip_address: IPv4Address | IPv6Address = Field(
        description="the host's address; published ports bind to it")
    status: ServerStatus | None = Field(
        None, description="maintenance keeps new containers off it; otherwise the health "
                          "probe decides online or offline")

    @model_validator(mode="after")
    def _tls(self):
        return _check_tls(self)


class UpdateServer(_EngineAccess):
    """Any of add_server's fields but ``status`` (maintenance has its own route). TLS
    material is replaced as a whole: the three fields as given (absent ones dropped; all
    null: no TLS). ``docker_url`` null: the default for the address."""
    model_config = ConfigDict(json_schema_extra={"allOf": _TLS_RULES, "minProperties": 1})

    server_name: ServerName = None
    ip_address: IPv4Address | IPv6Address = Field(
        None, description="the host's address; published ports of containers created or "
                          "recreated from now on bind to it")

    @model_validator(mode="after")
    def _tls(self):
        if not self.model_fields_set:
            raise ValueError("give server_name, ip_address, docker_url or TLS material")
        return _check_tls(self)


class Maintenance(Body):
    maintenance: bool = Field(description="true: no new containers on it, its alerts muted, "
                                          "its containers left running")


class ServerAdded(Message):
    server_id: int
    status: ProbedStatus
    maintenance: bool


class ServerRow(Reply):
    server_id: int
    server_name: str
    ip_address: str
    docker_url: str
    status: ProbedStatus
    maintenance: bool
    last_seen_at: str | None
    last_checked_at: str | None
    down_since: str | None = Field(description="set while offline: since Berth saw it down")
    added_at: str
    containers: int
    cpus: int | None = Field(None, description="the host's CPUs, as its engine last said "
                                               "(none before its first good probe)")
    memory_mib: int | None = Field(None, description="the host's memory in MiB, likewise")


class ServerChanged(ServerRow):
    message: str
    changed: list[Literal["name", "ip_address", "docker_url", "tls", "maintenance"]]


class ServerDrained(Message):
    server_id: int
    maintenance: bool
    containers_left: int
    actions: list[HaAction]


class ServerDeleted(Message):
    server_id: int


class ServerStatusReply(Reply):
    server_id: int
    status: ProbedStatus
    maintenance: bool


class ServerList(Reply):
    servers: list[ServerRow]


class CreateContainer(Body):
    container_name: ContainerName
    image: ImageName
    user_id: Id | None = Field(None, description="the owner; default the caller")
    server_id: Id | None = Field(None, description="default: the least-loaded healthy server")
    command: Command | None = None
    environment: Environment | None = None
    ports: Ports | None = None



class ContainerCreated(Message):
    container_id: int
    container_name: str
    server_id: int
    status: ContainerStatus


class ContainerRow(Reply):
    container_id: int
    container_name: str
    status: ContainerStatus
    desired_state: Literal["running", "stopped"]
    image: str
    user_id: int
    server_id: int
    ports: dict[str, int]
    created_at: str
    observed_at: str | None


class ContainerList(Reply):
    containers: list[ContainerRow]
    total: int


class ContainerStatusReply(Reply):
    container_name: str
    status: ContainerStatus
    container_id: int


class UpdateContainer(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    container_name: ContainerName | None = Field(None, description="rename in place")
    image: ImageName | None = Field(None, description="recreate from this image")
    command: Command | None = Field(None, description="recreate with this command")
    environment: Environment | None = Field(None, description="recreate with this environment")
    ports: Ports | None = Field(None, description="recreate with these published ports")


    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("give container_name, image, command, environment or ports")
        return self


class ContainerQuery(PageQuery):
    user_id: Id | None = Field(None, description="admins: only this owner's containers")
    server_id: Id | None = None


class HaHealth(Reply):
    status: Literal["healthy", "degraded", "unhealthy"]
    servers: list[ServerRow]


class ServerHealth(Reply):
    server_id: int
    status: Literal["healthy", "unhealthy", "maintenance"]
    server_status: ProbedStatus
    maintenance: bool
    last_seen_at: str | None


class HaAction(Reply):
    container_id: int
    container_name: str
    action: Literal["moved", "recreated", "started", "failed"]
    from_server_id: int | None
    to_server_id: int | None
    error: str | None = None


class HaReply(Message):
    actions: list[HaAction]


class ReplaceContainer(Body):
    model_config = ConfigDict(json_schema_extra={"oneOf": [_given("container_id"),
                                                           _given("container_name")]})

    container_id: Id | None = None
    container_name: ContainerName | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.container_id is None) == (self.container_name is None):
            raise ValueError("give container_id or container_name (one of them)")
        return self


class Replaced(Message):
    container_id: int
    container_name: str
    server_id: int
    from_server_id: int


class LogsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tail: int = Field(100, ge=1, le=MAX_LOG_LINES,
                      description=f"how many of the last lines, at most {MAX_LOG_LINES}")


class ContainerLogs(Reply):
    container_id: int
    container_name: str
    tail: int
    lines: list[str] = Field(description="oldest first; stdout and stderr as the engine "
                                         "interleaved them; at most 256 KiB in all")


class ContainerAction(Message):
    container_id: int
    status: Literal["running", "stopped"]
