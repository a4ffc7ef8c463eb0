"""The RPC hop's floor: what one nameko RPC costs with no work in it, by process.

A service with Berth's entrypoint decorator and the dependencies every Berth service has
(request context, entrypoint metrics) answers a method that returns a small dict and touches
no database. The gateway's own RPC client pool (``gateway.rpc.RpcPool``) calls it from 16
threads, closed loop. For each process this prints CPU-ms per call: the caller (this
process: the gateway's side), the service, and RabbitMQ (a shared server: run on a quiet
machine). Any Berth read that crosses RPC costs at least this, on top of what a single
process would do for the same request (HTTP, the token check, the query).

It runs the service twice, side by side: with nameko's reply path (its ``Responder``, with
publisher confirms off and transient replies, as Berth ran it before), then with Berth's
(``berth.nameko_patches.send_reply``), and prints both.

    python -m benchmarks.rpc_floor [--calls 6000] [--clients 16]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(amqp_uri: str, stock: bool) -> None:
    """The service process (``--serve``): started by ``measure``, stopped by SIGTERM."""
    import eventlet
    eventlet.monkey_patch()
    from nameko.amqp.publish import Publisher
    from nameko.containers import ServiceContainer
    from nameko.rpc import Responder

    from berth import nameko_patches
    from berth.metrics import EntrypointMetrics
    from berth.service import RequestContext, rpc

    stock_reply = Responder.send_response
    nameko_patches.install()
    if stock:  # nameko's own reply path (a Publisher, a producer and a Connection per reply)
        class NoConfirms(Publisher):
            use_confirms = False
            delivery_mode = 1
        Responder.send_response = stock_reply
        Responder.publisher_cls = NoConfirms

    class Floor:
        name = "floor"
        request_context = RequestContext()
        entrypoint_metrics = EntrypointMetrics()

        @rpc
        def read(self, user_id):
            return {"user_id": user_id, "acl": ["allow 10.0.0.0/8"], "state": "ok"}

    container = ServiceContainer(Floor, {"AMQP_URI": amqp_uri, "serializer": "json",
                                         "max_workers": 10})
    container.start()
    print("ready", flush=True)
    container.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rabbitmq_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def measure(amqp_uri: str, stock: bool, calls: int, clients: int) -> dict:
    from gateway.rpc import RpcPool
    cmd = [sys.executable, "-m", "benchmarks.rpc_floor", "--serve", amqp_uri]
    service = subprocess.Popen(cmd + (["--stock"] if stock else []), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pool = RpcPool({"AMQP_URI": amqp_uri}, clients, 10.0)
    try:
        if service.stdout.readline().strip() != b"ready":
            raise RuntimeError("the floor service did not start")
        for _ in range(300):  # warm up: connections, reply queues, the service's workers
            pool.call("floor", "read", 1)
        brokers = rabbitmq_pids()
        per_client = calls // clients

        def work():
            for _ in range(per_client):
                pool.call("floor", "read", 1)
        before = (time.process_time(), cpu_seconds(service.pid),
                  sum(cpu_seconds(p) for p in brokers), time.monotonic())
        threads = [threading.Thread(target=work) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = (time.process_time(), cpu_seconds(service.pid),
                 sum(cpu_seconds(p) for p in brokers), time.monotonic())
    finally:
        pool.close()
        service.terminate()
        service.wait(10)
    done = per_client * clients
    caller, svc, broker, wall = (b - a for a, b in zip(before, after))
    return {"calls/s": done / wall, "caller": 1000 * caller / done,
            "service": 1000 * svc / done, "rabbitmq": 1000 * broker / done}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rpc_floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=6000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--serve", metavar="AMQP_URI", help=argparse.SUPPRESS)
    p.add_argument("--stock", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.stock)
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from benchmarks.common import machine_line
    from tests.support import Vhost
    print(machine_line())
    print(f"a no-op RPC, {args.calls} calls from {args.clients} threads through the gateway's "
          f"RpcPool; CPU-ms per call by process")
    rows = []
    with Vhost() as amqp_uri:
        for label, stock in (("nameko's Responder", True), ("Berth's send_reply", False)):
            rows.append((label, measure(amqp_uri, stock, args.calls, args.clients)))
    print(f"{'service replies with':<22} {'calls/s':>8} {'caller':>7} {'service':>8} "
          f"{'RabbitMQ':>9} {'total':>7}")
    for label, r in rows:
        total = r["caller"] + r["service"] + r["rabbitmq"]
        print(f"{label:<22} {r['calls/s']:>8.0f} {r['caller']:>7.3f} {r['service']:>8.3f} "
              f"{r['rabbitmq']:>9.3f} {total:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
