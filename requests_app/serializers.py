"""What the JSON API takes and what it answers (docs/api.md).

Bodies and query parameters pass two checks. First a serializer of `Json*` fields holds the JSON
to exactly what the published schema says (types, lengths, patterns, enums, formats): each of
those fields validates with the same numbers and the same pattern that its `json_schema()` puts
in `/api/schema/`, so the two cannot drift apart. The serializers that file requests are made
from the forms in requests_app/forms.py (`filing_serializer`): a form field's `max_length`,
`min_value`, `choices` and `required` carry over, and the rules of the forms' clean methods that
a schema can say (slug, zone, version and CIDR patterns) come from requests_app/validation.py.
Then the form itself validates as on the pages: what no schema can say (the instance exists and
is in a fitting state, the slug is free, the version is newer, ...) stays the form's alone.
"""

import copy
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import CharField, F, Func
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import list_hash
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from provisioning import runs
from provisioning.models import Access, Category, Instance, Run
from requests_app import access, validation, workflow
from requests_app.forms import (
    FORMS,
    ActionForm,
    BaseRequestForm,
    CommentForm,
    CreateRequestForm,
    ListField,
)
from requests_app.models import AccessScope, Event, Kind, Request, State
from requests_app.sla.policies import load
from requests_app.sla.status import TIMER_COLUMNS, sla_json
from requests_app.transitions import RULES

# -- patterns the schema and the server share ---------------------------------------------------
# Written in the common part of ECMA 262 (the schema's dialect) and Python's `re`: explicit
# classes, no \d, \s or \w (their Unicode meanings differ), `\uXXXX` escapes. The schema anchors
# each one as ^(?:...)$ and the server tests it with `re.fullmatch`, which mean the same thing.


def _char_class(chars: Iterable[str]) -> str:
    """`chars` as the inside of a regex character class, in runs of \\uXXXX escapes."""
    codes = sorted({ord(char) for char in chars})
    runs: list[list[int]] = []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last in runs
    )


# What str.strip() (and so every Django form field) takes for blank; all of it lies below U+3001.
WHITESPACE = _char_class(chr(code) for code in range(0x3001) if chr(code).isspace())
NUL = "\\u0000"
# Any text without NUL characters (PostgreSQL cannot store them; the forms refuse them too).
TEXT = f"[^{NUL}]*"
# Text with at least one character that is not blank: the forms strip before they check.
NON_BLANK = f"[^{NUL}]*[^{NUL}{WHITESPACE}][^{NUL}]*"


def _from_validation(regex: re.Pattern[str]) -> str:
    """A `^...$` pattern of requests_app/validation.py as a shared pattern (ASCII digits)."""
    source = regex.pattern
    assert source.startswith("^") and source.endswith("$"), source
    return source[1:-1].replace("\\d", "[0-9]")


SLUG = _from_validation(validation.SLUG)
ZONE = _from_validation(validation.ZONE)
VERSION = _from_validation(validation.VERSION)
PERSON = _from_validation(validation.PERSON)

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_OCTET}(?:\\.{_OCTET}){{3}}"
_H = "[0-9a-fA-F]{1,4}"
_IPV6 = (
    "(?:"
    + "|".join(
        [
            f"(?:{_H}:){{7}}{_H}",
            f"(?:{_H}:){{1,7}}:",
            f"(?:{_H}:){{1,6}}:{_H}",
            *[f"(?:{_H}:){{1,{5 - n}}}(?::{_H}){{1,{n + 2}}}" for n in range(4)],
            f"{_H}:(?::{_H}){{1,6}}",
            f":(?:(?::{_H}){{1,7}}|:)",
        ]
    )
    + ")"
)
# An IPv4 or IPv6 network; without a prefix length it is one address (/32, /128).
CIDR = f"(?:{_IPV4}(?:/(?:3[0-2]|[12]?[0-9]))?|{_IPV6}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)"

_MONTH, _DAY = "(?:0[1-9]|1[0-2])", "(?:0[1-9]|[12][0-9]|3[01])"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# Offsets as far as the world's go (UTC-12 to UTC+14): PostgreSQL refuses those beyond 15:59.
_OFFSET_TIME = "(?:0[0-9]|1[0-4]):[0-5][0-9]"
_OFFSET = f"(?:Z|[+\\-]{_OFFSET_TIME})"
# ISO 8601 date-time with seconds, years 1900-2999 (beyond them a conversion to UTC could leave
# what Python's datetime can hold), and an offset; without one it is read in SLA_TIMEZONE.
_SECONDS = "[0-5][0-9](?:\\.[0-9]{1,6})?"
DATE_TIME = f"(?:19|2[0-9])[0-9]{{2}}-{_MONTH}-{_DAY}T{_TIME}:{_SECONDS}{_OFFSET}?"


def year_pattern(first: int, last: int) -> str:
    return "(?:" + "|".join(str(year) for year in range(first, last + 1)) + ")"


