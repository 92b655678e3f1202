"""Small factory functions for tests (no fixture files)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from provisioning.models import Instance

PASSWORD = "correct-horse-battery"


def make_user(username, *groups, superuser=False, password=PASSWORD):
    User = get_user_model()
    user = User.objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=password,
        is_superuser=superuser,
        is_staff=superuser,
    )
    for name in groups:
        # get_or_create: transactional tests flush the groups that the migration made.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def make_instance(slug="acme", **fields):
    defaults = {
        "customer": slug.title(),
        "status": "active",
        "gcp_project": f"mi-{slug}",
        "version": "5.0.0",
    }
    return Instance.objects.create(slug=slug, **{**defaults, **fields})
