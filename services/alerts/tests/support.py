"""Helpers shared by the alerts service tests."""
import time


def eventually(check, timeout=20.0):
    """Poll ``check`` until it returns something truthy (returned) or ``timeout`` passes
    (the last value is returned, so the caller's assertion says what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
