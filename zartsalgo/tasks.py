"""The one way to enqueue background work: after the surrounding transaction commits."""

from functools import partial

from celery import Task
from django.db import transaction


def enqueue_on_commit(task: Task, *args, **kwargs) -> None:
    """Send `task` with ids (never model instances) once the current transaction commits.

    Enqueueing before commit lets a fast worker look for rows that are not visible yet, or act
    on a transaction that later rolls back. Outside a transaction Django runs the callback
    immediately. In the embedded mode (no Redis) the task then runs in-process.

    robust=True: the data is already committed, so a broker outage (or an in-process task that
    fails) is logged and must not turn a stored webhook delivery into a 500. MySQL is the record;
    the periodic sweepers find rows whose message never arrived and enqueue them again.
    """
    transaction.on_commit(partial(task.apply_async, args=args, kwargs=kwargs), robust=True)
