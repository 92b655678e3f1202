"""Maintenance windows: a weekday and hours in the instance's time zone, past midnight allowed."""

from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from releases.windows import Window

SAT_NIGHT = Window(5, time(22, 0), time(2, 0), "Europe/Berlin")  # Saturday 22:00-02:00


def test_a_window_holds_its_hours_in_its_own_time_zone():
    tuesday = Window(1, time(9, 0), time(11, 0), "America/New_York")
    assert tuesday.contains(datetime(2026, 12, 1, 14, 0, tzinfo=UTC))  # 09:00 in New York
    assert not tuesday.contains(datetime(2026, 12, 1, 16, 0, tzinfo=UTC))  # 11:00: closed
    assert not tuesday.contains(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))  # 04:30 there
    assert str(tuesday) == "Tuesday 09:00-11:00 (America/New_York)"


def test_a_window_past_midnight_runs_into_the_next_day():
    assert SAT_NIGHT.contains(datetime(2026, 11, 28, 21, 30, tzinfo=UTC))  # Sat 22:30 Berlin
    assert SAT_NIGHT.contains(datetime(2026, 11, 29, 0, 30, tzinfo=UTC))  # Sun 01:30 Berlin
    assert not SAT_NIGHT.contains(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))  # Sun 02:00
    opening = SAT_NIGHT.next_opening(datetime(2026, 11, 29, 0, 30, tzinfo=UTC))
    assert opening == datetime(2026, 11, 28, 21, 0, tzinfo=UTC)  # the one it is in


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_the_next_opening_is_within_a_week_and_inside_the_window(naive):
    moment = naive.replace(tzinfo=UTC)
    opening = SAT_NIGHT.next_opening(moment)
    assert opening.astimezone(UTC) <= moment + timedelta(days=7)
    assert SAT_NIGHT.contains(opening)
    assert SAT_NIGHT.contains(moment) == (opening <= moment)
