"""Small helpers for the end-to-end tests (real HTTP, real SMTP, no mocks)."""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path

LINK = re.compile(r"https?://\S+")


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, decoded without checking the signature (what a client sees)."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def to_address(message) -> str:
    return (message.get("To") or "").strip().lower()


def mails_to(smtp, address: str) -> list:
    return [m for m in smtp.messages() if to_address(m) == address.lower()]


def body_text(message) -> str:
    if message.is_multipart():
        parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
        message = parts[0]
    payload = message.get_payload(decode=True)
    return payload.decode(message.get_content_charset() or "utf-8")


def links_in(message) -> list[str]:
    return [url.rstrip(".,;)>") for url in LINK.findall(body_text(message))]


def path_of(platform, url: str) -> str:
    assert url.startswith(platform.url), f"{url} is not on the platform {platform.url}"
    return url[len(platform.url):]


def find_user(platform, admin_token: str, user_id: int) -> dict:
    status, body = platform.request("GET", "/api/users?limit=200", token=admin_token)
    assert status == 200, body
    offset = 0
    while True:
        for row in body["users"]:
            if row["user_id"] == user_id:
                return row
        offset += len(body["users"])
        if not body["users"] or offset >= body["total"]:
            raise AssertionError(f"user {user_id} not listed by GET /api/users")
        status, body = platform.request("GET", f"/api/users?limit=200&offset={offset}",
                                        token=admin_token)
        assert status == 200, body


def user_total(platform, admin_token: str) -> int:
    status, body = platform.request("GET", "/api/users", token=admin_token)
    assert status == 200, body
    return body["total"]


def settle(seconds: float) -> None:
    """Give asynchronous work (events, mail) time to happen before asserting it did not."""
    time.sleep(seconds)


class Beside(threading.Thread):
    """``work`` run in a thread beside a browser journey that waits for the file ``signal``:
    the file is written when the work ends, however it ends, so the journey never waits out
    its timeout for a helper that failed; ``finish()`` joins the thread and raises what the
    work raised (call it in a ``finally`` after the journey, so that cause is the one shown)."""

    def __init__(self, work, signal: Path):
        super().__init__(daemon=True)
        self.work, self.signal, self.failed = work, signal, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - raised again by finish()
            self.failed = exc
        finally:
            if not self.signal.exists():
                self.signal.write_text("")

    def finish(self, timeout: float = 10.0) -> None:
        self.join(timeout)
        if self.failed is not None:
            raise self.failed
