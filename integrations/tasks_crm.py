"""Celery tasks for CRM handoffs (imported by integrations.tasks so the worker registers them)."""

from celery import shared_task

from . import crm


# acks_late + reject_on_worker_lost (also the project defaults, stated here because this task
# depends on them): a worker killed mid-call leaves the message to be delivered again, and the
# sweeper re-sends a row stuck in `sending` in any case. Either way the send is repeated with
# the same idempotency key, which the CRM treats as the same contact (integrations/crm.py).
# No Celery retries: the schedule lives on the row (next_attempt_at), so it survives Redis.
@shared_task(name="integrations.tasks.send_crm_handoff", acks_late=True, reject_on_worker_lost=True)
def send_crm_handoff(handoff_id: int) -> str:
    handoff = crm.crm_handoff_send(handoff_id=handoff_id)
    return handoff.status if handoff is not None else "missing"


@shared_task(name="integrations.tasks.sweep_crm_handoffs")
def sweep_crm_handoffs() -> int:
    return crm.crm_handoffs_requeue_due()
