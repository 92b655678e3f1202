"""requests_app/loading.py makes the requests `.only()` with `select_related` would: the same
values, the related rows cached, every other field deferred."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_init, pre_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning.models import Instance
from requests_app.loading import CompiledOnce, requests_from_rows
from requests_app.models import Request
from requests_app.rows import ROW_COLUMNS
from tests.dashboards.factories import make_instance, timed_request

pytestmark = pytest.mark.clock


@pytest.fixture
def made(users):
    now = timezone.now()
    instance = make_instance("acme-loading")
    held = timed_request(
        users["ce"],
        queued=now - timedelta(hours=3),
        picked=now - timedelta(hours=2),
        pauses=[(now - timedelta(hours=1), None)],
        assignee=users["devops"],
        customer='<b>"Acme"</b>',
    )
    Request.objects.filter(pk=held.pk).update(
        instance=instance, standard=False, non_standard_reasons=["scale", "<x>"]
    )
    free = timed_request(users["sales"], "feature", queued=now - timedelta(hours=1), target_days=3)
    return [held, free]


def test_the_requests_are_those_of_the_orm(made):
    columns = [*ROW_COLUMNS, "requested_by__username"]
    queryset = Request.objects.order_by("id")
    with CaptureQueriesContext(connection) as queries:
        loaded = requests_from_rows(queryset[:10], columns)
    assert len(queries) == 1
    orm = list(queryset.select_related("instance", "assignee", "requested_by").only(*columns)[:10])
    assert [r.pk for r in loaded] == [r.pk for r in orm] == [r.pk for r in made]
    for mine, theirs in zip(loaded, orm, strict=True):
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()
        assert mine._state.db == theirs._state.db and not mine._state.adding
        for field in Request._meta.concrete_fields:
            if field.attname not in theirs.get_deferred_fields():
                assert getattr(mine, field.attname) == getattr(theirs, field.attname), field
        for relation, model in [("instance", Instance), ("assignee", get_user_model())]:
            assert (getattr(mine, relation) is None) == (getattr(theirs, relation) is None)
            if getattr(theirs, relation) is not None:
                mine_related, theirs_related = getattr(mine, relation), getattr(theirs, relation)
                assert isinstance(mine_related, model) and mine_related.pk == theirs_related.pk
                assert mine_related.get_deferred_fields() == theirs_related.get_deferred_fields()
        assert mine.requested_by.username == theirs.requested_by.username
    assert loaded[0].instance.slug == "acme-loading"
    assert loaded[1].instance is None and loaded[1].assignee is None


def test_a_field_left_out_loads_on_first_use_as_the_orms_would(made):
    loaded = requests_from_rows(Request.objects.order_by("id"), ["kind"])
    with CaptureQueriesContext(connection) as queries:
        assert loaded[0].justification == made[0].justification
    assert len(queries) == 1


def test_nothing_listens_for_the_init_signals_it_skips():
    """The objects skip Model.__init__ and so its signals: a receiver added for these models
    would miss them, and loading.py would have to send them."""
    for model in (Request, Instance, get_user_model()):
        assert not pre_init.has_listeners(model) and not post_init.has_listeners(model)


def test_a_query_compiled_once_reads_what_the_orm_reads_each_time(made):
    """Built and compiled on first use only, yet each use reads the rows as they are then, the
    JSON column decoded as the ORM decodes it."""
    built = []

    def build():
        built.append(True)
        return Request.objects.order_by("id").values_list("id", "non_standard_reasons")

    query = CompiledOnce(build)
    assert [tuple(row) for row in query.rows()] == [
        (made[0].pk, ["scale", "<x>"]),
        (made[1].pk, []),
    ]
    Request.objects.filter(pk=made[1].pk).update(non_standard_reasons=["late"])
    with CaptureQueriesContext(connection) as queries:
        rows = query.rows()
    assert [tuple(row) for row in rows][1] == (made[1].pk, ["late"])
    assert len(queries) == 1 and len(built) == 1


def test_a_query_of_arguments_is_compiled_once_for_each_and_keeps_the_last_used(made):
    """Each set of arguments is built once per connection while it is among the `kept` used
    last; the least recently used is dropped first, and a filter no row can pass answers no
    rows without a query."""
    built = []

    def build(*pks):
        built.append(pks)
        return Request.objects.filter(pk__in=pks).order_by("id").values_list("id")

    query = CompiledOnce(build, kept=2)
    first, second = made[0].pk, made[1].pk
    assert query.rows(first) == [(first,)]
    assert query.rows(second) == [(second,)]
    assert query.rows(first) == [(first,)]  # used again: (second,) is now the least recent
    assert query.rows(first, second) == [(first,), (second,)]  # drops (second,)
    assert query.rows(first) == [(first,)]  # still kept
    assert built == [(first,), (second,), (first, second)]
    assert query.rows(second) == [(second,)]  # built again
    assert built[-1] == (second,)
    with CaptureQueriesContext(connection) as queries:
        assert query.rows() == []
    assert len(queries) == 0
