"""The local webhook receiver (127.0.0.1 only) the alerts tests deliver to."""
from __future__ import annotations

import http.server
import json
import threading


class _Server:
    handler_cls: type

    def __init__(self, port: int = 0):
        self.port = port
        self.server = None

    def start(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                      self.handler_cls)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class WebhookReceiver(_Server):
    """Records every POST (body, headers); answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0):
        super().__init__()
        self.fail_first = fail_first
        self.attempts: list[tuple[bytes, dict]] = []
        self.accepted: list[tuple[bytes, dict]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts.append((body, dict(self.headers)))
                if len(receiver.attempts) <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.accepted.append((body, dict(self.headers)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler_cls = Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/berth"

    def accepted_json(self) -> list[dict]:
        return [json.loads(body) for body, _ in self.accepted]
