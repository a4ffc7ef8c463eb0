"""What a caller makes of an RPC that failed without a domain error: one mapping for the
gateway and for every service that calls a peer.

Domain errors (``berth.errors``) travel as themselves. What nameko raises instead, a peer
that never started, one that did not answer in time, one that does not offer the method (an
older version mid-deploy), becomes a ``ServiceUnavailable`` naming the peer: a 503 for the
client, never a 500. Anything else is a bug in the peer; each caller decides how to say so.
"""
from __future__ import annotations

from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService

from berth.errors import NotOffered, ServiceUnavailable


def peer_failure(exc: Exception, service: str, *, timeout: float | None = None,
                 what: str | None = None) -> ServiceUnavailable | None:
    """The error to raise for ``exc`` from an RPC to ``service``, or None when ``exc`` is not
    one of the failures above. ``what`` names what was asked for (for NotOffered)."""
    if isinstance(exc, UnknownService):
        return ServiceUnavailable(f"The {service} service is not running")
    if isinstance(exc, RpcTimeout):
        within = f" within {timeout:g} s" if timeout is not None else ""
        return ServiceUnavailable(f"The {service} service did not answer{within}")
    if isinstance(exc, MethodNotFound) or (isinstance(exc, RemoteError)
                                           and exc.exc_type == "MethodNotFound"):
        return NotOffered(f"The {service} service does not offer {what or 'this'} yet")
    return None
