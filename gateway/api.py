"""How a route is declared: ``@bp.api(rule, methods, body=, query=, reply=, access=, owner=,
scope=)``.

The declaration is the single source for authentication, role checks, the scope an API key
needs (``scope_of``; scopes: ``berth.api_keys``), the self-or-admin check, request
validation, the reply's shape (checked when BERTH_VALIDATE_RESPONSES=1, as the tests run it)
and the OpenAPI document (``gateway.openapi``). A view is called only once all
of them passed; it receives the path parameters, ``caller`` (a ``berth.actor.Actor``), and
the parsed ``body`` and ``query``.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ValidationError

from berth import api_keys
from berth.actor import Actor
from berth.errors import BadRequest, Forbidden, NotFound, Unauthorized
from berth.schemas import Message
from berth.validation import error_details

PUBLIC: tuple = ()
SIGNED_IN = ("admin", "distributor", "user")
ADMIN = ("admin",)
ADMIN_OR_DISTRIBUTOR = ("admin", "distributor")

# The fields that can name the owner of a route's records (``owner=``): a user's id or name.
OWNER_FIELDS = ("user_id", "username")
PATH_PARAMETER = re.compile(r"<(?:[^<>:]+:)?(\w+)>")


@dataclass
class RouteDoc:
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    reply: type[BaseModel] | None
    access: tuple
    owner: str | None  # the request field naming whose records these are (self or admin)
    errors: tuple[int, ...]
    invalid: str
    scope: str | None = None  # what an API key needs (None: a public route)


def path_parameters(rule: str) -> list[str]:
    return PATH_PARAMETER.findall(rule)


def request_fields(rule: str, body: type[BaseModel] | None,
                   query: type[BaseModel] | None) -> set[str]:
    """Every field a request to ``rule`` can carry: path parameters, body and query fields."""
    names = set(path_parameters(rule))
    for model in (body, query):
        if model is not None:
            names.update(model.model_fields)
    return names


def owner_named(owner: str, path: dict, body: BaseModel | None, query: BaseModel | None):
    """The value of field ``owner`` in this request: the path's, else the body's, else the
    query's."""
    if owner in path:
        return path[owner]
    for model in (body, query):
        if model is not None and owner in type(model).model_fields:
            return getattr(model, owner)
    return None


def require_owner(caller: Actor, owner: str, value) -> None:
    """403 unless ``caller`` is an admin or the user that field ``owner`` names."""
    if isinstance(value, str):  # a name longer than any account's names nobody: 404
        not_found_if_too_long(value)
    caller.require_self_or_admin(**{owner: value})


def scope_of(method: str, access: tuple, declared: str | None,
             write_scope: str | None) -> str | None:
    """The scope an API key needs for a route: none for a public one; else the one the route
    declares; else ``read`` for a GET, ``admin`` for a write only admins may make, and the
    blueprint's ``write_scope`` for any other write."""
    if access == PUBLIC:
        return None
    if declared is not None:
        return declared
    if method in ("GET", "HEAD"):
        return api_keys.READ
    if set(access) == {"admin"}:
        return api_keys.ADMIN
    return write_scope


def authenticate(access: tuple, scope: str | None = None) -> Actor | None:
    """The caller of a route with ``access`` roles; an API key must also hold ``scope``."""
    if not access:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing bearer token")
    if token.startswith(api_keys.KEY_PREFIX):
        caller, held, g.api_key_id = current_app.extensions["api_keys"].check(token)
        g.session_id = None
        if scope == api_keys.NO_KEYS:
            raise Forbidden("API keys cannot be used here: sign in with a password")
        if scope not in held:
            raise Forbidden(f"This API key lacks the {scope} scope")
    else:
        rule = request.url_rule.rule if request.url_rule is not None else None
        caller, g.session_id = current_app.extensions["tokens"].check(token, rule)
    if caller.role not in access:
        raise Forbidden(f"This route requires the {' or '.join(access)} role")
    g.caller = caller
    return caller


def parse_body(model: type[BaseModel], invalid: str) -> BaseModel:
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise BadRequest(invalid, [{"field": "body", "message": "a JSON object is required"}])
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise BadRequest(invalid, [{"field": "body",
                                        "message": "the body is not valid JSON"}]) from None
        if not any(e["type"] == "int_type" and isinstance(e.get("input"), float)
                   for e in errors):
            raise BadRequest(invalid, error_details(exc)) from None
    try:  # JSON has one number type: 2.0 is an integer as much as 2 is (so says JSON Schema)
        return model.model_validate_json(integral_floats_as_ints(raw), strict=True)
    except ValidationError as exc:
        raise BadRequest(invalid, error_details(exc)) from None


def _number(literal: str) -> float | int:
    number = float(literal)
    return int(number) if number.is_integer() else number


