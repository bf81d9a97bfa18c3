"""The manual fallback of a CRM handoff that died (docs/crm.md).

Called by integrations.crm through settings.INTEGRATIONS_CRM_DEAD_HANDLERS (integrations may not
import workflows, so the wiring is a dotted path in settings, like the event consumers).
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from .models import StaffTask

# Soon, but not "now": the handoff has already waited through its retries; an hour lets the
# owner pick it up in the normal flow of the day.
FALLBACK_DUE_AFTER = timedelta(hours=1)


def crm_handoff_dead_create_task(*, handoff) -> StaffTask | None:
    """Open a staff task with the prepared payload when a handoff that must reach the client's
    CRM died. One task per handoff, however often it dies (staff retries can kill it again)."""
    if not handoff.must_reach:
        return None
    lead = handoff.lead
    provider = handoff.connection.provider
    notes = (
        f"CRM handoff #{handoff.pk} to {provider} failed for good after {handoff.attempts} attempt(s).\n"
        f"Last error: {handoff.last_error}\n\n"
        "Put this contact into the client's CRM by hand (or fix the cause and retry it from the "
        "admin: Integrations → CRM handoffs), then mark the handoff 'settled by hand' with the "
        "CRM's id so it is not sent again.\n\n"
        f"Prepared payload:\n{json.dumps(handoff.payload, indent=2, ensure_ascii=False, sort_keys=True)}"
    )
    task, _ = StaffTask.objects.get_or_create(
        idempotency_key=f"crm-fallback:{handoff.pk}",
        defaults={
            "client_id": handoff.client_id,
            "lead": lead,
            "title": f"Hand {lead.full_name or f'lead #{lead.pk}'} to the client's CRM by hand"[:200],
            "notes": notes,
            "assignee": lead.owner,
            "due_at": timezone.now() + FALLBACK_DUE_AFTER,
        },
    )
    return task