def moment_pattern(first_year: int, last_year: int) -> str:
    """An ISO date, or a date-time with or without seconds and offset (naive: the SLA timezone).
    With seconds, the offset's `+` may arrive as a space (a query string nobody encoded)."""
    date = f"{year_pattern(first_year, last_year)}-{_MONTH}-{_DAY}"
    with_seconds = f":{_SECONDS}(?:Z|[+\\- ]{_OFFSET_TIME})?"
    return f"{date}(?:T{_TIME}(?:{with_seconds}|{_OFFSET}?))?"


# -- fields that hold JSON to the schema ------------------------------------------------------


class JsonField:
    """A field that checks a value exactly as `json_schema()` describes it."""

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


class JsonString(JsonField, serializers.Field):
    """A JSON string (DRF's CharField also takes numbers) that matches `pattern` in full, with
    no NUL and no lone surrogate, `min_length` to `max_length` characters as sent (not stripped).
    `message` explains a mismatch of the pattern. Not a CharField: drf-spectacular would add
    minLength or a oneOf for blanks to the schema, where the pattern already says it all."""

    default_error_messages = {
        "invalid": "Not a valid string.",
        "blank": "This field may not be blank.",
        "nul": "Null characters are not allowed.",
        "surrogate": "Lone surrogate characters are not allowed.",
        "max_length": "Ensure this field has no more than {max_length} characters.",
        "min_length": "Ensure this field has at least {min_length} characters.",
    }

    def __init__(
        self,
        *,
        pattern: str = TEXT,
        message: str | Callable[[str], list[str]] | None = None,
        max_length: int | None = None,
        min_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pattern = pattern
        self.regex = re.compile(pattern)
        self.message = message
        self.max_length = max_length
        self.min_length = min_length

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            self.fail("nul")
        if any("\ud800" <= char <= "\udfff" for char in data):
            self.fail("surrogate")
        if not self.regex.fullmatch(data):
            if callable(self.message):
                raise serializers.ValidationError(self.message(data) or ["Not a valid value."])
            if self.message:
                raise serializers.ValidationError(self.message)
            if self.pattern == NON_BLANK:
                self.fail("blank")
            raise serializers.ValidationError(f"{data!r} does not have the expected form.")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        if self.min_length is not None and len(data) < self.min_length:
            self.fail("min_length", min_length=self.min_length)
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "pattern": f"^(?:{self.pattern})$"}
        if self.min_length is not None:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


def any_case(values: Iterable[str]) -> str:
    """A pattern of `values` (lowercase ASCII letters, digits, `_` and `-`: nothing a pattern
    reads as syntax outside a class) in any case: each letter as `[xX]` ("queued" also matches
    "QUEUED" and "Queued"), the same for the schema's ECMA 262 and for Python's `re`."""

    def letter(char: str) -> str:
        return f"[{char.lower()}{char.upper()}]" if char.isascii() and char.isalpha() else char

    values = list(values)
    assert all(re.fullmatch("[a-z0-9_-]+", value) for value in values), values
    return "|".join("".join(letter(char) for char in value) for value in values)


class JsonAnyCaseChoice(JsonString):
    """One of `choices` (their values: lowercase ASCII letters, digits, `_`, `-`) in any case; the
    value it gives is the choice itself. The schema says it with `any_case`'s pattern (an enum
    cannot say "any case"), and lists the values in the description."""

    def __init__(self, choices: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        self.values = [str(value) for value, _ in choices]
        listed = ", ".join(self.values)
        kwargs.setdefault("message", f"Choose one of: {listed} (in any case).")
        super().__init__(pattern=any_case(self.values), **kwargs)

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).lower()


class JsonChoice(JsonField, serializers.ChoiceField):
    """One of `choices` (their values), as a JSON string. `allow_blank`: "" means the default."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)

    def json_schema(self) -> dict[str, Any]:
        values: list[Any] = [value for value in self.choices if value != ""]
        if self.allow_blank:
            values.append("")
        if self.allow_null:
            values.append(None)  # OpenAPI 3.0 wants null among the values of a nullable enum
        # The id drf-spectacular gives a ChoiceField of the same choices, so that its enum hook
        # names one choice set once (KindEnum, AccessEnum, ...) however many fields use it.
        enum_id = list_hash([(k, v) for k, v in self.choices.items() if k not in ("", None)])
        return {"type": "string", "enum": values, "x-spec-enum-id": enum_id}


class JsonInteger(JsonField, serializers.IntegerField):
    """A JSON integer: not a string of digits, not a boolean, not a number with a fraction."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.min_value is not None:
            schema["minimum"] = self.min_value
        if self.max_value is not None:
            schema["maximum"] = self.max_value
        return schema


DATE_TIME_MESSAGE = (
    "Give a date-time such as 2026-03-31T09:00:00-07:00 (without an offset it is read in the "
    "SLA time zone)."
)


