"""Chaos tests: what each test injected and what it observed, in the run's "figures" section
(tests.support.report; printed at the end whether or not pytest captures output, and whether
the test passed or failed)."""
from __future__ import annotations

import pytest

from tests.support import report


@pytest.fixture
def chaos_report(request):
    """``chaos_report("broker down 10 s")``: a line in the figures, under the test's name."""
    report(f"chaos: {request.node.nodeid}")

    def say(line: str) -> None:
        report(f"  {line}")
    return say
