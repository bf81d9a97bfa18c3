from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from . import engine


# Deadlocks with event processing on the same lead are retried; everything else is recorded
# on the rows by the engine itself (step runs, holds), not in Celery.
@shared_task(
    name="workflows.tasks.run_enrollment",
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    max_retries=5,
)
def run_enrollment(enrollment_id: int, claim: str | None = None) -> str:
    return engine.enrollment_run(enrollment_id=enrollment_id, claim=claim)


@shared_task(name="workflows.tasks.run_enrollments")
def run_enrollments(enrollment_ids: list[int], claim: str) -> dict[str, int]:
    return engine.enrollments_run(enrollment_ids=enrollment_ids, claim=claim)


@shared_task(name="workflows.tasks.dispatch_due")
def dispatch_due() -> int:
    return engine.enrollments_dispatch_due(limit=settings.WORKFLOWS_DISPATCH_BATCH)
