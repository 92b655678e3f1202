"""The clock marks and the date rerun (`make test-dates`, the second half of `make test`).

Marks (registered in pyproject.toml):

- `clock`: the test reads the clock, directly or through the code under test (filing a request,
  SLA timers, dashboards, the sweep, notifications, the importer, the API...). Every test whose
  outcome depends on the date pins it with `time_machine.travel(<instant>, tick=False)` and
  builds its data relative to that instant; the others must pass on any date.
- `clock_real("reason")`: a `clock` test that talks to another process keeping real time (a
  browser, an RQ worker, Terraform): time-machine moves only this process's clock, so the test
  is left out of the date rerun, for the reason given.
- `clock_once("reason")`: a `clock` test, or one case of a parametrized one, whose outcome is
  decided before any date arithmetic (a permission refused before the workflow computes a
  timer, input refused by validation): it runs in the suite and is left out of the date rerun,
  for the reason given, while the cases that move a request's clocks are rerun at every
  destination.

`--clock-dates=sat,holiday,dst,nye` (names of DESTINATIONS or aware ISO instants) selects only
the `clock` tests, less the `clock_real` ones, and runs each once per destination, inside
`time_machine.travel(destination, tick=True)` from its setup to its teardown (so fixtures see
the travelled clock too, and the clock keeps running: NYE crosses midnight while tests run).
One pytest run parametrizes the tests over the destinations (ids like `[@2026-11-28T10:00-08:00]`),
so the test database is set up once. PostgreSQL's `now()` is not travelled: the code under test
never asks the database for the time (it passes Python's `timezone.now()` into its queries).

In every run (not only the rerun) the marks are audited: a test that calls
`django.utils.timezone.now()` from the project's own code (source or tests: not Django's
`auto_now` and default fields, sessions or tokens, which only stamp rows) without the `clock`
mark fails, naming the caller. So a new test that reads the clock cannot miss the rerun.
"""

import sys
import types
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

LA = ZoneInfo("America/Los_Angeles")  # the default SLA_TIMEZONE

DESTINATIONS = {
    # A Saturday (the day a test made relative to the real now first failed): working-day
    # clocks stand still, and the sweep holds working-day warnings until Monday.
    "sat": datetime(2026, 11, 28, 10, 0, tzinfo=LA),
    # Thanksgiving, a US holiday on a weekday: not a working day although it is Monday-Friday.
    "holiday": datetime(2026, 11, 26, 10, 0, tzinfo=LA),
    # The last second of summer time: one second later Los Angeles falls back from 01:59:59 PDT
    # to 01:00:00 PST, and the local hour 01:00-02:00 repeats (a 25-hour day).
    "dst": datetime(2026, 11, 1, 1, 59, 59, tzinfo=LA),
    # A second before the new year (local time): the date, the week and the year change while
    # the tests run.
    "nye": datetime(2026, 12, 31, 23, 59, 59, tzinfo=LA),
}
ALL = ",".join(DESTINATIONS)
PARAM = "_clock_destination"


def pytest_addoption(parser):
    parser.addoption(
        "--clock-dates",
        default="",
        metavar="DESTINATIONS",
        help=f"rerun only the `clock`-marked tests with the clock travelled to each of these "
        f"comma-separated destinations: names ({ALL}) or aware ISO 8601 instants",
    )


def destination(text):
    text = text.strip()
    if text in DESTINATIONS:
        return DESTINATIONS[text]
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise pytest.UsageError(
            f"--clock-dates: {text!r} is neither one of {ALL} nor an ISO instant with an offset"
        )
    return instant


def label(instant):
    """`@2026-11-28T10:00-08:00`; seconds only when there are some."""
    spec = "seconds" if instant.second else "minutes"
    return "@" + instant.isoformat(timespec=spec)


def destinations(config):
    option = config.getoption("--clock-dates")
    return [destination(part) for part in option.split(",") if part.strip()]


def real_reason(node):
    mark = node.get_closest_marker("clock_real")
    if mark is None:
        return None
    reason = mark.args[0] if mark.args else mark.kwargs.get("reason")
    if not reason:
        raise pytest.UsageError(f"{node.nodeid}: clock_real needs the reason it is left out")
    return reason


