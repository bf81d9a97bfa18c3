"""The workflows consumer (second in INTEGRATIONS_EVENT_CONSUMERS, after leads).

For each normalized event about a lead: exit conditions of its live enrollments (job booked,
invoice paid, unsubscribed, lead lost) and waiting branches that the event answers (a reply, an
open or click, a payment, a booking). Enrollment by rules arrives with #5.
"""

from __future__ import annotations

from zartsalgo.events import BusinessEvent

from .engine import enrollments_on_event
from .models import Enrollment


def apply_event(*, event: BusinessEvent) -> None:
    if event.lead is None:
        return
    enrollments_on_event(lead=event.lead, event_type=event.event_type, data=event.data)


def apply_events(*, events: list[BusinessEvent]) -> None:
    """A fast batch at once: one read finds the leads with a live enrollment; only their events
    go through apply_event (most leads in a batch are in no workflow)."""
    lead_ids = {event.lead.pk for event in events if event.lead is not None}
    if not lead_ids:
        return
    enrolled = set(
        Enrollment.objects.filter(lead_id__in=lead_ids, state__in=list(Enrollment.LIVE_STATES))
        .values_list("lead_id", flat=True)
        .distinct()
    )
    for event in events:
        if event.lead is not None and event.lead.pk in enrolled:
            apply_event(event=event)
