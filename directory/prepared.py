"""Querysets compiled to SQL once per process, then run again with other values.

Django compiles a queryset to SQL each time it is evaluated. For the wide `User` model that
compile (forty columns resolved, quoted and ordered) costs more CPU than PostgreSQL spends
answering the query, and the SCIM lookups Entra makes thousands of times a cycle differ only in
their values (docs/benchmarks.md, "Where a lookup's time went"). A `PreparedQuery` builds its
queryset once per database with stand-in values that no request can hold, keeps the SQL and the
parameter list, and on each run puts the real values where the stand-ins were. What the SQL says is
still decided by the queryset, so by the same selectors and filter compiler as every other read.

A stand-in that does not come out as exactly one parameter, unchanged, means the value shapes the
SQL itself (a LIMIT, a value a compiler special-cases); that is refused when the query is prepared,
never guessed at.

`insert` and `update` do the same for the INSERT of a new row and the UPDATE of some columns of
one (every SCIM create writes a user and an Event; every PATCH updates a user or a group).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.signals import post_save, pre_save

M = TypeVar("M", bound=Model)


class NotPreparable(Exception):
    """The queryset's SQL depends on a value, not only on its shape."""


@dataclass(frozen=True)
class _Slot:
    name: str
    convert: Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    model: type[Model]
    sql: str
    params: tuple[Any, ...]  # constants, and _Slot where a value goes
    init_list: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


def _stand_in(kind: type) -> Any:
    if kind is int:
        return -(secrets.randbits(60) + 1)
    if kind is str:
        # Upper and lower case both, so a value the compiler lower-cases is told from one it keeps.
        return f"\x1ePrepared-{secrets.token_hex(12).upper()}"
    if kind is uuid.UUID:
        return uuid.uuid4()
    raise TypeError(f"No stand-in for {kind.__name__} values.")


def _as_param(stand_in: Any, param: Any) -> Callable[[Any], Any] | None:
    """How a value reaches the parameter list, or None if this parameter is not the stand-in: as
    it is, lower-cased (a case-insensitive comparison), or as hex (a UUID on SQLite)."""
    if type(param) is type(stand_in) and param == stand_in:
        return lambda value: value
    if isinstance(stand_in, str) and param == stand_in.lower():
        return str.lower
    if isinstance(stand_in, uuid.UUID) and param == stand_in.hex:
        return lambda value: value.hex
    return None


