"""The live event stream (gateway.live, gateway.blueprints.live): who sees which event,
stream tickets, the per-worker stream limit, session re-checks and the end of a stream."""
from __future__ import annotations

import itertools
import json
import threading
import time
from types import SimpleNamespace

import pytest

from berth.actor import Actor
from berth.errors import ServiceUnavailable, Unauthorized
from berth.settings import get_settings
from gateway import live
from gateway.app import create_app
from gateway.sessions import TokenState
from tests.unit.live_sessions import SESSION_ID, TOKEN_STATE, access_token, live_state

ADMIN = Actor(1, "admin", "root")
ALICE = Actor(2, "user", "alice")
BOB = Actor(3, "user", "bob")
DISTRIBUTOR = Actor(4, "distributor", "dora")
SECRET = get_settings().secret


def container_event(user_id: int) -> dict:
    return {"event_id": "e1", "occurred_at": "2026-11-30T00:00:00Z", "version": 1,
            "request_id": "req-1", "actor_id": 1, "container_id": 7,
            "container_name": "box", "user_id": user_id, "server_id": 1, "reason": "owner"}


# --- who sees what ---------------------------------------------------------------------------

@pytest.mark.parametrize("viewer, kind, payload, seen", [
    (ALICE, "container_stopped", container_event(ALICE.user_id), True),
    (BOB, "container_stopped", container_event(ALICE.user_id), False),
    (ADMIN, "container_stopped", container_event(ALICE.user_id), True),
    (DISTRIBUTOR, "container_stopped", container_event(ALICE.user_id), False),
    (ALICE, "rental_suspended", {"user_id": ALICE.user_id, "reason": "quota"}, True),
    (BOB, "rental_suspended", {"user_id": ALICE.user_id, "reason": "quota"}, False),
    (ALICE, "traffic_quota_exceeded", {"user_id": ALICE.user_id}, True),
    # fleet events and alerts are for admins, even an alert about a customer's container
    (ALICE, "server_went_down", {"server_id": 1, "user_id": ALICE.user_id}, False),
    (ADMIN, "server_went_down", {"server_id": 1}, True),
    (ALICE, "alert_raised", {"alert_id": 5, "user_id": ALICE.user_id}, False),
    (ADMIN, "alert_raised", {"alert_id": 5, "user_id": ALICE.user_id}, True),
    # no user id, or one that is not an integer: not theirs
    (ALICE, "container_created", {"container_id": 1}, False),
    (ALICE, "container_created", {"user_id": str(ALICE.user_id)}, False),
], ids=lambda v: v.username if isinstance(v, Actor) else None)
def test_who_sees_which_event(viewer, kind, payload, seen):
    assert live.visible(viewer, kind, payload) is seen


def test_a_customer_sees_the_traffic_of_their_own_containers_only():
    snapshot = {"sampled_at": "2026-11-30T00:01:00Z", "traffic": {"in": 111, "out": 222},
                "containers": [
                    {"container_id": 1, "container_name": "a", "user_id": ALICE.user_id,
                     "in": 10, "out": 20, "server_id": 1, "window_seconds": 60},
                    {"container_id": 2, "container_name": "b", "user_id": BOB.user_id,
                     "in": 101, "out": 202, "server_id": 1, "window_seconds": 60}]}
    mine = live.traffic_for(ALICE, snapshot)
    assert [r["container_id"] for r in mine["containers"]] == [1]
    assert mine["traffic"] == {"in": 10, "out": 20}
    assert "server_id" not in mine["containers"][0]
    everything = live.traffic_for(ADMIN, snapshot)
    assert [r["container_id"] for r in everything["containers"]] == [1, 2]
    assert everything["traffic"] == {"in": 111, "out": 222}


def test_the_hub_fans_an_event_out_to_the_streams_allowed_to_see_it():
    hub = live.Hub(10, lambda user_id: None)
    streams = {actor.username: hub.open(live.Viewer(actor, {})) for actor in
               (ADMIN, ALICE, BOB)}
    assert hub.publish("container_stopped", container_event(ALICE.user_id)) == 2
    got = {name: [s.frames.get_nowait() for _ in range(s.frames.qsize())]
           for name, s in streams.items()}
    assert got["bob"] == []
    for name in ("root", "alice"):
        (text,) = got[name]
        assert text.startswith("event: container_stopped\ndata: ")
        data = json.loads(text.split("data: ", 1)[1])
        assert data["container_id"] == 7 and data["user_id"] == ALICE.user_id
        assert "request_id" not in data and "actor_id" not in data


