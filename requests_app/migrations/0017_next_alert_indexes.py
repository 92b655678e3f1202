"""One partial index per timer on when its next alert falls due (requests_app/sla/next_alert.py)
instead of one on its 75% instant and one on its breach instant, and no index on the open
requests' breach instants (the breached=true filter cannot use one; at_risk=true scans the open
requests by open_resolution_due): every write of a timer adds fewer index entries.

PostgreSQL keeps no statistics of a partial index's expression, so it would guess that a third
of the table has an alert due and read all of it; the extended statistics on the same
expressions (PostgreSQL only) show it how few do."""

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models

STATISTICS = """
CREATE STATISTICS sweep_response_stats ON
    (COALESCE(CASE WHEN response_warned_at IS NULL THEN response_warn_at END, response_breach_at))
    FROM requests_app_request;
CREATE STATISTICS sweep_resolution_stats ON
    (COALESCE(CASE WHEN resolution_warned_at IS NULL THEN resolution_warn_at END, resolution_breach_at))
    FROM requests_app_request;
ANALYZE requests_app_request;
"""
NO_STATISTICS = """
DROP STATISTICS IF EXISTS sweep_response_stats;
DROP STATISTICS IF EXISTS sweep_resolution_stats;
"""


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS)


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NO_STATISTICS)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0008_instance_category"),
        ("requests_app", "0016_write_path_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="request",
            name="sweep_response_warn",
        ),
        migrations.RemoveIndex(
            model_name="request",
            name="sweep_resolution_warn",
        ),
        migrations.RemoveIndex(
            model_name="request",
            name="sweep_response_breach",
        ),
        migrations.RemoveIndex(
            model_name="request",
            name="sweep_resolution_breach",
        ),
        migrations.RemoveIndex(
            model_name="request",
            name="open_response_breach",
        ),
        migrations.RemoveIndex(
            model_name="request",
            name="open_resolution_breach",
        ),
        migrations.AddIndex(
            model_name="request",
            index=models.Index(
                django.db.models.functions.comparison.Coalesce(
                    models.Case(
                        models.When(
                            models.Q(("response_warned_at__isnull", True)),
                            then=models.F("response_warn_at"),
                        )
                    ),
                    models.F("response_breach_at"),
                ),
                condition=models.Q(
                    ("ended_at__isnull", True),
                    ("response_breach_alerted_at__isnull", True),
                    ("response_stopped_at__isnull", True),
                ),
                name="sweep_response",
            ),
        ),
        migrations.AddIndex(
            model_name="request",
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
                    ("ended_at__isnull", True),
                    ("resolution_breach_alerted_at__isnull", True),
                    ("resolution_paused_at__isnull", True),
                    ("resolution_stopped_at__isnull", True),
                ),
                name="sweep_resolution",
            ),
        ),
        migrations.RunPython(create_statistics, drop_statistics),
    ]
