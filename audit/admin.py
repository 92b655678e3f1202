from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import SignInEvent


@admin.register(SignInEvent)
class SignInEventAdmin(admin.ModelAdmin):
    """The audit log, read-only: rows are only ever added, by the sign-in signals."""

    list_display = ["at", "outcome", "username", "ip_address", "path"]
    list_filter = ["outcome"]
    search_fields = ["username", "ip_address"]
    raw_id_fields = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
