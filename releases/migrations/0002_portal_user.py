"""The user `portal`, who files the upgrades that releases open: no usable password (nobody signs
in as it), no group (it may take no action of a role)."""

from django.contrib.auth.hashers import make_password
from django.db import migrations


def create_portal_user(apps, schema_editor):
    User = apps.get_model("auth", "User")
    User.objects.get_or_create(
        username="portal",
        defaults={"first_name": "Portal", "password": make_password(None), "is_active": True},
    )


def remove_portal_user(apps, schema_editor):
    apps.get_model("auth", "User").objects.filter(username="portal", groups=None).delete()


class Migration(migrations.Migration):
    dependencies = [("releases", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_portal_user, remove_portal_user)]
