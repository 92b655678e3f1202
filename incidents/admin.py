from datetime import timedelta
from decimal import Decimal
from typing import Any

import django_rq
from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpRequest

from incidents.models import Incident, IncidentEvent, IncidentPolicy
from requests_app.admin import (
    UNITS,
    describe_target,
    number_and_unit,
    target_and_mode,
    target_field,
)
from requests_app.sla import policies as sla_policies

RECOMPUTE_JOB = "incidents.jobs.recompute_incident_timers"
# Incident targets are often minutes (sev1: 15): a unit of their own, before the request
# policies' hours, calendar days and working days.
MINUTES = "minutes"
INCIDENT_UNITS = [(MINUTES, "minutes"), *UNITS]


def as_number_and_unit(target: timedelta | None, mode: str) -> tuple[Decimal | None, str]:
    """Under an hour of calendar time, in minutes; else as the request policies show it."""
    if target is not None and mode == "calendar" and target < timedelta(hours=1):
        minutes = Decimal(target.total_seconds()) / 60
        return Decimal(f"{minutes.normalize():f}"), MINUTES
    return number_and_unit(target, mode)


def as_target_and_mode(number: Decimal, unit: str) -> tuple[timedelta | None, str]:
    if unit == MINUTES:
        return timedelta(seconds=round(number * 60)), "calendar"
    return target_and_mode(number, unit)


def describe(target: timedelta, mode: str) -> str:
    number, unit = as_number_and_unit(target, mode)
    if unit == MINUTES:
        return f"{number} minute{'' if number == 1 else 's'}"
    return describe_target(target, mode)


class IncidentPolicyForm(forms.ModelForm):
    """A number and a unit per target, as the request policies' form (requests_app/admin.py)."""

    acknowledge_target_number = target_field("Acknowledge target")
    acknowledge_target_unit = forms.ChoiceField(label="in", choices=INCIDENT_UNITS)
    resolution_target_number = target_field("Resolution target")
    resolution_target_unit = forms.ChoiceField(label="in", choices=INCIDENT_UNITS)

    class Meta:
        model = IncidentPolicy
        fields = ["severity"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for which in ("acknowledge", "resolution"):
            target = getattr(self.instance, f"{which}_target", None)
            number, unit = as_number_and_unit(target, getattr(self.instance, f"{which}_mode"))
            self.initial.setdefault(f"{which}_target_number", number)
            self.initial.setdefault(f"{which}_target_unit", unit)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean returns cleaned_data
        for which in ("acknowledge", "resolution"):
            number_field = f"{which}_target_number"
            number, unit = cleaned.get(number_field), cleaned.get(f"{which}_target_unit")
            if number_field in self.errors or unit is None:
                continue
            if number is None or number <= 0:
                self.add_error(number_field, "Give a positive number.")
                continue
            target, mode = as_target_and_mode(number, unit)
            if not target:
                self.add_error(number_field, "That is less than a second.")
                continue
            setattr(self.instance, f"{which}_target", target)
            setattr(self.instance, f"{which}_mode", mode)
        return cleaned


@admin.register(IncidentPolicy)
class IncidentPolicyAdmin(admin.ModelAdmin):
    form = IncidentPolicyForm
    fieldsets = [
        (None, {"fields": ["severity"]}),
        (
            "Acknowledge",
            {
                "fields": [("acknowledge_target_number", "acknowledge_target_unit")],
                "description": "From the opening of the incident to its acknowledgement.",
            },
        ),
        (
            "Resolution",
            {
                "fields": [("resolution_target_number", "resolution_target_unit")],
                "description": "From the opening to the resolution. N working days are "
                "N x 24 h of working time (Monday to Friday, not holidays or closures).",
            },
        ),
    ]
    list_display = ["severity", "acknowledge", "resolution", "updated_at"]

    @admin.display(description="acknowledge target")
    def acknowledge(self, policy: IncidentPolicy) -> str:
        return describe(policy.acknowledge_target, policy.acknowledge_mode)

    @admin.display(description="resolution target")
    def resolution(self, policy: IncidentPolicy) -> str:
        return describe(policy.resolution_target, policy.resolution_mode)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # The running timers move to the new targets, in a job.
        sla_policies.invalidate_cache()
        transaction.on_commit(lambda: django_rq.get_queue("default").enqueue(RECOMPUTE_JOB))
        messages.info(request, "Running incident timers are being recomputed.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per severity, made by a migration

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IncidentEventInline(admin.TabularInline):
    model = IncidentEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "by", "action", "from_state", "to_state", "body"]
    fields = ["at", "by", "action", "from_state", "to_state", "body"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Read-only: incidents change through their pages and API, which keep the timeline."""

    list_display = ["id", "title", "severity", "state", "commander", "created_at"]
    list_filter = ["severity", "state"]
    search_fields = ["title"]
    inlines = [IncidentEventInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
