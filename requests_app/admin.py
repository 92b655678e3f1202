from typing import Any

import django_rq
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

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


@admin.register(SlaPolicy)
class SlaPolicyAdmin(RecomputingAdmin):
    list_display = [
        "kind",
        "response_target",
        "response_mode",
        "resolution_target",
        "resolution_mode",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per kind, made by a migration

    def has_delete_permission(self, request: HttpRequest, obj: SlaPolicy | None = None) -> bool:
        return False


@admin.register(Closure)
class ClosureAdmin(RecomputingAdmin):
    list_display = ["date", "reason"]
    ordering = ["-date"]


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    can_delete = False
    readonly_fields = ["at", "by", "action", "from_state", "to_state", "comment"]
    fields = [*readonly_fields]

    def has_add_permission(self, request: HttpRequest, obj: Request | None = None) -> bool:
        return False


@admin.register(Request)
class RequestAdmin(admin.ModelAdmin):
    """Read-only: every change goes through the workflow, so history stays whole."""

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

    def has_change_permission(self, request: HttpRequest, obj: Request | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "topic", "channel", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "channel", "topic"]

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


admin.site.register(Comment)
