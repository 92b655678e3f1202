import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from portal import roles

EXPECTED = {
    "ce": "CE",
    "sales": "Sales",
    "lead": "CE Leadership",
    "reviewer": "Tech Review",
    "devops": "DevOps",
    "devops2": "DevOps",
    "manager": "Managers",
}


def test_the_roles_exist_as_groups_after_migrating(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ALL_ROLES)


def snapshot():
    from provisioning.models import Instance
    from requests_app.models import Event, Request

    User = get_user_model()
    return (
        sorted(
            (u.username, u.password, u.is_superuser, tuple(u.groups.values_list("name", flat=True)))
            for u in User.objects.all()
        ),
        sorted(Instance.objects.values_list("slug", "status", "version")),
        sorted(Request.objects.values_list("external_id", "kind", "state")),
        Event.objects.count(),
    )


def test_seed_demo_refuses_a_database_that_is_not_a_demo_one(db):
    from unittest import mock

    from django.core.management.base import CommandError
    from django.db import connection

    with mock.patch.dict(connection.settings_dict, {"NAME": "portal"}):
        with pytest.raises(CommandError, match="--allow-production-data"):
            call_command("seed_demo")
    assert not get_user_model().objects.filter(username="ce").exists()
