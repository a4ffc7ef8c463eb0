"""Run one service in the foreground: ``python -m berth.run users``.

Eventlet is monkey-patched here, first, and psycopg2 made cooperative; the gateway never
imports this module.
"""
import eventlet

eventlet.monkey_patch()

import gc  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

import psycogreen.eventlet  # noqa: E402

import berth  # noqa: E402
from berth.logs import configure_logging  # noqa: E402
from berth.settings import InsecureConfiguration, get_settings  # noqa: E402

psycogreen.eventlet.patch_psycopg()


def return_large_blocks_to_the_system() -> None:
    """Large allocations (an Argon2 hash takes 19 MiB) are served by mmap and unmapped when
    freed. glibc otherwise raises its mmap threshold after the first such free and keeps later
    ones in per-thread arenas: the users service then held ~19 MiB per hashing thread for good
    (RSS 100 → 480 MiB in the soak test). A fixed threshold turns that adjustment off."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD: 1 MiB
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


return_large_blocks_to_the_system()


def freeze_what_was_imported() -> None:
    """Move every object alive now (the modules, classes and functions of nameko, SQLAlchemy,
    pydantic and the service) out of the garbage collector's reach: they live as long as the
    process. Without this, each full collection walked all of them, stopping the process for
    50-180 ms under load (a gen2 pass seen in every service during a benchmark run) and
    putting a tail on every request in flight (issue 18's paced p99)."""
    gc.collect()
    gc.freeze()


def service_class(name: str):
    module = importlib.import_module(f"services.{name}.service")
    return getattr(module, f"{name.capitalize()}Service")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in berth.SERVICES:
        print(f"usage: python -m berth.run {{{','.join(berth.SERVICES)}}}", file=sys.stderr)
        return 2
    name = argv[0]
    settings = get_settings()
    configure_logging(name)
    try:
        settings.secret  # refuse to start on an unsafe secret outside development
        settings.require_loopback_in_development(name)  # development: /metrics on loopback
    except InsecureConfiguration as exc:
        logging.getLogger(name).error("%s", exc)
        return 1
    from nameko.cli.run import run

    from berth import nameko_patches
    nameko_patches.install()
    config = settings.nameko_config(WEB_SERVER_ADDRESS=settings.metrics_address_for(name))
    service = service_class(name)
    logging.getLogger(name).info("starting %s service (metrics on %s)", name,
                                 config["WEB_SERVER_ADDRESS"])
    freeze_what_was_imported()
    run([service], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
