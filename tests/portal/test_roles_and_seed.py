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


@pytest.mark.clock  # seed_demo files its requests days before now
def test_seed_demo_makes_requests_in_varied_states(db):
    from requests_app.models import Request

    call_command("seed_demo")
    states = set(Request.objects.values_list("state", flat=True))
    assert {"pending_approval", "tech_review", "queued", "in_progress", "done"} <= states


@pytest.mark.clock
def test_seed_demo_creates_the_demo_users_and_is_idempotent(db, settings):
    settings.DEMO_PASSWORD = "s3cret-demo"
    call_command("seed_demo")
    User = get_user_model()
    for username, group in EXPECTED.items():
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert user.check_password("s3cret-demo")
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("s3cret-demo")

    before = snapshot()
    call_command("seed_demo")
    assert snapshot() == before
