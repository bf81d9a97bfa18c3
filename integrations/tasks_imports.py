"""Celery task for CSV imports (imported by integrations.tasks so the worker registers it)."""

from celery import shared_task


@shared_task(name="integrations.tasks.run_import_job")
def run_import_job(job_id: int) -> str:
    # No Celery retries: a redelivered message (acks_late, worker lost) finds the job running
    # with a stale heartbeat and resumes it after its last committed batch; anything else that
    # goes wrong is recorded on the job as `failed` for staff to look at.
    from .imports import import_job_run

    return import_job_run(job_id=job_id).status
