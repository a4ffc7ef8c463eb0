"""Billing service: serials, rentals, distributors, expiry and reminders. Entrypoints only.

Where it needs a user (the assignee's e-mail for ``issued_to``, whether a user exists) it asks
the users service by RPC, with a timeout: the answer is always current, and a users outage is
a clear 503 rather than a stale copy. ``issued_to`` is stored on the serial as it was at issue.
"""
from __future__ import annotations

import datetime as dt
import logging

from nameko.rpc import RpcProxy

from berth.actor import Actor
from berth.db import utcnow
from berth.errors import NotFound
from berth.events import RentalExpiryNoticeRequested
from berth.lease import try_acquire
from berth.outbox import EventOutbox
from berth.schemas import PageQuery
from berth.service import ServiceBase, ask, call_with_timeout, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.billing import distributors, rentals, serials, usage
from services.billing.metrics import FAMILIES as METRIC_FAMILIES
from services.billing.plan_entrypoints import PlanEntrypoints
from services.billing.models import Lease, OutboxEvent
from services.billing.schemas import (ApplyDistributor, ExpiryNotification, GenerateSerial,
                                      RedeemSerial, RenewRental, UpdateRentalHistory,
                                      UpdateSerial)

log = logging.getLogger(__name__)


def today() -> dt.date:
    return utcnow().date()


class RpcAccounts:
    """``distributors.Accounts`` over the users service's RPC, with a timeout."""

    def __init__(self, users_rpc):
        self.users_rpc = users_rpc

    def contact(self, user_id: int) -> dict:
        return call_with_timeout(self.users_rpc.contact, user_id)


class RpcUsage:
    """``usage.Peers`` over containers' and traffic's RPC. Each call waits ``TIMEOUT`` at
    most: a peer that is away costs the customer's rental_info that long, not the RPC
    timeout (usage.used asks both at once)."""
    TIMEOUT = 2.0

    def __init__(self, containers_rpc, traffic_rpc):
        self.containers_rpc, self.traffic_rpc = containers_rpc, traffic_rpc

    def containers_of(self, user_id: int) -> int:
        return ask(self.containers_rpc.user_usage, user_id, service="containers",
                   what="container counts", timeout=self.TIMEOUT)["containers"]

    def traffic_this_month(self, user_id: int) -> dict:
        return ask(self.traffic_rpc.user_month, user_id, service="traffic",
                   what="monthly traffic", timeout=self.TIMEOUT)


