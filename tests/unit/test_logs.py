"""Log lines carry the request id; the JSON format is one parseable object per line."""
import io
import json
import logging

from berth import context
from berth.logs import configure_logging


def capture(monkeypatch, fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setenv("BERTH_LOG_FORMAT", fmt)
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("users")
    return logging.getLogger("berth.test"), stream


def test_json_lines_carry_the_request_id_and_the_exception(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logger, stream = capture(monkeypatch, "json")
        context.bind("req-7")
        logger.info("hello %s", "world")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
        first, second = [json.loads(line) for line in stream.getvalue().splitlines()
                         if line.startswith("{")][:2]
        assert first["message"] == "hello world" and first["request_id"] == "req-7"
        assert first["process"] == "users" and first["level"] == "INFO"
        assert first["time"].endswith("Z")
        assert "ValueError: boom" in second["exception"]
    finally:
        context.bind(None)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_text_lines_show_the_request_id(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logger, stream = capture(monkeypatch, "text")
        context.bind("req-8")
        logger.warning("careful")
        assert "[req-8] berth.test: careful" in stream.getvalue()
    finally:
        context.bind(None)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_unique_ids_differ_across_threads_and_forked_children():
    import os
    import threading
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.extend(context.unique_id()
                                                          for _ in range(2000)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read, write = os.pipe()
    if (pid := os.fork()) == 0:  # a gunicorn worker forked from a preloaded app
        os.write(write, "\n".join(context.unique_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    mine = [context.unique_id() for _ in range(100)]
    everything = ids + child + mine
    assert len(set(everything)) == len(everything) == 8200
    assert {i[:16] for i in child}.isdisjoint({i[:16] for i in mine})  # its own prefix
    assert all(len(i) >= 24 and i.isalnum() for i in everything)
