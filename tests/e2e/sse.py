"""A Server-Sent Events client for the live stream, with a plain HTTP client (requests,
stream=True) in a thread of its own. It behaves as a browser's EventSource with the console's
reconnection rule: when the connection drops it reconnects after the stream's ``retry:`` with
the same ticket, and when that ticket is refused (401) it asks for a fresh one
(``POST /api/stream/ticket``); a refused ticket request (the session ended) stops it."""
from __future__ import annotations

import json
import socket
import threading
import time

import requests


class LiveStream:
    def __init__(self, base_url: str, token: str, name: str = ""):
        self.base_url, self.token, self.name = base_url, token, name
        self.frames: list[tuple[float, str, dict]] = []  # (monotonic time, event, data)
        self.heartbeats = 0
        self.connections = 0  # successful (200) connections
        self.statuses: list[int] = []  # every answer to GET /api/stream
        self.retry_ms = 1000
        self.finished = threading.Event()  # it will not reconnect (session ended, or closed)
        self.connected = threading.Event()
        self._stop = False
        self._changed = threading.Condition()
        self._http = requests.Session()
        self._response = None
        self._thread = threading.Thread(target=self._run, name=f"sse-{name}", daemon=True)

    def __enter__(self) -> LiveStream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """Ask the reading thread to end and cut its connection (at once if its socket can be
        shut down from here, else at the next heartbeat); ``close`` also waits for it."""
        self._stop = True
        response = self._response
        if response is not None:
            try:
                response.raw.connection.sock.shutdown(socket.SHUT_RDWR)
            except Exception:  # noqa: BLE001 - gone already, or not reachable: heartbeat
                pass

    def close(self) -> None:
        self.stop()
        self._thread.join(30)

    # --- reading -------------------------------------------------------------------------
    def events(self, kind: str | None = None) -> list[dict]:
        with self._changed:
            return [data for _, event, data in self.frames if kind is None or event == kind]

    def kinds(self) -> list[str]:
        with self._changed:
            return [event for _, event, _ in self.frames]

    def wait_for(self, kind: str, match=lambda data: True, timeout: float = 20.0,
                 since: int = 0) -> dict:
        """The first ``kind`` event from frame ``since`` on that ``match``es."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _, event, data in self.frames[since:]:
                    if event == kind and match(data):
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no {kind} event in {timeout} s; saw "
                                         f"{[e for _, e, _ in self.frames]}, statuses "
                                         f"{self.statuses}")
                self._changed.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._changed:
            return len(self.frames)

    # --- the connection ------------------------------------------------------------------
    def _ticket(self) -> str | None:
        try:
            answer = self._http.post(self.base_url + "/api/stream/ticket", timeout=10,
                                     headers={"Authorization": f"Bearer {self.token}"})
        except requests.RequestException:
            return ""  # the gateway is away: try again
        if answer.status_code == 401:
            return None  # the session ended: stop
        if answer.status_code != 200:
            return ""
        return answer.json()["url"]

    def _run(self) -> None:
        url = ""
        try:
            while not self._stop:
                if not url:
                    url = self._ticket()
                    if url is None:
                        return
                    if not url:
                        time.sleep(self.retry_ms / 1000)
                        continue
                try:
                    response = self._http.get(self.base_url + url, stream=True,
                                              timeout=(5, 60))
                except requests.RequestException:
                    time.sleep(self.retry_ms / 1000)
                    continue
                self.statuses.append(response.status_code)
                if response.status_code == 401:
                    url = ""  # an expired or foreign ticket: a fresh one
                    continue
                if response.status_code != 200:
                    time.sleep(self.retry_ms / 1000)
                    continue
                self._response = response
                self.connections += 1
                self.connected.set()
                if self._read(response) or self._stop:
                    return  # session_ended, or closed
                time.sleep(self.retry_ms / 1000)
        finally:
            self.finished.set()
            with self._changed:
                self._changed.notify_all()

    def _read(self, response) -> bool:
        """Frames until the connection ends; True if the stream said the session ended."""
        buffer = ""
        try:
            for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
                if self._stop:
                    return True
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    if self._frame(block) == "session_ended":
                        return True
        except (requests.RequestException, OSError, AttributeError, ValueError):
            pass  # dropped (gateway restart) or closed by close()
        finally:
            response.close()
        return False

    def _frame(self, block: str) -> str | None:
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                self.heartbeats += 1
            elif line.startswith("retry:"):
                self.retry_ms = int(line[6:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if not data:
            return None
        with self._changed:
            self.frames.append((time.monotonic(), event, json.loads("\n".join(data))))
            self._changed.notify_all()
        return event
