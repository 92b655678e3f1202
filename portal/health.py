"""Health of the services the portal depends on, for /healthz and the operators.

Each check answers a state, never an exception's text: /healthz is public (load balancers call it
without a session) and an error message can name hosts, users or paths. Why a service is down
goes to the server's log instead.
"""

import logging

import redis
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

OK = "ok"
DOWN = "down"
IN_PROCESS = "in-process (no Redis)"


def _down(service: str, exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    log.warning("health check: %s is down: %s: %s", service, exc.__class__.__name__, first_line)
    return DOWN


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the log says why
        return _down("the database", exc)
    return OK


def check_redis() -> str:
    if settings.RQ_INPROCESS:
        return IN_PROCESS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return _down("Redis", exc)
    finally:
        client.close()
    return OK
