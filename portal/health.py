"""Health of the services the portal depends on, for /healthz and the operators."""

import redis
from django.conf import settings
from django.db import connection


def _reason(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"down: {exc.__class__.__name__}: {first_line}"


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        return _reason(exc)
    return "ok"


def check_redis() -> str:
    if settings.RQ_INPROCESS:
        return "in-process (no Redis)"
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return _reason(exc)
    finally:
        client.close()
    return "ok"