class JsonDateTime(JsonField, serializers.DateTimeField):
    """An ISO 8601 date-time (`DATE_TIME`) as a JSON string; one without an offset is read in
    SLA_TIMEZONE (Django's TIME_ZONE follows it)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(DATE_TIME, value):
            raise serializers.ValidationError(DATE_TIME_MESSAGE)
        try:
            return super().to_internal_value(value)
        except (serializers.ValidationError, OverflowError):
            raise serializers.ValidationError(DATE_TIME_MESSAGE) from None

    def json_schema(self) -> dict[str, Any]:
        # Not "format: date-time": that is RFC 3339, which requires the offset this accepts
        # without (read in the SLA time zone).
        return {"type": "string", "pattern": f"^(?:{DATE_TIME})$"}


class JsonList(JsonField, serializers.ListField):
    """A JSON array of `child` values, `min_length` to `max_length` of them when given."""

    def json_schema(self) -> dict[str, Any]:
        assert isinstance(self.child, JsonField)
        schema: dict[str, Any] = {"type": "array", "items": self.child.json_schema()}
        if self.min_length is not None:
            schema["minItems"] = self.min_length
        if self.max_length is not None:
            schema["maxItems"] = self.max_length
        return schema


class QueryBoolean(JsonField, serializers.Field):
    """A boolean query parameter: true or false (1/0 and yes/no are read too), any case."""

    WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, str) or data.lower() not in self.WORDS:
            raise serializers.ValidationError("Use true or false.")
        return self.WORDS[data.lower()]

    def to_representation(self, value: Any) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class JsonFieldExtension(OpenApiSerializerFieldExtension):
    """The schema of a `Json*` field is the one it validates against."""

    target_class = JsonField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        assert isinstance(self.target, JsonField)
        return self.target.json_schema()


def check_json(serializer_class: type[serializers.Serializer], data: object) -> dict[str, Any]:
    """`data` (a JSON object, or query parameters) held to the schema of `serializer_class`;
    raises its ValidationError."""
    if isinstance(data, QueryDict):
        # A plain dict of the last values: DRF would read "" in a QueryDict as "not given".
        data = data.dict()
    if isinstance(data, dict) and not data and serializer_class in _EMPTY_RESULTS:
        return dict(_EMPTY_RESULTS[serializer_class])
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    found = dict(serializer.validated_data)
    if isinstance(data, dict) and not data:
        # Nothing given: the same answer every time, unless a field has a default (which
        # may be made afresh, like now()). Most lists are asked without filters.
        if all(field.default is empty for field in serializer.fields.values()):
            _EMPTY_RESULTS[serializer_class] = found
    return dict(found)


# What check_json answers for `{}`, per serializer class (those without defaults).
_EMPTY_RESULTS: dict[type[serializers.Serializer], dict[str, Any]] = {}


# -- the one error body -------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every error: `detail` says what went wrong; each other key names a field (or
    `non_field_errors`, the whole body) and lists why it was refused."""

    detail = serializers.CharField()


class ErrorSerializerExtension(OpenApiSerializerExtension):
    target_class = ErrorSerializer

    def get_name(self, auto_schema: AutoSchema, direction: str) -> str:
        return "Error"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": ErrorSerializer.__doc__,
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }


def error_messages(detail: Any) -> dict[str, list[str]]:
    """DRF's error detail (a dict by field, a list, nested for list items) as field -> list of
    messages; an item of a list is named in its message ("item 2: ...")."""
    if isinstance(detail, Mapping):
        return {str(key): list(_flat(value)) for key, value in detail.items()}
    return {"non_field_errors": list(_flat(detail))}


