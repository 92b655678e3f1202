"""The date rerun's plugin (tests/clock.py), on a small suite of its own in a pytest subprocess:
the audit fails an unmarked test that reads the clock; `--clock-dates` runs only the `clock`
tests, once per destination, with the clock travelled and running; `clock_real` ones are left
out with their reason."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import holidays
import pytest

from tests import clock

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import pytest
from django.utils import timezone


def test_reads_the_clock_unmarked():
    timezone.now()


def test_does_not_read_it():
    pass


@pytest.mark.clock
def test_marked():
    with open("seen.txt", "a") as seen:
        print(timezone.now().isoformat(), file=seen)


@pytest.mark.clock
@pytest.mark.clock_real("a process of its own keeps real time")
def test_real():
    timezone.now()


ONCE = pytest.mark.clock_once("decided before any clock")


@pytest.mark.clock
@pytest.mark.parametrize("case", ["moves", pytest.param("refused", marks=ONCE)])
def test_cells(case):
    timezone.now()
"""


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "portal.settings")
    pytester.makeconftest('pytest_plugins = ["tests.clock"]\n')
    pytester.makeini(
        "[pytest]\nmarkers =\n    clock: reads the clock\n    clock_real(reason): real time\n"
        "    clock_once(reason): once\n"
    )
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def run(suite, *args):
    return suite.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", *args)


def test_an_unmarked_test_that_reads_the_clock_fails(suite):
    result = run(suite)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_reads_the_clock_unmarked*",
            "*reads the clock but is not marked `clock`*test_suite.py:6",
        ]
    )


def test_the_rerun_runs_the_clock_tests_at_each_destination(suite):
    result = run(suite, "-v", "--clock-dates=sat,nye,2030-06-01T12:00:00+02:00")
    result.assert_outcomes(passed=6, deselected=6)
    result.stdout.fnmatch_lines_random(
        [
            "*test_cells?@2026-11-28T10:00-08:00-moves? PASSED*",
            "*left out (3 tests): decided before any clock*",
            "*test_marked?@2026-11-28T10:00-08:00? PASSED*",
            "*test_marked?@2026-12-31T23:59:59-08:00? PASSED*",
            "*test_marked?@2030-06-01T12:00+02:00? PASSED*",
            "*left out (1 tests): a process of its own keeps real time*",
        ]
    )
    seen = [datetime.fromisoformat(line) for line in (suite.path / "seen.txt").read_text().split()]
    wanted = [clock.DESTINATIONS["sat"], clock.DESTINATIONS["nye"]]
    wanted.append(datetime.fromisoformat("2030-06-01T12:00:00+02:00"))
    assert len(seen) == 3
    for instant, destination in zip(seen, wanted, strict=True):
        # The clock starts at the destination and keeps running.
        assert 0 <= (instant - destination).total_seconds() < 5, (instant, destination)


def test_a_destination_must_be_known_or_an_aware_instant(suite):
    result = run(suite, "--clock-dates=sat,2026-12-31T23:59:59")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*'2026-12-31T23:59:59' is neither one of*"])


def test_the_four_destinations():
    assert [clock.label(d) for d in clock.DESTINATIONS.values()] == [
        "@2026-11-28T10:00-08:00",
        "@2026-11-26T10:00-08:00",
        "@2026-11-01T01:59:59-07:00",
        "@2026-12-31T23:59:59-08:00",
    ]
    sat, holiday, dst, nye = clock.DESTINATIONS.values()

    def a_second_after(instant):
        return (instant.astimezone(UTC) + timedelta(seconds=1)).astimezone(clock.LA)

    assert sat.weekday() == 5
    assert holiday.weekday() == 3
    assert holidays.US(years=2026).get(holiday.date()) == "Thanksgiving Day"
    assert (dst.hour, dst.utcoffset()) == (1, timedelta(hours=-7))
    after = a_second_after(dst)
    assert (after.hour, after.minute, after.utcoffset()) == (1, 0, timedelta(hours=-8))
    assert a_second_after(nye) == datetime(2027, 1, 1, tzinfo=clock.LA)
