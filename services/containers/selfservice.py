"""What a customer may create on their own, and what a plan allows its containers (no
nameko).

A customer (not an admin) creates a container for themselves from their running rental's
plan: an image from its catalogue (the catalogue's default command unless they give one);
Berth picks the server, and the host ports too unless the plan lets the customer choose them
(then from the customers' range, BERTH_CUSTOMER_PORT_MIN.._MAX, and at most the plan's ports
per container). The plan is billing's ``PlanRow`` as rental_info carries it.

``Allowance`` is what the plan allows whoever creates the container (the customer, or an admin
for them): its container count, checked by ``lifecycle.create`` under the owner's lock in the
transaction that inserts the row (so concurrent creates cannot both pass), and its ports per
container, which every copy keeps (``Container.limits["max_ports"]``: an update holds to it).
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


@dataclass(frozen=True)
class Allowance:
    """What an owner's plan allows each create: how many containers they may hold, how many
    ports one container may publish."""
    plan: str
    max_containers: int
    max_ports: int

    @classmethod
    def of(cls, plan: dict) -> Allowance:
        return cls(plan["name"], plan["max_containers"], plan["max_ports"])

    def count(self, held: int) -> None:
        """A 409 if the owner, holding ``held`` containers, may not have one more."""
        if held >= self.max_containers:
            raise Conflict(f"The plan ({self.plan}) allows {self.max_containers} "
                           f"container(s) and {held} exist: delete one first")

    def ports(self, ports: dict | None) -> None:
        """A 400 naming ``ports`` if a container would publish more than the plan allows."""
        require_ports_within(ports, self.max_ports)


def require_ports_within(ports: dict | None, max_ports: int | None) -> None:
    """A 400 naming ``ports`` if ``ports`` are more than ``max_ports`` (None: no limit)."""
    if max_ports is not None and len(ports or {}) > max_ports:
        raise _field("ports", f"the owner's plan allows {max_ports} published port(s), not "
                              f"{len(ports)}")


def customer_create(body, plan: dict | None, port_range: tuple[int, int]) -> CustomerCreate:
    """Check a customer's create against their plan; host ports they choose must be in
    ``port_range`` (BERTH_CUSTOMER_PORT_MIN, _MAX). The container count is checked when the
    row is inserted (``Allowance.count``, under the owner's lock)."""
    if plan is None:
        raise Conflict("You have no active rental: redeem a serial to create containers")
    if body.server_id is not None:
        raise Forbidden("Berth chooses the server for your containers")
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
        low, high = port_range
        outside = sorted(p for p in body.ports.values() if not low <= p <= high)
        if outside:
            raise _field("ports", f"host port {outside[0]} is outside the customers' range "
                                  f"{low}-{high}")
        return CustomerCreate(command, dict(body.ports), [])
    published = ([f"{image['container_port']}/tcp"]
                 if image["container_port"] and plan["max_ports"] > 0 else [])
    return CustomerCreate(command, None, published)
