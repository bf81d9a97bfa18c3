"""The workflows consumer (second in INTEGRATIONS_EVENT_CONSUMERS, after leads).

For each normalized event about a lead: exit conditions of its live enrollments (job booked,
invoice paid, unsubscribed, lead lost) and waiting branches that the event answers (a reply, an
open or click, a payment, a booking). Enrollment by rules arrives with #5.
"""

from __future__ import annotations

from zartsalgo.events import BusinessEvent

from .engine import enrollments_on_event


def apply_event(*, event: BusinessEvent) -> None:
    if event.lead is None:
        return
    enrollments_on_event(lead=event.lead, event_type=event.event_type, data=event.data)
