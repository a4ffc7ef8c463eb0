"""Live updates: a stream ticket (declared route) and the Server-Sent Events stream (a raw
route: its reply is ``text/event-stream``, documented by hand in ``gateway.openapi``).
See ``gateway.live`` for how streams are fed, limited and ended."""
from __future__ import annotations

from flask import Response, current_app, g, jsonify, request
from pydantic import Field

from berth import api_keys
from berth.errors import Unauthorized
from berth.schemas import Reply
from gateway import live
from gateway.api import SIGNED_IN, ApiBlueprint

bp = ApiBlueprint("live", __name__)


class StreamTicket(Reply):
    ticket: str = Field(description="open GET /api/stream?ticket=<ticket> with it (EventSource)")
    expires_in: int = Field(description="seconds the ticket may be used to open a stream")
    url: str = Field(description="the stream's URL with this ticket")


@bp.api("/stream/ticket", ["POST"], summary="A short-lived ticket to open the live event "
        "stream (GET /api/stream?ticket=...)", reply=StreamTicket, access=SIGNED_IN,
        scope=api_keys.NO_KEYS)  # a ticket is bound to a signed-in session (re-checked)
def stream_ticket(caller):
    settings = current_app.extensions["settings"]
    state = current_app.extensions["tokens"].state(caller.user_id)
    ticket = live.issue_ticket(settings.secret, caller, g.session_id, state.version,
                               settings.stream_ticket_seconds)
    return {"ticket": ticket, "expires_in": settings.stream_ticket_seconds,
            "url": f"/api/stream?ticket={ticket}"}


def hub(app) -> live.Hub:
    """This process's hub, created with its feeds on first use (after gunicorn's fork)."""
    found = app.extensions.get("live_hub")
    if found is not None:
        return found
    with app.extensions["live_lock"]:
        found = app.extensions.get("live_hub")
        if found is None:
            settings = app.extensions["settings"]
            tokens = app.extensions["tokens"]
            found = live.Hub(settings.stream_limit, tokens.state, hello_wait=live.HELLO_WAIT)
            consumer = live.EventConsumer(settings.amqp_uri, found)
            poller = live.TrafficPoller(
                found, lambda: app.extensions["rpc"].call("traffic", "realtime"),
                settings.stream_traffic_seconds)
            found.on_first_stream(consumer.start)
            found.on_first_stream(poller.start)
            app.extensions["live_consumer"] = consumer
            app.extensions["live_poller"] = poller
            app.extensions["live_hub"] = found
    return found


@bp.route("/stream", methods=["GET"])
def stream():
    """The live event stream of the ticket's holder (text/event-stream)."""
    settings = current_app.extensions["settings"]
    viewer = live.read_ticket(settings.secret, request.args.get("ticket", ""))
    the_hub = hub(current_app._get_current_object())  # the poller's thread has no app context
    if not the_hub.check(viewer):  # ServiceUnavailable (503) when users cannot say
        raise Unauthorized(live.SESSION_ENDED)
    try:
        opened = the_hub.open(viewer)
    except live.TooManyStreams as exc:
        response = jsonify({"error": exc.message})
        response.status_code = 503
        response.headers["Retry-After"] = "10"
        return response
    body = the_hub.run(opened, settings.stream_heartbeat_seconds,
                       settings.stream_recheck_seconds, settings.stream_max_seconds)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache, no-transform",
                             "X-Accel-Buffering": "no"})
