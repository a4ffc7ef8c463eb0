"""Billing service: serials, rentals, distributors (their allotments and sales), expiry and
reminders. Entrypoints only.

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
from berth.errors import Forbidden, NotFound
from berth.events import RentalExpiryNoticeRequested, TrafficQuotaCleared, TrafficQuotaExceeded
from berth.lease import try_acquire
from berth.outbox import EventOutbox
from berth.schemas import PageQuery
from berth.service import ServiceBase, ask, call_with_timeout, event_handler, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.billing import (allotments, distributors, rentals, sales, serials, suspension,
                              usage)
from services.billing.metrics import FAMILIES as METRIC_FAMILIES
from services.billing.plan_entrypoints import PlanEntrypoints
from services.billing.models import Lease, OutboxEvent, ProcessedEvent
from services.billing.schemas import (ApplyDistributor, ChangeAllotment, ExpiringQuery,
                                      ExpiryNotification,
                                      GenerateSerial, RedeemSerial, RenewRental, ResumeRental,
                                      SalesQuery,
                                      UpdateRentalHistory, UpdateSerial)

log = logging.getLogger(__name__)

UNVERIFIED = ("Verify your e-mail address before redeeming a serial: open the link mailed to "
              "you, or ask for a new one (POST /api/send_verification_email)")


def today() -> dt.date:
    return utcnow().date()


class RpcAccounts:
    """``distributors.Accounts`` over the users service's RPC, with a timeout."""

    def __init__(self, users_rpc):
        self.users_rpc = users_rpc

    def contact(self, user_id: int) -> dict:
        return call_with_timeout(self.users_rpc.contact, user_id)

    def grant_distributor(self, user_id: int, serial_id: int) -> str:
        return ask(self.users_rpc.grant_distributor, user_id, serial_id, service="users",
                   what="the distributor role")["role"]

    def usernames(self, user_ids: list[int]) -> dict[int, str]:
        """``sales.Names``: one call for a page of customers."""
        reply = ask(self.users_rpc.usernames, user_ids, service="users", what="usernames")
        return {int(user_id): name for user_id, name in reply["usernames"].items()}


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
    processed_events = ProcessedEvent
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
                                      today(), assignee, body.plan_id,
                                      horizon_days=get_settings().distributor_max_days)
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
        if get_settings().require_verified_email \
                and not self._accounts.contact(redeemer.user_id).get("email_verified"):
            raise Forbidden(UNVERIFIED)
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
        accounts = self._accounts
        with self.db() as session:
            serial, event = distributors.apply(session, accounts, body.user_id,
                                               body.distributor_code, today(), utcnow())
            if event is not None:
                self.outbox.add(session, event)
            session.commit()  # the claim stands whatever happens next
            # the role before the answer (read your own writes): a users outage here is a
            # 503, and the same application again completes it
            distributors.grant(session, accounts, serial, utcnow())
            session.commit()
        return {"message": "Distributor application successful"}

    # --- distributors: allotments and sales ---------------------------------------------------

    @rpc
    def change_allotment(self, actor: dict, distributor_id: int, data: dict) -> dict:
        """An admin grants (or takes back) part of a distributor's allotment of a plan."""
        body = parse(ChangeAllotment, data, allotments.INVALID)
        unit, amount = allotments.requested_change(body.serials, body.days)
        allotments.require_distributor(self._accounts, distributor_id)
        with self.db() as session:
            allotment, plan, event = allotments.change(session, distributor_id, body.plan_id,
                                                       unit, amount, Actor.of(actor).user_id)
            self._record(session, event)
            session.commit()
            return {"message": "Allotment changed", "distributor_id": distributor_id,
                    "allotment": allotments.to_row(allotment, plan)}

    @rpc
    def list_allotments(self, distributor_id: int) -> dict:
        self._accounts.contact(distributor_id)  # 404 for an unknown user
        with self.db() as session:
            return {"distributor_id": distributor_id,
                    "allotments": allotments.of(session, distributor_id)}

    @rpc
    def distributor_sales(self, actor: dict, query: dict) -> dict:
        """The redeemed serials a distributor issued, their customers (by username) and the
        rentals they made; an admin names a distributor or sees them all."""
        page = parse(SalesQuery, query, "Invalid query")
        distributor_id = sales.whose(Actor.of(actor), page.distributor_id)
        with self.db() as session:
            reply = sales.listing(session, distributor_id, page.limit, page.offset)
        return sales.name_customers(reply, self._accounts)

    # --- rentals ----------------------------------------------------------------------------

    @rpc
    def check_expiry(self) -> dict:
        with self.db() as session:
            return {"expired_rentals": rentals.past_end(session, today())}

    @rpc
    def expiring_rentals(self, query: dict) -> dict:
        """Running rentals that end within ``days`` days, soonest first, with usernames."""
        body = parse(ExpiringQuery, query, "Invalid query")
        with self.db() as session:
            rows, total = rentals.ending_within(session, today(), body.days, body.limit,
                                                body.offset)
        ids = sorted({row["user_id"] for row in rows})
        known = self._accounts.usernames(ids) if ids else {}
        for row in rows:
            row["username"] = known.get(row["user_id"])
        return {"rentals": rows, "total": total, "days": body.days}

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
            rental, events = rentals.edit(session, rental_id, body.model_dump(
                include=body.model_fields_set), utcnow())
            for event in events:
                self.outbox.add(session, event)
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

    # --- suspension at the traffic quota (services.billing.suspension) ----------------------

    @rpc
    def plan_quotas(self, user_ids: list[int]) -> dict:
        """For traffic: user id -> their running rental's plan's monthly quota (bytes), for
        the users whose plan sets one."""
        with self.db() as session:
            return suspension.plan_quotas(session, [int(u) for u in user_ids])

    @rpc
    def resume_rental(self, actor: dict, data: dict) -> dict:
        """An admin ends a user's suspension (for the rest of the month)."""
        body = parse(ResumeRental, data, "Invalid data")
        with self.db() as session:
            rental, event = suspension.resume(session, body.user_id, Actor.of(actor).user_id)
            self.outbox.add(session, event)
            session.commit()
            return {"message": "Rental resumed", "rental": rentals.to_row(rental)}

    @event_handler("traffic", TrafficQuotaExceeded.TYPE)
    def on_traffic_quota_exceeded(self, payload):
        """Traffic is asked (under the user's lock) whether the notice is still open; traffic
        away: the event is requeued and tried again."""
        def open_month(user_id: int) -> str | None:
            return call_with_timeout(self.traffic_rpc.open_quota_notice, user_id)["month"]
        self.handle_once(TrafficQuotaExceeded, payload, lambda session, e: self._record(
            session, suspension.on_quota_exceeded(session, e, utcnow(),
                                                  lambda: open_month(e.user_id))))

    @event_handler("traffic", TrafficQuotaCleared.TYPE)
    def on_traffic_quota_cleared(self, payload):
        self.handle_once(TrafficQuotaCleared, payload, lambda session, e: self._record(
            session, suspension.on_quota_cleared(session, e)))

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
