"""Who may own a new container, and what it runs under (no nameko).

A container is created for its caller, or by an admin for another user, who must exist and be
enabled; a customer's container (its owner is anyone but an admin) needs a running rental.
Users and billing answer these questions; the service hands them in as ``Accounts``, so the
rule is tested with a fake.
"""
from __future__ import annotations

from typing import Protocol

from berth.actor import Actor
from berth.errors import Conflict

RENTAL_RUNNING = "active"  # billing's word for a running rental (``rental_status``)


class Accounts(Protocol):
    """What containers asks other services about a user."""

    def contact(self, user_id: int) -> dict:
        """users: the user's ``role`` and whether ``disabled`` (NotFound if unknown)."""

    def rental_status(self, user_id: int) -> str:
        """billing: the state of the user's rental (``active`` when one runs)."""

    def rental_plan(self, user_id: int) -> dict | None:
        """billing: the plan of the user's rental (a ``PlanRow``), None without a rental."""

    def rental_suspension(self, user_id: int) -> str | None:
        """billing: why the user's rental is suspended (``traffic quota reached on ...``),
        None when it is not."""


def owner_of_new_container(caller: Actor, requested_owner: int | None,
                           accounts: Accounts) -> int:
    """The owner a create asks for (default: the caller), once allowed to own it."""
    owner = requested_owner or caller.user_id
    role = caller.role
    if owner != caller.user_id:
        contact = accounts.contact(owner)  # NotFound if unknown
        if contact["disabled"]:
            raise Conflict(f"User {owner} is disabled")
        role = contact["role"]
    if role != "admin" and accounts.rental_status(owner) != RENTAL_RUNNING:
        raise Conflict(f"User {owner} has no active rental")
    return owner


# what a container keeps of its owner's plan, for every copy: what it runs under
# (engine_ops.Confinement) and how many ports it may publish (an update holds to it)
LIMIT_FIELDS = ("memory_mib", "cpus", "pids_limit", "log_max_mib", "max_ports")


def limits_of(owner: int, owner_is_admin: bool, accounts: Accounts) -> dict | None:
    """What a new container of ``owner``'s runs under: their running rental's plan's limits,
    or None: the operator's defaults, for an admin's container (billing is not asked: an
    admin needs no rental) or an owner with no rental running."""
    if owner_is_admin or accounts.rental_status(owner) != RENTAL_RUNNING:
        return None
    plan = accounts.rental_plan(owner)
    return {name: plan[name] for name in LIMIT_FIELDS} if plan else None


def suspension_refusal(owner: int, accounts: Accounts) -> str | None:
    """Why ``owner`` may not run containers while their rental is suspended, or None."""
    reason = accounts.rental_suspension(owner)
    if reason is None:
        return None
    return (f"Your rental is suspended: {reason}. Your containers start again by themselves "
            f"when your traffic quota is raised or a new month begins, or when an "
            f"administrator resumes your rental")


def rental_refusal(owner: int, accounts: Accounts) -> str | None:
    """Why ``owner`` may not start their containers now (their rental does not run, or is
    suspended), or None. Said to the customer as a 409."""
    status = accounts.rental_status(owner)
    if status == RENTAL_RUNNING:
        return suspension_refusal(owner, accounts)
    if status == "none":
        return "You have no rental: redeem a serial to run your containers"
    return f"Your rental is {status}: redeem a serial to run your containers again"
