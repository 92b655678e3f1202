from functools import partial
from typing import Any

import django_rq
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
