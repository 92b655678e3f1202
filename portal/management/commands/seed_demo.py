from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from portal import roles

# docs/workflow.md: one group each, in this order.
DEMO_USERS = [
    ("ce", roles.CE, "Casey", "Engineer"),
    ("sales", roles.SALES, "Sam", "Seller"),
    ("lead", roles.CE_LEADERSHIP, "Lee", "Lead"),
    ("reviewer", roles.TECH_REVIEW, "Robin", "Reviewer"),
    ("devops", roles.DEVOPS, "Dana", "Ops"),
    ("devops2", roles.DEVOPS, "Devon", "Ops"),
    ("manager", roles.MANAGERS, "Morgan", "Manager"),
]


class Command(BaseCommand):
    help = (
        "Create the demo users (password $DEMO_PASSWORD, default 'demo'), instances and requests."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = self.seed_users(settings.DEMO_PASSWORD)
            extra = self.seed_domain()
        self.stdout.write(
            f"Demo users ready ({created} new); {extra}. Password: the value of DEMO_PASSWORD."
        )

    def seed_users(self, password: str) -> int:
        User = get_user_model()
        created = 0
        for username, role, first, last in DEMO_USERS:
            user, was_created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                },
            )
            if was_created:
                user.set_password(password)
                user.save(update_fields=["password"])
                created += 1
            user.groups.add(Group.objects.get(name=role))
        admin, was_created = User.objects.get_or_create(
            username="admin",
            defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"},
        )
        if was_created:
            admin.set_password(password)
            admin.save(update_fields=["password"])
            created += 1
        return created

    def seed_domain(self) -> str:
        """Demo instances and requests; filled in by the request domain."""
        from requests_app.demo import seed

        return seed()
