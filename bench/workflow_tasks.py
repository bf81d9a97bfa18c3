"""The baseline task of bench/workflows.py: a Celery task that does nothing (loaded with -I)."""

from celery import shared_task


@shared_task(name="bench.noop")
def noop() -> None:
    return None
