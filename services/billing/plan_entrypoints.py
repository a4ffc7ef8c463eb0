"""The billing service's entrypoints for plans and the image catalogue (admin routes), mixed
into ``BillingService``; the rules are ``services.billing.plans``."""
from __future__ import annotations

from berth.db import utcnow
from berth.schemas import PageQuery
from berth.service import rpc
from berth.validation import parse
from services.billing import plans
from services.billing.schemas import (AddImage, CreatePlan, PlanQuery, UpdateImage,
                                      UpdatePlan)


class PlanEntrypoints:
    @rpc
    def create_plan(self, data: dict) -> dict:
        body = parse(CreatePlan, data, "Invalid plan data")
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
        with self.db() as session:
            plan = plans.change(session, plan_id, body.model_dump(include=body.model_fields_set))
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
