"""The webhook outbox without a network: signatures, delivery, retry with backoff, leases."""
import datetime as dt
import json

from services.alerts import mail, webhook
from services.alerts.models import WebhookDelivery

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
CONFIG = webhook.WebhookConfig("http://127.0.0.1:9/hook", "s3cret")


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def put(session_factory, data=None):
    with session_factory() as session:
        row = webhook.enqueue(session, "alert_raised", data or {"alert_id": 1}, T0)
        session.commit()
        return row.id


def test_signature_covers_timestamp_and_body():
    body = b'{"a":1}'
    signature = webhook.sign("s3cret", 1700000000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert webhook.verify("s3cret", "1700000000", body, signature, now=1700000010)
    assert not webhook.verify("s3cret", "1700000001", body, signature)
    assert not webhook.verify("s3cret", "1700000000", b'{"a":2}', signature)
    assert not webhook.verify("other", "1700000000", body, signature)
    assert not webhook.verify("s3cret", "1700000000", body, signature, now=1700001000)
    assert not webhook.verify("s3cret", "nonsense", body, signature)


def test_delivery_posts_the_stored_body_and_marks_it_sent(session_factory):
    row_id = put(session_factory, {"alert_id": 5, "message": "Server down"})
    sent = []
    counts = webhook.deliver(session_factory, CONFIG, Clock(), 15, 100,
                             send=lambda config, row, ts: sent.append((row.payload, ts)))
    assert counts == {"sent": 1, "failed": 0}
    payload = json.loads(sent[0][0])
    assert payload["event"] == "alert_raised" and payload["data"]["alert_id"] == 5
    with session_factory() as session:
        row = session.get(WebhookDelivery, row_id)
        assert row.status == "sent" and row.attempts == 1 and payload["delivery_id"] == \
            row.delivery_uuid


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(session_factory):
    row_id = put(session_factory)
    clock = Clock()

    def refuse(config, row, ts):
        raise RuntimeError("the receiver answered 500")

    for expected in (15, 30, 60):
        assert webhook.deliver(session_factory, CONFIG, clock, 15, 100, send=refuse) == {
            "sent": 0, "failed": 1}
        with session_factory() as session:
            row = session.get(WebhookDelivery, row_id)
            assert (row.next_attempt_at - clock.now).total_seconds() == expected
            assert "500" in row.last_error
        assert webhook.deliver(session_factory, CONFIG, clock, 15, 100, send=refuse) == {
            "sent": 0, "failed": 0}  # not before its time
        clock.now = row.next_attempt_at
    bodies = []
    webhook.deliver(session_factory, CONFIG, clock, 15, 100,
                    send=lambda config, row, ts: bodies.append(row.payload))
    with session_factory() as session:
        assert session.get(WebhookDelivery, row_id).status == "sent"
    assert len(bodies) == 1


def test_without_a_url_nothing_is_sent(session_factory):
    put(session_factory)
    assert webhook.deliver(session_factory, webhook.WebhookConfig(None, None), Clock(), 15,
                           100, send=None) == {"sent": 0, "failed": 0}


def test_two_replicas_never_claim_one_row(session_factory):
    row_id = put(session_factory)
    with session_factory() as session:
        assert [r.id for r in mail.claim_due(session, T0, token="a",
                                             model=WebhookDelivery)] == [row_id]
    with session_factory() as session:
        assert mail.claim_due(session, T0, token="b", model=WebhookDelivery) == []
    later = T0 + mail.LEASE + dt.timedelta(seconds=1)
    with session_factory() as session:
        assert [r.id for r in mail.claim_due(session, later, token="b",
                                             model=WebhookDelivery)] == [row_id]
        assert mail.renew_lease(session, row_id, "a", later, model=WebhookDelivery) is None
