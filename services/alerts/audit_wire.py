"""What the gateway and the alerts service agree on for API-call audit records: where they
travel (a durable exchange and queue) and how secrets are kept out of them. No nameko here:
the gateway imports this module.

The gateway publishes one ``api_call`` message per successful state-changing request to the
``berth.audit`` exchange; the alerts service consumes the durable ``alerts.audit`` queue and
writes one audit row per ``record_id`` (the gateway draws one per request: a redelivered
batch writes nothing twice; the caller's ``X-Request-ID``, in ``request_id``, is not unique
and decides nothing). Both sides declare the same exchange, queue and binding,
so a record published before the alerts service ever started waits in the queue.
"""
from __future__ import annotations

from kombu import Exchange, Queue

AUDIT_EXCHANGE = Exchange("berth.audit", type="direct", durable=True)
AUDIT_ROUTING_KEY = "api_call"
AUDIT_QUEUE = Queue("alerts.audit", exchange=AUDIT_EXCHANGE, routing_key=AUDIT_ROUTING_KEY,
                    durable=True)
WIRE_VERSION = 1

# a field whose name contains one of these never has its value recorded (integer ids aside)
SECRET_WORDS = ("password", "passwd", "secret", "token", "serial", "code", "key", "link",
                "url", "signature", "credential", "authorization", "cookie", "challenge")
REDACTED = "[redacted]"
MAX_STRING = 200
MAX_ITEMS = 20
MAX_DEPTH = 3


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def is_id(name: str, value) -> bool:
    """An integer id field (``serial_id``: 12): it names a row and is no secret."""
    lowered = name.lower()
    return (lowered == "id" or lowered.endswith("_id")) \
        and isinstance(value, int) and not isinstance(value, bool)


def is_secret(name: str, value) -> bool:
    """Whether the value of field ``name`` must never be recorded: a secret-named field
    (``serial_code``, ``password``, ...), unless it is an integer id (``serial_id``)."""
    return is_secret_name(name) and not is_id(name, value)


def redact(value, depth: int = 0):
    """A JSON-able summary of ``value`` with secret-named fields replaced, long strings cut
    and deep or long structures shortened."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return f"{{{len(value)} fields}}"
        out = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more fields"
                break
            key = str(key)[:64]
            out[key] = REDACTED if is_secret(key, item) else redact(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return f"[{len(value)} items]"
        items = [redact(item, depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value), depth)
