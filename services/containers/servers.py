"""Servers and their health: probes, and servers as an operator manages them (no nameko).

``Servers`` is mixed into ``Fleet`` (services.containers.fleet), whose sessions, outbox and
engine pool it uses.

- **Health**: a probe pings one engine with a short timeout and records what it saw; a change
  between online and offline is one ``server_went_down`` / ``server_came_back`` event, whichever
  replica (or concurrent probe) sees it first.
- **Maintenance** is a flag beside the probe's online/offline: a server in maintenance takes
  no new containers (create, failover, load balance and drain skip it), its containers keep
  running and stay supervised, and the events about it carry ``maintenance: true`` so alerts
  stay muted. Failover, automatic or manual, leaves it alone (its downtime is planned;
  drain is the tool that moves its containers).
- **Edit** takes the same fields and checks as adding; TLS material is replaced as a whole
  (the three fields, absent ones dropped; all null: no TLS). A ``docker_url`` that was the
  default for the old address follows a new address. The engine is probed again after a
  change of how to reach it. Changing the address of a server that holds containers is
  allowed: their copies keep the ports they published until they are recreated.
- **Drain** puts the server in maintenance and moves every container off it the way failover
  does (it lives with failover, in ``recreation.py``); **delete** takes only an empty
  server (409 otherwise), putting it in maintenance first so that no create is placed on it
  while it goes.

Every change is one ``server_updated`` / ``server_removed`` event, in the change's transaction.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from berth.concurrency import Pool
from berth.db import isoformat
from berth.docker.engines import Endpoint
from berth.errors import BadRequest, Conflict, ServiceUnavailable
from berth.events import Event, ServerCameBack, ServerRemoved, ServerUpdated, ServerWentDown
from berth.queries import get_or_404
from berth.docker.sealing import CannotUnseal, seal, unseal
from berth.settings import get_settings
from services.containers import placement
from services.containers.models import Container, Server
from services.containers.shapes import failure_reason, server_row

log = logging.getLogger(__name__)

TLS_FIELDS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")
# where new containers may go: online and not in maintenance
PLACEABLE = (Server.status == "online", Server.maintenance.is_(False))


def default_docker_url(ip_address: str) -> str:
    """Docker's TLS port on the server's address (2376)."""
    return f"tcp://{_host(ip_address)}:2376"


def _host(ip_address: str) -> str:
    return f"[{ip_address}]" if ":" in ip_address else ip_address


def is_default_docker_url(url: str, ip_address: str) -> bool:
    """``url`` is the default for ``ip_address``: today's (2376) or the plaintext port (2375)
    Berth gave servers added before engines had to be reached over TLS."""
    return url in (default_docker_url(ip_address), f"tcp://{_host(ip_address)}:2375")


def require_safe_engine(url: str, tls: bool, development: bool) -> None:
    """Outside development an engine is reached over TLS (client certificates) or a unix
    socket: a plaintext ``tcp://`` engine lets anyone on its network run containers as root
    on the host. A 400 naming ``docker_url`` otherwise."""
    if url.startswith("tcp://") and not tls and not development:
        raise BadRequest("Invalid server data", [{
            "field": "docker_url",
            "message": f"{url} would reach the Docker engine in plaintext, without "
                       f"authentication; use TLS (give tls_client_cert and tls_client_key, "
                       f"and tls_ca_cert unless the engine's certificate is signed by a CA "
                       f"the system trusts) or a unix:// socket"}])


def _server_fields(server: Server) -> dict:
    return {"server_id": server.id, "server_name": server.name,
            "ip_address": server.ip_address}


def _same_key(sealed: str | None, plain: str | None) -> bool:
    if sealed is None or plain is None:
        return sealed is None and plain is None
    try:
        return unseal(sealed) == plain
    except CannotUnseal:
        return False


def _transition(session, server_id: int, expected: str, **values) -> bool:
    return session.execute(update(Server).where(Server.id == server_id,
                                                Server.status == expected)
                           .values(**values)).rowcount == 1


def note_probe(session, server: Server, ok: bool, version: str | None, error: str | None,
               now: dt.datetime, capacity: tuple[int, int] | None = None
               ) -> tuple[Server, Event | None]:
    """Store a probe's result (``capacity``: the host's CPUs and MiB, when the engine told
    them; else the last known stay); a change of status is one event, whichever replica (or
    concurrent probe) sees it first: the status UPDATE is conditional."""
    server_id = server.id
    status, down_since, last_seen = server.status, server.down_since, server.last_seen_at
    values = {"last_checked_at": now}
    values.update({"last_seen_at": now, "engine_version": version, "last_error": None}
                  if ok else {"last_error": (error or "")[:500]})
    if ok and capacity is not None:
        values.update(cpus=capacity[0], memory_mib=capacity[1])
    session.execute(update(Server).where(Server.id == server_id).values(**values))
    event = None
    fields = {"server_id": server.id, "server_name": server.name,
              "ip_address": server.ip_address}
    if ok and status == "offline":
        if _transition(session, server_id, "offline", status="online", down_since=None):
            if down_since is not None:
                event = ServerCameBack.new(**fields, down_since=isoformat(down_since))
    elif not ok and status == "online":
        if _transition(session, server_id, "online", status="offline", down_since=now):
            event = ServerWentDown.new(**fields, last_seen_at=isoformat(last_seen),
                                       reason=(error or "no answer")[:300],
                                       maintenance=server.maintenance)
    elif not ok and down_since is None:  # never online: down since first seen down
        session.execute(update(Server).where(Server.id == server_id,
                                             Server.down_since.is_(None))
                        .values(down_since=now))
    return server, event


def edit_server(server: Server, changed: list[str], name: str, ip: str, url: str,
                tls: tuple | None, actor_id: int | None) -> tuple[Server, Event]:
    """Apply an edit's new values (``tls``: the new material, or None to keep it)."""
    server.name, server.ip_address, server.docker_url = name, ip, url
    if tls is not None:
        server.tls_ca_cert, server.tls_client_cert = tls[0], tls[1]
        server.tls_client_key = seal(tls[2])
    return server, ServerUpdated.new(**_server_fields(server), changed=changed,
                                     maintenance=server.maintenance, actor_id=actor_id)


