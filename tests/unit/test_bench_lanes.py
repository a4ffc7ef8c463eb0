"""The hot-path benchmark's per-client requests (benchmarks.hotpaths.LaneJob): a redeem run is
only honest if every client sends its own user's serials, in order, each once, also when the
clients are spread over forked worker processes.

The benchmark runs in a plain interpreter (real threads, forked workers); the test suite's
is monkey-patched by eventlet, so the scenario runs in a fresh interpreter of its own."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from benchmarks.common import ROOT

SCENARIO = textwrap.dedent("""
    import http.server, json, threading
    from benchmarks.gateway import CpuAccount, run_job
    from benchmarks.hotpaths import LaneJob

    seen = []
    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's clients use it
        def do_POST(self):
            seen.append((self.headers["Authorization"],
                         self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lanes = [({"Authorization": f"lane-{i}"}, [f"{i}:{k}".encode() for k in range(5000)])
             for i in range(2)]
    lanes.append(({"Authorization": "lane-2"}, [b"2:0", b"2:1"]))  # runs out at once
    job = LaneJob("lanes", "127.0.0.1", server.server_address[1], "POST", "/", lanes,
                  clients=3, warmup=0.0, duration=0.5)
    result = run_job(job, 2, CpuAccount())
    server.shutdown()
    print(json.dumps({"statuses": result["status_counts"], "sent": result["sent"],
                      "seen": seen}))
""")


def test_every_client_sends_its_own_lane_in_order_and_repeats_only_its_last_body():
    done = subprocess.run([sys.executable, "-c", SCENARIO], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["statuses"] == {"200": out["sent"]}
    by_lane: dict[str, list[str]] = {}
    for auth, body in out["seen"]:
        by_lane.setdefault(auth, []).append(body)
    assert sorted(by_lane) == ["lane-0", "lane-1", "lane-2"]
    for i in (0, 1):
        sent = by_lane[f"lane-{i}"]
        assert sent == [f"{i}:{k}" for k in range(len(sent))]
    assert by_lane["lane-2"][:2] == ["2:0", "2:1"]
    assert set(by_lane["lane-2"][2:]) <= {"2:1"}