def _flat(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            name = f"item {key + 1}" if isinstance(key, int) else str(key)
            yield from _flat(inner, f"{prefix}{name}: ")
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _flat(inner, prefix)
    else:
        yield f"{prefix}{value}"


# -- request bodies made from the forms ---------------------------------------------------------

# Where a form's help text speaks of the page (lines, text boxes), what the API says instead.
API_HELP = {
    "instance": "The instance's slug; for `create` the new slug; for `access` optional (null or "
    "empty: every instance of the category).",
    "customer": "Taken from the instance when left out (not for `create`); an `access` without "
    "an instance has none (leave it out, null or empty).",
    "person": "`access`: the username or email address of the person who needs it.",
    "scope": "`access`: what to: `gcp-managed` (the instances' GCP projects) or `vault`.",
    "category": "`create`: customer (when left out) or internal. `access`: required; the "
    "category whose instances it covers, which must be the named instance's category.",
    "expires_at": "`access`: when it ends, in the future; left out: "
    f"{settings.ACCESS_DEFAULT_DAYS} days after it is granted.",
    "allowed_ip_ranges": "CIDR ranges (host bits zero); required for `ip_allowlist` access.",
    "machine_type": "Recommended from users and repositories when left out.",
    "zone": "A GCP zone; us-central1-f when left out.",
    "release_published_at": "When the release came out, not in the future; the 7-day clock "
    "counts from it (left out: now).",
    "due_at": "The target date of `set_target`, in the future.",
    "confirm": "Teardown: the slug again.",
    "assignee": "`assign`: the username of the DevOps member who is to hold the request; null "
    "or empty (or left out): nobody.",
}

# Create has no instance to take the customer from (BaseRequestForm.clean): it must be given.
_CUSTOMER_REQUIRED = (CreateRequestForm,)


def choices_of(field: forms.Field) -> list[tuple[str, str]]:
    """A form's choice field's (value, label) pairs, without the blank one."""
    assert isinstance(field, forms.ChoiceField), field
    pairs = cast(Iterable[tuple[Any, Any]], field.choices)
    return [(str(value), str(label)) for value, label in pairs if value != ""]


def max_length_of(field: forms.Field) -> int | None:
    assert isinstance(field, forms.CharField), field
    return field.max_length


def _slug_lengths(prefix: str) -> tuple[int, int]:
    """The slug lengths validation.slug_errors accepts with `prefix` (GCP's project id limits)."""
    fine = [n for n in range(1, 64) if not validation.slug_errors("a" * n, prefix)]
    return (min(fine), max(fine)) if fine else (1, 0)


def _slug_errors(value: str) -> list[str]:
    return validation.slug_errors(value, settings.INSTANCE_PROJECT_PREFIX)


def _json_field(form_class: type[forms.Form], name: str, field: forms.Field) -> serializers.Field:
    """The strict JSON field for one field of a form."""
    required = field.required
    if name == "customer" and issubclass(form_class, _CUSTOMER_REQUIRED):
        required = True
    common: dict[str, Any] = {"required": required, "allow_null": not required}
    help_text = API_HELP.get(name, field.help_text)
    if help_text:
        common["help_text"] = str(help_text)
    if isinstance(field, forms.MultipleChoiceField):
        return JsonList(child=JsonChoice(choices_of(field)), **common)
    if isinstance(field, forms.ChoiceField):
        return JsonChoice(choices_of(field), allow_blank=not required, **common)
    if isinstance(field, ListField):
        if name == "allowed_ip_ranges":  # CreateRequestForm.clean: validation.cidr_errors
            item = JsonString(pattern=CIDR, message=lambda v: validation.cidr_errors([v]))
        else:
            item = JsonString(pattern=NON_BLANK)  # ListField drops blank items
        return JsonList(child=item, **common)
    if isinstance(field, forms.IntegerField):
        low, high = field.min_value, field.max_value
        return JsonInteger(
            min_value=low() if callable(low) else low,
            max_value=high() if callable(high) else high,
            **common,
        )
    if isinstance(field, forms.DateTimeField):
        return JsonDateTime(**common)
    assert isinstance(field, forms.CharField), (name, field)
    text: dict[str, Any] = {"max_length": field.max_length, "min_length": field.min_length}
    pattern = NON_BLANK if required else TEXT
    message: str | Callable[[str], list[str]] | None = None
    if name == "instance" and issubclass(form_class, CreateRequestForm):
        # CreateRequestForm.clean_instance: a new slug, as typed, that makes a GCP project id.
        low, high = _slug_lengths(settings.INSTANCE_PROJECT_PREFIX)
        pattern, message = SLUG, _slug_errors
        text = {"min_length": low, "max_length": min(high, field.max_length or high)}
    elif name == "zone":  # CreateRequestForm.clean_zone; empty: the default zone
        pattern, message = f"(?:{ZONE})?", "Give a GCP zone such as us-central1-f."
    elif name == "target_version":  # CreateRequestForm.clean_target_version, UpgradeRequestForm
        pattern = VERSION if required else f"(?:{VERSION})?"
        message = "Give a version such as 5.3.1."
    elif name == "person":  # AccessRequestForm.clean_person
        pattern, message = PERSON, "Give a username or an email address (name@example.com)."
    return JsonString(pattern=pattern, message=message, **text, **common)


def form_serializer(
    form_class: type[forms.Form], name: str, extra: Mapping[str, serializers.Field] | None = None
) -> type[serializers.Serializer]:
    """A serializer of strict JSON fields made from `form_class`'s fields (and `extra` first)."""
    fields: dict[str, Any] = dict(extra or {})
    for field_name, field in form_class.base_fields.items():
        fields[field_name] = _json_field(form_class, field_name, field)
    fields["__doc__"] = (form_class.__doc__ or "").strip() or None
    fields["__module__"] = __name__
    return type(name, (serializers.Serializer,), fields)


def filing_serializer(form_class: type[BaseRequestForm]) -> type[serializers.Serializer]:
    assert form_class.kind is not None
    kind = str(form_class.kind)  # Kind is a str enum: its plain value
    title = "".join(part.title() for part in kind.split("_"))
    discriminator = JsonChoice([kind], help_text=str(Kind(kind).label))
    return form_serializer(form_class, f"New{title}Request", {"kind": discriminator})


# The body of POST /api/v1/requests/ for each kind (a oneOf by `kind` in the schema).
FILING_SERIALIZERS: dict[str, type[serializers.Serializer]] = {
    str(kind): filing_serializer(form_class)
    for kind, form_class in FORMS.items()
    if kind is not None
}
ActionBodySerializer = form_serializer(ActionForm, "ActionBody")
NewCommentSerializer = form_serializer(CommentForm, "NewComment")


# `q` is at most this long (requests_app/search.py makes a tsquery of its words).
Q_MAX_LENGTH = 200


class RequestFiltersSerializer(serializers.Serializer):
    """The filters of GET /api/v1/requests/ and of the request list pages
    (requests_app/search.py applies them). They combine: a request must pass every one given."""

    q = JsonString(
        required=False,
        max_length=Q_MAX_LENGTH,
        help_text="Full-text search. Its words (runs of letters and digits; everything else "
        "separates them) must all be found, each as the start of a word, in the instance slug, "
        "the customer, the justification or the comments: `tyr` finds `tyrell`. Most relevant "
        "first: a match in the slug or customer ranks above one in the justification, which "
        "ranks above one in a comment; ties newest first. Blank, or without any word: no "
        "filter. (On SQLite, a local `make run`'s database, any part of a word matches and the "
        "order stays newest first.)",
    )
    customer = JsonString(
        required=False,
        help_text="Part of the customer's name, in any case: `tyr` finds `Tyrell Corp`. Blank: "
        "no filter.",
    )
    assignee = JsonString(
        required=False,
        help_text="Part of the assignee's username, in any case; requests nobody is assigned "
        "to never match. Blank: no filter.",
    )
    instance = JsonString(
        required=False, help_text="The instance slug, whole, in any case (empty matches none)."
    )
    state = JsonAnyCaseChoice(
        State.choices,
        required=False,
        help_text=f"The state, in any case: one of {', '.join(State.values)}.",
    )
    kind = JsonAnyCaseChoice(
        Kind.choices,
        required=False,
        help_text=f"The kind, in any case: one of {', '.join(Kind.values)}.",
    )
    category = JsonAnyCaseChoice(
        Category.choices,
        required=False,
        help_text="The category of the request's instance (or, for an access to a whole "
        f"category, that category), in any case: one of {', '.join(Category.values)}.",
    )
    external_id = JsonString(
        required=False,
        help_text="The id of a request imported from elsewhere, whole, in any case.",
    )
    breached = QueryBoolean(
        required=False,
        help_text="true: a timer of the request is breached (docs/sla.md); false: none is.",
    )
    at_risk = QueryBoolean(
        required=False,
        help_text="true: a timer is at risk (running, not breached, 75% of its target used); "
        "false: none is.",
    )


# -- what the API answers -----------------------------------------------------------------------

TIMER_STATUSES = ["pending", "running", "paused", "met", "breached", "cancelled"]


class TimerSerializer(serializers.Serializer):
    """One SLA clock (docs/sla.md)."""

    started_at = serializers.DateTimeField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    paused = serializers.BooleanField()
    elapsed_seconds = serializers.IntegerField()
    remaining_seconds = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(TIMER_STATUSES)
    at_risk = serializers.BooleanField()


class SlaSerializer(serializers.Serializer):
    """The request's clocks; null where its kind has no such target."""

    response = TimerSerializer(allow_null=True)
    resolution = TimerSerializer(allow_null=True)


# A ModelSerializer whose fields are built from the model once per class, then copied for each
# serializer (as DRF copies the declared ones): ModelSerializer.get_fields works them out of the
# model's fields on every instantiation, which was a tenth of the list API's time. The fields
# depend on the class alone (Meta and the declared fields), never on the instance or its
# context. No docstring: drf-spectacular would describe the serializers with it.
class FieldsBuiltOnce:
    def get_fields(self) -> dict[str, serializers.Field]:
        built = type(self).__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()  # type: ignore[misc]
            type.__setattr__(type(self), "_built_fields", built)
        return copy.deepcopy(built)


EVENT_FIELDS = ["at", "by", "action", "from_state", "to_state", "comment"]
# What an event's row gives, in EVENT_FIELDS' order (`by` as the username).
EVENT_COLUMNS = ["at", "by__username", "action", "from_state", "to_state", "comment"]


class EventList(serializers.ListSerializer):
    """A request's events as JSON, drawn without a serializer or a model per event: the list
    API draws 50 requests' histories a page (issue 16). Reads the rows the view loaded into the
    context's `events` (event_rows, `at` written already), else the request's (prefetched)
    events."""

    def get_attribute(self, instance: Any) -> Any:
        loaded = self.context.get("events")
        if loaded is not None:
            return loaded.get(instance.pk, [])
        return super().get_attribute(instance)

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):  # the related manager
            # The writer of `at`, made once for the page (it looks the time zone up).
            at = self.__dict__.get("_at")
            if at is None:
                at = self.__dict__["_at"] = iso_instants(self.child.fields["at"])  # type: ignore[union-attr]
            data = [
                (
                    at(e.at),
                    e.by.username if e.by_id else None,
                    *(getattr(e, f) for f in EVENT_FIELDS[2:]),
                )
                for e in data.all()
            ]
        # EVENT_FIELDS, in its order: a dict display is several times cheaper than dict(zip()).
        return [
            {
                "at": when,
                "by": by,
                "action": act,
                "from_state": old,
                "to_state": new,
                "comment": c,
            }
            for when, by, act, old, new, c in data
        ]


