from django.contrib import admin

from provisioning.models import Instance


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["slug", "customer", "status", "version", "machine_type", "executors_enabled"]
    list_filter = ["status", "machine_type"]
    search_fields = ["slug", "customer"]
