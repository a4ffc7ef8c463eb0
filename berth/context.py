"""The request id: one per gateway request (or timer tick), carried into every log line it
causes, across RPC (nameko context data) and events (the envelope's ``request_id`` and the
message header nameko turns back into context data)."""
from __future__ import annotations

import itertools
import os
import re
import secrets
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("berth_request_id", default=None)
HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_counter = itertools.count()
_prefix = secrets.token_hex(8)


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = secrets.token_hex(8), itertools.count()


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker draws its own


def unique_id() -> str:
    """A fresh id, unique across processes and restarts: 64 random bits drawn once per
    process (again in a forked child) and a counter. As unique as a uuid4 for an id's uses
    here (request ids, RPC correlation, audit records), without a system call and a UUID per
    request; 24 hex digits for the first 4 billion."""
    return f"{_prefix}{next(_counter):08x}"


def new_request_id() -> str:
    return unique_id()


def accept(incoming: str | None) -> str:
    """A caller's own id when it is short and plain (it then appears in Berth's logs next to
    theirs), else a fresh one."""
    return incoming if incoming and _SANE.match(incoming) else new_request_id()


def current() -> str | None:
    return REQUEST_ID.get()


def bind(request_id: str | None) -> None:
    REQUEST_ID.set(request_id)
