"""What a customer may create on their own (no nameko).

A customer (not an admin) creates a container for themselves from their running rental's
plan: an image from its catalogue (the catalogue's default command unless they give one),
within its container count; Berth picks the server, and the host ports too unless the plan
lets the customer choose them (then at most the plan's ports per container). The plan is
billing's ``PlanRow`` as rental_info carries it.
"""
from __future__ import annotations

from dataclasses import dataclass

from berth.errors import BadRequest, Conflict, Forbidden
from services.containers.shapes import stored_command

INVALID = "Invalid container data"


@dataclass(frozen=True)
class CustomerCreate:
    command: list | None
    ports: dict | None  # host ports the customer chose (plans with customer_ports)
    published: list[str]  # container ports ("80/tcp") Berth publishes on free host ports


def _field(field: str, message: str) -> BadRequest:
    return BadRequest(INVALID, [{"field": field, "message": message}])


def customer_create(body, plan: dict | None, held: int) -> CustomerCreate:
    """Check a customer's create against their plan (``held``: containers they have now)."""
    if plan is None:
        raise Conflict("You have no active rental: redeem a serial to create containers")
    if body.server_id is not None:
        raise Forbidden("Berth chooses the server for your containers")
    if held >= plan["max_containers"]:
        raise Conflict(f"Your plan ({plan['name']}) allows {plan['max_containers']} "
                       f"container(s) and you have {held}: delete one first")
    catalogue = {image["reference"]: image for image in plan["images"]}
    image = catalogue.get(body.image)
    if image is None:
        offered = ", ".join(sorted(catalogue)) or "none yet"
        raise _field("image", f"not in your plan's catalogue (offered: {offered})")
    command = stored_command(body.command) if body.command is not None else (
        stored_command(image["default_command"]) if image["default_command"] else None)
    if body.ports:
        if not plan["customer_ports"]:
            raise _field("ports", "your plan does not let you choose host ports; Berth "
                                  "publishes the image's port for you")
        if len(body.ports) > plan["max_ports"]:
            raise _field("ports", f"your plan allows {plan['max_ports']} published port(s)")
        return CustomerCreate(command, dict(body.ports), [])
    published = ([f"{image['container_port']}/tcp"]
                 if image["container_port"] and plan["max_ports"] > 0 else [])
    return CustomerCreate(command, None, published)
