from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

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
        "Create the demo users (password $DEMO_PASSWORD, default 'demo'), and the demo fleet "
        "(built for real on the sandbox Compute server) with requests in varied states. "
        "Refuses any database but make run's embedded one or a test database unless given "
        "--allow-production-data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production-data",
            action="store_true",
            help="seed a database that is not the embedded default or a test database",
        )

    def handle(self, *args: Any, allow_production_data: bool = False, **options: Any) -> None:
        if not allow_production_data and not is_demo_database():
            raise CommandError(
                f"Refusing to add demo users (password {settings.DEMO_PASSWORD!r}) and demo "
                f"instances to the database {connection.settings_dict['NAME']!r}: it is not "
                "make run's embedded SQLite database nor a test database. Pass "
                "--allow-production-data if you mean it."
            )
        with transaction.atomic():
            created = self.seed_users(settings.DEMO_PASSWORD)
        # The fleet is built by provisioning runs, each committing as it goes (a worker-style
        # heartbeat writes from its own connection): no surrounding transaction.
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
            # get_or_create: the roles migration made them, unless a flush dropped them since.
            user.groups.add(Group.objects.get_or_create(name=role)[0])
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
        from incidents.demo import seed as seed_incidents
        from releases.demo import seed as seed_releases
        from requests_app.demo import seed

        done = seed(say=lambda text: self.stdout.write(f"  {text}"))
        return f"{done}, {seed_releases()}, {seed_incidents()}"


def is_demo_database() -> bool:
    """make run's embedded SQLite database (under PORTAL_VAR_DIR), or a test database."""
    db = connection.settings_dict
    name = str(db["NAME"])
    if db["ENGINE"].endswith("sqlite3"):
        return name == ":memory:" or Path(name).resolve().is_relative_to(
            Path(settings.VAR_DIR).resolve()
        )
    test_name = (db.get("TEST") or {}).get("NAME") or f"test_{db.get('NAME', '')}"
    return name.startswith("test_") or name == test_name
