"""The kept number of requests (requests_app/counting.py, issue 16): the request list's `count`
of every request comes from rows the statement triggers keep, never from counting the table. It
must be count(*) after every way rows come and go, and writers must not wait on each other."""

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.urls import reverse

from requests_app import counting
from requests_app.counting import CountedPaginator
from requests_app.models import Request
from tests.dashboards.factories import file

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("UTC"))

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's"),
    pytest.mark.clock,
    pytest.mark.clock_once("counting rows: the pinned instant only files the requests"),
]


def counted():
    return Request.objects.count()


def delta_rows():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {counting.TABLE}")
        return cursor.fetchone()[0]


def test_the_kept_number_follows_every_way_rows_come_and_go(users):
    with time_machine.travel(NOW, tick=False):
        assert counting.total() == counted() == 0
        made = [file(users["ce"], "feature") for _ in range(3)]
        assert counting.total() == counted() == 3
        # A bulk insert (the importer's) is one statement of several rows.
        copies = []
        for request in made:
            request.pk = None
            copies.append(request)
        Request.objects.bulk_create(copies)
        assert counting.total() == counted() == 6
        Request.objects.filter(pk__in=[r.pk for r in copies[:2]]).delete()
        assert counting.total() == counted() == 4
        # An update counts as a change, not as a request; a statement that touches no row adds
        # nothing.
        before, version = delta_rows(), counting.changes()
        Request.objects.update(customer="Globex")
        assert counting.total() == 4 and counting.changes() == version + 1
        Request.objects.filter(pk=-1).delete()
        Request.objects.filter(pk=-1).update(customer="x")
        assert delta_rows() == before + 1 and counting.changes() == version + 1
        # compact folds the deltas into one row and keeps both sums.
        assert counting.compact() == before + 1 > 2
        assert delta_rows() == 1 and counting.total() == counted() == 4
        assert counting.compact() == 1 and counting.total() == 4
        assert counting.changes() == version + 1
        with connection.cursor() as cursor:
            # The deferred foreign-key checks first: TRUNCATE refuses pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("TRUNCATE requests_app_request CASCADE")
        # The count starts again; the version of the data never goes back.
        assert counting.total() == counted() == 0
        assert counting.changes() == version + 2
        file(users["ce"], "feature")
        assert counting.total() == counted() == 1


def test_the_paginator_reads_the_kept_number_only_for_every_request(users):
    with time_machine.travel(NOW, tick=False):
        for kind in ("feature", "feature", "upgrade"):
            file(users["ce"], kind)
    # A number the table does not hold shows which path counted.
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {counting.TABLE} (n) VALUES (1000)")
    assert CountedPaginator(Request.objects.order_by("-id"), 50).count == 1003
    assert CountedPaginator(Request.objects.with_related().order_by("id"), 2).num_pages == 502
    assert CountedPaginator(Request.objects.filter(kind="upgrade"), 50).count == 1
    assert CountedPaginator(Request.objects.order_by("id")[:2], 50).count == 2
    assert CountedPaginator(Request.objects.distinct(), 50).count == 3
    assert CountedPaginator(list(Request.objects.all()), 50).count == 3


def test_the_list_and_the_api_show_the_kept_count(client, users):
    with time_machine.travel(NOW, tick=False):
        for _ in range(3):
            file(users["ce"], "feature")
        file(users["ce"], "upgrade")
        client.force_login(users["manager"])
        assert client.get("/api/v1/requests/").json()["count"] == 4
        assert client.get("/api/v1/requests/", {"kind": "upgrade"}).json()["count"] == 1
        html = client.get(reverse("request_list"), {"kind": "upgrade"}).content.decode()
        assert "1 matching request." in html


@pytest.mark.django_db(transaction=True)
def test_writers_do_not_wait_on_each_other(users):
    """One transaction holds a new request uncommitted; another files and commits meanwhile,
    within a lock timeout. Both count once committed."""
    holding, release = threading.Event(), threading.Event()
    failures = []

    def first():
        try:
            with time_machine.travel(NOW, tick=False), transaction.atomic():
                file(users["ce"], "feature")
                holding.set()
                release.wait(10)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            holding.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(10)
        with time_machine.travel(NOW, tick=False), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            file(users["ce"], "feature")
        assert counting.total() == 1  # the first is not committed yet
    finally:
        release.set()
        thread.join(10)
    assert not failures
    assert counting.total() == counted() == 2