def test_the_consumer_hands_forwarded_events_to_the_hub_and_ignores_others():
    hub = live.Hub(10, lambda user_id: None)
    stream = hub.open(live.Viewer(ALICE, {}))
    consumer = live.EventConsumer("memory://", hub)
    consumer.on_message(container_event(ALICE.user_id),
                        SimpleNamespace(delivery_info={"routing_key": "container_died"}))
    consumer.on_message({"user_id": ALICE.user_id},
                        SimpleNamespace(delivery_info={"routing_key": "verification_email_requested"}))
    assert stream.frames.qsize() == 1
    bound = {b.routing_key for b in consumer.queue().bindings}
    assert "container_died" in bound and "alert_raised" in bound
    assert "verification_email_requested" not in bound
    assert consumer.queue().exclusive and consumer.queue().auto_delete


def test_a_slow_stream_drops_frames_and_is_told_to_resync():
    hub = live.Hub(10, lambda user_id: state(0))
    viewer = live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0})
    stream = hub.open(viewer)
    for _ in range(live.QUEUE_SIZE + 5):
        hub.publish("container_started", container_event(ALICE.user_id))
    assert stream.overflowed
    body = hub.run(stream, heartbeat=60, recheck=60)
    frames = [next(body) for _ in range(4)]  # retry, hello, one event, then resync
    assert frames[0] == "retry: 3000\n\n"
    assert frames[1].startswith("event: hello\n")
    assert frames[2].startswith("event: container_started\n")
    assert frames[3] == "event: resync\ndata: {}\n\n"
    body.close()


def test_hello_waits_until_the_events_are_consumed():
    """hello promises every event from then on: it waits for the process's consumer."""
    hub = live.Hub(10, lambda user_id: state(0), hello_wait=5)
    stream = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    body = hub.run(stream, heartbeat=60, recheck=60)
    assert next(body) == "retry: 3000\n\n"
    consumer = live.EventConsumer("memory://", hub)
    timer = threading.Timer(0.3, consumer.on_consume_ready, (None, None, []))
    started = time.monotonic()
    timer.start()
    assert next(body).startswith("event: hello")
    assert time.monotonic() - started >= 0.25
    assert stream.frames.qsize() == 0  # said hello after the consumer started: no resync
    consumer.on_consume_ready(None, None, [])  # back after a lost connection: everyone
    assert next(body) == "event: resync\ndata: {}\n\n"
    body.close()


def test_a_stream_waiting_to_say_hello_ends_at_once_when_the_worker_stops():
    hub = live.Hub(10, lambda user_id: state(0), hello_wait=5)
    stream = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    body = hub.run(stream, heartbeat=60, recheck=60)
    assert next(body) == "retry: 3000\n\n"
    threading.Timer(0.2, hub.stop).start()
    started = time.monotonic()
    assert list(body) == []  # no hello: ended, the client reconnects elsewhere
    assert time.monotonic() - started < 1
    assert hub.count == 0


def test_a_stream_that_said_hello_before_the_events_flowed_gets_resync():
    hub = live.Hub(10, lambda user_id: state(0), hello_wait=0.1)
    early = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    body = hub.run(early, heartbeat=60, recheck=60)
    assert next(body) == "retry: 3000\n\n" and next(body).startswith("event: hello")
    hub.events_consumed(again=False)
    assert next(body) == "event: resync\ndata: {}\n\n"
    later = hub.open(live.Viewer(BOB, {"sid": SESSION_ID, "ver": 0}))
    hub.events_consumed(again=False)  # (not again: only streams owed one get it)
    assert early.frames.qsize() == 0 and later.frames.qsize() == 0
    body.close()


# --- tickets ---------------------------------------------------------------------------------

def test_a_ticket_names_its_holder_and_session():
    ticket = live.issue_ticket(SECRET, ALICE, SESSION_ID, 3, 30)
    viewer = live.read_ticket(SECRET, ticket)
    assert viewer.actor == ALICE
    assert viewer.claims["sid"] == SESSION_ID and viewer.claims["ver"] == 3