def iso_instants(field: serializers.DateTimeField) -> Callable[[datetime | None], str | None]:
    """`field.to_representation` for many values at the cost of one time zone lookup (DRF
    asks for the current time zone per value, which was a quarter of the list API's time):
    ISO 8601 in the current time zone, UTC written `Z`, as DRF writes it."""
    if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601:
        return cast(Callable[[datetime | None], str | None], field.to_representation)
    zone = field.timezone if getattr(field, "timezone", None) else field.default_timezone()

    def text(value: datetime | None) -> str | None:
        if not value:
            return None
        written = value.astimezone(zone).isoformat()
        return written[:-6] + "Z" if written.endswith("+00:00") else written

    return text


def iso_instant_sql(column: str, zone: str) -> tuple[str, list[str]]:
    """SQL with which PostgreSQL writes the instant `column` as iso_instants does in the time
    zone named `zone` (and its parameters): the local time, `.ffffff` unless the microseconds
    are 0, then the offset, `Z` for none and its seconds only when it has some."""
    local, utc = f"({column} AT TIME ZONE %s)", f"({column} AT TIME ZONE 'UTC')"
    # An interval's minutes and seconds carry its sign: write the size, the sign before it.
    ahead, behind = f"({local} - {utc})", f"({utc} - {local})"
    size = f"(CASE WHEN {local} < {utc} THEN {behind} ELSE {ahead} END)"
    sql = (
        f"replace(to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || "
        f"CASE WHEN {local} = {utc} THEN 'Z' ELSE "
        f"CASE WHEN {local} < {utc} THEN '-' ELSE '+' END || to_char({size}, 'HH24:MI') || "
        f"CASE WHEN date_part('second', {ahead}) = 0 THEN '' ELSE to_char({size}, ':SS') END "
        "END"
    )
    return sql, [zone] * sql.count("%s")


