"""One partial index per timer on when its next alert falls due (requests_app/sla/next_alert.py)
instead of one on its 75% instant and one on its breach instant: every write of a timer adds
fewer index entries.

PostgreSQL keeps no statistics of a partial index's expression, so it would guess that a third
of the table has an alert due and read all of it; the extended statistics on the same
expressions (PostgreSQL only) show it how few do."""

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models

STATISTICS = """
CREATE STATISTICS incident_sweep_ack_stats ON
    (COALESCE(CASE WHEN acknowledge_warned_at IS NULL THEN acknowledge_warn_at END, acknowledge_breach_at))
    FROM incidents_incident;
CREATE STATISTICS incident_sweep_res_stats ON
    (COALESCE(CASE WHEN resolution_warned_at IS NULL THEN resolution_warn_at END, resolution_breach_at))
    FROM incidents_incident;
ANALYZE incidents_incident;
"""
NO_STATISTICS = """
DROP STATISTICS IF EXISTS incident_sweep_ack_stats;
DROP STATISTICS IF EXISTS incident_sweep_res_stats;
"""


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS)


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NO_STATISTICS)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_default_policies"),
        ("provisioning", "0008_instance_category"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="incident",
            name="incident_sweep_ack_warn",
        ),
        migrations.RemoveIndex(
            model_name="incident",
            name="incident_sweep_ack_breach",
        ),
        migrations.RemoveIndex(
            model_name="incident",
            name="incident_sweep_res_warn",
        ),
        migrations.RemoveIndex(
            model_name="incident",
            name="incident_sweep_res_breach",
        ),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(
                django.db.models.functions.comparison.Coalesce(
                    models.Case(
                        models.When(
                            models.Q(("acknowledge_warned_at__isnull", True)),
                            then=models.F("acknowledge_warn_at"),
                        )
                    ),
                    models.F("acknowledge_breach_at"),
                ),
                condition=models.Q(
                    ("acknowledge_breach_alerted_at__isnull", True),
                    ("acknowledge_stopped_at__isnull", True),
                ),
                name="incident_sweep_ack",
            ),
        ),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(
                django.db.models.functions.comparison.Coalesce(
                    models.Case(
                        models.When(
                            models.Q(("resolution_warned_at__isnull", True)),
                            then=models.F("resolution_warn_at"),
                        )
                    ),
                    models.F("resolution_breach_at"),
                ),
                condition=models.Q(
                    ("resolution_breach_alerted_at__isnull", True),
                    ("resolution_stopped_at__isnull", True),
                ),
                name="incident_sweep_res",
            ),
        ),
        migrations.RunPython(create_statistics, drop_statistics),
    ]
