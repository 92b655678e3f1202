"""Shared set-up of the benchmarks: a PostgreSQL database of their own, migrated."""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(suffix="bench"):
    """Point Django at `<database>_<suffix>` on the test server, create it, migrate it."""
    import psycopg

    from portal import devservices

    url = os.environ.get("DATABASE_URL") or devservices.ensure_postgres()
    os.environ.setdefault("REDIS_URL", devservices.ensure_redis(test=True))
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("the benchmarks need PostgreSQL: set DATABASE_URL or run `make bench`")
    name = f"{parts.path.lstrip('/') or 'portal'}_{suffix}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"]
