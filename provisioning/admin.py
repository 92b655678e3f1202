"""Instances and runs, shown and never edited: `provisioning.instances` is the one place that
creates or updates an Instance row, and every change of a run's state is a method of `Run`.
Runs are history (a request's provisioning record), so nothing here deletes them either."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from provisioning.models import Instance, Run


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = [
        "slug",
        "customer",
        "category",
        "status",
        "version",
        "machine_type",
        "executors_enabled",
    ]
    list_filter = ["status", "category", "machine_type"]
    search_fields = ["slug", "customer"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "instance", "request_id", "kind", "state", "created_at", "finished_at"]
    list_filter = ["state", "kind"]
    list_select_related = ["instance"]
    search_fields = ["instance__slug", "request_id"]
    exclude = ["plan_binary"]
