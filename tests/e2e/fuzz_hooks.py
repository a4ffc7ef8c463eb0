"""schemathesis hooks for tests/e2e/test_fuzz.py (loaded in the ``st`` process through
SCHEMATHESIS_HOOKS). They constrain, just before each request is sent, the few inputs that
would reach beyond 127.0.0.1 or make the platform useless for later cases; every other input
goes out as generated.

* ``POST /api/add_server``: a body the gateway would accept (checked with the gateway's own
  schema) gets ``docker_url`` = the local engine's unix socket and ``ip_address`` = 127.0.0.1,
  so the containers service never probes another host (without ``docker_url`` it would try
  ``tcp://<ip_address>:2376``, refused as plaintext outside development) and published ports
  bind to loopback. A body the gateway rejects
  goes out unchanged: it ends in a 400 before any RPC, and negative cases stay negative.
* ``PUT /api/servers/{server_id}``: likewise, an acceptable body gets the local engine's
  ``docker_url`` and ``ip_address`` = 127.0.0.1, and no TLS material (which would take the
  only server offline); maintenance, drain and delete of a server go to an id that does not
  exist (404), as they would take the only server out of service for every later case.
* ``PUT /api/users/{user_id}``: the fuzzing admin and the fuzzing user are never the target
  (a fuzzed ``disabled`` or ``role`` would end their usefulness); the call goes to a spare
  user instead, an id as valid as the one generated.
* Signing in: the fuzzing role signs in once (``FUZZ_USERNAME``/``FUZZ_PASSWORD`` at
  ``FUZZ_BASE_URL``) and every request carries that token, except ``POST /api/logout``, which
  ends the session of the token it carries: each logout gets a session of its own, so the
  fuzzing role's session lives through the run.
"""
from __future__ import annotations

import ast
import functools
import json
import os
import threading
import urllib.request

import schemathesis
from pydantic import ValidationError

from services.containers.schemas import AddServer, UpdateServer

LOCAL_ENGINE = os.environ.get("FUZZ_DOCKER_URL", "")
PROTECTED_USERS = {int(x) for x in os.environ.get("FUZZ_PROTECTED_USERS", "").split(",") if x}
SPARE_USER = int(os.environ.get("FUZZ_SPARE_USER", "0"))
BASE_URL = os.environ.get("FUZZ_BASE_URL", "")
CREDENTIALS = {"username": os.environ.get("FUZZ_USERNAME", ""),
               "password": os.environ.get("FUZZ_PASSWORD", "")}
NO_SUCH_SERVER = 2**31 - 1
SERVER_OUT_OF_SERVICE = {("/api/servers/{server_id}/maintenance", "POST"),
                         ("/api/servers/{server_id}/drain", "POST"),
                         ("/api/servers/{server_id}", "DELETE")}


def _one_at_a_time(parse, lock=threading.Lock()):
    @functools.wraps(parse)
    def locked(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)
    return locked


# Hypothesis describes lambdas by parsing their source; CPython 3.11's AST conversion keeps its
# recursion depth in shared state, so two workers parsing at once fail with "SystemError: AST
# constructor recursion depth mismatch" (a crash of the tool, not a finding). One at a time.
ast.parse = _one_at_a_time(ast.parse)


def _acceptable(model, body) -> bool:
    try:
        model.model_validate_json(json.dumps(body), strict=True)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _session_key(case, context) -> str:
    if case.operation.path == "/api/logout":
        return f"logout-{case.id}"  # a session of its own, never reused
    return "fuzzer"


@schemathesis.auth(cache_by_key=_session_key, retry_on=[])
class SignedIn:
    """The fuzzing role's bearer token (module docstring: why logout gets its own)."""

    def get(self, case, context) -> str:
        request = urllib.request.Request(
            f"{BASE_URL}/api/login", data=json.dumps(CREDENTIALS).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def set(self, case, data, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path, method = case.operation.path, case.method.upper()
    if path == "/api/add_server" and method == "POST":
        if isinstance(case.body, dict) and _acceptable(AddServer, case.body):
            if not LOCAL_ENGINE.startswith("unix://"):
                raise RuntimeError("FUZZ_DOCKER_URL must be the local engine's unix socket")
            case.body = {**case.body, "docker_url": LOCAL_ENGINE, "ip_address": "127.0.0.1"}
    elif path == "/api/servers/{server_id}" and method == "PUT":
        if isinstance(case.body, dict) and _acceptable(UpdateServer, case.body):
            if not LOCAL_ENGINE.startswith("unix://"):
                raise RuntimeError("FUZZ_DOCKER_URL must be the local engine's unix socket")
            body = {k: v for k, v in case.body.items() if not k.startswith("tls_")}
            case.body = {**body, "docker_url": LOCAL_ENGINE, "ip_address": "127.0.0.1"}
    elif (path, method) in SERVER_OUT_OF_SERVICE:
        case.path_parameters = {**(case.path_parameters or {}), "server_id": NO_SUCH_SERVER}
    elif path == "/api/users/{user_id}" and method == "PUT":
        params = case.path_parameters or {}
        try:
            target = int(params.get("user_id"))
        except (TypeError, ValueError):
            return
        if target in PROTECTED_USERS and SPARE_USER:
            case.path_parameters = {**params, "user_id": SPARE_USER}