class IsoInstant(Func):
    """The instant `column` as the JSON writes it (iso_instants), written by PostgreSQL in the
    time zone named `zone`."""

    output_field = CharField()

    def __init__(self, column: str, zone: str) -> None:
        super().__init__(F(column))
        self.zone = zone

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.get_source_expressions()[0])
        assert not params, column  # a column, written several times
        return iso_instant_sql(column, self.zone)


def sql_zone(field: serializers.DateTimeField, using: str) -> str | None:
    """The name of the time zone in which `field` writes instants when PostgreSQL can write
    them as it does (ISO 8601 in a named zone, on PostgreSQL); None when it cannot."""
    if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601:
        return None
    if connections[using].vendor != "postgresql":
        return None
    zone = field.timezone if getattr(field, "timezone", None) else field.default_timezone()
    return zone.key if isinstance(zone, ZoneInfo) else None


@functools.cache
def _event_at() -> serializers.DateTimeField:
    field = EventSerializer().fields["at"]
    assert isinstance(field, serializers.DateTimeField), field
    return field


def event_rows(request_ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
    """The events of these requests, oldest first, as rows of EVENT_COLUMNS with `at` written
    as the JSON has it: one query. PostgreSQL writes the instants: reading each and writing it
    again was a tenth of the list API's time."""
    found: dict[int, list[tuple[Any, ...]]] = {pk: [] for pk in request_ids}
    events = Event.objects.filter(request_id__in=request_ids).order_by("request_id", "at", "id")
    field = _event_at()
    zone = sql_zone(field, events.db)
    if zone is not None:
        rows = events.annotate(at_text=IsoInstant("at", zone)).values_list(
            "request_id", "at_text", *EVENT_COLUMNS[1:]
        )
        for request_id, *row in rows:
            found[request_id].append(tuple(row))
        return found
    write = iso_instants(field)
    for request_id, at, *row in events.values_list("request_id", *EVENT_COLUMNS):
        found[request_id].append((write(at), *row))
    return found


class EventSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    by: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Event
        fields = EVENT_FIELDS
        read_only_fields = fields
        list_serializer_class = EventList


class StepSerializer(serializers.Serializer):
    """One step of a run (provisioning/outcomes.py)."""

    name = serializers.CharField(required=False)
    # A field named `label` shadows Field.label only for the type checker: DRF takes declared
    # fields out of the class.
    label = serializers.CharField(required=False)  # type: ignore[assignment]
    status = serializers.CharField(required=False)
    started_at = serializers.CharField(required=False, allow_null=True)
    finished_at = serializers.CharField(required=False, allow_null=True)


class PlanSummarySerializer(serializers.Serializer):
    """Resources the plan adds, changes and destroys; empty until the run is planned."""

    add = serializers.IntegerField(required=False)
    change = serializers.IntegerField(required=False)
    destroy = serializers.IntegerField(required=False)


# The run's JSON columns go out as stored; these only tell the schema their shape.
@extend_schema_field(PlanSummarySerializer)
class PlanSummaryField(serializers.JSONField):
    pass


@extend_schema_field(StepSerializer(many=True))
class StepsField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": {}})
class ObjectField(serializers.JSONField):
    pass


class RunSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    log_tail = serializers.SerializerMethodField()
    plan_summary = PlanSummaryField(read_only=True)
    steps = StepsField(read_only=True)
    outputs = ObjectField(read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "kind",
            "state",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "plan_summary",
            "plan_text",
            "steps",
            "error",
            "error_code",
            "workaround",
            "outputs",
            "log_tail",
        ]
        read_only_fields = fields

    def get_log_tail(self, obj: Run) -> str:
        return obj.log[-4000:]


# The columns of a run that its JSON reads (runs_for_many loads only these for the list).
RUN_COLUMNS = [name for name in RunSerializer.Meta.fields if name != "log_tail"] + ["log"]


class UsernameField(serializers.SlugRelatedField):
    """A person, as their username. Reads the context's `usernames` (id -> username, loaded
    once for a page) when the view gives it, instead of a joined user row per request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="username", read_only=True, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        names = self.context.get("usernames")
        if names is None:
            return super().get_attribute(instance)
        pk = getattr(instance, f"{self.source}_id")
        return None if pk is None else names[pk]

    def to_representation(self, value: Any) -> str:
        return value if isinstance(value, str) else super().to_representation(value)


def usernames_of(requests: list[Request]) -> dict[int, str]:
    """The usernames of the people these requests name (requester, assignee, granter): one
    query."""
    ids = {
        pk
        for r in requests
        for pk in (r.requested_by_id, r.assignee_id, r.granted_by_id)
        if pk is not None
    }
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


class PlannedRepresentation:
    """A serializer's `to_representation` by a plan made once per serializer: for each field,
    the function that reads and writes its value. The same values as DRF's loop over the
    fields (a test compares them), without its per-value generic work: the source walked and
    checked for callables, the time zone looked up for each instant. A list draws 50 requests
    of 35 fields each."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self.__dict__["_plan"] = [
                (field.field_name, _reader(self, field))
                for field in self._readable_fields  # type: ignore[attr-defined]
            ]
        return {name: read(instance) for name, read in plan}


