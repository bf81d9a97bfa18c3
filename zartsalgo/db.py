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

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.db import connection as default_connection
from django.db import transaction
from django.db.models import Model


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


def _execute(instance: Model, *, unless_duplicate: bool) -> int | None:
    connection = default_connection
    sql, fields = _statement(type(instance), connection.vendor, unless_duplicate)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if unless_duplicate and (cursor.rowcount == 0 or not cursor.lastrowid):
            return None
        new_id = cursor.lastrowid
    instance.pk = new_id
    instance._state.adding = False
    instance._state.db = connection.alias
    return new_id


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
