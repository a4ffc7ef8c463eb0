"""Routes of the billing service: serials, rentals, distributors."""
from __future__ import annotations

import functools


from berth import api_keys
from berth.schemas import PageQuery
from gateway.api import (ADMIN_OR_DISTRIBUTOR, SIGNED_IN, ApiBlueprint, call, fields,
                         not_found_if_too_long)
from services.billing.schemas import (AllotmentList, AllotmentReply, ChangeAllotment,
                                      SalesList, SalesQuery)
from services.billing.schemas import (AddImage, CreatePlan, ImageList, ImageReply, PlanList,
                                      PlanQuery, PlanReply, PlanRow, UpdateImage, UpdatePlan)
from services.billing.schemas import (ApplyDistributor, ExpiredRentals, ExpiringQuery,
                                      ExpiringRentals, ExpiryNotification,
                                      GenerateSerial, RedeemSerial, Redeemed, RenewRental,
                                      RentalHistory, RentalInfo, Resumed, ResumeRental,
                                      SerialCheck, SerialGenerated,
                                      SerialList, UpdateRentalHistory, UpdateSerial,
                                      UserHistory)

bp = ApiBlueprint("billing", __name__, write_scope=api_keys.BILLING)


billing = functools.partial(call, "billing")



# --- serials -------------------------------------------------------------------------------

@bp.api("/serial/check/<serial_code>", ["GET"], summary="A serial's status (its assignee's "
        "address: for admins and the assignee only)",
        reply=SerialCheck, access=SIGNED_IN, errors=(400, 404))
def check_serial(caller, serial_code):
    return billing("check_serial", not_found_if_too_long(serial_code), caller.to_wire())


@bp.api("/serial/generate", ["POST"], summary="Generate a serial (distributors: rental "
        "serials only, tagged with them)", body=GenerateSerial, reply=SerialGenerated,
        access=ADMIN_OR_DISTRIBUTOR, errors=(404, 409))
def generate_serial(caller, body):
    return billing("generate_serial", caller.to_wire(), fields(body))


@bp.api("/serials", ["GET"], summary="Serials (a distributor sees only those they issued)",
        query=PageQuery, reply=SerialList, access=ADMIN_OR_DISTRIBUTOR)
def list_serials(caller, query):
    return billing("list_serials", caller.to_wire(), query.model_dump())


@bp.api("/serial/update/<int:id>", ["PUT"], summary="Change a serial's code, expiry date or "
        "revoked status", body=UpdateSerial, errors=(404, 409))
def update_serial(caller, id, body):
    return billing("update_serial", id, fields(body))


@bp.api("/serial/delete/<int:id>", ["DELETE"], summary="Delete a serial", errors=(404,))
def delete_serial(caller, id):
    return billing("delete_serial", id)


@bp.api("/serial/redeem", ["POST"], summary="Redeem a rental serial: start or extend the "
        "caller's rental", body=RedeemSerial, reply=Redeemed, access=SIGNED_IN,
        errors=(403, 404, 409), invalid="Invalid serial code")
def redeem_serial(caller, body):
    return billing("redeem_serial", caller.to_wire(), fields(body))


@bp.api("/user/apply_distributor", ["POST"], summary="Become a distributor with a "
        "distributor serial (effective at the next login)", body=ApplyDistributor,
        access=SIGNED_IN, owner="user_id", errors=(404, 409),
        invalid="Invalid distributor data")
def apply_distributor(caller, body):
    return billing("apply_distributor", fields(body))


# --- distributors: allotments and sales --------------------------------------------------------

@bp.api("/distributors/<int:user_id>/allotments", ["POST"], summary="Grant a distributor "
        "part of an allotment of a plan, in serials or rental-days (negative: take back, "
        "never below zero)", body=ChangeAllotment, reply=AllotmentReply, errors=(404, 409),
        invalid="Invalid allotment data")
def change_allotment(caller, user_id, body):
    return billing("change_allotment", caller.to_wire(), user_id, fields(body))


@bp.api("/distributors/<int:user_id>/allotments", ["GET"], summary="A distributor's "
        "allotments: what is left to sell of each plan", reply=AllotmentList,
        access=ADMIN_OR_DISTRIBUTOR, owner="user_id", errors=(404,))
def list_allotments(caller, user_id):
    return billing("list_allotments", user_id)


@bp.api("/distributor/sales", ["GET"], summary="A distributor's redeemed serials: the "
        "customer (id, username), the plan and the rental each made, with counts",
        query=SalesQuery, reply=SalesList, access=ADMIN_OR_DISTRIBUTOR, errors=(403,))
def distributor_sales(caller, query):
    return billing("distributor_sales", caller.to_wire(), query.model_dump())


# --- rentals -------------------------------------------------------------------------------

@bp.api("/rental/check_expiry", ["GET"], summary="Rentals past their end date",
        reply=ExpiredRentals)
def check_expiry(caller):
    return billing("check_expiry")


