"""The console's chart budget (issue 17, item 9): ``python -m benchmarks.chart`` (``make
bench-chart``; ``make bench`` runs it too).

Starts a platform of its own (benchmarks.common.own_platform, SQLite), seeds a customer with
``--containers`` containers (50) that moved bytes every hour of the last ``--days`` days (30),
straight into the services' databases as the sweeps would have left them (the seeding of
benchmarks.hotpaths), and opens the console's traffic page as that customer in Debian's
Chromium (Playwright, headless, as the e2e tests drive it). There the history, "By hour" and
"Last 30 days", is one chart of the customer's bytes in and out per hour over all their
containers (what GET /api/traffic/history returns: 720 points of two series); with "Per
container" ticked, one line per container (``by_container=true``: 50 series of 720 points).

What is timed: TimeChart (web/src/components/TimeChart.tsx) leaves a User Timing measure
``chart-draw:history-chart`` for each draw of new data, from handing the data to uPlot (a new
chart, or setData on the one drawn) to uPlot's ``draw`` hook: scales, axes, the paths and
every canvas call; the compositor's paint of the canvas afterwards is not in it. Its detail
says how many points and lines were drawn, which is how a draw of the 30-day data is told
from others (a refetch after a traffic sweep redraws too). Each of ``--draws`` rounds shows
the last day, then the last 30 days, and reads the 30-day draw (the data is cached after the
first round: the draw is timed, never the fetch): first the two lines, then per container.
Prints each draw, the median and the worst against the budget (100 ms) and the machine (like
every benchmark here it never fails on a figure).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time

from benchmarks.common import machine_line, own_platform
from benchmarks.hotpaths import _user_id, new_user, seed_containers, seed_traffic

BUDGET_MS = 100.0
PASSWORD = "bench chart password 1"
MEASURE = "chart-draw:history-chart"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def drawn(page, points: int, series: int, timeout: float = 30.0) -> float:
    """The ms of the history chart's draw of ``points`` x ``series`` (its User Timing measure,
    the latest draw's; the measure's detail says what was drawn, so a refetch's redraw of
    other data is not taken for it). Polled from here: the console's Content-Security-Policy
    forbids wait_for_function's eval."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in page.evaluate(f"performance.getEntriesByName('{MEASURE}').map("
                                   f"e => ({{ms: e.duration, detail: e.detail}}))"):
            if entry["detail"] == {"points": points, "series": series}:
                page.evaluate("performance.clearMeasures()")
                return entry["ms"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the history chart did not draw {points} x {series}")
        time.sleep(0.02)


def draws(origin: str, username: str, rounds: int, days: int, containers: int,
          screenshot: str | None = None) -> tuple[dict, dict]:
    """Sign in, open the traffic page, and time ``rounds`` draws of the ``days``-day hourly
    chart (ms each): all containers together ("both": in and out), then "Per container"
    ("each": one line per container); with what the page showed."""
    from playwright.sync_api import sync_playwright

    seen: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(origin + "/login")
            page.get_by_label("Username").fill(username)
            page.locator("input[data-path=password]").fill(PASSWORD)
            page.locator("input[data-path=password]").press("Enter")
            page.get_by_test_id("who").wait_for()
            page.get_by_role("link", name="Traffic").click()
            page.get_by_test_id("history-chart").wait_for()
            span = page.get_by_test_id("span")
            points = days * 24

            def timed_rounds(series: int) -> list[float]:
                """Each round: the 1-day chart, then the chart of ``days`` days, timed (the
                data of both is cached after the first round: the draw, not the fetch)."""
                timings = []
                for _ in range(rounds):
                    span.get_by_text("Last 1 day", exact=True).click()
                    page.wait_for_timeout(50)
                    page.evaluate("performance.clearMeasures()")
                    span.get_by_text(f"Last {days} days", exact=True).click()
                    timings.append(drawn(page, points, series))
                return timings

            for_all = timed_rounds(2)
            seen["total"] = page.get_by_test_id("history-total").inner_text()
            page.get_by_test_id("per-container").check()  # one line per container
            per_container = timed_rounds(containers)
            if screenshot:
                page.get_by_test_id("history-chart").screenshot(path=screenshot)
            seen["errors"] = errors
        finally:
            browser.close()
    return {"both": for_all, "each": per_container}, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--days", type=int, default=30, choices=[7, 30],
                        help="the period the console offers by hour (besides 1 day)")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--screenshot", help="save the per-container chart as this PNG")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with own_platform("sqlite", label="berth-bench-chart-") as stack:
        owner_id, token = new_user(stack, "bench-chart", PASSWORD)
        admin_id = _user_id(stack.admin_token(), stack.admin["username"])
        owned = seed_containers(stack, owner_id, admin_id, listed=args.containers,
                                owned=args.containers)
        hourly = seed_traffic(stack, owner_id, owned, days=args.days)
        status, reply = stack.request(
            "GET", f"/api/traffic/history/{owner_id}?granularity=hour&start="
            f"{time.strftime('%Y-%m-%dT%H:00:00Z', time.gmtime(time.time() - args.days * 86400))}",
            token=token)
        assert status == 200, reply
        lines = stack.request("GET", f"/api/traffic/history/{owner_id}?granularity=hour&start="
                              f"{reply['start']}&by_container=true", token=token)[1]
        print(f"seeded {len(owned)} containers x {args.days * 24} hours ({hourly} hourly rows); "
              f"the history by hour over {args.days} days answers "
              f"{len(reply['traffic_history'])} points of bytes in and out; per container "
              f"{len(lines['containers'])} series of "
              f"{len(lines['containers'][0]['bytes_in'])} points", flush=True)
        timings, seen = draws(stack.url, "bench-chart", args.draws, args.days, args.containers,
                              args.screenshot)
    if seen["errors"]:
        print(f"page errors: {seen['errors']}", file=sys.stderr)
        raise SystemExit(1)
    print(f"the page showed: {seen['total']}")
    for key, what in (("both", f"bytes in and out of all {args.containers} containers "
                               f"(2 lines x {args.days * 24} points)"),
                      ("each", f"per container ({args.containers} lines x {args.days * 24} "
                               f"points)")):
        drawn_ms = timings[key]
        median, worst = statistics.median(drawn_ms), max(drawn_ms)
        verdict = "within" if median <= BUDGET_MS else "OVER"
        print(f"{args.days}-day hourly chart, {what}: {len(drawn_ms)} draws (ms): "
              f"{', '.join(f'{t:.1f}' for t in drawn_ms)}")
        print(f"  median {median:.1f} ms, worst {worst:.1f} ms; budget {BUDGET_MS:.0f} ms: "
              f"{verdict} (headless Chromium, --disable-gpu)")


if __name__ == "__main__":
    main()
