"""Servers as an operator manages them: add, edit, maintenance, drain, delete (no nameko).

``ServerAdmin`` is mixed into ``Fleet`` (services.containers.fleet), whose sessions, outbox,
probe and recreate machinery it uses.

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
  does; **delete** takes only an empty server (409 otherwise), putting it in maintenance
  first so that no create is placed on it while it goes.

Every change is one ``server_updated`` / ``server_removed`` event, in the change's transaction.
"""
from __future__ import annotations

import logging
import shutil

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from berth.engines import Endpoint
from berth.errors import Conflict
from berth.events import ServerRemoved, ServerUpdated
from berth.sealing import CannotUnseal, seal, unseal
from services.containers import placement
from services.containers.models import Container, Server

log = logging.getLogger(__name__)

TLS_FIELDS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")


def default_docker_url(ip_address: str, tls: bool) -> str:
    host = f"[{ip_address}]" if ":" in ip_address else ip_address
    return f"tcp://{host}:{2376 if tls else 2375}"


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


class ServerAdmin:
    """Adding and correcting servers (a mixin of ``Fleet``)."""

    def add_server(self, body) -> dict:
        tls = bool(body.tls_client_cert)
        url = body.docker_url or default_docker_url(str(body.ip_address), tls)
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
        return {"message": "Server added successfully", "server_id": server_id,
                "status": row["status"], "maintenance": row["maintenance"]}

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
            was_default = server.docker_url == default_docker_url(
                server.ip_address, bool(server.tls_client_cert))
            if "docker_url" in given:
                url = body.docker_url or default_docker_url(ip, bool(cert))
            elif was_default:
                url = default_docker_url(ip, bool(cert))
            else:
                url = server.docker_url
            changed = [field for field, differs in (
                ("name", name != server.name), ("ip_address", ip != server.ip_address),
                ("docker_url", url != server.docker_url), ("tls", tls_changed)) if differs]
            if changed:
                self._require_unique(session, server_id, name, url)
                self._apply_edit(session, server, changed, name, ip, url,
                                 (ca, cert, key) if tls_changed else None, actor_id)
        if not changed:
            return {"message": "Server unchanged", "changed": [], **self.server(server_id)}
        log.info("server %d edited: %s", server_id, ", ".join(changed))
        if {"ip_address", "docker_url", "tls"} & set(changed):
            self._forget_tls(server_id, keep=Endpoint.of(server).fingerprint())
            self.probe(server_id)
        return {"message": "Server updated successfully", "changed": changed,
                **self.server(server_id)}

    def _apply_edit(self, session, server: Server, changed: list[str], name: str, ip: str,
                    url: str, tls: tuple | None, actor_id: int | None) -> None:
        server.name, server.ip_address, server.docker_url = name, ip, url
        if tls is not None:
            server.tls_ca_cert, server.tls_client_cert = tls[0], tls[1]
            server.tls_client_key = seal(tls[2])
        self.record(session, ServerUpdated.new(**_server_fields(server), changed=changed,
                                               maintenance=server.maintenance,
                                               actor_id=actor_id))
        try:
            session.commit()
        except IntegrityError:  # the name was taken meanwhile
            raise Conflict(f"A server named {name} already exists") from None

    def set_maintenance(self, server_id: int, maintenance: bool,
                        actor_id: int | None) -> dict:
        with self.sessions() as session:
            self._server(session, server_id)
            changed = self._flag_maintenance(session, server_id, maintenance, actor_id)
            session.commit()
        return {"message": f"Maintenance {'on' if maintenance else 'off'}",
                "changed": changed, **self.server(server_id)}

    def _flag_maintenance(self, session, server_id: int, maintenance: bool,
                          actor_id: int | None) -> list[str]:
        """Set the flag; a change (decided by a conditional UPDATE) is one event."""
        if not session.execute(update(Server).where(
                Server.id == server_id, Server.maintenance != maintenance)
                .values(maintenance=maintenance)).rowcount:
            return []
        server = session.get(Server, server_id)
        session.refresh(server)
        self.record(session, ServerUpdated.new(**_server_fields(server),
                                               changed=["maintenance"],
                                               maintenance=maintenance, actor_id=actor_id))
        log.info("server %s (%d): maintenance %s", server.name, server_id,
                 "on" if maintenance else "off")
        return ["maintenance"]

    def drain(self, server_id: int, actor_id: int | None) -> dict:
        """Maintenance on, then every container moved to the least-loaded eligible servers
        (online, not in maintenance), as failover moves them."""
        with self.sessions() as session:
            server = self._server(session, server_id)
            moving = session.scalars(
                select(Container).where(Container.server_id == server_id,
                                        Container.status != "creating")
                .order_by(Container.desired_state, Container.id)).all()
            targets = session.scalars(select(Server.id).where(
                Server.status == "online", Server.maintenance.is_(False),
                Server.id != server_id)).all()
            if moving and not targets:
                raise Conflict(f"No other server is online and out of maintenance to take "
                               f"the containers of {server.name}")
            self._flag_maintenance(session, server_id, True, actor_id)
            session.commit()
            load = self._load(session)
        load = {target: load.get(target, 0) for target in targets}
        plan = []
        for container in moving:
            target = placement.least_loaded(load)
            load[target] += 1
            plan.append((container, target))
        actions = self._each(plan, "drain", "moved")
        with self.sessions() as session:
            left = session.scalar(select(func.count(Container.id)).where(
                Container.server_id == server_id))
        return {"message": "Server drained successfully", "server_id": server_id,
                "maintenance": True, "containers_left": left, "actions": actions}

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
        return {"message": "Server deleted successfully", "server_id": server_id}

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
