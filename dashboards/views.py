"""The managers' SLA dashboard, its CSV export and JSON summary, the DevOps board and the fleet.

Every figure comes from `figures.compute`; the views only choose what to show. Each page
runs a fixed number of queries whatever the number of requests (the tests count them).
"""

import csv
from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request as ApiRequest
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboards import charts, figures, fleet, incident_figures
from incidents.models import Severity
from portal import roles
from provisioning.models import Category
from releases import compliance
from requests_app import history
from requests_app.api import CanRead
from requests_app.api import errors as api_errors
from requests_app.models import Kind, Request, State
from requests_app.serializers import (
    InstanceFiltersSerializer,
    JsonChoice,
    JsonString,
    check_json,
    choices_of,
    error_messages,
    max_length_of,
    moment_pattern,
)
from requests_app.sla import calendar as sla_calendar
from requests_app.sla import policies, timers
from requests_app.sla.calendar import WORKING, WorkingCalendar
from requests_app.sla.policies import Target
from requests_app.sla.status import at_risk_q, breached_q, timer_json
from requests_app.templatetags.sla_tags import timer_html
from requests_app.views import require_reader, with_timers
from requests_app.workflow import Invalid

ATTENTION_ROWS = 50
BOARD_ROWS = 50
# Rows of the CSV export sent as one chunk of the streamed response (constant memory).
CSV_CHUNK_ROWS = 500
BOARD_COLUMNS = [
    (State.QUEUED, "Queued"),
    (State.IN_PROGRESS, "In progress"),
    (State.WAITING_ON_CUSTOMER, "Waiting on customer"),
]
CARD_FIELDS = [
    "id",
    "kind",
    "state",
    "customer",
    "instance_slug",
    "category",
    "person",
    "scope",
    "standard",
    "created_at",
    "target_due_at",
    "assignee__username",
    *timers.TIMER_FIELDS,
]
# What breaches soonest first.
BY_DUE = (
    F("resolution_due_at").asc(nulls_last=True),
    F("response_due_at").asc(nulls_last=True),
    F("created_at").asc(),
    F("id").asc(),
)


# -- the SLA dashboard -------------------------------------------------------------------------


def sla_dashboard(request: HttpRequest) -> HttpResponse:
    require_reader(request.user)
    now = timezone.now()
    form = figures.PeriodForm(request.GET, now=now)
    context = {
        "form": form,
        "kinds": Kind.choices,
        "categories": Category.choices,
        "definitions": DEFINITIONS,
        "sla_timezone": settings.SLA_TIMEZONE,
    }
    if form.is_valid():
        period = form.period()
        result = figures.compute(period, now)
        attention = (
            figures.period_requests(period)
            .filter(ended_at__isnull=True)
            .filter(at_risk_q(now) | breached_q(now))
            .with_related()
            .order_by(*BY_DUE)[:ATTENTION_ROWS]
        )
        labels = dict(Kind.choices)
        context.update(
            period=period,
            figures=result,
            kind_rows=[
                {"kind": kind, "label": labels[kind], "figures": tally.as_json()}
                for kind, tally in result.kinds.items()
            ],
            total=result.total.as_json(),
            attention=with_timers(attention),
            trend_chart=charts.trend_chart(result.weeks),
            load_chart=charts.load_chart(result.engineers),
            query=request.GET.urlencode(),
            **_incident_rows(incident_figures.compute(period, now)),
            incident_definitions=INCIDENT_DEFINITIONS,
        )
    return render(request, "dashboards/sla.html", context, status=200 if form.is_valid() else 400)


def _incident_rows(result: dict[str, incident_figures.IncidentTally]) -> dict[str, Any]:
    rows = [{"key": key, "figures": tally.as_json()} for key, tally in result.items()]
    return {"incident_rows": rows[:-1], "incident_total": rows[-1]}


INCIDENT_DEFINITIONS = [
    (
        "Which incidents",
        "Those opened within the period (both clocks start then); with a customer, those "
        "that affect one of its instances. The kind filter does not apply to incidents.",
    ),
    (
        "Time to acknowledge / resolve",
        "Wall-clock time from opening to the acknowledgement / the resolution, over the "
        "incidents acknowledged / resolved so far.",
    ),
    (
        "Within target",
        "Met timers / (met + breached), by each severity's targets (sev3 resolution in "
        "working days). A timer still running and not breached is not counted.",
    ),
]


