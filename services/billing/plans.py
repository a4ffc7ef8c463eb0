"""Plans and the image catalogue (no nameko).

A plan is what a rental buys: the limits each of its containers runs under (CPUs, memory with
equal swap, processes, log size), how many containers and published ports, the monthly traffic
quota and what happens at it (``alert`` or ``suspend``), and which catalogue images it may run.
Exactly one plan is the default: serials generated without a ``plan_id`` sell it. A retired
plan sells no more (no new serial names it) but the rentals on it run on unchanged.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from berth.db import isoformat
from berth.errors import BadRequest, Conflict
from berth.queries import get_or_404, page
from services.billing.models import CatalogueImage, Plan, PlanImage

# the plan migration 0003 creates as the default (and default_plan, on a database made
# without migrations): what a serial sold before plans existed buys
STANDARD = {"name": "standard", "cpus": 1.0, "memory_mib": 512, "pids_limit": 256,
            "max_containers": 3, "max_ports": 4, "log_max_mib": 10,
            "traffic_quota_bytes": None, "quota_action": "alert", "customer_ports": False}
PLAN_FIELDS = ("name", "cpus", "memory_mib", "pids_limit", "max_containers", "max_ports",
               "log_max_mib", "traffic_quota_bytes", "quota_action", "customer_ports")


# --- the image catalogue ---------------------------------------------------------------------

def image_row(image: CatalogueImage) -> dict:
    return {"image_id": image.id, "reference": image.reference,
            "display_name": image.display_name, "default_command": image.default_command,
            "container_port": image.container_port, "created_at": isoformat(image.created_at)}


def _free_reference(session: Session, reference: str, image_id: int | None = None) -> None:
    taken = session.scalar(select(CatalogueImage.id).where(CatalogueImage.reference == reference))
    if taken is not None and taken != image_id:
        raise Conflict(f"Image {reference} is already in the catalogue")


def add_image(session: Session, fields: dict) -> CatalogueImage:
    _free_reference(session, fields["reference"])
    image = CatalogueImage(**fields)
    session.add(image)
    session.flush()
    return image


def change_image(session: Session, image_id: int, changes: dict) -> CatalogueImage:
    image = get_or_404(session, CatalogueImage, image_id, f"Image {image_id} not found")
    if "reference" in changes:
        _free_reference(session, changes["reference"], image_id)
    for name, value in changes.items():
        setattr(image, name, value)
    return image


def remove_image(session: Session, image_id: int) -> None:
    """Refused while a plan that still sells lists it: retire the plan or drop the image
    from it first (rentals on a retired plan keep the containers they have)."""
    image = get_or_404(session, CatalogueImage, image_id, f"Image {image_id} not found")
    selling = session.scalars(select(Plan.name).join(PlanImage, PlanImage.plan_id == Plan.id)
                              .where(PlanImage.image_id == image_id,
                                     Plan.retired_at.is_(None)).order_by(Plan.name)).all()
    if selling:
        raise Conflict(f"Image {image.reference} is offered by plan(s) {', '.join(selling)}; "
                       f"remove it from them first")
    session.execute(delete(PlanImage).where(PlanImage.image_id == image_id))
    session.delete(image)


def images(session: Session, limit: int, offset: int) -> dict:
    rows, total = page(session, select(CatalogueImage), (CatalogueImage.id,), limit, offset)
    return {"images": [image_row(i) for i in rows], "total": total}


# --- plans -----------------------------------------------------------------------------------

def image_ids_of(session: Session, plan_id: int) -> list[int]:
    return list(session.scalars(select(PlanImage.image_id).where(PlanImage.plan_id == plan_id)
                                .order_by(PlanImage.image_id)))


def plan_row(session: Session, plan: Plan) -> dict:
    catalogue = session.scalars(
        select(CatalogueImage).join(PlanImage, PlanImage.image_id == CatalogueImage.id)
        .where(PlanImage.plan_id == plan.id).order_by(CatalogueImage.id)).all()
    return {"plan_id": plan.id, **{name: getattr(plan, name) for name in PLAN_FIELDS},
            "is_default": plan.is_default, "retired": plan.retired_at is not None,
            "retired_at": isoformat(plan.retired_at), "created_at": isoformat(plan.created_at),
            "image_ids": [i.id for i in catalogue], "images": [image_row(i) for i in catalogue]}


def get(session: Session, plan_id: int) -> Plan:
    return get_or_404(session, Plan, plan_id, f"Plan {plan_id} not found")


def _free_name(session: Session, name: str, plan_id: int | None = None) -> None:
    taken = session.scalar(select(Plan.id).where(Plan.name == name))
    if taken is not None and taken != plan_id:
        raise Conflict(f"A plan named {name} already exists")


def _set_images(session: Session, plan: Plan, image_ids: list[int]) -> None:
    wanted = sorted(set(image_ids))
    known = set(session.scalars(select(CatalogueImage.id).where(CatalogueImage.id.in_(wanted))))
    missing = [i for i in wanted if i not in known]
    if missing:
        raise BadRequest("Invalid plan data", [{
            "field": "image_ids", "message": f"no catalogue image {missing[0]}"}])
    session.execute(delete(PlanImage).where(PlanImage.plan_id == plan.id))
    session.add_all(PlanImage(plan_id=plan.id, image_id=i) for i in wanted)


def _make_default(session: Session, plan: Plan) -> None:
    if plan.retired_at is not None:
        raise Conflict(f"Plan {plan.name} is retired; a retired plan cannot be the default")
    session.execute(update(Plan).where(Plan.is_default, Plan.id != plan.id)
                    .values(is_default=False))
    session.flush()
    plan.is_default = True


def create(session: Session, fields: dict) -> Plan:
    """A new plan; ``is_default`` makes it the default (the previous one stops being it)."""
    default_plan(session)  # the default exists first, on any database
    fields = dict(fields)
    image_ids = fields.pop("image_ids", None) or []
    make_default = fields.pop("is_default", False)
    _free_name(session, fields["name"])
    plan = Plan(**fields, is_default=False)
    session.add(plan)
    session.flush()
    _set_images(session, plan, image_ids)
    if make_default:
        _make_default(session, plan)
    return plan


def change(session: Session, plan_id: int, changes: dict) -> Plan:
    """Change a plan's fields. Rentals on it follow the change; a container's limits are
    fixed when it is created (containers made from now on get the new ones, every copy of an
    existing one keeps its own). ``is_default: true`` moves the default here; the default
    cannot be unset without naming another."""
    plan = get(session, plan_id)
    changes = dict(changes)
    if "name" in changes:
        _free_name(session, changes["name"], plan_id)
    if "image_ids" in changes:
        _set_images(session, plan, changes.pop("image_ids") or [])
    make_default = changes.pop("is_default", None)
    if make_default is False and plan.is_default:
        raise Conflict("This is the default plan: make another plan the default instead")
    for name, value in changes.items():
        setattr(plan, name, value)
    if make_default:
        _make_default(session, plan)
    return plan


def retire(session: Session, plan_id: int, now: dt.datetime) -> Plan:
    """Stop selling the plan: serials naming it can no longer be generated. Rentals on it,
    and serials already sold for it, keep working."""
    plan = get(session, plan_id)
    if plan.is_default:
        raise Conflict(f"Plan {plan.name} is the default: make another plan the default first")
    if plan.retired_at is None:
        plan.retired_at = now
    return plan


def listing(session: Session, limit: int, offset: int, include_retired: bool) -> dict:
    statement = select(Plan)
    if not include_retired:
        statement = statement.where(Plan.retired_at.is_(None))
    rows, total = page(session, statement, (Plan.id,), limit, offset)
    return {"plans": [plan_row(session, p) for p in rows], "total": total}


def default_plan(session: Session) -> Plan:
    """The default plan. There always is one (it can be moved, not unset or retired); a
    database made without migrations (tests) gets ``standard`` on first use."""
    plan = session.scalar(select(Plan).where(Plan.is_default))
    if plan is None:
        plan = Plan(**STANDARD, is_default=True)
        session.add(plan)
        session.flush()
    return plan


def for_sale(session: Session, plan_id: int | None) -> Plan:
    """The plan a new serial sells: ``plan_id``'s (400 naming the field if there is no such
    plan, 409 if it is retired) or the default plan."""
    if plan_id is None:
        return default_plan(session)
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise BadRequest("Invalid data", [{"field": "plan_id",
                                           "message": f"no plan {plan_id}"}])
    if plan.retired_at is not None:
        raise Conflict(f"Plan {plan.name} is retired and sells no more")
    return plan


# --- host capacity: a plan no server could run is refused -------------------------------------
def too_large(fields: dict, servers: list[dict]) -> list[dict]:
    """Why a plan of ``fields`` (its ``cpus`` / ``memory_mib``, any given) fits no server of
    ``servers`` (rows with ``cpus``, ``memory_mib``): one ``{"field", "message"}`` per field
    larger than every server's, or, when each fits some server but no one server holds both,
    both fields. None known (``servers`` empty): nothing is refused."""
    known = [s for s in servers if s.get("cpus") is not None and
             s.get("memory_mib") is not None]
    if not known:
        return []
    most_cpus = max(s["cpus"] for s in known)
    most_memory = max(s["memory_mib"] for s in known)
    found = []
    if fields.get("cpus") is not None and fields["cpus"] > most_cpus:
        found.append({"field": "cpus", "message": f"{fields['cpus']:g} CPUs is more than any "
                                                  f"server has (the most: {most_cpus})"})
    if fields.get("memory_mib") is not None and fields["memory_mib"] > most_memory:
        found.append({"field": "memory_mib", "message": f"{fields['memory_mib']} MiB is more "
                                                        f"than any server has (the most: "
                                                        f"{most_memory} MiB)"})
    if found or fields.get("cpus") is None or fields.get("memory_mib") is None:
        return found
    if not any(fields["cpus"] <= s["cpus"] and fields["memory_mib"] <= s["memory_mib"]
               for s in known):
        message = (f"no one server has both {fields['cpus']:g} CPUs and "
                   f"{fields['memory_mib']} MiB")
        found = [{"field": "cpus", "message": message},
                 {"field": "memory_mib", "message": message}]
    return found


def require_room(fields: dict, capacity: dict | None) -> None:
    """A 400 naming ``cpus`` / ``memory_mib`` if a plan of ``fields`` (a new plan's, or an
    update's changes) could run on no server: ``capacity`` is the containers service's answer
    (``servers``: the online hosts' CPUs and MiB). None (containers did not answer) or no
    server known yet: accepted, as no host has said it is too small."""
    refused = too_large(fields, (capacity or {}).get("servers") or [])
    if refused:
        raise BadRequest("Invalid plan data", refused)
