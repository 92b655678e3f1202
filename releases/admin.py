from django.contrib import admin

from releases.models import FeedStatus, Release, Wave, WaveItem


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["version", "kind", "published_at", "source", "created_by"]
    list_filter = ["kind", "source"]
    search_fields = ["version"]
    readonly_fields = ["major", "minor", "patch", "source", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # The version keys the upgrades it opened: recorded once, read after.
        return False


class WaveItemInline(admin.TabularInline):
    model = WaveItem
    extra = 0
    can_delete = False
    readonly_fields = ["instance", "request", "position", "from_version", "error"]


@admin.register(Wave)
class WaveAdmin(admin.ModelAdmin):
    list_display = ["release", "number", "created_by", "confirmed_at", "halted_at", "finished_at"]
    inlines = [WaveItemInline]
    readonly_fields = [f.name for f in Wave._meta.fields]


@admin.register(FeedStatus)
class FeedStatusAdmin(admin.ModelAdmin):
    list_display = ["checked_at", "answered_at", "error_at"]
    readonly_fields = ["etag", "checked_at", "answered_at", "error", "error_at"]
