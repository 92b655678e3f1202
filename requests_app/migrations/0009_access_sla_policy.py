from datetime import timedelta

from django.db import migrations


def add_access_policy(apps, schema_editor):
    """Access requests keep the targets of a create (24 h response, calendar time; 15 working
    days resolution), as a row the admin can edit like the others."""
    SlaPolicy = apps.get_model("requests_app", "SlaPolicy")
    SlaPolicy.objects.get_or_create(
        kind="access",
        defaults={
            "response_target": timedelta(hours=24),
            "response_mode": "calendar",
            "resolution_target": timedelta(days=15),
            "resolution_mode": "working",
        },
    )


def remove_access_policy(apps, schema_editor):
    apps.get_model("requests_app", "SlaPolicy").objects.filter(kind="access").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("requests_app", "0008_request_category_and_access"),
    ]

    operations = [
        migrations.RunPython(add_access_policy, remove_access_policy),
    ]
