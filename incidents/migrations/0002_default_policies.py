from datetime import timedelta

from django.db import migrations

# docs/incidents.md: (acknowledge target, mode, resolution target, mode) per severity.
DEFAULTS = {
    "sev1": (timedelta(minutes=15), "calendar", timedelta(hours=4), "calendar"),
    "sev2": (timedelta(hours=1), "calendar", timedelta(hours=24), "calendar"),
    "sev3": (timedelta(hours=24), "calendar", timedelta(days=5), "working"),
}


def seed_policies(apps, schema_editor):
    IncidentPolicy = apps.get_model("incidents", "IncidentPolicy")
    for severity, (ack, ack_mode, resolution, resolution_mode) in DEFAULTS.items():
        IncidentPolicy.objects.get_or_create(
            severity=severity,
            defaults={
                "acknowledge_target": ack,
                "acknowledge_mode": ack_mode,
                "resolution_target": resolution,
                "resolution_mode": resolution_mode,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunPython(seed_policies, migrations.RunPython.noop)]
