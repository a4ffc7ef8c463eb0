"""Domain errors, declared once.

Each carries the HTTP status the gateway answers with. They are registered with nameko so that
an error raised inside a service arrives at the RPC caller as the same class (not RemoteError).
"""
from nameko.exceptions import deserialize_to_instance


class BerthError(Exception):
    status = 500

    def __init__(self, message: str, details=None):
        # only JSON-able args: nameko sends them over RPC (None would arrive as "None")
        super().__init__(*((message,) if details is None else (message, details)))
        self.message = message
        self.details = details if isinstance(details, list) else None

    def __str__(self):
        return self.message

    def to_json(self) -> dict:
        body = {"error": self.message}
        if self.details:
            body["details"] = self.details
        return body


@deserialize_to_instance
class BadRequest(BerthError):
    status = 400


@deserialize_to_instance
class Unauthorized(BerthError):
    status = 401


@deserialize_to_instance
class Forbidden(BerthError):
    status = 403


@deserialize_to_instance
class NotFound(BerthError):
    status = 404


@deserialize_to_instance
class Conflict(BerthError):
    status = 409


@deserialize_to_instance
class TooManyRequests(BerthError):
    status = 429


@deserialize_to_instance
class ServiceUnavailable(BerthError):
    status = 503


class NotOffered(ServiceUnavailable):
    """The peer runs but does not offer the method yet (an older version, mid-deploy)."""


EXPECTED = (BerthError,)
REGISTERED = (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests,
              ServiceUnavailable)


def portable(exc: BerthError) -> BerthError:
    """``exc`` as a class the RPC caller can rebuild: a subclass declared elsewhere (say
    ``EngineUnavailable``) travels as its registered base (``ServiceUnavailable``), never as a
    RemoteError that the gateway would answer with a 500."""
    if type(exc) in REGISTERED:
        return exc
    base = next((cls for cls in type(exc).__mro__ if cls in REGISTERED), ServiceUnavailable)
    return base(exc.message, exc.details)
