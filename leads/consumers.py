"""The leads consumer of normalized business events (first in INTEGRATIONS_EVENT_CONSUMERS).

Idempotent by construction: upserts dedupe, timeline entries are unique per provider id, consent
changes ignore older news, delivery states never move backwards.
"""

from __future__ import annotations

from zartsalgo.events import BusinessEvent

from . import normalize as norm
from .models import Activity, Consent, Lead
from .services import activity_record, consent_set, lead_set_status, lead_upsert

# Higher rank = further along. A late "sent" never overwrites "delivered" (statuses arrive out of order).
DELIVERY_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "processed": 0,
    "sending": 1,
    "deferred": 1,
    "sent": 2,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "bounced": 4,
    "rejected": 4,
    "read": 5,
    "opened": 5,
    "clicked": 6,
    "complained": 7,
    "unsubscribed": 7,
}

ACTIVITY_FOR_EVENT = {
    "sms.received": Activity.Kind.SMS_INBOUND,
    "call.missed": Activity.Kind.CALL_MISSED,
    "call.completed": Activity.Kind.CALL_INBOUND,
}


def _find_lead(event: BusinessEvent) -> Lead | None:
    data = event.data
    if data.get("lead_id"):
        lead = Lead.objects.filter(client=event.client, pk=data["lead_id"]).first()
        if lead:
            return lead
    phone, _ = norm.normalize_phone(data.get("phone", ""), event.client.phone_region)
    if phone and (lead := Lead.objects.filter(client=event.client, phone_e164=phone).first()):
        return lead
    email, _ = norm.normalize_email(data.get("email", ""))
    if email:
        return Lead.objects.filter(client=event.client, email_normalized=email).first()
    return None


def _advance_delivery(*, provider: str, provider_id: str, kinds: tuple[str, ...], status: str) -> Activity | None:
    activity = (
        Activity.objects.select_for_update().filter(provider=provider, provider_id=provider_id, kind__in=kinds).first()
    )
    if activity is None:
        return None
    if DELIVERY_RANK.get(status, -1) > DELIVERY_RANK.get(activity.delivery_status, -1):
        activity.delivery_status = status
        activity.save(update_fields=["delivery_status"])
    return activity


def apply_event(*, event: BusinessEvent) -> None:
    actor = f"system:{event.provider}"
    data = event.data
    lead_locked = False
    if event.signal is not None:
        # lead_upsert returns the lead created or row-locked in this transaction, current.
        event.lead = lead_upsert(client=event.client, signal=event.signal, actor=actor).lead
        lead_locked = True
    elif event.lead is None:
        event.lead = _find_lead(event)

    kind = ACTIVITY_FOR_EVENT.get(event.event_type)
    if kind and event.lead is not None:
        activity_record(
            lead=event.lead,
            kind=kind,
            summary=data.get("summary") or dict(Activity.Kind.choices)[kind],
            body=data.get("body", ""),
            occurred_at=event.occurred_at,
            provider=event.provider,
            provider_id=data.get("provider_id") or None,
            delivery_status=data.get("status", ""),
            actor=actor,
            data={k: v for k, v in data.items() if k not in {"body", "summary"}},
            lead_locked=lead_locked,
        )
    elif event.event_type == "sms.status" and data.get("provider_id"):
        _advance_delivery(
            provider=event.provider,
            provider_id=data["provider_id"],
            kinds=(Activity.Kind.SMS_OUTBOUND,),
            status=data.get("status", ""),
        )
    elif event.event_type == "email.event" and data.get("provider_id"):
        _advance_delivery(
            provider=event.provider,
            provider_id=data["provider_id"],
            kinds=(Activity.Kind.EMAIL_OUTBOUND,),
            status=data.get("status", ""),
        )
    elif event.event_type in ("contact.opted_out", "contact.opted_in") and event.lead is not None:
        consent_set(
            lead=event.lead,
            channel=data.get("channel", "sms"),
            state=Consent.State.REVOKED if event.event_type == "contact.opted_out" else Consent.State.GRANTED,
            evidence=data.get("evidence") or f"{event.event_type} via {event.provider}",
            actor=actor,
            occurred_at=event.occurred_at,
        )
    elif event.event_type == "job.booked" and event.lead is not None and event.lead.status != Lead.Status.BOOKED:
        lead = Lead.objects.get(pk=event.lead.pk)
        if Lead.Status.BOOKED in _allowed(lead.status):
            lead_set_status(
                lead=lead,
                status=Lead.Status.BOOKED,
                actor=actor,
                reason=data.get("summary", ""),
                occurred_at=event.occurred_at,
            )


def _allowed(status: str) -> frozenset[str]:
    from .services import STATUS_TRANSITIONS

    return STATUS_TRANSITIONS.get(status, frozenset())
