"""Requests for the tables of requests, made from rows of values instead of by the ORM's model
instantiation. The DevOps queue shows 75 requests, each with its instance and its holder: the
ORM's `Model.__init__` walks every field of the model for each of those 225 objects, which was
a fifth of the page's time (issue 16).

The objects are those `.only(*columns)` with `select_related` would give: the columns asked for
loaded, every other field deferred (loaded from the database on first use, as the ORM's would
be), each related row cached on the request with its primary key and the fields asked for.
They skip `Model.__init__`, so no `pre_init` or `post_init` signal is sent for them: nothing
listens for those on these models (tests/requests_app/test_loading.py checks it)."""

import collections
import functools
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState

from requests_app.models import Request

M = TypeVar("M", bound=Model)


def bare(model: type[M], db: str, loaded: dict[str, Any]) -> M:
    """An instance of `model` read from `db` with the fields of `loaded` (by attname) set and
    every other one deferred: what `model.from_db` makes of a row of those fields."""
    obj = model.__new__(model)
    obj.__dict__.update(loaded)
    state = obj._state = ModelState()
    state.adding, state.db = False, db
    return obj


def _field(model: type[Model], name: str) -> "Field[Any, Any]":
    field = model._meta.get_field(name)
    assert isinstance(field, Field), (model, name)  # a column, not a reverse relation
    return field


class Shape:
    """Where `columns` are in a row of values: names of Request's fields, and
    `<relation>__<field>` for a field of a related row, which comes with its primary key (None
    when the request has no such row). Worked out once per list of columns."""

    def __init__(self, columns: Sequence[str]) -> None:
        local = ["id"]
        related: dict[str, list[str]] = {}
        for column in columns:
            relation, _, name = column.partition("__")
            if name:
                related.setdefault(relation, []).append(name)
            elif (attname := _field(Request, column).attname) not in local:
                local.append(attname)
        # Each related row: where its key (which `.only()` loads too) and its fields are in a row.
        joins = []
        for relation, names in related.items():
            key = _field(Request, relation)
            if key.attname not in local:
                local.append(key.attname)
            model = key.related_model
            assert isinstance(model, type) and issubclass(model, Model), relation
            attnames = [_field(model, name).attname for name in names]
            joins.append(
                (relation, local.index(key.attname), model, model._meta.pk.attname, attnames)
            )
        self.local = local
        self.joins = joins
        # What to ask values_list for.
        self.select = [
            *local,
            *(f"{relation}__{name}" for relation, names in related.items() for name in names),
        ]

    def requests(self, rows: Iterable[Sequence[Any]], db: str) -> list[Request]:
        """The requests of rows of `self.select`, read from `db`."""
        local, joins, width = self.local, self.joins, len(self.local)
        found = []
        for row in rows:
            request = bare(Request, db, dict(zip(local, row[:width], strict=True)))
            cache = request._state.fields_cache
            start = width
            for relation, key_at, model, pk_attname, attnames in joins:
                end = start + len(attnames)
                if row[key_at] is None:
                    cache[relation] = None
                else:
                    values = dict(zip(attnames, row[start:end], strict=True))
                    cache[relation] = bare(model, db, {pk_attname: row[key_at], **values})
                start = end
            found.append(request)
        return found


@functools.cache
def shape(columns: tuple[str, ...]) -> Shape:
    return Shape(columns)


def requests_from_rows(queryset: QuerySet[Request], columns: Sequence[str]) -> list[Request]:
    """The requests of `queryset` (sliced or not) with `columns` (as Shape takes them) loaded,
    in one query."""
    found = shape(tuple(columns))
    return found.requests(queryset.values_list(*found.select), queryset.db)


class CompiledOnce:
    """The rows of a query built by `build`, its SQL built and compiled once per database
    connection (a connection is one thread's) for each set of arguments `build` takes: for the
    queue's sections, building and compiling the query cost more than PostgreSQL's answer took
    to read. A query of arguments (the fleet's category and page, say) keeps the `kept` sets
    used last on each connection."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *, kept: int = 64) -> None:
        self._build = build
        self._kept = kept
        self._compiled: weakref.WeakKeyDictionary[
            Any, collections.OrderedDict[tuple[Hashable, ...], tuple[Any, ...]]
        ] = weakref.WeakKeyDictionary()

    def rows(self, *args: Hashable, using: str = DEFAULT_DB_ALIAS) -> list[Sequence[Any]]:
        connection = connections[using]
        mine = self._compiled.get(connection)
        if mine is None:
            mine = self._compiled[connection] = collections.OrderedDict()
        compiled = mine.get(args)
        if compiled is None:
            compiler = self._build(*args).query.get_compiler(using=using)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # a filter no row can pass (`pk__in=[]`): no query to run
                sql = params = None
            # What results_iter would convert (JSON from its text, say).
            converters = compiler.get_converters(
                [column for column, _, _ in compiler.select[: compiler.col_count]]
            )
            compiled = mine[args] = (compiler, sql, params, converters)
            if len(mine) > self._kept:
                mine.popitem(last=False)
        else:
            mine.move_to_end(args)
        compiler, sql, params, converters = compiled
        if sql is None:
            return []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows: list[Sequence[Any]] = cursor.fetchall()
        if converters:
            return list(compiler.apply_converters(rows, converters))
        return rows