@bp.api("/rental/expiring", ["GET"], summary="Running rentals that end within `days` days "
        "(7 by default: this week), soonest first, with their owners' usernames",
        query=ExpiringQuery, reply=ExpiringRentals, errors=(503,))
def expiring_rentals(caller, query):
    return billing("expiring_rentals", query.model_dump())


@bp.api("/rental/send_expiry_notifications", ["POST"], summary="Mail a user their rental's "
        "expiry date", body=ExpiryNotification, errors=(404,))
def send_expiry_notifications(caller, body):
    return billing("send_expiry_notification", fields(body))


@bp.api("/rental/renew", ["POST"], summary="Move a rental's end date later",
        body=RenewRental, errors=(404, 409))
def renew_rental(caller, body):
    return billing("renew_rental", fields(body))


@bp.api("/rental/resume", ["POST"], summary="End a user's suspension (their containers "
        "start again; for the rest of the month)", body=ResumeRental, reply=Resumed,
        errors=(409,))
def resume_rental(caller, body):
    return billing("resume_rental", caller.to_wire(), fields(body))


@bp.api("/rental/delete/<int:serial_id>", ["DELETE"], summary="Delete the rental a serial "
        "started or extended", errors=(404,))
def delete_rental(caller, serial_id):
    return billing("delete_rental_for_serial", serial_id)


@bp.api("/rental/history/<int:user_id>", ["GET"], summary="A user's rentals",
        reply=RentalHistory, access=SIGNED_IN, owner="user_id")
def rental_history(caller, user_id):
    return billing("rental_history", user_id)


@bp.api("/rental/history/update/<int:id>", ["PUT"], summary="Edit a rental's status or dates",
        body=UpdateRentalHistory, errors=(404, 409))
def update_rental_history(caller, id, body):
    return billing("update_rental_history", id, fields(body))


@bp.api("/rental/history/delete/<int:id>", ["DELETE"], summary="Delete a rental record",
        errors=(404,))
def delete_rental_history(caller, id):
    return billing("delete_rental_history", id)


@bp.api("/user/rental_info", ["GET"], summary="The caller's rental status and expiry, its "
        "plan and what is used of it", reply=RentalInfo, access=SIGNED_IN)
def rental_info(caller):
    return billing("rental_summary", caller.user_id)


@bp.api("/user/history/<int:user_id>", ["GET"], summary="A user's rental history",
        reply=UserHistory, access=SIGNED_IN, owner="user_id")
def user_history(caller, user_id):
    rows = billing("rental_history", user_id)["rental_history"]
    return {"user_id": user_id, "history": rows}  # the seed names the same list "history"


# --- plans and the image catalogue (admin) --------------------------------------------------

@bp.api("/plans", ["POST"], summary="Create a plan: what a rental buys", body=CreatePlan,
        reply=PlanReply, errors=(409,), invalid="Invalid plan data")
def create_plan(caller, body):
    return billing("create_plan", body.model_dump(mode="json"))


@bp.api("/plans", ["GET"], summary="Plans (retired ones with include_retired=true)",
        query=PlanQuery, reply=PlanList)
def list_plans(caller, query):
    return billing("list_plans", query.model_dump())


@bp.api("/plans/<int:plan_id>", ["GET"], summary="A plan and its images", reply=PlanRow,
        errors=(404,))
def get_plan(caller, plan_id):
    return billing("get_plan", plan_id)


@bp.api("/plans/<int:plan_id>", ["PUT"], summary="Change a plan (is_default: true moves "
        "the default here)", body=UpdatePlan, reply=PlanReply, errors=(404, 409),
        invalid="Invalid plan data")
def update_plan(caller, plan_id, body):
    return billing("update_plan", plan_id, fields(body))


@bp.api("/plans/<int:plan_id>/retire", ["POST"], summary="Stop selling a plan (its rentals "
        "run on)", reply=PlanReply, errors=(404, 409))
def retire_plan(caller, plan_id):
    return billing("retire_plan", plan_id)


@bp.api("/images", ["POST"], summary="Add an image to the catalogue plans offer",
        body=AddImage, reply=ImageReply, errors=(409,), invalid="Invalid image data")
def add_image(caller, body):
    return billing("add_image", body.model_dump(mode="json"))


@bp.api("/images", ["GET"], summary="The image catalogue", query=PageQuery, reply=ImageList)
def list_images(caller, query):
    return billing("list_images", query.model_dump())


@bp.api("/images/<int:image_id>", ["PUT"], summary="Change a catalogue image",
        body=UpdateImage, reply=ImageReply, errors=(404, 409), invalid="Invalid image data")
def update_image(caller, image_id, body):
    return billing("update_image", image_id, fields(body))


@bp.api("/images/<int:image_id>", ["DELETE"], summary="Remove an image from the catalogue "
        "(refused while a selling plan offers it)", errors=(404, 409))
def delete_image(caller, image_id):
    return billing("delete_image", image_id)
