"""portal/markup.py gives the very text of Django's escape, get_FOO_display and timesince."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import html as django_html
from django.utils import timesince as django_timesince
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st

from incidents.models import Incident
from portal.markup import display, escape, timesince
from provisioning.models import Instance
from requests_app.models import Request

TRICKY = [
    "",
    "plain",
    "<script>alert('x')</script>",
    "a \"quoted\" & <b>bold</b> 'one'",
    "&amp; already escaped",
    "naïve — ünïcode ✓ \u2028 \x00",
    "   ",
]


@pytest.mark.parametrize("value", [*TRICKY, 0, 42, None, 3.5, ["a", "<b>"], gettext_lazy("Queued")])
def test_escape_is_djangos(value):
    assert escape(value) == django_html.escape(value)


@given(st.text())
def test_escape_is_djangos_on_any_text(value):
    assert escape(value) == django_html.escape(value)


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (Request, "kind"),
        (Request, "state"),
        (Request, "category"),
        (Request, "scope"),
        (Instance, "status"),
        (Instance, "category"),
        (Incident, "severity"),
        (Incident, "state"),
    ],
)
def test_display_is_get_foo_display(model, name):
    values = [value for value, _ in model._meta.get_field(name).flatchoices]
    for value in [*values, "not-a-choice", ""]:
        instance = model(**{name: value})
        expected = getattr(instance, f"get_{name}_display")()
        assert display(model, name, value) == expected
        assert escape(display(model, name, value)) == django_html.escape(expected)


LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 1, 1, 59, 59, tzinfo=LA)  # the last second of summer time


@pytest.mark.parametrize(
    "delta",
    [
        timedelta(0),
        timedelta(seconds=-5),
        timedelta(seconds=59),
        timedelta(minutes=1),
        timedelta(minutes=1, seconds=59),
        timedelta(hours=1),
        timedelta(hours=1, minutes=1),
        timedelta(hours=23, minutes=59, seconds=59),
        timedelta(days=1),
        timedelta(days=1, minutes=5),
        timedelta(days=6, hours=23),
        timedelta(days=7),
        timedelta(days=8),
        timedelta(days=13, hours=5),
        timedelta(days=27, hours=23, minutes=59),
        timedelta(days=31),
        timedelta(days=400, hours=3),
        timedelta(microseconds=999_999),
    ],
)
@pytest.mark.parametrize("zone", [UTC, LA])
def test_timesince_is_djangos(delta, zone):
    then = (NOW - delta).astimezone(zone)
    assert timesince(then, NOW) == django_timesince.timesince(then, NOW)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2030, 1, 1),
        timezones=st.sampled_from([UTC, LA]),
    ),
    st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=800)),
)
def test_timesince_is_djangos_on_any_span(then, span):
    now = (then + span).astimezone(UTC)
    assert timesince(then, now) == django_timesince.timesince(then, now)
