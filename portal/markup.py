"""The text of Django's `escape`, `get_FOO_display` and `timesince` for the tables drawn in
Python (requests_app/rows.py, dashboards/fleet.py), without their generic work per call: a
queue or a fleet page writes a dozen values into each of up to 100 rows (issue 16), and
`escape`'s check of every argument for a lazy string, the choices dict `get_FOO_display` builds
on each call and `timesince`'s lazy translations were a fifth of those pages' time.
tests/portal/test_markup.py holds each one to Django's own on tricky values."""

import datetime
import html
from functools import cache

from django.conf import settings
from django.db.models import Field, Model
from django.utils import timesince as django_timesince
from django.utils.encoding import force_str


def escape(value: object) -> str:
    """django.utils.html.escape's text (`&<>"'` as entities), as a plain str to write into
    markup that is marked safe as a whole."""
    return html.escape(value if type(value) is str else str(value))


@cache
def choice_labels(model: type[Model], name: str) -> dict[object, str]:
    """The labels `get_<name>_display` gives, by value: the field's choices, read once."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field), (model, name)
    return {value: force_str(label) for value, label in field.flatchoices}


def display(model: type[Model], name: str, value: object) -> object:
    """`instance.get_<name>_display()` for an instance of `model` whose `name` is `value`: its
    label, or the value itself when no choice has it."""
    return choice_labels(model, name).get(value, value)


# timesince's units below a month, longest first, with Django's words (USE_I18N is off).
_CHUNKS = (
    (60 * 60 * 24 * 7, "week"),
    (60 * 60 * 24, "day"),
    (60 * 60, "hour"),
    (60, "minute"),
)
_NBSP = "\xa0"


def timesince(then: datetime.datetime, now: datetime.datetime) -> str:
    """django.utils.timesince.timesince(then, now) for two aware instants: "3\xa0days,
    4\xa0hours". Spans of a month or more (and any translated words) are Django's own."""
    if settings.USE_I18N or then.tzinfo is None or now.tzinfo is None:
        return django_timesince.timesince(then, now)
    now = now.astimezone(then.tzinfo)
    delta = now - then
    if delta.days * 86400 + delta.seconds <= 0:
        return f"0{_NBSP}minutes"
    months = (now.year - then.year) * 12 + (now.month - then.month)
    if then.day > now.day or (then.day == now.day and then.time() > now.time()):
        months -= 1
    if months:
        return django_timesince.timesince(then, now)
    remaining = delta.total_seconds()
    parts = []
    for seconds, unit in _CHUNKS:
        count = int(remaining // seconds)
        remaining -= seconds * count
        if count:
            parts.append(f"{count}{_NBSP}{unit}{'' if count == 1 else 's'}")
        elif parts:
            break  # Django's depth-2 rule: only adjacent units
        if len(parts) == 2:
            break
    return ", ".join(parts) if parts else f"0{_NBSP}minutes"
