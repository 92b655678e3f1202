"""Recomputing every open timer after a closure (`timers.recompute_open`) on PostgreSQL: the bulk
path writes what recomputing each request alone gives, through one connection or several, and a
request that a transition moves while the recompute runs is computed again from what it became,
not overwritten with instants computed before. Also the request table's indexes, which are the
cost of every such write."""

import pytest
from django.db import connection

from requests_app.models import Closure, Request
from requests_app.sla import policies
from requests_app.sla import timers as sla_timers
from tests.factories import make_instance
from tests.requests_app.test_sla import act, file, la

pytestmark = [
    pytest.mark.clock,
    pytest.mark.clock_once("every instant is the one the test passes: the date moves nothing"),
]


@pytest.fixture(autouse=True)
def fresh_sla_cache():
    policies.invalidate_cache()
    yield
    policies.invalidate_cache()


def open_requests(users):
    """Open requests of each shape: picked up, paused and resumed (a closed pause), paused now
    (an open pause), not yet picked up, and an upgrade (calendar time, no response timer)."""
    made = []
    for number, slug in enumerate(["alpha", "bravo", "charlie", "delta"]):
        request = file(users["ce"], at=la(2026, 4, 6, 9 + number), instance=slug)
        act(users["lead"], request, "approve", la(2026, 4, 6, 10 + number))
        made.append(request)
    alpha, bravo, charlie, _ = made
    for request in (alpha, bravo, charlie):
        act(users["devops"], request, "pick_up", la(2026, 4, 6, 15))
    for request in (bravo, charlie):
        act(users["devops"], request, "wait_on_customer", la(2026, 4, 7, 10))
    act(users["devops"], bravo, "resume_work", la(2026, 4, 8, 10))
    make_instance("echo")
    made.append(
        file(
            users["ce"], kind="upgrade", at=la(2026, 4, 6, 9), instance="echo", target_version="5.1"
        )
    )
    return made


def stored(request):
    row = Request.objects.get(pk=request.pk)
    return {column: getattr(row, column) for column in sla_timers.BULK_COLUMNS}


def recomputed_alone(request):
    """The instants that recomputing this request by itself (the workflow's path) gives."""
    row = Request.objects.get(pk=request.pk)
    sla_timers.recompute(row, *policies.load())
    return {column: getattr(row, column) for column in sla_timers.BULK_COLUMNS}


def add_closure():
    Closure.objects.create(date=la(2026, 4, 9).date(), reason="Company offsite")
    policies.invalidate_cache()


def assert_as_if_alone(requests):
    for request in requests:
        assert stored(request) == recomputed_alone(request), request


def test_the_bulk_recompute_writes_what_each_request_alone_gives(users):
    requests = open_requests(users)
    before = {request.pk: stored(request) for request in requests}
    add_closure()
    # Every open request with a working-time clock that runs across the closure moves; the
    # upgrade counts calendar time and stays.
    assert sla_timers.recompute_open() == 4
    assert_as_if_alone(requests)
    upgrade = requests[-1]
    assert stored(upgrade) == before[upgrade.pk]
    assert stored(requests[1])["resolution_due_at"] > before[requests[1].pk]["resolution_due_at"]
    assert sla_timers.recompute_open() == 0


@pytest.mark.django_db(transaction=True)
def test_several_connections_write_what_one_does(users, monkeypatch):
    """Outside a transaction and from PARALLEL_FROM rows on, WRITERS connections share the rows
    (here from one row): the same instants, each row written once."""
    monkeypatch.setattr(sla_timers, "PARALLEL_FROM", 1)
    requests = open_requests(users)
    add_closure()
    threads = []
    write_apart = sla_timers._write_apart

    def spy(rows, *args):
        threads.append(len(rows))
        return write_apart(rows, *args)

    monkeypatch.setattr(sla_timers, "_write_apart", spy)
    assert sla_timers.recompute_open() == 4
    assert sorted(threads) == [2, 3]  # five open requests over two writers
    assert_as_if_alone(requests)


@pytest.mark.parametrize(
    "parallel",
    [
        False,
        pytest.param(True, marks=pytest.mark.django_db(transaction=True)),
    ],
)
def test_a_request_moved_during_the_recompute_is_computed_from_what_it_became(
    users, monkeypatch, parallel
):
    """Charlie's pause ends after the recompute read it: the instants read with the pause open
    are not written over the ones its resume computed; charlie is read again and computed."""
    if parallel:
        monkeypatch.setattr(sla_timers, "PARALLEL_FROM", 1)
    requests = open_requests(users)
    charlie = requests[2]
    add_closure()
    read = sla_timers._open_rows
    reads: list[list[int] | None] = []

    def read_then_resume(ids=None):
        rows = read(ids)
        reads.append(ids)
        if ids is None:
            act(users["devops"], charlie, "resume_work", la(2026, 4, 13, 10))
        return rows

    monkeypatch.setattr(sla_timers, "_open_rows", read_then_resume)
    sla_timers.recompute_open()
    assert reads == [None, [charlie.pk]]
    assert Request.objects.get(pk=charlie.pk).resolution_pauses[0][1] is not None
    assert_as_if_alone(requests)


def request_indexes():
    """(name, definition) of every index of the request table, as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
            [Request._meta.db_table],
        )
        return cursor.fetchall()


def test_the_request_table_keeps_no_index_twice_and_none_unused(db):
    """Each index costs every write of a request (bench/sla.py): no two with one definition,
    no LIKE index (the portal compares slugs, states and ids with = or UPPER(...)), and the
    partial unique index that keeps one open provisioning request per instance is there."""
    indexes = request_indexes()
    definitions = [definition.split(" USING ", 1)[1] for _, definition in indexes]
    assert len(set(definitions)) == len(definitions), definitions
    assert not [name for name, definition in indexes if "pattern_ops" in definition]
    names = {name for name, _ in indexes}
    assert "one_open_provisioning_request_per_instance" in names
    assert "request_external_id_unique" in names


def test_external_ids_stay_unique_where_set(users):
    """The unique constraint on external_id holds where it is set; requests filed in the portal
    have none, and any number of them may."""
    from django.db import IntegrityError, transaction

    first = file(users["ce"], at=la(2026, 4, 6, 9), instance="alpha")
    second = file(users["ce"], at=la(2026, 4, 6, 9), instance="bravo")
    assert first.external_id is None and second.external_id is None
    Request.objects.filter(pk=first.pk).update(external_id="OPS-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Request.objects.filter(pk=second.pk).update(external_id="OPS-1")
    assert Request.objects.filter(external_id__iexact="ops-1").get().pk == first.pk
