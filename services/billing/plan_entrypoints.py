"""The billing service's entrypoints for plans and the image catalogue (admin routes), mixed
into ``BillingService``; the rules are ``services.billing.plans``.

A plan's ``cpus`` and ``memory_mib`` are checked against the hosts' size, asked of the
containers service (``capacity``) with a short timeout (``CAPACITY_TIMEOUT``): a plan no online
server could run is a 400 naming the field. If containers does not answer, or knows no server
yet, the plan is accepted: an outage of containers must not block selling, and containers
refuses, when it places one, a container its host cannot hold.
"""
from __future__ import annotations

import logging

from berth.db import utcnow
from berth.errors import ServiceUnavailable
from berth.schemas import PageQuery
from berth.service import ask, rpc
from berth.validation import parse
from services.billing import plans
from services.billing.schemas import (AddImage, CreatePlan, PlanQuery, UpdateImage,
                                      UpdatePlan)


log = logging.getLogger(__name__)

CAPACITY_TIMEOUT = 2.0  # seconds billing waits for containers' capacity before accepting


class PlanEntrypoints:
    def _capacity(self) -> dict | None:
        """The containers service's ``capacity``, or None if it does not answer in time."""
        try:
            return ask(self.containers_rpc.capacity, service="containers",
                       what="server capacity", timeout=CAPACITY_TIMEOUT)
        except ServiceUnavailable as exc:
            log.warning("plan accepted without a capacity check: %s", exc)
            return None

    @rpc
    def create_plan(self, data: dict) -> dict:
        body = parse(CreatePlan, data, "Invalid plan data")
        plans.require_room(body.model_dump(), self._capacity())
        with self.db() as session:
            plan = plans.create(session, body.model_dump())
            session.commit()
            return {"message": "Plan created successfully", "plan": plans.plan_row(session, plan)}

    @rpc
    def list_plans(self, query: dict) -> dict:
        page = parse(PlanQuery, query, "Invalid query")
        with self.db() as session:
            plans.default_plan(session)  # a database made without migrations gets one now
            session.commit()
            return plans.listing(session, page.limit, page.offset, page.include_retired)

    @rpc
    def get_plan(self, plan_id: int) -> dict:
        with self.db() as session:
            return plans.plan_row(session, plans.get(session, plan_id))

    @rpc
    def update_plan(self, plan_id: int, data: dict) -> dict:
        body = parse(UpdatePlan, data, "Invalid plan data")
        changes = body.model_dump(include=body.model_fields_set)
        if {"cpus", "memory_mib"} & set(changes):
            with self.db() as session:
                plan = plans.get(session, plan_id)
                size = {"cpus": plan.cpus, "memory_mib": plan.memory_mib}
            plans.require_room({**size, **changes}, self._capacity())
        with self.db() as session:
            plan = plans.change(session, plan_id, changes)
            session.commit()
            return {"message": "Plan updated successfully", "plan": plans.plan_row(session, plan)}

    @rpc
    def retire_plan(self, plan_id: int) -> dict:
        with self.db() as session:
            plan = plans.retire(session, plan_id, utcnow())
            session.commit()
            return {"message": "Plan retired: it sells no more; its rentals run on",
                    "plan": plans.plan_row(session, plan)}

    @rpc
    def add_image(self, data: dict) -> dict:
        body = parse(AddImage, data, "Invalid image data")
        with self.db() as session:
            image = plans.add_image(session, body.model_dump())
            session.commit()
            return {"message": "Image added to the catalogue", "image": plans.image_row(image)}

    @rpc
    def list_images(self, query: dict) -> dict:
        page = parse(PageQuery, query, "Invalid query")
        with self.db() as session:
            return plans.images(session, page.limit, page.offset)

    @rpc
    def update_image(self, image_id: int, data: dict) -> dict:
        body = parse(UpdateImage, data, "Invalid image data")
        with self.db() as session:
            image = plans.change_image(session, image_id,
                                       body.model_dump(include=body.model_fields_set))
            session.commit()
            return {"message": "Image updated successfully", "image": plans.image_row(image)}

    @rpc
    def delete_image(self, image_id: int) -> dict:
        with self.db() as session:
            plans.remove_image(session, image_id)
            session.commit()
        return {"message": "Image removed from the catalogue"}