@pytest.mark.parametrize("make", [
    lambda: access_token(SECRET, 2, "user", "alice"),  # an access token is not a ticket
    lambda: live.issue_ticket(SECRET, ALICE, SESSION_ID, 0, -120),  # expired (past leeway)
    lambda: live.issue_ticket("another secret of 32 characters!!", ALICE, SESSION_ID, 0, 30),
    lambda: "",
    lambda: "x" * 3000,
], ids=["access-token", "expired", "foreign-signature", "empty", "oversized"])
def test_anything_but_a_valid_ticket_is_refused(make):
    with pytest.raises(Unauthorized):
        live.read_ticket(SECRET, make())


def test_a_ticket_is_not_a_bearer_token(client):
    ticket = live.issue_ticket(SECRET, ADMIN, SESSION_ID, 0, 30)
    response = client.get("/api/users", headers={"Authorization": f"Bearer {ticket}"})
    assert response.status_code == 401


# --- the routes ------------------------------------------------------------------------------

class OnlySessions:
    """Answers ``users.token_state`` (live, or as ``state`` says) and nothing else."""

    def __init__(self):
        self.state: dict = {}

    def call(self, service, method, *args, **kwargs):
        assert (service, method) == TOKEN_STATE, (service, method)
        return {**live_state(*args), **self.state}


@pytest.fixture(scope="module")
def app():
    return create_app()


@pytest.fixture
def sessions(app):
    """The app with RPC answering the session check only, and a hub of 2 streams whose feeds
    (broker consumer, traffic poller) are not started."""
    saved = app.extensions["rpc"]
    stub = OnlySessions()
    app.extensions["rpc"] = stub
    app.extensions["live_hub"] = live.Hub(2, app.extensions["tokens"].state)
    yield stub
    app.extensions["rpc"] = saved
    app.extensions.pop("live_hub")
    for user_id in (1, 2, 3):
        app.extensions["tokens"].forget(user_id)


@pytest.fixture
def client(app, sessions):
    return app.test_client()


def bearer(actor: Actor) -> dict:
    token = access_token(SECRET, actor.user_id, actor.role, actor.username)
    return {"Authorization": f"Bearer {token}"}


def ticket_for(client, actor: Actor) -> str:
    response = client.post("/api/stream/ticket", headers=bearer(actor))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["url"] == f"/api/stream?ticket={body['ticket']}"
    assert body["expires_in"] == get_settings().stream_ticket_seconds
    return body["ticket"]


def test_a_ticket_needs_a_signed_in_caller(client):
    assert client.post("/api/stream/ticket").status_code == 401


@pytest.mark.parametrize("query", ["", "?ticket=", "?ticket=nonsense"])
def test_the_stream_without_a_valid_ticket_is_401_json(client, query):
    response = client.get(f"/api/stream{query}")
    assert response.status_code == 401 and response.get_json()["error"]


def test_the_stream_refuses_an_access_token_as_ticket(client):
    token = access_token(SECRET, 2, "user", "alice")
    assert client.get(f"/api/stream?ticket={token}").status_code == 401


