"""How many requests there are, without counting them (issue 16): the request list's `count`
read `count(*)` over the whole table on every visit, a cost that grows with the table.

On PostgreSQL, statement triggers on the request table (migration 0013) keep the number as
rows of deltas in `requests_app_requestcount`: every INSERT (a form, the API, the importer's
bulk, COPY) adds one row holding how many it inserted, every DELETE one holding minus as many,
a TRUNCATE empties it and leaves 0. Each row also counts the statement in `changes` (UPDATEs
too): its sum is the version of the request data, under which the SLA figures are kept
(migration 0014, dashboards/figures.py). Appending never waits on another transaction, unlike one
counter row updated by everyone. The total is the sum of the rows; `compact` (run every
minute by the scheduler, beside the SLA sweep) folds them back into one.

SQLite (the embedded `make run`) has no such triggers: there the paginator counts."""

from typing import Any

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.utils.functional import cached_property

from requests_app.models import Request

TABLE = "requests_app_requestcount"


def kept() -> bool:
    """Whether this database keeps the number (PostgreSQL, migrated)."""
    return connection.vendor == "postgresql"


def total() -> int:
    """How many requests there are, as this transaction sees them."""
    if not kept():
        return Request.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(sum(n), 0) FROM {TABLE}")
        return int(cursor.fetchone()[0])


def changes() -> int | None:
    """How many statements have changed requests, as this transaction sees them: the version
    of the request data (migration 0014), which only grows. None where not kept (SQLite)."""
    if not kept():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(sum(changes), 0) FROM {TABLE}")
        return int(cursor.fetchone()[0])


def compact() -> int:
    """Fold the delta rows into one (the scheduler, every minute); the rows it folded. Safe
    beside writers and beside itself: the rows deleted are those this statement saw, and their
    sum is written back in the same statement."""
    if not kept():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH gone AS (DELETE FROM {TABLE} RETURNING n, changes)
            INSERT INTO {TABLE} (n, changes)
            SELECT sum(n), sum(changes) FROM gone HAVING count(*) > 0
            RETURNING (SELECT count(*) FROM gone)
            """
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def unfiltered(queryset: QuerySet[Any]) -> bool:
    """Whether `queryset` is every request: no condition, no slice, no DISTINCT, no union."""
    query = queryset.query
    return (
        queryset.model is Request
        and not query.where
        and not query.distinct
        and not query.combinator
        and query.low_mark == 0
        and query.high_mark is None
    )


class CountedPaginator(Paginator):
    """A Paginator whose count of every request is the kept number (filtered lists count their
    rows, through the filters' indexes)."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet) and unfiltered(self.object_list) and kept():
            return total()
        return super().count
