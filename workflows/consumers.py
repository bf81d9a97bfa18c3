"""The workflows consumer (second in INTEGRATIONS_EVENT_CONSUMERS, after leads).

For each normalized event about a lead, in this order:
1. exit conditions of its live enrollments (job booked, invoice paid, unsubscribed, lead lost)
   and waiting branches that the event answers (a reply, an open or click, a payment, a booking);
2. automation rules (workflows/rules.py): enroll the lead, or hand it to the client's CRM.
   After step 1, so an enrollment a rule makes is not woken by the event that made it.
"""

from __future__ import annotations

from zartsalgo.events import BusinessEvent

from .engine import enrollments_on_event
from .models import Enrollment
from .rules import rules_fire, rules_for


def apply_event(*, event: BusinessEvent) -> None:
    if event.lead is None:
        return
    enrollments_on_event(lead=event.lead, event_type=event.event_type, data=event.data)
    rules = rules_for(client_ids={event.lead.client_id}, event_types={event.event_type})
    if rules:
        rules_fire(event=event, rules=rules[(event.lead.client_id, event.event_type)])


def apply_events(*, events: list[BusinessEvent]) -> None:
    """A fast batch at once: one read finds the leads with a live enrollment (only their events
    go through the exit/wake checks: most leads in a batch are in no workflow), one read finds
    the rules any event of the batch could fire."""
    about = [event for event in events if event.lead is not None]
    if not about:
        return
    enrolled = set(
        Enrollment.objects.filter(lead_id__in={e.lead.pk for e in about}, state__in=list(Enrollment.LIVE_STATES))
        .values_list("lead_id", flat=True)
        .distinct()
    )
    rules = rules_for(client_ids={e.lead.client_id for e in about}, event_types={e.event_type for e in about})
    for event in about:
        if event.lead.pk in enrolled:
            enrollments_on_event(lead=event.lead, event_type=event.event_type, data=event.data)
        matching = rules.get((event.lead.client_id, event.event_type))
        if matching:
            done = rules_fire(event=event, rules=matching)
            if any(action == "enroll" for _, action, _ in done):
                enrolled.add(event.lead.pk)  # the lead's later events in this batch check its new enrollment