class PreparedQuery(Generic[M]):
    """`build(**values)` returns the queryset; `kinds` gives each value's type (int, str, UUID).

    The queryset must select one model's own columns (no select_related, annotations or
    values()); `run` returns its instances as evaluating the queryset would. Thread-safe: a
    compile races at worst with another compile of the same SQL."""

    def __init__(self, build: Callable[..., QuerySet[M]], **kinds: type) -> None:
        self._build = build
        self._kinds = kinds
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def run(self, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[M]:
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compile(using)
        params = [p.convert(values[p.name]) if isinstance(p, _Slot) else p for p in compiled.params]
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        model = compiled.model
        result = []
        for row in rows:
            if compiled.converters:
                row = list(row)
                for index, functions, expression in compiled.converters:
                    value = row[index]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[index] = value
            result.append(model.from_db(using, compiled.init_list, row))
        return result

    def _compile(self, using: str) -> _Compiled:
        stand_ins = {name: _stand_in(kind) for name, kind in self._kinds.items()}
        queryset = self._build(**stand_ins)
        query = queryset.query
        if query.select_related or query.annotation_select or queryset._fields is not None:
            raise NotPreparable("Only a model's own columns can be prepared.")
        compiler = query.get_compiler(using=using)
        sql, raw_params = compiler.as_sql()
        params: list[Any] = list(raw_params)
        found: dict[str, int] = {}
        for index, param in enumerate(raw_params):
            for name, stand_in in stand_ins.items():
                convert = _as_param(stand_in, param)
                if convert is not None:
                    params[index] = _Slot(name, convert)
                    found[name] = found.get(name, 0) + 1
        for name, stand_in in stand_ins.items():
            text = stand_in.hex if isinstance(stand_in, uuid.UUID) else str(stand_in)
            if found.get(name) != 1 or text in sql or text.lower() in sql:
                raise NotPreparable(f"The value {name!r} does not reach the query as one parameter.")
        start, end = compiler.klass_info["select_fields"][0], compiler.klass_info["select_fields"][-1] + 1
        if compiler.klass_info.get("related_klass_infos") or start != 0:
            raise NotPreparable("Only a model's own columns can be prepared.")
        init_list = tuple(column[0].target.attname for column in compiler.select[start:end])
        converters = compiler.get_converters([column[0] for column in compiler.select])
        compiled = _Compiled(
            model=queryset.model,
            sql=sql,
            params=tuple(params),
            init_list=init_list,
            converters=tuple((i, tuple(fns), expr) for i, (fns, expr) in converters.items()),
        )
        with self._lock:
            self._compiled[using] = compiled
        return compiled


@dataclass(frozen=True)
class _CompiledInsert:
    sql: str
    fields: tuple[Field, ...]


_inserts: dict[tuple[type[Model], str], _CompiledInsert] = {}


def insert(obj: M, *, using: str = DEFAULT_DB_ALIAS) -> M:
    """`obj.save(force_insert=True)` for a new row of a model with an auto-increment key, with the
    INSERT … RETURNING compiled once per model and database.

    What save() does that matters is done here too: each field's `pre_save` (auto_now_add, default
    values) and database preparation, and the pre_save/post_save signals when anything listens.
    A model whose `save()` adds behaviour of its own is not a candidate (the user model's password
    bookkeeping: callers with a password use save())."""
    model = type(obj)
    compiled = _inserts.get((model, using)) or _compile_insert(model, using)
    connection = connections[using]
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in compiled.fields]
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, params)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = using
    if post_save.has_listeners(model):
        post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)
    return obj


def _compile_insert(model: type[Model], using: str) -> _CompiledInsert:
    meta = model._meta
    if meta.auto_field is None or meta.pk is not meta.auto_field:
        raise NotPreparable(f"{meta.label} has no auto-increment key.")
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = tuple(f for f in meta.concrete_fields if f is not meta.auto_field and not f.generated)
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise NotPreparable(f"{meta.label} has a field with its own SQL placeholder.")
    returning, _ = connection.ops.return_insert_columns([meta.pk])
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) {returning}"
    )
    compiled = _CompiledInsert(sql=sql, fields=fields)
    _inserts[(model, using)] = compiled
    return compiled


_updates: dict[tuple[type[Model], tuple[str, ...], str], tuple[str, tuple[Field, ...]]] = {}
MAX_PREPARED_UPDATES = 512  # distinct (model, columns) shapes kept; more are compiled each time


def update(obj: M, fields: Iterable[str], *, using: str = DEFAULT_DB_ALIAS) -> M:
    """`obj.save(update_fields=fields)` with the UPDATE compiled once per model and set of columns:
    `pre_save` (auto_now), database preparation and the save signals as save() does them, and the
    same error when no row was updated. As for `insert`, a model whose save() adds behaviour of its
    own must use save() for that behaviour."""
    model = type(obj)
    names = tuple(sorted(set(fields)))
    key = (model, names, using)
    compiled = _updates.get(key)
    connection = connections[using]
    if compiled is None:
        meta = model._meta
        quote = connection.ops.quote_name
        columns = tuple(meta.get_field(name) for name in names)
        sets = ", ".join(f"{quote(f.column)} = %s" for f in columns)
        compiled = (f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s", columns)
        if len(_updates) < MAX_PREPARED_UPDATES:
            _updates[key] = compiled
    sql, columns = compiled
    update_fields = frozenset(names)
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=update_fields)
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection=connection) for f in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj.pk])
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    if post_save.has_listeners(model):
        post_save.send(
            sender=model, instance=obj, created=False, update_fields=update_fields, raw=False, using=using
        )
    return obj
