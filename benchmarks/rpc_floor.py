"""The RPC hop's floor: what one nameko RPC costs with no work in it, by process.

A service with Berth's entrypoint decorator and the dependencies every Berth service has
(request context, entrypoint metrics) answers a method that returns a small dict and touches
no database. The gateway's own RPC client pool (``gateway.rpc.RpcPool``) calls it from 16
threads, closed loop. For each process this prints CPU-ms per call: the caller (this
process: the gateway's side), the service, and RabbitMQ (a shared server: run on a quiet
machine). Any Berth read that crosses RPC costs at least this, on top of what a single
process would do for the same request (HTTP, the token check, the query).

It runs the service five ways (``VARIANTS``), one after the other, for ``--rounds`` rounds,
and prints the medians: with nameko's reply path (its ``Responder``, with publisher confirms
off and transient replies) and nameko's worker start; with Berth's reply path
(``berth.nameko_patches.handle_result``) on a reply connection (``REPLIES``) and nameko's
worker start; with Berth's worker start too (``berth.nameko_patches.handle_message_in_place``
and the rest of ``WORKER_START``); with requests read by ``berth.amqp_wire`` too
(``nameko_patches.DELIVERY_FRAMES``); and as Berth runs it, the reply written with the
request's ack on the request's connection (``nameko_patches.reply_and_ack``). Everything else
(chunked reads, the gateway's client) is Berth's in all five.

    python -m benchmarks.rpc_floor [--calls 6000] [--clients 16] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


VARIANTS = {  # --serve VARIANT: what the service process runs
    "stock": "nameko's Responder and worker start",
    "reply": "Berth's reply on a reply connection, nameko's worker start",
    "frames": "+ Berth's worker start (py-amqp's reads)",
    "reads": "+ Berth's delivery reads",
    "berth": "as Berth runs: + the reply with the ack, on the request's connection",
}


def serve(amqp_uri: str, variant: str) -> None:
    """The service process (``--serve``): started by ``measure``, stopped by SIGTERM."""
    import eventlet
    eventlet.monkey_patch()
    from kombu import Exchange
    from nameko.amqp.publish import Publisher
    from nameko.containers import ServiceContainer
    from nameko.rpc import Responder, RpcConsumer

    from berth import nameko_patches
    from berth.metrics import EntrypointMetrics
    from berth.service import RequestContext, rpc

    stock_reply = Responder.send_response
    stock_result = RpcConsumer.handle_result
    stock_start = [(owner, name, getattr(owner, name))
                   for owner, name, _ in nameko_patches.WORKER_START]
    stock_frames = [(owner, name, getattr(owner, name))
                    for owner, name, _ in nameko_patches.DELIVERY_FRAMES]
    nameko_patches.install()
    if variant != "berth":  # the reply on one of the process's reply connections
        nameko_patches.reply_and_ack = lambda *args: None  # (not tried: nameko's ack)
    if variant not in ("reads", "berth"):  # py-amqp reads every delivery, frame by frame
        for owner, name, original in stock_frames:
            setattr(owner, name, original)
    if variant in ("stock", "reply"):  # nameko's own worker start
        for owner, name, original in stock_start:
            setattr(owner, name, original)
    if variant == "stock":  # nameko's reply path: a Publisher, producer and Connection per reply
        class NoConfirms(Publisher):
            use_confirms = False
            delivery_mode = 1

        def send_response(self, result, exc_info):
            # the gateway's client takes replies by RabbitMQ's direct reply-to, which nameko's
            # Responder does not know: its reply goes through the default exchange
            self.exchange = Exchange("")
            return stock_reply(self, result, exc_info)
        Responder.send_response = send_response
        RpcConsumer.handle_result = stock_result
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
    """The broker's Erlang VM: a ``beam.smp`` booting ``rabbit``, not a short-lived
    ``rabbitmqctl`` (also a ``beam.smp``) that could end before the measurement does."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() != "beam.smp":
                        continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"\0rabbit\0boot\0" in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def measure(amqp_uri: str, variant: str, calls: int, clients: int) -> dict:
    from gateway.rpc import RpcPool
    cmd = [sys.executable, "-m", "benchmarks.rpc_floor", "--serve", amqp_uri, variant]
    service = subprocess.Popen(cmd, cwd=ROOT,
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
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the variants, one after the other; medians printed")
    p.add_argument("--serve", nargs=2, metavar=("AMQP_URI", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from benchmarks.common import machine_line
    from tests.support import Vhost
    print(machine_line())
    print(f"a no-op RPC, {args.calls} calls from {args.clients} threads through the gateway's "
          f"RpcPool; CPU-ms per call by process")
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    with Vhost() as amqp_uri:
        for _ in range(args.rounds):  # interleaved: the machine's speed drifts within minutes
            for variant in VARIANTS:
                runs[variant].append(measure(amqp_uri, variant, args.calls, args.clients))
    print(f"medians of {args.rounds} rounds")
    width = max(len(label) for label in VARIANTS.values())
    print(f"{'the service runs':<{width}} {'calls/s':>8} {'caller':>7} {'service':>8} "
          f"{'RabbitMQ':>9} {'total':>7}")
    for variant, label in VARIANTS.items():
        r = {key: statistics.median(run[key] for run in runs[variant])
             for key in ("calls/s", "caller", "service", "rabbitmq")}
        total = statistics.median(run["caller"] + run["service"] + run["rabbitmq"]
                                  for run in runs[variant])
        print(f"{label:<{width}} {r['calls/s']:>8.0f} {r['caller']:>7.3f} {r['service']:>8.3f} "
              f"{r['rabbitmq']:>9.3f} {total:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
