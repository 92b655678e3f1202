from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import django_rq
from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from requests_app import notifications
from requests_app.models import Closure, Comment, Event, Notification, Request, SlaPolicy
from requests_app.sla import policies

RECOMPUTE_JOB = "requests_app.jobs.recompute_sla_timers"


def _recompute_after_commit(request: HttpRequest) -> None:
    """Policy and closure changes move every open timer: recompute them in a job."""
    policies.invalidate_cache()
    transaction.on_commit(lambda: django_rq.get_queue("default").enqueue(RECOMPUTE_JOB))
    messages.info(request, "Open SLA timers are being recomputed.")


class RecomputingAdmin(admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _recompute_after_commit(request)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        _recompute_after_commit(request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        _recompute_after_commit(request)


# -- SLA policies: a number and a unit per target ------------------------------------------------
# The model keeps a DurationField and a mode per target (what the timers read); people think in
# "24 hours" and "15 working days", not "15 00:00:00". The form converts both ways.

HOURS, CALENDAR_DAYS, WORKING_DAYS = "hours", "calendar_days", "working_days"
TARGET_DATE = SlaPolicy.Mode.TARGET_DATE.value
UNITS = [(HOURS, "hours"), (CALENDAR_DAYS, "calendar days"), (WORKING_DAYS, "working days")]
# Only a resolution may run until a target date (the model's resolution_mode choices).
RESOLUTION_UNITS = [*UNITS, (TARGET_DATE, "until the target date DevOps sets")]
UNIT_SECONDS = {HOURS: 3600, CALENDAR_DAYS: 86400, WORKING_DAYS: 86400}
MODE_OF_UNIT = {
    HOURS: SlaPolicy.Mode.CALENDAR,
    CALENDAR_DAYS: SlaPolicy.Mode.CALENDAR,
    WORKING_DAYS: SlaPolicy.Mode.WORKING,
    TARGET_DATE: SlaPolicy.Mode.TARGET_DATE,
}
# Six decimals: a stored target of whole seconds comes back to the same second.
PLACES = 6


def number_and_unit(target: timedelta | None, mode: str) -> tuple[Decimal | None, str]:
    """A stored target as the form shows it: working time in working days; calendar time in
    calendar days when it is whole days (two or more), else in hours."""
    if mode == TARGET_DATE:
        return None, TARGET_DATE
    if mode == SlaPolicy.Mode.WORKING:
        unit = WORKING_DAYS
    elif target and target >= timedelta(days=2) and not target % timedelta(days=1):
        unit = CALENDAR_DAYS
    else:
        unit = HOURS
    if target is None:
        return None, unit
    seconds = Decimal(target // timedelta(microseconds=1)) / 1_000_000
    number = (seconds / UNIT_SECONDS[unit]).quantize(Decimal(1).scaleb(-PLACES))
    # 15.000000 shows as 15, 1.500000 as 1.5 (normalize alone would write 100 as 1E+2).
    return Decimal(f"{number.normalize():f}"), unit


def target_and_mode(number: Decimal | None, unit: str) -> tuple[timedelta | None, str]:
    """What the form's number and unit store: the target and its mode."""
    mode = MODE_OF_UNIT[unit]
    if number is None or unit == TARGET_DATE:
        return None, mode
    return timedelta(seconds=round(number * UNIT_SECONDS[unit])), mode


def describe_target(target: timedelta | None, mode: str) -> str:
    number, unit = number_and_unit(target, mode)
    if unit == TARGET_DATE:
        return "until the target date"
    if number is None:
        return "none"
    label = dict(UNITS)[unit]
    return f"{number} {label[:-1] if number == 1 else label}"


def target_field(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=12 + PLACES,
        decimal_places=PLACES,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )


class SlaPolicyForm(forms.ModelForm):
    response_target_number = target_field("Response target")
    response_target_unit = forms.ChoiceField(label="in", choices=UNITS)
    resolution_target_number = target_field("Resolution target")
    resolution_target_unit = forms.ChoiceField(label="in", choices=RESOLUTION_UNITS)

    class Meta:
        model = SlaPolicy
        fields = ["kind"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policy = self.instance
        for which in ("response", "resolution"):
            target, mode = getattr(policy, f"{which}_target"), getattr(policy, f"{which}_mode")
            number, unit = number_and_unit(target, mode)
            self.initial.setdefault(f"{which}_target_number", number)
            self.initial.setdefault(f"{which}_target_unit", unit)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        for which in ("response", "resolution"):
            number_field, unit_field = f"{which}_target_number", f"{which}_target_unit"
            number, unit = cleaned.get(number_field), cleaned.get(unit_field)
            if number_field in self.errors or unit is None:
                continue
            if number is not None and number <= 0:
                self.add_error(number_field, "Give a positive number (or leave it empty).")
            elif unit == TARGET_DATE and number is not None:
                self.add_error(
                    number_field,
                    "Leave it empty: the target date DevOps sets is the target.",
                )
            elif which == "resolution" and unit != TARGET_DATE and number is None:
                self.add_error(
                    number_field,
                    f"Give a number of {dict(UNITS)[unit]}, or choose 'until the target date'.",
                )
            elif number is not None and target_and_mode(number, unit)[0] == timedelta(0):
                self.add_error(number_field, "That is less than a second.")
            else:
                target, mode = target_and_mode(number, unit)
                setattr(self.instance, f"{which}_target", target)
                setattr(self.instance, f"{which}_mode", mode)
        return cleaned


@admin.register(SlaPolicy)
class SlaPolicyAdmin(RecomputingAdmin):
    form = SlaPolicyForm
    fieldsets = [
        (None, {"fields": ["kind"]}),
        (
            "Response",
            {
                "fields": [("response_target_number", "response_target_unit")],
                "description": "From queued to the first pick-up or DevOps comment. "
                "Empty: no response timer (as for upgrades).",
            },
        ),
        (
            "Resolution",
            {
                "fields": [("resolution_target_number", "resolution_target_unit")],
                "description": "From queued to done, paused while waiting on the customer. "
                "N working days are N x 24 h of working time. Empty only with 'until the "
                "target date'.",
            },
        ),
    ]
    list_display = ["kind", "response", "resolution", "updated_at"]

    @admin.display(description="response target")
    def response(self, policy: SlaPolicy) -> str:
        return describe_target(policy.response_target, policy.response_mode)

    @admin.display(description="resolution target")
    def resolution(self, policy: SlaPolicy) -> str:
        return describe_target(policy.resolution_target, policy.resolution_mode)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per kind, made by a migration

    def has_delete_permission(self, request: HttpRequest, obj: SlaPolicy | None = None) -> bool:
        return False


@admin.register(Closure)
class ClosureAdmin(RecomputingAdmin):
    list_display = ["date", "reason"]
    ordering = ["-date"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is append-only: the admin shows it and changes none of it. Every change goes
    through the workflow, which writes the history along with it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    can_delete = False
    readonly_fields = ["at", "by", "action", "from_state", "to_state", "comment"]
    fields = [*readonly_fields]

    def has_add_permission(self, request: HttpRequest, obj: Request | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Request | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Request | None = None) -> bool:
        return False


@admin.register(Request)
class RequestAdmin(ReadOnlyAdmin):
    """Read-only, and never deleted: a request's events, comments, approvals and runs are its
    history (deleting it would cascade to them)."""

    list_display = [
        "id",
        "kind",
        "state",
        "customer",
        "instance_slug",
        "requested_by",
        "created_at",
    ]
    list_filter = ["kind", "state"]
    search_fields = ["customer", "instance_slug", "external_id"]
    inlines = [EventInline]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "at", "by", "action", "from_state", "to_state"]
    list_filter = ["action"]
    list_select_related = ["request", "by"]
    search_fields = ["request__id", "by__username"]
    raw_id_fields = ["request", "by"]


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "author", "created_at"]
    list_select_related = ["request", "author"]
    search_fields = ["request__id", "author__username", "body"]
    raw_id_fields = ["request", "author", "event"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """Read-only, with one action: send failed notifications again."""

    list_display = ["id", "topic", "channel", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "channel", "topic"]
    raw_id_fields = ["request", "event"]
    actions = ["retry"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # The admin's change form stays off; sending again is what "change" allows here.
        return request.user.has_perm("requests_app.change_notification")

    @admin.action(description="Send the selected failed notifications again", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        with transaction.atomic():
            again = list(
                queryset.filter(status=Notification.Status.FAILED)
                .select_for_update()
                .values_list("pk", flat=True)
            )
            Notification.objects.filter(pk__in=again).update(
                status=Notification.Status.PENDING, attempts=0
            )
            for pk in again:
                transaction.on_commit(partial(notifications.enqueue, pk))
        skipped = queryset.count() - len(again)
        messages.info(
            request,
            f"{len(again)} notification(s) queued to be sent again"
            + (f"; {skipped} not failed, left alone." if skipped else "."),
        )