def test_the_stream_opens_with_hello_for_the_tickets_holder(client, app):
    response = client.get(f"/api/stream?ticket={ticket_for(client, ALICE)}", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"].startswith("no-cache")
    body = iter(response.response)
    assert next(body) == b"retry: 3000\n\n"
    hello = next(body).decode()
    assert json.loads(hello.split("data: ", 1)[1]) == {"user_id": 2, "role": "user"}
    assert app.extensions["live_hub"].count == 1
    response.close()  # the client goes: the stream is closed
    assert app.extensions["live_hub"].count == 0


def test_a_worker_holds_at_most_its_limit_of_streams_then_503_with_retry_after(client, app):
    held = [client.get(f"/api/stream?ticket={ticket_for(client, actor)}", buffered=False)
            for actor in (ALICE, BOB)]
    assert [r.status_code for r in held] == [200, 200]
    refused = client.get(f"/api/stream?ticket={ticket_for(client, ADMIN)}")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "10"
    assert "Too many live streams" in refused.get_json()["error"]
    held[0].close()
    again = client.get(f"/api/stream?ticket={ticket_for(client, ADMIN)}", buffered=False)
    assert again.status_code == 200
    for response in (held[1], again):
        response.close()
    assert app.extensions["live_hub"].count == 0


def test_a_ticket_whose_session_ended_opens_no_stream(client, app, sessions):
    ticket = ticket_for(client, ALICE)
    sessions.state = {"revoked_sessions": [SESSION_ID]}
    app.extensions["tokens"].forget(ALICE.user_id)
    response = client.get(f"/api/stream?ticket={ticket}")
    assert response.status_code == 401
    assert response.get_json()["error"] == "Session ended; sign in again"
    assert app.extensions["live_hub"].count == 0


# --- the session re-check --------------------------------------------------------------------

def state(version: int, revoked=(), disabled=False) -> TokenState:
    return TokenState(version, disabled, frozenset(revoked), 0.0)


@pytest.mark.parametrize("ended", [state(0, revoked=[SESSION_ID]), state(1),
                                   state(0, disabled=True)],
                         ids=["logged-out", "version-moved", "disabled"])
def test_a_stream_ends_when_its_session_ends(ended):
    answers = itertools.chain([state(0)], itertools.repeat(ended))
    hub = live.Hub(5, lambda user_id: next(answers))
    viewer = live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0})
    assert hub.check(viewer)
    stream = hub.open(viewer)
    frames = list(hub.run(stream, heartbeat=60, recheck=0.05))  # ends by itself
    assert frames[-1] == 'event: session_ended\ndata: {"error":"Session ended; sign in again"}\n\n'
    assert hub.count == 0


def test_a_stream_outlives_a_session_check_that_cannot_be_made_and_sends_heartbeats():
    answers = iter([ServiceUnavailable("users away"), ServiceUnavailable("users away"),
                    state(0), state(0), state(0, revoked=[SESSION_ID])])

    def state_of(user_id):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    hub = live.Hub(5, state_of)
    stream = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    frames = list(hub.run(stream, heartbeat=0.05, recheck=0.05))
    assert ": heartbeat\n\n" in frames
    assert frames[-1].startswith("event: session_ended")


def test_the_traffic_poller_sends_a_new_sweep_once():
    hub = live.Hub(5, lambda user_id: state(0))
    replies = iter([{"sampled_at": "t1", "containers": [
        {"container_id": 1, "container_name": "a", "user_id": ALICE.user_id, "in": 5,
         "out": 6}]}] * 2 + [{"sampled_at": "t2", "containers": []}])
    poller = live.TrafficPoller(hub, lambda: next(replies), 5)
    stream = hub.open(live.Viewer(ALICE, {}))
    assert [poller.poll_once() for _ in range(3)] == [True, False, True]
    first = json.loads(stream.frames.get_nowait().split("data: ", 1)[1])
    assert first["containers"][0]["in"] == 5 and first["traffic"] == {"in": 5, "out": 6}
    assert stream.frames.qsize() == 1
    later = hub.open(live.Viewer(BOB, {}))  # a new stream starts from the latest sweep
    assert json.loads(later.frames.get_nowait().split("data: ", 1)[1])["containers"] == []


def test_a_worker_shutting_down_ends_its_streams_and_opens_no_more():
    hub = live.Hub(5, lambda user_id: state(0))
    stream = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    body = hub.run(stream, heartbeat=60, recheck=60)
    assert next(body) == "retry: 3000\n\n" and next(body).startswith("event: hello")
    live.stop_all()
    assert list(body) == []  # ended at once, not at the next heartbeat
    assert hub.count == 0
    with pytest.raises(live.TooManyStreams):
        hub.open(live.Viewer(BOB, {}))


def test_a_stream_ends_by_itself_after_its_lifetime():
    hub = live.Hub(5, lambda user_id: state(0))
    stream = hub.open(live.Viewer(ALICE, {"sid": SESSION_ID, "ver": 0}))
    started = time.monotonic()
    frames = list(hub.run(stream, heartbeat=60, recheck=60, lifetime=0.2))
    assert frames[0].startswith("retry:") and frames[1].startswith("event: hello")
    assert 0.2 <= time.monotonic() - started < 2
    assert hub.streams() == []  # closed: the worker's slot is free again