DEFINITIONS = [
    (
        "Which requests",
        "Those whose SLA clock started within the period: when they entered the queue (an "
        "upgrade's clock starts at the release). Requests never queued are not counted.",
    ),
    (
        "Met %",
        "Met timers / (met + breached). Met: stopped no later than due. Breached: stopped "
        "late, running past due, or paused after due. Running, paused and cancelled timers "
        "are not decided yet and not counted.",
    ),
    ("Response time", "From the start of the clock to the first pick-up or DevOps comment."),
    (
        "Resolution time",
        "Working days (Monday to Friday, not holidays or closures, pauses while waiting on "
        "the customer cut out) from the start of the clock to done, for every kind.",
    ),
    (
        "At risk / breached",
        "The period's requests still open now with a timer at 75% or more of its target / "
        "past it. A request with one of each counts in both.",
    ),
    ("Median / p90", "The middle and the 90th-percentile value, interpolated between rows."),
]


class _Echo:
    def write(self, value: str) -> str:
        return value


def sla_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The requests behind the dashboard's figures, with their timers, as CSV."""
    require_reader(request.user)
    form = figures.PeriodForm(request.GET)
    if not form.is_valid():
        return render(
            request,
            "dashboards/sla.html",
            {
                "form": form,
                "kinds": Kind.choices,
                "categories": Category.choices,
                "definitions": DEFINITIONS,
            },
            status=400,
        )
    period = form.period()
    name = f"sla-{period.first_day.isoformat()}-to-{period.last_day.isoformat()}.csv"
    if connection.vendor == "postgresql":
        # PostgreSQL writes the file itself (COPY): several times the rate of csv.writer.
        response = StreamingHttpResponse(
            figures.csv_copy(period, form.now), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        # A chunk per CSV_CHUNK_ROWS rows, not per row: each chunk the response sends costs
        # (encoding, charset lookup), which per row was a quarter of the export's time.
        chunk = [writer.writerow(figures.CSV_COLUMNS)]
        for row in figures.csv_rows(period, form.now):
            chunk.append(writer.writerow(row))
            if len(chunk) >= CSV_CHUNK_ROWS:
                yield "".join(chunk)
                chunk = []
        if chunk:
            yield "".join(chunk)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


_FIGURES = inline_serializer(
    "SlaKindFigures",
    {
        "count": serializers.IntegerField(),
        "response_met_pct": serializers.FloatField(allow_null=True),
        "resolution_met_pct": serializers.FloatField(allow_null=True),
        "median_response_seconds": serializers.IntegerField(allow_null=True),
        "median_resolution_working_days": serializers.FloatField(allow_null=True),
        "p90_response_seconds": serializers.IntegerField(allow_null=True),
        "p90_resolution_working_days": serializers.FloatField(allow_null=True),
        "at_risk": serializers.IntegerField(),
        "breached": serializers.IntegerField(),
    },
)


class IncidentFiguresSerializer(serializers.Serializer):
    """The figures of one severity's incidents (dashboards/incident_figures.py)."""

    count = serializers.IntegerField(help_text="Incidents opened in the period.")
    open = serializers.IntegerField(help_text="Of them, not resolved now.")
    acknowledge_within_target_pct = serializers.FloatField(allow_null=True)
    resolution_within_target_pct = serializers.FloatField(allow_null=True)
    median_acknowledge_seconds = serializers.IntegerField(allow_null=True)
    p90_acknowledge_seconds = serializers.IntegerField(allow_null=True)
    median_resolution_seconds = serializers.IntegerField(allow_null=True)
    p90_resolution_seconds = serializers.IntegerField(allow_null=True)


SUMMARY_SCHEMA = inline_serializer(
    "SlaSummary",
    {
        "since": serializers.DateTimeField(),
        "until": serializers.DateTimeField(),
        "kind": serializers.CharField(allow_null=True),
        "customer": serializers.CharField(allow_null=True),
        "category": serializers.ChoiceField(Category.choices, allow_null=True),
        "kinds": serializers.DictField(child=_FIGURES),
        "total": _FIGURES,
        "incidents": inline_serializer(
            "IncidentSummary",
            {key: IncidentFiguresSerializer() for key in [*Severity.values, "total"]},
            help_text="Incidents opened in the period, per severity and in total (the kind "
            "filter does not apply to them).",
        ),
        "maintenance": inline_serializer(
            "Maintenance",
            {
                "latest_version": serializers.CharField(allow_null=True),
                "active_instances": serializers.IntegerField(),
                "on_latest": serializers.IntegerField(),
                "releases": inline_serializer(
                    "ReleaseCompliance",
                    {
                        "version": serializers.CharField(),
                        "kind": serializers.CharField(),
                        "published_at": serializers.DateTimeField(),
                        "due_at": serializers.DateTimeField(),
                        "upgraded": serializers.IntegerField(),
                        "total": serializers.IntegerField(),
                        "within_sla_pct": serializers.FloatField(allow_null=True),
                    },
                    many=True,
                ),
            },
        ),
    },
)


# since/until as `figures.PeriodForm` reads them, in the years of the SLA calendar.
_MOMENT = f"(?:{moment_pattern(sla_calendar.FIRST_YEAR, sla_calendar.LAST_YEAR)})?"  # "": default
_MOMENT_MESSAGE = "Give an ISO 8601 date (2026-03-31) or date-time (2026-03-31T09:00:00-07:00)."


class SlaSummaryQuerySerializer(serializers.Serializer):
    """The query of `GET /api/v1/sla/summary/`, from `figures.PeriodForm`'s fields."""

    since = JsonString(
        pattern=_MOMENT,
        required=False,
        message=_MOMENT_MESSAGE,
        help_text="ISO date (that day's start) or date-time; naive: the SLA timezone. Default: "
        f"{figures.DEFAULT_DAYS} days before `until`.",
    )
    until = JsonString(
        pattern=_MOMENT,
        required=False,
        message=_MOMENT_MESSAGE,
        help_text="ISO date (that day included) or date-time (excluded); after `since`. "
        "Default: the end of today.",
    )
    kind = JsonChoice(
        choices_of(figures.PeriodForm.base_fields["kind"]), allow_blank=True, required=False
    )
    customer = JsonString(
        max_length=max_length_of(figures.PeriodForm.base_fields["customer"]),
        required=False,
        help_text="Exact, any case.",
    )
    category = JsonChoice(
        choices_of(figures.PeriodForm.base_fields["category"]),
        allow_blank=True,
        required=False,
        help_text="Only the requests of this category's instances (empty: every category).",
    )


class SlaSummaryView(APIView):
    """`GET /api/v1/sla/summary/` (docs/api.md)."""

    permission_classes = [CanRead]

    @extend_schema(
        summary="SLA figures per request kind for a period",
        description="\n\n".join(f"**{term}**: {text}" for term, text in DEFINITIONS),
        parameters=[SlaSummaryQuerySerializer],
        responses={200: SUMMARY_SCHEMA, **api_errors(400)},
    )
    def get(self, request: ApiRequest) -> Response:
        # The query as the schema says, then the form's rules (the period's order and range).
        try:
            check_json(SlaSummaryQuerySerializer, request.query_params)
        except ValidationError as exc:
            raise Invalid("The parameters have errors.", error_messages(exc.detail)) from None
        form = figures.PeriodForm(request.query_params)
        if not form.is_valid():
            raise Invalid("The parameters have errors.", form.error_json())
        period = form.period()
        result = figures.compute(period, form.now)
        incidents = incident_figures.compute(period, form.now)
        return Response(
            {
                **figures.summary_json(result),
                "incidents": incident_figures.summary_json(incidents),
                "maintenance": compliance.maintenance(form.now),
            }
        )


# -- the DevOps board --------------------------------------------------------------------------


def board(request: HttpRequest) -> HttpResponse:
    if not roles.has_role(request.user, roles.DEVOPS, roles.MANAGERS):
        raise PermissionDenied("The board is for DevOps and Managers.")
    now = timezone.now()
    states = [state for state, _ in BOARD_COLUMNS]
    counts = _column_counts(states)
    # The most urgent cards of each column in one query, with only what a card shows (the
    # window runs over every open request, so narrow rows keep it quick).
    ranked = (
        Request.objects.filter(state__in=states)
        .annotate(rank=Window(RowNumber(), partition_by=F("state"), order_by=BY_DUE))
        .filter(rank__lte=BOARD_ROWS)
        .select_related("assignee")
        .only(*CARD_FIELDS)
        .order_by("state", *BY_DUE)
    )
    cards: dict[str, list[dict[str, Any]]] = {state: [] for state in states}
    rows = list(ranked)
    statuses = history.run_statuses(row.pk for row in rows)  # one query for every card
    for row in rows:
        cards[row.state].append({**_card(row, now), "run_status": statuses.get(row.pk)})
    columns = [
        {"state": state, "label": label, "count": counts.get(state, 0), "cards": cards[state]}
        for state, label in BOARD_COLUMNS
    ]
    calendar = policies.get_calendar()
    working_now = calendar.is_working_time(now)
    context = {
        "columns": columns,
        "working_now": working_now,
        "work_left": int(_working_stretch_left(calendar, now)) if working_now else 0,
    }
    return render(request, "dashboards/board.html", context)


def _column_counts(states: Sequence[str]) -> dict[str, int]:
    rows = (
        Request.objects.filter(state__in=states).order_by().values("state").annotate(n=Count("pk"))
    )
    return {row["state"]: row["n"] for row in rows}


def _card(row: Request, now: datetime) -> dict[str, Any]:
    timers: list[SafeString] = []
    for which, label in ((policies.RESPONSE, "Response"), (policies.RESOLUTION, "Resolution")):
        timer = timer_json(row, which, now)
        if timer is not None:
            target = policies.target_for(row, which)
            if target is not None:  # None only if the policies were reloaded meanwhile
                timers.append(_live_timer(timer, label, target))
    return {"request": row, "timers": mark_safe("".join(timers))}  # built with format_html


def _live_timer(timer: dict[str, Any], label: str, target: Target) -> SafeString:
    """One timer bar of the board, with what board.js needs to count it down: running clocks
    count down on the page; breached ones count their overdue time up."""
    live = (
        not timer["paused"]
        and timer["stopped_at"] is None
        and timer["status"] in ("running", "breached")
    )
    return timer_html(
        timer, label, target.mode == WORKING, target_seconds=target.seconds, live=live
    )


def _working_stretch_left(calendar: WorkingCalendar, now: datetime) -> float:
    """Seconds from `now` to the end of the working time that is running now (the next local
    midnight that starts a day off)."""
    day = now.astimezone(calendar.tz).date() + timedelta(days=1)
    while calendar.is_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=calendar.tz).timestamp() - now.timestamp()


# -- the fleet ---------------------------------------------------------------------------------


def fleet_page(request: HttpRequest) -> HttpResponse:
    """The fleet, or one category of it (`?category=`, as GET /api/v1/instances/ takes it)."""
    require_reader(request.user)
    given = request.GET.get("category", "").strip()
    try:
        category = check_json(InstanceFiltersSerializer, {"category": given} if given else {})
    except ValidationError as exc:
        return render(
            request,
            "dashboards/fleet.html",
            {"categories": Category.choices, "filter_errors": error_messages(exc.detail)},
            status=400,
        )
    rows, latest, totals, page = fleet.fleet(category.get("category", ""), request.GET.get("page"))
    context = {
        "categories": Category.choices,
        "category": category.get("category", ""),
        "rows": rows,
        "rows_html": fleet.rows_html(rows),
        "page": page,
        "latest": latest,
        "totals": totals,
        "storage_usd": fleet.STORAGE_USD,
        "network_usd": fleet.NETWORK_USD,
        "snapshot_usd": fleet.SNAPSHOT_USD,
    }
    return render(request, "dashboards/fleet.html", context)
