"""The webhook outbox: signed JSON POSTs, claimed and retried like mail. No nameko here.

Every notification is a row first (in the transaction that raised or resolved the alert), then
an attempt. Delivery claims rows with the mail outbox's conditional UPDATE, so two replicas never
send one row at once; a crash after sending and before marking resends it later (at least once:
the ``X-Berth-Delivery`` header is the same on every attempt, so a receiver can drop repeats).

Signature: ``X-Berth-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` with
``X-Berth-Timestamp: <unix seconds>``; a receiver recomputes it over the raw body and refuses
stale timestamps (replays).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from berth.settings import get_settings
from services.alerts.mail import (claim_due, delivery_pass, record_attempt, renew_lease,
                                  settle_unmarked)
from services.alerts.models import WebhookDelivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Berth-Signature"
TIMESTAMP_HEADER = "X-Berth-Timestamp"
DELIVERY_HEADER = "X-Berth-Delivery"
EVENT_HEADER = "X-Berth-Event"


@dataclass(frozen=True)
class WebhookConfig:
    url: str | None
    secret: str | None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, s) -> WebhookConfig:
        return cls(s.webhook_url, s.webhook_secret, s.webhook_timeout)

    @classmethod
    def current(cls) -> WebhookConfig:
        """From the settings in force now (tests change them between calls)."""
        return cls.from_settings(get_settings())

    @property
    def enabled(self) -> bool:
        return bool(self.url)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None,
           tolerance: float = 300.0) -> bool:
    """What a receiver does: recompute the signature, compare in constant time, refuse a
    timestamp further than ``tolerance`` seconds from ``now``."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if now is not None and abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature or "")


def enqueue(session: Session, kind: str, data: dict, now: dt.datetime) -> WebhookDelivery:
    delivery_uuid = str(uuid.uuid4())
    body = json.dumps({"delivery_id": delivery_uuid, "event": kind,
                       "occurred_at": data.get("timestamp"), "data": data},
                      separators=(",", ":"), sort_keys=True)
    row = WebhookDelivery(kind=kind, payload=body, delivery_uuid=delivery_uuid,
                          status="pending", created_at=now, next_attempt_at=now)
    session.add(row)
    session.flush()
    return row


def post(config: WebhookConfig, row: WebhookDelivery, timestamp: int) -> None:
    """One signed POST; raises unless the receiver answers 2xx."""
    body = row.payload.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Berth-Webhook/1",
               TIMESTAMP_HEADER: str(timestamp), DELIVERY_HEADER: row.delivery_uuid,
               EVENT_HEADER: row.kind}
    if config.secret:
        headers[SIGNATURE_HEADER] = sign(config.secret, timestamp, body)
    request = urllib.request.Request(config.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the receiver answered {exc.code}") from None


def deliver(session_factory, config: WebhookConfig, now_fn, base: float, cap: float,
            ids: list[int] | None = None, send=post) -> dict:
    """POST what is due (or just ``ids``); returns counts of sent and failed."""
    counts = {"sent": 0, "failed": 0}
    if not config.enabled:
        return counts
    with delivery_pass() as token:
        _deliver_pass(session_factory, config, now_fn, base, cap, ids, send, token, counts)
    return counts


def _deliver_pass(session_factory, config, now_fn, base, cap, ids, send, token: str,
                  counts: dict) -> None:
    settle_unmarked(session_factory, WebhookDelivery)
    with session_factory() as session:
        claimed = [row.id for row in claim_due(session, now_fn(), ids=ids, token=token,
                                               model=WebhookDelivery)]
    for row_id in claimed:
        with session_factory() as session:  # no session open while the receiver is slow
            row = renew_lease(session, row_id, token, now_fn(), model=WebhookDelivery)
        if row is None:
            continue
        error = None
        try:
            send(config, row, int(now_fn().timestamp()))
        except Exception as exc:  # noqa: BLE001 - network, timeout, non-2xx
            error = f"{type(exc).__name__}: {exc}"
        row = record_attempt(session_factory, WebhookDelivery, row_id, error, now_fn(), base,
                             cap, counts)
        if error is not None:
            log.warning("webhook %s not delivered (attempt %s): %s", row.id, row.attempts,
                        error)
