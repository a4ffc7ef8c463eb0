"""Supervision: the reconciler and the restart backoff (no nameko).

The reconciler, run on every health tick, reads each online engine and:

- removes copies that are stale: no row, a row now on another server, or an older generation
  (so a failed host that returns never runs a container twice);
- leaves alone copies with a newer generation (a recreate in flight) and rows still creating;
- records each row's observed status, reports a container that should run but does not
  (``container_died``, once per incident), starts it again, and stops one that should not run.

``Supervision`` is mixed into ``Fleet`` (services.containers.fleet).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from berth.concurrency import Pool
from berth.docker.engines import (LABEL_CONTAINER_ID, LABEL_GENERATION, LABEL_SERVER_ID, Endpoint,
                           berth_state, exit_code_of)
from berth.events import ContainerDied, ContainerRecovered
from services.containers.models import Container, Server
from services.containers.shapes import event_fields, failure_reason

log = logging.getLogger(__name__)

STUCK_AFTER = dt.timedelta(minutes=10)  # a create or recreate older than this was abandoned


@dataclass(frozen=True)
class Backoff:
    """How supervision restarts a container that keeps dying: at once the first time, then
    after ``first`` seconds, doubling up to ``longest``; once it has stayed up for
    ``stable_after`` seconds, from the start again."""
    first: float = 10.0
    longest: float = 300.0
    stable_after: float = 60.0

    def due(self, restarts: int, restarted_at: dt.datetime | None, now: dt.datetime) -> bool:
        if not restarts or restarted_at is None:
            return True
        wait = min(self.first * 2 ** min(restarts - 1, 32), self.longest)
        return (now - restarted_at).total_seconds() >= wait

    def stable(self, restarted_at: dt.datetime | None, now: dt.datetime) -> bool:
        return restarted_at is None or (now - restarted_at).total_seconds() >= self.stable_after


class Supervision:
    """Reconciling engines with the database, and restarting what dies (a mixin of
    ``Fleet``)."""

    def reconcile(self) -> dict:
        """Compare every online engine with the database (see the module's docstring)."""
        with self.sessions() as session:
            servers = session.scalars(select(Server).where(Server.status == "online")).all()
            self._drop_abandoned_creates(session)
        results = Pool(min(len(servers), 50)).map(self._reconcile_server, servers)
        return {"servers": len(servers), "stale_removed": sum(r[0] for r in results),
                "restarted": sum(r[1] for r in results)}

    def _drop_abandoned_creates(self, session) -> None:
        cutoff = self.now() - STUCK_AFTER
        stuck = session.execute(delete(Container).where(
            Container.status == "creating", Container.created_at < cutoff)).rowcount
        if stuck:
            log.warning("dropped %d container rows abandoned while creating", stuck)
        session.commit()

    def _reconcile_server(self, server: Server) -> tuple[int, int]:
        endpoint = Endpoint.of(server)
        try:
            copies = self.pool.managed(endpoint, self.installation())  # engine, then db
        except Exception as exc:  # noqa: BLE001 - the next probe marks it offline
            log.warning("reconcile: %s did not answer: %s", server.name, failure_reason(exc))
            return 0, 0
        ids = {_label_int(c, LABEL_CONTAINER_ID) for c in copies} - {None}
        with self.sessions() as session:
            rows = {c.id: c for c in session.scalars(select(Container).where(
                (Container.server_id == server.id) | Container.id.in_(ids)))}
        current, stale = {}, 0
        now_epoch = self.now().timestamp()
        for copy in copies:
            if _label_int(copy, LABEL_SERVER_ID) != server.id:
                continue  # another server row points at this engine: not ours to judge
            row = rows.get(_label_int(copy, LABEL_CONTAINER_ID))
            generation = _label_int(copy, LABEL_GENERATION) or 0
            if row is not None and row.server_id == server.id and row.status == "creating":
                continue
            if row is not None and row.server_id == server.id and \
                    generation == row.generation:
                current[row.id] = copy
                continue
            newer = row is not None and generation > row.generation
            if newer and now_epoch - (copy.get("Created") or 0) < STUCK_AFTER.total_seconds():
                continue  # a recreate in flight
            try:
                self.ops.remove(endpoint, copy["Id"])
                stale += 1
                log.warning("removed stale copy %s (container %s, generation %s) from %s",
                            copy["Id"][:12], row.id if row else "deleted", generation,
                            server.name)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not remove stale copy %s: %s", copy["Id"][:12],
                            failure_reason(exc))
        restarted = 0
        for row in rows.values():
            if row.server_id != server.id or row.status == "creating":
                continue
            restarted += self._supervise(endpoint, row, current.get(row.id),
                                         server.maintenance)
        return stale, restarted

    def _supervise(self, endpoint: Endpoint, row: Container, copy: dict | None,
                   maintenance: bool = False) -> int:
        """One container on one tick. A container that should run but does not opens an
        incident, reported once (``container_died``; later deaths in it only count in
        ``deaths``), and is started again: at once the first time, then on the backoff
        while it keeps dying. The incident ends (``container_recovered``) only once the
        container has stayed up for the backoff's ``stable_after``: a crash loop is one
        incident."""
        observed = berth_state(copy.get("State")) if copy else "missing"
        exit_code = exit_code_of(copy) if copy and observed == "stopped" else None
        events, restarted = [], 0
        now = self.now()
        died_at, deaths = row.died_at, row.deaths
        restarts, restarted_at = row.restarts, row.restarted_at
        if row.desired_state == "running" and observed != "running":
            if died_at is None:
                reason = self._death_reason(endpoint, copy, observed)
                events.append(ContainerDied.new(**event_fields(row), status=observed,
                                                exit_code=exit_code, reason=reason,
                                                maintenance=maintenance))
                log.warning("container %s is %s (exit code %s, %s)", row.name, observed,
                            exit_code, reason)
                died_at, deaths = now, 1
            elif row.status in ("running", "restarting"):  # up again since, and died again
                deaths += 1
            if observed == "stopped" and self.backoff.due(restarts, restarted_at, now):
                try:
                    self.ops.start(endpoint, copy["Id"])
                    restarted = 1
                except Exception as exc:  # noqa: BLE001 - tried again on the next tick
                    log.warning("could not restart %s: %s", row.name, failure_reason(exc))
                restarts, restarted_at = restarts + 1, now  # a failed start counts too
                if restarts > 1:
                    log.warning("container %s restarted %d times since it last stayed up",
                                row.name, restarts)
        elif row.desired_state == "stopped" and observed in ("running", "restarting"):
            try:
                self.ops.stop(endpoint, copy["Id"])
                observed = "stopped"
            except Exception as exc:  # noqa: BLE001
                log.warning("could not stop %s: %s", row.name, failure_reason(exc))
            died_at, deaths, restarts, restarted_at = None, 0, 0, None
        elif observed == "running" and self.backoff.stable(restarted_at, now):
            if died_at is not None:
                events.append(ContainerRecovered.new(**event_fields(row)))
                log.info("container %s recovered after %d deaths", row.name, deaths)
            died_at, deaths, restarts, restarted_at = None, 0, 0, None
        if restarted:
            observed = "restarting"  # the next tick tells if it held
        with self.sessions() as session:
            values = {"status": observed, "exit_code": exit_code, "observed_at": now,
                      "died_at": died_at, "deaths": deaths,
                      "engine_id": copy["Id"] if copy else row.engine_id,
                      "restarts": restarts, "restarted_at": restarted_at}
            changed = session.execute(update(Container).where(
                Container.id == row.id, Container.generation == row.generation,
                Container.server_id == row.server_id,
                Container.desired_state == row.desired_state).values(**values)).rowcount
            if changed:  # else a user or a recreate changed it meanwhile: theirs wins
                for event in events:
                    self.record(session, event)
            session.commit()
        return restarted


    def _death_reason(self, endpoint: Endpoint, copy: dict | None, observed: str) -> str:
        """``oom``, ``exited``, ``missing`` or the observed status (paused, restarting)."""
        if copy is None:
            return "missing"
        if observed != "stopped":
            return observed
        try:
            return self.ops.death_reason(endpoint, copy["Id"])
        except Exception as exc:  # noqa: BLE001 - the death is reported all the same
            log.warning("could not tell why %s stopped: %s", copy["Id"][:12],
                        failure_reason(exc))
            return "exited"


def _label_int(copy: dict, label: str) -> int | None:
    try:
        return int((copy.get("Labels") or {}).get(label))
    except (TypeError, ValueError):
        return None