def _reader(serializer: Any, field: serializers.Field) -> Callable[[Any], Any]:
    if isinstance(field, serializers.SerializerMethodField):
        return cast(Callable[[Any], Any], getattr(serializer, field.method_name))
    simple = len(field.source_attrs) == 1 and field.source != "*"
    if simple and isinstance(field, serializers.DateTimeField):
        write, attribute = iso_instants(field), field.source_attrs[0]
        return lambda instance: write(getattr(instance, attribute))
    if simple and type(field) in _PLAIN_FIELDS and not isinstance(field, serializers.RelatedField):
        attribute, write = field.source_attrs[0], field.to_representation

        def read(instance: Any) -> Any:
            value = getattr(instance, attribute)
            return None if value is None else write(value)

        return read

    def generic(instance: Any) -> Any:  # DRF's own steps
        value = field.get_attribute(instance)
        return None if value is None else field.to_representation(value)

    return generic


# Fields whose value is a plain attribute of the instance (no callable, no relation): read with
# getattr. Any other field goes through DRF's own steps.
_PLAIN_FIELDS = (
    serializers.CharField,
    serializers.ChoiceField,
    serializers.IntegerField,
    serializers.BooleanField,
    serializers.ListField,
    serializers.JSONField,
    serializers.EmailField,
    serializers.FloatField,
)


class RequestSerializer(FieldsBuiltOnce, PlannedRepresentation, serializers.ModelSerializer):
    customer = serializers.SerializerMethodField()
    instance = serializers.SerializerMethodField()
    # Blank but for access.
    scope = serializers.ChoiceField(AccessScope.choices, allow_blank=True, read_only=True)
    granted_by = UsernameField(allow_null=True)
    requested_by = UsernameField()
    assignee = UsernameField(allow_null=True)
    non_standard_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    # Blank but for create (read_only_fields would drop the blank choice from the schema).
    access = serializers.ChoiceField(Access.choices, allow_blank=True, read_only=True)
    allowed_ip_ranges = serializers.ListField(child=serializers.CharField(), read_only=True)
    due_at = serializers.DateTimeField(source="target_due_at", read_only=True, allow_null=True)
    sla = serializers.SerializerMethodField()
    events = EventSerializer(many=True, read_only=True)
    runs = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = Request
        fields = [
            "id",
            "kind",
            "state",
            "customer",
            "instance",
            "requested_by",
            "assignee",
            "standard",
            "non_standard_reasons",
            "external_id",
            "created_at",
            "updated_at",
            "justification",
            "machine_type",
            "zone",
            "access",
            "allowed_ip_ranges",
            "users",
            "repositories",
            "target_version",
            "release_published_at",
            "due_at",
            "category",
            "person",
            "scope",
            "expires_at",
            "granted_at",
            "granted_by",
            "sla",
            "events",
            "runs",
            "allowed_actions",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="The instance's slug (for `create`, the new one); null for an `access` "
            "to every instance of its category.",
        )
    )
    def get_instance(self, obj: Request) -> str | None:
        return obj.instance_slug or None

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="null for an `access` to every instance of its category.",
        )
    )
    def get_customer(self, obj: Request) -> str | None:
        return obj.customer or None

    @extend_schema_field(SlaSerializer)
    def get_sla(self, obj: Request) -> dict[str, Any]:
        # The calendar, the policies and the time zone, looked up once for a page of requests.
        found = self.__dict__.get("_sla_setup")
        if found is None:
            found = self.__dict__["_sla_setup"] = (*load(), timezone.get_current_timezone())
        return sla_json(obj, None, *found)

    @extend_schema_field(RunSerializer(many=True))
    def get_runs(self, obj: Request) -> list[Any]:
        found = self.context.get("runs")
        if found is None:
            # many=True makes a ListSerializer, whose data is a list; the stubs type it as one.
            return RunSerializer(runs.runs_for(obj.pk), many=True).data  # type: ignore[return-value]
        # A page's runs (the view's `runs`, per request): serialized at once, on first use.
        drawn = self.context.get("runs_json")
        if drawn is None:
            every = [run for items in found.values() for run in items]
            data = iter(RunSerializer(every, many=True).data)
            drawn = {pk: [next(data) for _ in items] for pk, items in found.items()}
            cast(dict[str, Any], self.context)["runs_json"] = drawn
        return drawn.get(obj.pk, [])

    @extend_schema_field(
        serializers.ListField(
            child=serializers.ChoiceField(list(RULES)),
            allow_null=True,
            help_text="What the caller may do now; null in lists (it costs queries per row).",
        )
    )
    def get_allowed_actions(self, obj: Request) -> list[str] | None:
        # Only on one request: working it out costs queries per request.
        if not self.context.get("detail"):
            return None
        return workflow.allowed_actions(self.context["request"].user, obj)