def integral_floats_as_ints(raw: bytes) -> str:
    """The same JSON with every number that has no fraction (``2.0``, ``1e3``) written as an
    integer, so that strict validation takes it for an ``int`` field."""
    return json.dumps(json.loads(raw, parse_float=_number))


def parse_query(model: type[BaseModel], invalid: str) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise BadRequest(invalid, error_details(exc)) from None


class ApiBlueprint(Blueprint):
    def __init__(self, *args, write_scope: str | None = None, **kwargs):
        """``write_scope``: the scope an API key needs for this blueprint's writes that
        non-admins may make (``scope_of``)."""
        super().__init__(*args, **kwargs)
        self.write_scope = write_scope

    def api(self, rule: str, methods: list[str], *, summary: str,
            body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
            reply: type[BaseModel] | None = Message, access: tuple = ADMIN,
            owner: str | None = None, errors: tuple[int, ...] = (),
            invalid: str = "Invalid data", bad_id: str | None = None,
            scope: str | None = None):
        """Declare a route. ``owner`` names the request field (``user_id`` or ``username``;
        looked up in the path, then the body, then the query) that says whose records the
        route serves: a caller who is not an admin gets 403 unless it names them. ``bad_id``
        is the 400 message for a path whose ``<int:...>`` id is not an integer (else 404).
        ``scope`` overrides the scope an API key needs (``scope_of``)."""
        scopes = {scope_of(m, access, scope, self.write_scope) for m in methods}
        if len(scopes) != 1 or (access != PUBLIC and not (
                scopes <= set(api_keys.SCOPES) | {api_keys.NO_KEYS})):
            raise ValueError(f"{rule}: no single API key scope ({sorted(map(str, scopes))}); "
                             "declare scope= or the blueprint's write_scope")
        route_scope = scopes.pop()
        doc = RouteDoc(summary, body, query, reply, access, owner, errors, invalid, route_scope)
        if owner is not None:  # a typo must fail at import, not leave the route open
            # (raised, not asserted: python -O must not turn the check off)
            if owner not in OWNER_FIELDS:
                raise ValueError(f"{rule}: owner={owner!r} is not one of {OWNER_FIELDS}")
            if owner not in request_fields(rule, body, query):
                raise ValueError(f"{rule}: owner={owner!r} is not a path, body or query field "
                                 "of this route")
            if access == PUBLIC:
                raise ValueError(f"{rule}: owner= needs a signed-in caller")

        def decorator(view):
            @functools.wraps(view)
            def handler(**path):
                kwargs = dict(path)
                caller = authenticate(access, route_scope)
                if caller is not None:
                    kwargs["caller"] = caller
                if body is not None:
                    kwargs["body"] = g.audit_body = parse_body(body, invalid)
                if query is not None:
                    kwargs["query"] = parse_query(query, invalid)
                if owner is not None:
                    require_owner(caller, owner, owner_named(owner, path, kwargs.get("body"),
                                                             kwargs.get("query")))
                result = view(**kwargs)
                if isinstance(result, Response):
                    return result
                if reply is not None and current_app.config.get("BERTH_VALIDATE_RESPONSES"):
                    reply.model_validate(result)
                return jsonify(result)

            handler.api_doc = doc
            self.add_url_rule(rule, view.__name__, handler, methods=methods)
            if bad_id is not None:
                self._add_bad_id_fallback(rule, methods, access, bad_id, view.__name__,
                                          route_scope)
            return handler
        return decorator

    def _add_bad_id_fallback(self, rule: str, methods: list[str], access: tuple,
                             message: str, name: str, scope: str | None) -> None:
        """``rule`` with its ``<int:...>`` segment as any text: a non-integer id answers
        400 ``message`` after the route's own 401/403 (the original API's reply), where a
        path that matches nothing would be a 404. Integer ids still reach ``rule``, the more
        specific of the two. Not in the OpenAPI document."""
        ints = re.findall(r"<int:\w+>", rule)
        if len(ints) != 1:
            raise ValueError(f"{rule}: bad_id= needs exactly one <int:...> parameter")

        def fallback(bad_id):
            authenticate(access, scope)
            if bad_id.isdigit():  # an integer beyond the database range: no such row
                raise NotFound("Not found")
            raise BadRequest(message)

        fallback.fallback_access = access  # for the test that walks the route table
        fallback.fallback_scope = scope
        self.add_url_rule(rule.replace(ints[0], "<path:bad_id>"), f"{name}_bad_id", fallback,
                          methods=methods)


def not_found_if_too_long(value: str, limit: int = 64) -> str:
    if len(value) > limit:
        raise NotFound("Not found")
    return value


def call(service: str, method: str, *args):
    """One RPC to ``service.method`` through the app's proxy pool (503 if it does not answer)."""
    return current_app.extensions["rpc"].call(service, method, *args)


def fields(body: BaseModel) -> dict:
    """The fields the client actually sent, JSON-ready (absent ones are not ``None``)."""
    return body.model_dump(mode="json", include=body.model_fields_set)
