"""The request id: one per gateway request (or timer tick), carried into every log line it
causes, across RPC (nameko context data) and events (the envelope's ``request_id`` and the
message header nameko turns back into context data)."""
from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("berth_request_id", default=None)
HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept(incoming: str | None) -> str:
    """A caller's own id when it is short and plain (it then appears in Berth's logs next to
    theirs), else a fresh one."""
    return incoming if incoming and _SANE.match(incoming) else new_request_id()


def current() -> str | None:
    return REQUEST_ID.get()


def bind(request_id: str | None) -> None:
    REQUEST_ID.set(request_id)