# -- the rerun ------------------------------------------------------------------------------------


def pytest_generate_tests(metafunc):
    wanted = destinations(metafunc.config)
    node = metafunc.definition
    if not wanted or node.get_closest_marker("clock") is None or real_reason(node):
        return
    metafunc.fixturenames.append(PARAM)
    metafunc.parametrize(PARAM, wanted, ids=[label(d) for d in wanted], indirect=True)


@pytest.fixture
def _clock_destination(request):
    """Where the date rerun took this test (the travel itself spans setup to teardown)."""
    return request.param


def travelled_to(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PARAM) if callspec is not None else None


def pytest_collection_modifyitems(config, items):
    if not destinations(config):
        return
    keep, drop, real = [], [], {}
    for item in items:
        once = item.get_closest_marker("clock_once")
        if once is not None and travelled_to(item) is not None:
            drop.append(item)
            reason = once.args[0] if once.args else once.kwargs.get("reason")
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: clock_once needs the reason")
            real.setdefault(reason, []).append(item.nodeid)
        elif travelled_to(item) is not None:
            keep.append(item)
        else:
            drop.append(item)
            if item.get_closest_marker("clock") is not None:
                reason = real_reason(item) or "not a test function pytest can parametrize"
                real.setdefault(reason, []).append(item.nodeid)
    config._clock_left_out = real
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    instant = travelled_to(item)
    if instant is None:
        return (yield)
    with time_machine.travel(instant, tick=True):
        return (yield)


def pytest_sessionfinish(session, exitstatus):
    # A selection without clock tests (`make test PYTEST_ARGS=...`) leaves the rerun nothing to
    # do, which is not a failure.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and destinations(session.config):
        session.exitstatus = pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter, config):
    left_out = getattr(config, "_clock_left_out", None)
    if not destinations(config):
        return
    labels = ", ".join(label(d) for d in destinations(config))
    terminalreporter.section("date rerun")
    terminalreporter.write_line(f"clock tests rerun at {labels}")
    for reason, nodeids in (left_out or {}).items():
        terminalreporter.write_line(f"left out ({len(nodeids)} tests): {reason}")


# -- the audit of the marks -----------------------------------------------------------------------


class Audit:
    """Notes, per test, the project code that asked django.utils.timezone.now() for the time.

    The function object stays the same (only its code changes): models and migrations hold it
    as a field default (`default=timezone.now`), and makemigrations compares it by identity."""

    def __init__(self):
        self.callers = None  # a set while an unmarked test runs, else None
        self.root = None  # the project's code: files under the rootdir, less installed packages

    def install(self):
        from django.utils import timezone

        if hasattr(timezone, "_clock_audit"):
            return
        now = timezone.now
        timezone._clock_now = types.FunctionType(now.__code__, now.__globals__, "now")
        timezone._clock_audit = self.note
        now.__code__ = _audited_now.__code__

    def note(self):
        if self.callers is None:
            return
        caller = sys._getframe(2)  # 0: note, 1: timezone.now, 2: who asked
        filename = caller.f_code.co_filename
        if filename.startswith(self.root) and "-packages/" not in filename and filename != __file__:
            self.callers.add(f"{Path(filename).relative_to(self.root)}:{caller.f_lineno}")


def _audited_now():
    # The code given to django.utils.timezone.now: it runs with that module's globals.
    _clock_audit()  # noqa: F821
    return _clock_now()  # noqa: F821


AUDIT = Audit()


def pytest_configure(config):
    AUDIT.root = f"{config.rootpath}/"
    AUDIT.install()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # From the setup on: fixtures that read the clock count too.
    AUDIT.callers = set() if item.get_closest_marker("clock") is None else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    callers, AUDIT.callers = AUDIT.callers, None
    if callers:
        pytest.fail(
            "this test reads the clock but is not marked `clock` (see tests/clock.py): "
            + ", ".join(sorted(callers)),
            pytrace=False,
        )
    return result


def pytest_runtest_teardown(item):
    AUDIT.callers = None
