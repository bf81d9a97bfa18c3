"""Database helpers for the event hot paths: lean single-row INSERTs, and savepoints that a
whole-transaction retry makes redundant (bottom of the file).

Why not `Model.objects.create()`: on the 2-core machines this runs on, compiling an INSERT through
the ORM costs more than the database round trip itself, and catching a duplicate with
`IntegrityError` needs a SAVEPOINT + RELEASE pair around every insert (two more round trips).
These helpers keep the ORM's value handling — defaults, `pre_save`, `get_db_prep_save` — build the
statement text once per model, and settle duplicates in the statement itself:

- MySQL/MariaDB: `ON DUPLICATE KEY UPDATE pk = pk` changes nothing on a conflict with a UNIQUE
  key and reports no new auto-increment id (lastrowid 0). Unlike `INSERT IGNORE` it does not turn
  other errors (truncation, NOT NULL, foreign keys) into warnings: those still raise.
- SQLite (the embedded default): `ON CONFLICT DO NOTHING`, rowcount 0 on a conflict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db import connection as default_connection
from django.db.models import Model
from django.db.models.base import ModelState


def _connection():
    # The wrapper itself, not the `django.db.connection` proxy: each attribute read through the
    # proxy is a context-local lookup, and preparing one row's values reads it once per field.
    return connections[DEFAULT_DB_ALIAS]


@cache
def _statement(model: type[Model], vendor: str, unless_duplicate: bool) -> tuple[str, tuple]:
    opts = model._meta
    fields = tuple(f for f in opts.concrete_fields if f is not opts.auto_field)
    qn = default_connection.ops.quote_name
    # Only quoted names from the model's own metadata go into the text; values are parameters.
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        qn(opts.db_table), ", ".join(qn(f.column) for f in fields), ", ".join(["%s"] * len(fields))
    )
    if unless_duplicate:
        pk = qn(opts.pk.column)
        sql += f" ON DUPLICATE KEY UPDATE {pk} = {pk}" if vendor == "mysql" else " ON CONFLICT DO NOTHING"
    return sql, fields


# Fields whose database value is the Python value itself when that is a str, int, bool or None
# (CharField and its kin, integers, booleans, foreign key ids). For these the ORM's
# get_db_prep_save() only re-checks the type; the hot paths skip that call.
_PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.ForeignKey)
_PLAIN_VALUES = frozenset({str, int, bool, type(None)})


@cache
def _is_plain(field) -> bool:
    if isinstance(field, models.DateField):  # auto_now(_add) is set in pre_save
        return False
    return isinstance(field, _PLAIN_FIELDS)


def _params(instance: Model, fields, connection) -> list:
    params = []
    for f in fields:
        if _is_plain(f) and type(value := getattr(instance, f.attname)) in _PLAIN_VALUES:
            params.append(value)
        else:
            params.append(f.get_db_prep_save(f.pre_save(instance, True), connection))
    return params


def _execute(instance: Model, *, unless_duplicate: bool) -> int | None:
    connection = _connection()
    sql, fields = _statement(type(instance), connection.vendor, unless_duplicate)
    params = _params(instance, fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if unless_duplicate and (cursor.rowcount == 0 or not cursor.lastrowid):
            return None
        new_id = cursor.lastrowid
    instance.pk = new_id
    instance._state.adding = False
    instance._state.db = connection.alias
    return new_id


@cache
def _defaults(model: type[Model]) -> tuple[dict, tuple]:
    constant, computed = {}, []
    for f in model._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            computed.append((f.attname, f.default))  # timezone.now, dict, …: a fresh value each time
        else:
            constant[f.attname] = f.get_default()  # None, "", a number: immutable
    return constant, tuple(computed)


def build(model: type[Model], **values) -> Model:
    """An unsaved instance, as `model(**values)` makes it, for rows written many times a second.

    Model.__init__ is general (positional or keyword arguments, related objects, deferred
    fields, pre_init/post_init signals) and that generality is a measurable part of a webhook
    delivery's cost. Here: column attnames only (`connection_id`, not `connection`), defaults
    precomputed per model, no signals (none of the models this is used for has receivers).
    """
    constant, computed = _defaults(model)
    instance = model.__new__(model)
    instance._state = ModelState()
    attributes = instance.__dict__
    attributes.update(constant)
    for attname, default in computed:
        attributes[attname] = default()
    unknown = values.keys() - constant.keys() - {a for a, _ in computed}
    if unknown:
        raise TypeError(f"{model.__name__} has no columns {sorted(unknown)} (use attnames, e.g. connection_id)")
    attributes.update(values)
    return instance


def insert_row(instance: Model) -> Model:
    """INSERT an unsaved instance (auto-increment pk); sets its pk. Raises like save() would."""
    _execute(instance, unless_duplicate=False)
    return instance


def insert_unless_duplicate(instance: Model) -> bool:
    """INSERT unless a row with the same UNIQUE key exists. True (and pk set) when inserted.

    No savepoint is needed around it: a duplicate is not an error, so the surrounding transaction
    stays usable. Only for models whose sole UNIQUE keys are the ones a duplicate should hit.
    """
    return _execute(instance, unless_duplicate=True) is not None


# --- savepoints that a whole-transaction retry makes redundant -----------------------------------

_RETRIED_AS_A_WHOLE: ContextVar[bool] = ContextVar("retried_as_a_whole", default=False)


@contextmanager
def retried_as_a_whole() -> Iterator[None]:
    """Declare that the transaction being run is re-run step by step, each step in its own
    savepoint, if anything in it fails. Inside, `atomic_step()` blocks skip their savepoints.

    A savepoint costs two round trips (SAVEPOINT, RELEASE) and exists only to keep one step's
    error from spoiling its neighbours. When the caller already promises the careful re-run,
    the common, error-free case need not pay for them.
    """
    token = _RETRIED_AS_A_WHOLE.set(True)
    try:
        yield
    finally:
        _RETRIED_AS_A_WHOLE.reset(token)


def atomic_step() -> transaction.Atomic:
    """`transaction.atomic()` for one step of a larger unit of work (see retried_as_a_whole).

    Outside `retried_as_a_whole` it is exactly `transaction.atomic()`. Inside, an error in the
    step marks the whole transaction for rollback instead of only the step; code that catches
    an error and carries on in the same transaction then fails too, and the caller's careful
    re-run takes that path with real savepoints.
    """
    return transaction.atomic(savepoint=not _RETRIED_AS_A_WHOLE.get())


# --- one row and its dependents in two round trips (MariaDB/MySQL) -------------------------------


def multi_statements_enabled(connection=default_connection) -> bool:
    """True on MariaDB/MySQL connections opened with CLIENT.MULTI_STATEMENTS (settings.py)."""
    if connection.vendor != "mysql":
        return False
    from MySQLdb.constants.CLIENT import MULTI_STATEMENTS

    return bool(connection.settings_dict.get("OPTIONS", {}).get("client_flag", 0) & MULTI_STATEMENTS)


def insert_with_dependents(
    parent: Model, dependents: list[Model], *, link: str, finish: tuple[str, list] | None = None
) -> list[bool] | None:
    """INSERT `parent`, then each dependent (unless a duplicate of a UNIQUE key) with its `link`
    foreign key set to the parent's new id, then the optional `finish` statement, and COMMIT:
    one transaction, one round trip. `finish` may refer to the parent's id as
    @zartsalgo_parent_id and to the number of dependents that were duplicates as
    @zartsalgo_duplicates.
    Returns, per dependent, whether it was inserted.

    Why: on the 2-core machines this runs on, a database round trip costs CPU on both ends, and
    `transaction.atomic()` around two INSERTs is five of them (SET autocommit=0, INSERT, INSERT,
    COMMIT, SET autocommit=1). A webhook delivery pays that on every request. If a statement
    fails, the server runs none after it (COMMIT included) and the transaction is rolled back.

    Returns None, doing nothing, where this cannot apply — SQLite, a connection without multi
    statements, or inside a transaction already (START TRANSACTION would commit it): the caller
    then writes the same rows with the ORM inside transaction.atomic().
    """
    connection = _connection()
    if not multi_statements_enabled(connection) or connection.in_atomic_block or not connection.get_autocommit():
        return None
    parent_sql, parent_fields = _statement(type(parent), connection.vendor, False)
    parts = [
        "START TRANSACTION",
        parent_sql,
        "SET @zartsalgo_parent_id = LAST_INSERT_ID(), @zartsalgo_duplicates = 0",
    ]
    params = _params(parent, parent_fields, connection)
    for dependent in dependents:
        sql, fields = _statement(type(dependent), connection.vendor, False)
        values = [f for f in fields if f.name != link]
        placeholders = ["@zartsalgo_parent_id" if f.name == link else "%s" for f in fields]
        params += _params(dependent, values, connection)
        # The statement text comes from _statement; the link's placeholder is swapped, and a
        # duplicate (the ON DUPLICATE KEY branch, which changes nothing) is counted.
        head = sql.partition(" VALUES (")[0]
        pk = connection.ops.quote_name(type(dependent)._meta.pk.column)
        parts.append(
            f"{head} VALUES ({', '.join(placeholders)}) ON DUPLICATE KEY UPDATE "
            f"{pk} = IF((@zartsalgo_duplicates := @zartsalgo_duplicates + 1) > 0, {pk}, {pk})"
        )
    if finish is not None:
        parts.append(finish[0])
        params += finish[1]
    parts.append("COMMIT")
    # wrap_database_errors: errors met in nextset() become django.db errors, as execute()'s do.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        try:
            cursor.execute("; ".join(parts), params)
            cursor.nextset()  # START TRANSACTION → the parent's INSERT
            parent.pk = cursor.lastrowid
            cursor.nextset()  # → SET
            inserted = []
            for dependent in dependents:
                cursor.nextset()
                new_id = cursor.lastrowid
                inserted.append(bool(new_id))
                if new_id:
                    dependent.pk = new_id
                    setattr(dependent, f"{link}_id", parent.pk)
                    dependent._state.adding, dependent._state.db = False, connection.alias
            while cursor.nextset():  # finish, COMMIT: read to the end, where a late error surfaces
                pass
        except BaseException:
            # A failed statement ends the multi-statement there, inside the open transaction.
            with contextlib.suppress(Exception):
                while cursor.nextset():
                    pass
            with contextlib.suppress(Exception):  # a dead connection rolls back on its own
                cursor.execute("ROLLBACK")
            raise
    parent._state.adding, parent._state.db = False, connection.alias
    return inserted


# --- many rows, different values, one UPDATE -------------------------------------------------------


def update_rows(objs: list[Model], fields: list[str]) -> int:
    """UPDATE the given columns of many saved rows, each to its own value, in one statement:
    `UPDATE t SET a = CASE id WHEN … THEN … END, … WHERE id IN (…)`.

    What QuerySet.bulk_update() does, without building a Case/When expression tree per row and
    field (on a batch of a few hundred rows that tree costs more than everything else the batch
    does). Values go through the same preparation as an INSERT's (_params); auto_now fields are
    not touched: set them on the objects if they should change.
    """
    if not objs:
        return 0
    connection = _connection()
    model = type(objs[0])
    opts = model._meta
    qn = connection.ops.quote_name
    columns = [opts.get_field(name) for name in fields]
    pk = qn(opts.pk.column)
    params: list = []
    assignments = []
    for field in columns:
        whens = []
        for obj, value in zip(objs, _params_of(objs, field, connection), strict=True):
            whens.append("WHEN %s THEN %s")
            params += [obj.pk, value]
        assignments.append(f"{qn(field.column)} = CASE {pk} {' '.join(whens)} END")
    params += [obj.pk for obj in objs]
    # Only quoted names from the model's own metadata go into the text; values are parameters.
    sql = "UPDATE {} SET {} WHERE {} IN ({})".format(  # noqa: S608
        qn(opts.db_table), ", ".join(assignments), pk, ", ".join(["%s"] * len(objs))
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _params_of(objs, field, connection) -> list:
    if _is_plain(field):
        values = [getattr(obj, field.attname) for obj in objs]
        if all(type(v) in _PLAIN_VALUES for v in values):
            return values
    return [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs]


def columns(obj: Model) -> dict[str, object]:
    """A row's column values as they are now, to compare with later (update_changed)."""
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields if not f.primary_key}


def update_changed(rows, *, now) -> None:
    """Write what changed in each (obj, columns(obj) taken earlier): `updated_at` set to `now`,
    one UPDATE (update_rows) per set of changed columns, nothing for an unchanged row."""
    groups: dict[tuple[str, ...], list[Model]] = {}
    for obj, before in rows:
        changed = tuple(name for name, value in before.items() if getattr(obj, name) != value)
        if changed:
            obj.updated_at = now
            groups.setdefault(changed, []).append(obj)
    for attnames, group in groups.items():
        opts = type(group[0])._meta
        update_rows(group, [opts.get_field(name).name for name in dict.fromkeys((*attnames, "updated_at"))])
