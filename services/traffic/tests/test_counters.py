"""Counter arithmetic: deltas, restarts, engine times (no I/O)."""
import datetime as dt

from services.traffic.counters import (NS, Reading, day_of, delta, hour_of, month_of,
                                       network_totals, parse_engine_time, reading_from_stats)

T0 = 1_700_000_000 * NS


def reading(rx, tx, at_ns=T0 + 60 * NS, engine_id="e1") -> Reading:
    return Reading(7, engine_id, rx, tx, at_ns)


def test_the_first_read_of_a_copy_counts_everything_since_it_started():
    d = delta(None, None, None, reading(500, 1200))
    assert (d.bytes_in, d.bytes_out, d.window_seconds, d.restarted) == (500, 1200, None, False)
    assert d.rate_in is None


def test_same_life_counts_the_difference_and_the_rate_over_the_window():
    d = delta(1000, 2000, T0, reading(1600, 5000, T0 + 30 * NS))
    assert (d.bytes_in, d.bytes_out, d.restarted) == (600, 3000, False)
    assert d.window_seconds == 30 and d.rate_in == 20 and d.rate_out == 100


def test_a_counter_that_went_down_is_a_restart_counted_from_zero():
    d = delta(10_000, 50_000, T0, reading(300, 60_000))  # rx reset, tx already grew past
    assert (d.bytes_in, d.bytes_out, d.restarted) == (300, 60_000, True)


def test_a_start_event_in_the_window_is_a_restart_even_when_counters_grew_past_the_old():
    previous = (1_000, 1_048_576, T0)
    same_life = delta(*previous, reading(2_000, 3 * 1_048_576))
    assert same_life.bytes_out == 2 * 1_048_576
    restarted = delta(*previous, reading(2_000, 3 * 1_048_576), restarted=True)
    assert (restarted.bytes_in, restarted.bytes_out, restarted.restarted) == (
        2_000, 3 * 1_048_576, True)


def test_a_read_that_is_not_newer_counts_nothing():
    assert delta(1000, 2000, T0, reading(5000, 9000, T0)) is None
    assert delta(1000, 2000, T0, reading(5000, 9000, T0 - NS)) is None


def test_never_negative():
    d = delta(0, 0, T0, reading(0, 0))
    assert (d.bytes_in, d.bytes_out) == (0, 0)
    assert delta(None, None, None, reading(-5, -1)).bytes_in == 0


def test_engine_times_keep_nanoseconds_and_the_zero_time_is_none():
    assert parse_engine_time("2023-11-14T22:13:20.123456789Z") == T0 + 123_456_789
    assert parse_engine_time("2023-11-14T22:13:20Z") == T0
    assert parse_engine_time("2023-11-14T22:13:20.5Z") == T0 + NS // 2
    assert parse_engine_time("2023-11-15T00:13:20.000000001+02:00") == T0 + 1
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("garbage") is None and parse_engine_time(None) is None


def test_network_totals_sum_every_interface_and_a_stopped_container_has_none():
    stats = {"read": "2023-11-14T22:13:20Z",
             "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 1000},
                          "eth1": {"rx_bytes": 5, "tx_bytes": 7}}}
    assert network_totals(stats) == (105, 1007)
    assert reading_from_stats(3, "abc", stats) == Reading(3, "abc", 105, 1007, T0)
    stopped = {"read": "0001-01-01T00:00:00Z", "networks": None}
    assert network_totals(stopped) is None and reading_from_stats(3, "abc", stopped) is None


def test_buckets_are_utc():
    moment = dt.datetime(2024, 3, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert hour_of(moment) == dt.datetime(2024, 4, 1, 1, tzinfo=dt.timezone.utc)
    assert day_of(moment) == dt.date(2024, 4, 1)
    assert month_of(moment) == "2024-04" and month_of(dt.date(2024, 12, 5)) == "2024-12"