class BillingService(PlanEntrypoints, ServiceBase):
    name = "billing"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    outbox = EventOutbox(OutboxEvent)
    users_rpc = RpcProxy("users")
    containers_rpc = RpcProxy("containers")
    traffic_rpc = RpcProxy("traffic")

    def _record(self, session, event) -> None:
        if event is not None:
            self.outbox.add(session, event)

    @property
    def _accounts(self) -> RpcAccounts:
        return RpcAccounts(self.users_rpc)

    # --- serials ----------------------------------------------------------------------------

    @rpc
    def check_serial(self, code: str, actor: dict | None = None) -> dict:
        """A serial's status; ``issued_to`` only for an admin or the assignee (``actor``:
        the caller through the gateway; None: another service, which sees it all)."""
        with self.db() as session:
            serial = serials.find(session, code)
            row = serials.to_check(serial, today())
        if actor is not None and not serials.may_see_assignee(serial, Actor.of(actor)):
            row["issued_to"] = None
        return row

    @rpc
    def generate_serial(self, actor: dict, data: dict) -> dict:
        body = parse(GenerateSerial, data, "Invalid data")
        caller = Actor.of(actor)
        if body.user_id is not None and caller.role == "distributor":
            with self.db() as session:  # a distributor names only their own customers
                if not serials.sold_to(session, caller.user_id, body.user_id):
                    raise NotFound(f"User {body.user_id} not found")
        assignee = self._accounts.contact(body.user_id) if body.user_id is not None else None
        with self.db() as session:
            serial = serials.generate(session, caller, body.type, body.expiry_date,
                                      today(), assignee, body.plan_id)
            session.commit()
            return {"message": "Serial number generated successfully",
                    "serial_code": serials.codes.display(serial.code), "serial_id": serial.id,
                    "plan_id": serial.plan_id}

    @rpc
    def list_serials(self, actor: dict, query: dict) -> dict:
        page = parse(PageQuery, query, "Invalid query")
        with self.db() as session:
            return serials.listing(session, Actor.of(actor), page.limit, page.offset, today())

    @rpc
    def update_serial(self, serial_id: int, data: dict) -> dict:
        body = parse(UpdateSerial, data, "Invalid data")
        with self.db() as session:
            serial = serials.change(session, serial_id, body.model_dump(
                include=body.model_fields_set))
            session.commit()
            return {"message": "Serial number updated successfully",
                    "serial": serials.to_row(serial, today())}

    @rpc
    def delete_serial(self, serial_id: int) -> dict:
        with self.db() as session:
            session.delete(serials.get(session, serial_id))
            session.commit()
        return {"message": "Serial number deleted successfully"}

    @rpc
    def redeem_serial(self, actor: dict, data: dict) -> dict:
        body = parse(RedeemSerial, data, "Invalid serial code")
        redeemer = Actor.of(actor)
        with self.db() as session:
            serial = serials.find(session, body.serial_code)
            rental, event = rentals.redeem(session, serial, redeemer.user_id, today(), utcnow())
            self.outbox.add(session, event)
            session.commit()
            return {"message": "Serial redeemed successfully", "rental_id": rental.id,
                    "serial_id": serial.id, "rental_status": rental.status,
                    "rental_expiry": rental.end_date.isoformat(),
                    "renewed": event.TYPE == "rental_renewed"}

    @rpc
    def apply_distributor(self, data: dict) -> dict:
        body = parse(ApplyDistributor, data, "Invalid distributor data")
        with self.db() as session:
            _, event = distributors.apply(session, self._accounts, body.user_id, body.distributor_code,
                                          today(), utcnow())
            self.outbox.add(session, event)
            session.commit()
        return {"message": "Distributor application successful"}

    # --- rentals ----------------------------------------------------------------------------

    @rpc
    def check_expiry(self) -> dict:
        with self.db() as session:
            return {"expired_rentals": rentals.past_end(session, today())}

    @rpc
    def send_expiry_notification(self, data: dict) -> dict:
        body = parse(ExpiryNotification, data, "Invalid data")
        self._accounts.contact(body.user_id)  # 404 for an unknown user
        with self.db() as session:
            self.outbox.add(session, RentalExpiryNoticeRequested.new(
                user_id=body.user_id, expiry_date=body.expiry_date.isoformat()))
            session.commit()
        return {"message": "Expiry notification sent"}

    @rpc
    def renew_rental(self, data: dict) -> dict:
        body = parse(RenewRental, data, "Invalid data")
        with self.db() as session:
            rental, event = rentals.renew(session, body.rental_id, body.new_expiry_date,
                                          today(), utcnow())
            self.outbox.add(session, event)
            session.commit()
            return {"message": "Rental renewed successfully", "rental": rentals.to_row(rental)}

    @rpc
    def delete_rental_for_serial(self, serial_id: int) -> dict:
        """The reply names the rental deleted (and its owner): the audit row is about it."""
        with self.db() as session:
            rental, event = rentals.delete_for_serial(session, serial_id)
            deleted = {"rental_id": rental.id, "user_id": rental.user_id}
            self._record(session, event)
            session.commit()
        return {"message": "Rental deleted successfully", **deleted}

    @rpc
    def rental_history(self, user_id: int) -> dict:
        self._accounts.contact(user_id)  # 404 for an unknown user
        with self.db() as session:
            return {"user_id": user_id, "rental_history": rentals.history(session, user_id)}

    @rpc
    def update_rental_history(self, rental_id: int, data: dict) -> dict:
        body = parse(UpdateRentalHistory, data, "Invalid data")
        with self.db() as session:
            rental, event = rentals.edit(session, rental_id, body.model_dump(
                include=body.model_fields_set), utcnow())
            self._record(session, event)
            session.commit()
            return {"message": "User rental history updated successfully",
                    "rental": rentals.to_row(rental)}

    @rpc
    def delete_rental_history(self, rental_id: int) -> dict:
        with self.db() as session:
            self._record(session, rentals.delete(session, rental_id))
            session.commit()
        return {"message": "User rental history deleted successfully"}

    @rpc
    def rental_info(self, user_id: int) -> dict:
        with self.db() as session:
            return rentals.info(session, user_id)

    @rpc
    def rental_summary(self, user_id: int) -> dict:
        """``rental_info`` and what the user has used of their plan (the customer's route)."""
        info = self.rental_info(user_id)
        peers = RpcUsage(self.containers_rpc, self.traffic_rpc)
        return {**info, "used": usage.used(peers, user_id) if info["plan"] else None}

    # --- expiry -----------------------------------------------------------------------------

    @every("expiry_interval")
    def expire_and_remind(self):
        """Expire rentals past their end and send due reminders, in one replica per tick."""
        settings = get_settings()
        if not try_acquire(self.db, Lease, "billing-expiry", settings.expiry_interval):
            return
        self.run_expiry(today())

    @rpc
    def run_expiry(self, on: str | dt.date | None = None) -> dict:
        """One expiry pass as of ``on`` (default today): used by the timer and by operators."""
        day = dt.date.fromisoformat(on) if isinstance(on, str) else (on or today())
        thresholds = get_settings().reminder_days_tuple
        with self.db() as session:
            expired = rentals.expire_due(session, day)
            reminders = rentals.due_reminders(session, day, thresholds)
            lapsed = serials.expire_lapsed(session, day)
            for event in expired + reminders:
                self.outbox.add(session, event)
            session.commit()
        if expired or reminders or lapsed:
            log.info("expiry pass %s: %d rentals expired, %d reminders, %d serials lapsed",
                     day, len(expired), len(reminders), lapsed)
        return {"expired": len(expired), "reminders": len(reminders), "serials_lapsed": lapsed}