def flag_maintenance(session, server_id: int, maintenance: bool, actor_id: int | None
                     ) -> tuple[list[str], Event | None]:
    """Set the flag; a change (decided by a conditional UPDATE) is one event."""
    if not session.execute(update(Server).where(
            Server.id == server_id, Server.maintenance != maintenance)
            .values(maintenance=maintenance)).rowcount:
        return [], None
    server = session.get(Server, server_id)
    session.refresh(server)
    log.info("server %s (%d): maintenance %s", server.name, server_id,
             "on" if maintenance else "off")
    return ["maintenance"], ServerUpdated.new(**_server_fields(server),
                                              changed=["maintenance"],
                                              maintenance=maintenance, actor_id=actor_id)


class Servers:
    """Servers, their health and their administration (a mixin of ``Fleet``)."""

    def _server(self, session, server_id: int) -> Server:
        return get_or_404(session, Server, server_id)

    def _load(self, session) -> dict[int, int]:
        return dict(session.execute(select(Container.server_id, func.count(Container.id))
                                    .group_by(Container.server_id)).all())

    def servers(self) -> list[dict]:
        with self.sessions() as session:
            load = self._load(session)
            return [server_row(s, load.get(s.id, 0))
                    for s in session.scalars(select(Server).order_by(Server.id))]

    def server(self, server_id: int) -> dict:
        with self.sessions() as session:
            server = self._server(session, server_id)
            return server_row(server, self._load(session).get(server_id, 0))

    def probe(self, server_id: int) -> None:
        """Ping one engine (short timeout) and record what was seen, with the host's CPUs and
        memory when it answers (kept fresh for placement: ``placement.misfits``)."""
        with self.sessions() as session:
            endpoint = Endpoint.of(self._server(session, server_id))
        capacity = None
        try:
            version, error = self.pool.ping(endpoint, self.ping_timeout), None
        except Exception as exc:  # noqa: BLE001 - any failure is "did not answer"
            version, error = None, failure_reason(exc)
        if error is None:
            try:
                capacity = self.pool.capacity(endpoint, self.ping_timeout)
            except Exception as exc:  # noqa: BLE001 - it answered: the last capacity stays
                log.warning("server %s answered but not with its capacity: %s",
                            endpoint.name, failure_reason(exc))
        self.record_probe(server_id, error is None, version, error, capacity)

    def probe_all(self) -> list[dict]:
        """Ping every engine at once, then return every server's row."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Server.id).order_by(Server.id)))
        Pool(min(len(ids), 50)).map(self._probe_or_log, ids)
        return self.servers()

    def _probe_or_log(self, server_id: int) -> None:
        """One probe of a sweep: a failure (the server deleted meanwhile, the database away)
        is logged and the others go on, as each probe ran on its own greenthread before."""
        try:
            self.probe(server_id)
        except Exception:  # noqa: BLE001 - one server must not stop the health tick
            log.exception("probing server %s failed", server_id)

    def record_probe(self, server_id: int, ok: bool, version: str | None,
                     error: str | None, capacity: tuple[int, int] | None = None
                     ) -> Event | None:
        """Store a probe's result, and the event of a change of status (``note_probe``)."""
        with self.sessions() as session:
            server, event = note_probe(session, self._server(session, server_id), ok, version,
                                       error, self.now(), capacity)
            if event is not None:
                self.record(session, event)
                log.warning("server %s (%d) %s", server.name, server_id, event.TYPE)
            session.commit()
        return event

    def ha_health(self) -> dict:
        rows = self.probe_all()
        usable = [r for r in rows if not r["maintenance"]]
        online = [r for r in usable if r["status"] == "online"]
        if usable and len(online) == len(usable):
            status = "healthy"
        elif online:
            status = "degraded"
        else:
            status = "unhealthy"
        return {"status": status, "servers": rows, "online": len(online),
                "offline": len(usable) - len(online)}

    def server_health(self, server_id: int) -> dict:
        self.probe(server_id)
        row = self.server(server_id)
        health = "maintenance" if row["maintenance"] else \
            {"online": "healthy"}.get(row["status"], "unhealthy")
        return {"server_id": server_id, "status": health, "server_status": row["status"],
                "last_seen_at": row["last_seen_at"], "server_name": row["server_name"],
                "ip_address": row["ip_address"], "last_error": row["last_error"],
                "down_since": row["down_since"], "added_at": row["added_at"],
                "maintenance": row["maintenance"]}

    def _place(self, session, server_id: int | None, exclude: set[int] = frozenset(),
               needs: tuple[float, int] | None = None) -> Server:
        """The server a new copy goes to: the one asked for (it must take containers, and
        hold ``needs``, the copy's CPUs and MiB: a 400 naming ``cpus`` / ``memory_mib``
        otherwise), or the least-loaded placeable one that holds ``needs`` but those in
        ``exclude`` (409 if servers are up but none is large enough)."""
        if server_id is not None:
            server = self._server(session, server_id)
            if server.maintenance:
                raise Conflict(f"Server {server.name} is in maintenance")
            if server.status != "online":
                raise ServiceUnavailable(f"Docker host {server.name} is offline")
            if needs is not None:
                refused = placement.misfits(needs, server.cpus, server.memory_mib, server.name)
                if refused:
                    raise BadRequest("Invalid container data", refused)
            return server
        online = [s for s in session.scalars(select(Server).where(*PLACEABLE))
                  if s.id not in exclude]
        fitting = [s.id for s in online if needs is None or not placement.misfits(
            needs, s.cpus, s.memory_mib, s.name)]
        load = self._load(session)
        chosen = placement.least_loaded({sid: load.get(sid, 0) for sid in fitting})
        if chosen is None:
            if online:
                largest = max(online, key=lambda s: (s.cpus or 0, s.memory_mib or 0))
                raise Conflict(f"No server can hold a container of {needs[0]:g} CPUs and "
                               f"{needs[1]} MiB: the largest available, {largest.name}, has "
                               f"{largest.cpus} CPUs and {largest.memory_mib} MiB")
            raise ServiceUnavailable("No healthy server is available")
        return session.get(Server, chosen)

    def capacity(self) -> dict:
        """The size of the online hosts (maintenance or not), as their engines last told
        it: each server's ``cpus`` and ``memory_mib``, and the most of each. Billing refuses a
        plan no host could run; with no server known, nothing is refused."""
        with self.sessions() as session:
            rows = session.scalars(select(Server).where(
                Server.status == "online", Server.cpus.is_not(None),
                Server.memory_mib.is_not(None)).order_by(Server.id)).all()
            servers = [{"server_id": s.id, "server_name": s.name, "cpus": s.cpus,
                        "memory_mib": s.memory_mib} for s in rows]
        return {"servers": servers,
                "cpus": max((s["cpus"] for s in servers), default=None),
                "memory_mib": max((s["memory_mib"] for s in servers), default=None)}

    def add_server(self, body) -> dict:
        tls = bool(body.tls_client_cert)
        url = body.docker_url or default_docker_url(str(body.ip_address))
        require_safe_engine(url, tls, get_settings().is_development)
        with self.sessions() as session:
            self._require_unique(session, None, body.server_name, url)
            server = Server(name=body.server_name, ip_address=str(body.ip_address),
                            docker_url=url, tls_ca_cert=body.tls_ca_cert,
                            tls_client_cert=body.tls_client_cert,
                            tls_client_key=seal(body.tls_client_key), status="offline",
                            maintenance=body.status == "maintenance")
            session.add(server)
            session.commit()
            server_id = server.id
        self.probe(server_id)  # unreachable: offline, down since now
        row = self.server(server_id)
        return {"server_id": server_id, "status": row["status"],
                "maintenance": row["maintenance"]}

    def _require_unique(self, session, server_id: int | None, name: str, url: str) -> None:
        others = select(Server.id).where(Server.id != server_id) if server_id else \
            select(Server.id)
        if session.scalar(others.where(Server.name == name)):
            raise Conflict(f"A server named {name} already exists")
        if session.scalar(others.where(Server.docker_url == url)):
            # two rows on one engine would each take the other's containers for strays
            raise Conflict(f"A server with docker_url {url} already exists")

    def update_server(self, server_id: int, body, actor_id: int | None) -> dict:
        given = body.model_fields_set
        with self.sessions() as session:
            server = self._server(session, server_id)
            name = body.server_name if "server_name" in given else server.name
            ip = str(body.ip_address) if "ip_address" in given else server.ip_address
            if given & set(TLS_FIELDS):
                ca, cert, key = body.tls_ca_cert, body.tls_client_cert, body.tls_client_key
            else:
                ca, cert = server.tls_ca_cert, server.tls_client_cert
                key = None  # unchanged: the stored (sealed) key stays
            tls_changed = bool(given & set(TLS_FIELDS)) and (
                ca != server.tls_ca_cert or cert != server.tls_client_cert
                or not _same_key(server.tls_client_key, key))
            was_default = is_default_docker_url(server.docker_url, server.ip_address)
            if "docker_url" in given:
                url = body.docker_url or default_docker_url(ip)
            elif was_default:
                url = default_docker_url(ip)
            else:
                url = server.docker_url
            changed = [field for field, differs in (
                ("name", name != server.name), ("ip_address", ip != server.ip_address),
                ("docker_url", url != server.docker_url), ("tls", tls_changed)) if differs]
            if {"docker_url", "tls"} & set(changed):  # how the engine is reached changes
                require_safe_engine(url, bool(cert), get_settings().is_development)
            if changed:
                self._require_unique(session, server_id, name, url)
                server, event = edit_server(server, changed, name, ip, url,
                                            (ca, cert, key) if tls_changed else None, actor_id)
                self.record(session, event)
                try:
                    session.commit()
                except IntegrityError:  # the name was taken meanwhile
                    raise Conflict(f"A server named {name} already exists") from None
        if not changed:
            return {"changed": [], **self.server(server_id)}
        log.info("server %d edited: %s", server_id, ", ".join(changed))
        if {"ip_address", "docker_url", "tls"} & set(changed):
            self._forget_tls(server_id, keep=Endpoint.of(server).fingerprint())
            self.probe(server_id)
        return {"changed": changed, **self.server(server_id)}

    def set_maintenance(self, server_id: int, maintenance: bool,
                        actor_id: int | None) -> dict:
        with self.sessions() as session:
            self._server(session, server_id)
            changed, event = flag_maintenance(session, server_id, maintenance, actor_id)
            if event is not None:
                self.record(session, event)
            session.commit()
        return {"changed": changed, **self.server(server_id)}

    def offline_in_maintenance(self) -> list[str]:
        """Names of the offline servers in maintenance that hold containers: failover leaves
        them alone (their downtime is planned; drain moves their containers)."""
        with self.sessions() as session:
            return list(session.scalars(
                select(Server.name).where(Server.status == "offline",
                                          Server.maintenance.is_(True),
                                          Server.id.in_(select(Container.server_id)))
                .order_by(Server.name)))

    def delete_server(self, server_id: int, actor_id: int | None) -> dict:
        """Only an empty server goes. It is put in maintenance first (placement skips it), so
        no create picks it while it is counted; a create that picked it before loses the race
        cleanly: its insert or this delete fails on the foreign key, a 409 either way."""
        with self.sessions() as session:
            server = self._server(session, server_id)
            name = server.name
            flagged = session.execute(update(Server).where(
                Server.id == server_id, Server.maintenance.is_(False))
                .values(maintenance=True)).rowcount
            session.commit()
            held = session.scalar(select(func.count(Container.id)).where(
                Container.server_id == server_id))
            if held:
                self._unflag(session, server_id, flagged)
                raise Conflict(f"Server {name} holds {held} container"
                               f"{'s' if held != 1 else ''}; drain it first")
            self.record(session, ServerRemoved.new(**_server_fields(server),
                                                   actor_id=actor_id))
            session.delete(server)
            try:
                session.commit()
            except IntegrityError:  # a container landed on it meanwhile
                session.rollback()
                self._unflag(session, server_id, flagged)
                raise Conflict(f"Server {name} holds containers; drain it first") from None
        self._forget_tls(server_id)
        log.info("server %s (%d) deleted", name, server_id)
        return {"server_id": server_id}

    @staticmethod
    def _unflag(session, server_id: int, flagged: bool) -> None:
        """Undo the maintenance a failed delete set (none of it if it was on already)."""
        if flagged:
            session.execute(update(Server).where(Server.id == server_id)
                            .values(maintenance=False))
            session.commit()

    def _forget_tls(self, server_id: int, keep: str | None = None) -> None:
        """Remove the server's TLS files (BERTH_VAR_DIR/tls/server-<id>-<fingerprint>) but
        those of the material in use (``keep``), which the engine pool may be reading."""
        for folder in self.pool.tls_dir.glob(f"server-{server_id}-*"):
            if keep is None or folder.name != f"server-{server_id}-{keep}":
                shutil.rmtree(folder, ignore_errors=True)