def _list_columns() -> list[str]:
    """The columns of a request that its JSON in a list reads: the serializer's fields that are
    columns (the people's keys: their usernames come from `usernames_of`), the instance's slug
    as the request keeps it, and what the timers read. Not the sweep's marks, the due instants
    or the instance key: the list loads only these (requests_app/loading.py)."""
    columns = {field.name for field in Request._meta.concrete_fields} - {"id", "instance"}
    fields = RequestSerializer.Meta.fields
    return [
        *(name for name in fields if name in columns),
        "instance_slug",
        *(name for name in TIMER_COLUMNS if name not in fields),
    ]


LIST_COLUMNS = _list_columns()


class DriftSerializer(serializers.Serializer):
    """What the last verification found that disagrees with the portal's record."""

    found_at = serializers.DateTimeField()
    problems = serializers.ListField(child=serializers.CharField())
    compute = serializers.DictField(required=False, help_text="What Compute showed.")
    plan = serializers.DictField(
        required=False, help_text="What a terraform plan of the recorded settings would change."
    )


class InstanceSerializer(serializers.ModelSerializer):
    allowed_ip_ranges = serializers.ListField(child=serializers.CharField(), read_only=True)
    drift = DriftSerializer(
        read_only=True,
        allow_null=True,
        help_text="null when the last verification agreed with this record.",
    )

    class Meta:
        model = Instance
        fields = [
            "slug",
            "customer",
            "category",
            "status",
            "gcp_project",
            "zone",
            "machine_type",
            "version",
            "access",
            "allowed_ip_ranges",
            "executors_enabled",
            "url",
            "users",
            "repositories",
            "created_at",
            "drift",
            "verified_at",
        ]
        read_only_fields = fields


class InstanceFiltersSerializer(serializers.Serializer):
    """The filters of GET /api/v1/instances/."""

    category = JsonAnyCaseChoice(
        Category.choices,
        required=False,
        help_text=f"The category, in any case: one of {', '.join(Category.values)}.",
    )


class AccessFiltersSerializer(serializers.Serializer):
    """The filters of GET /api/v1/access/. They combine."""

    category = JsonAnyCaseChoice(
        Category.choices,
        required=False,
        help_text=f"The category, in any case: one of {', '.join(Category.values)}.",
    )
    scope = JsonAnyCaseChoice(
        AccessScope.choices,
        required=False,
        help_text=f"What it grants, in any case: one of {', '.join(AccessScope.values)}.",
    )
    person = JsonString(
        required=False,
        help_text="Part of the person's username or email address, in any case. Blank: no filter.",
    )
    expired = QueryBoolean(
        required=False,
        help_text="true: the grants that have ended instead (the latest to end first); "
        "false or left out: the grants in force.",
    )


class AccessGrantSerializer(serializers.ModelSerializer):
    """One grant: an access request that DevOps completed."""

    request = serializers.IntegerField(source="pk", read_only=True, help_text="The request.")
    instance = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    requested_by: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    granted_by: "serializers.SlugRelatedField[Any]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    days_left = serializers.SerializerMethodField()

    class Meta:
        model = Request
        fields = [
            "request",
            "person",
            "scope",
            "category",
            "instance",
            "customer",
            "requested_by",
            "granted_by",
            "granted_at",
            "expires_at",
            "days_left",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="null: every instance of the category.")
    )
    def get_instance(self, obj: Request) -> str | None:
        return obj.instance_slug or None

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="null: every instance of the category.")
    )
    def get_customer(self, obj: Request) -> str | None:
        return obj.customer or None

    @extend_schema_field(
        serializers.IntegerField(
            help_text="Days until it ends, rounded up (1 on its last day); 0 or less once "
            "it has ended."
        )
    )
    def get_days_left(self, obj: Request) -> int:
        return access.days_left(obj, self.context["now"])
