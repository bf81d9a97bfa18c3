"""The leads consumer of normalized business events (first in INTEGRATIONS_EVENT_CONSUMERS).

Idempotent by construction: upserts dedupe, timeline entries are unique per provider id, consent
changes ignore older news, delivery states never move backwards.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from adminops.services import action_build, actions_record_many
from zartsalgo.db import columns, update_changed
from zartsalgo.events import BusinessEvent

from . import normalize as norm
from .models import Activity, Consent, Lead
from .services import (
    SignalMerge,
    activity_build,
    activity_record,
    capture_activity_build,
    consent_set,
    lead_build,
    lead_set_status,
    lead_upsert,
    signal_merge,
    signal_values,
)

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


# --- a whole fast batch at once ---------------------------------------------------------------
#
# The pipeline hands a fast batch (integrations.services) to apply_events: the same effects as
# apply_event on each event in order, with a few statements per batch instead of several per
# event. The common events — a signal about a person (SMS, call, form without consent), a
# delivery status, anything that only needs its lead found — are done set-wise. The rest
# (consent changes, bookings, a signal matching two leads) go through apply_event one by one
# after the set-wise writes, and so does every later event about the same person, so each
# lead still sees its events in order. Any error rolls the whole batch back and the pipeline
# re-runs it event by event (the careful path), so this code never has to handle one.

_ONE_BY_ONE = frozenset({"contact.opted_out", "contact.opted_in", "job.booked"})
_DELIVERY_KINDS = {
    "sms.status": (Activity.Kind.SMS_OUTBOUND,),
    "email.event": (Activity.Kind.EMAIL_OUTBOUND,),
}


def apply_events(*, events: list[BusinessEvent]) -> None:
    by_client: dict[int, list[BusinessEvent]] = {}
    for event in events:
        by_client.setdefault(event.client.pk, []).append(event)
    for client_events in by_client.values():
        _ClientBatch(client_events).run()


class _ClientBatch:
    def __init__(self, events: list[BusinessEvent]) -> None:
        self.events = events
        self.client = events[0].client
        self.by_id: dict[int, Lead] = {}
        self.by_phone: dict[str, Lead] = {}
        self.by_email: dict[str, Lead] = {}
        self.before: dict[int, tuple[Lead, dict[str, object]]] = {}  # id(lead) -> (lead, columns when read)
        self.locked: set[int] = set()
        self.new_leads: list[Lead] = []
        self.activities: list[Activity] = []
        self.merges: list[tuple[Lead, SignalMerge]] = []
        self.deliveries: list[tuple[str, str, tuple[str, ...], str]] = []
        self.one_by_one: list[BusinessEvent] = []
        self.tainted: set[object] = set()  # contact keys and id(lead) of people done one by one

    # contact keys --------------------------------------------------------------------------

    def _keys(self, event: BusinessEvent, values: dict | None) -> set[object]:
        data = event.data
        if values is not None:
            phone, email = values["phone_e164"], values["email_normalized"]
        else:
            phone = norm.normalize_phone(data.get("phone", ""), self.client.phone_region)[0]
            email = norm.normalize_email(data.get("email", ""))[0]
        keys: set[object] = set()
        if phone:
            keys.add(("phone", phone))
        if email:
            keys.add(("email", email))
        if values is None and str(data.get("lead_id") or "").isdigit():
            keys.add(("id", str(data["lead_id"])))
        return keys

    def _index(self, lead: Lead) -> None:
        lead.client = self.client  # the batch's instance: no query for it later
        if lead.pk:
            self.by_id[lead.pk] = lead
        if lead.phone_e164:
            self.by_phone.setdefault(lead.phone_e164, lead)
        if lead.email_normalized:
            self.by_email.setdefault(lead.email_normalized, lead)

    def _find(self, keys: set[object]) -> Lead | None:
        """_find_lead's order: the lead id the event names, then phone, then email."""
        for kind, index in (("id", self.by_id), ("phone", self.by_phone), ("email", self.by_email)):
            for key_kind, value in keys:
                if key_kind == kind and (lead := index.get(int(value) if kind == "id" else value)):
                    return lead
        return None

    # the run -------------------------------------------------------------------------------

    def run(self) -> None:
        plans = []
        for event in self.events:
            values = flags = None
            if event.signal is not None:
                values, flags = signal_values(self.client, event.signal)
            plans.append((event, values, flags, self._keys(event, values)))
        self._read_leads(plans)
        for event, values, flags, keys in plans:
            self._plan(event, values, flags, keys)
        self._write()
        for event in self.one_by_one:
            apply_event(event=event)

    def _read_leads(self, plans) -> None:
        """Two statements: every lead any event names (no lock), then, in id order, a lock on
        those a signal merges into (lead_upsert locks them too, in the same order)."""
        ids, phones, emails = set(), set(), set()
        for _, _, _, keys in plans:
            for kind, value in keys:
                {"id": ids, "phone": phones, "email": emails}[kind].add(value)
        if not (ids or phones or emails):
            return
        wanted = Q(pk__in=[int(i) for i in ids]) if ids else Q()
        if phones:
            wanted |= Q(phone_e164__in=phones)
        if emails:
            wanted |= Q(email_normalized__in=emails)
        for lead in Lead.objects.filter(wanted, client=self.client).order_by("id"):
            self._index(lead)
        merged_into = set()
        for _, values, _, keys in plans:
            if values is not None and (lead := self._find({k for k in keys if k[0] != "id"})):
                merged_into.add(lead.pk)
        if merged_into:
            for lead in Lead.objects.select_for_update().filter(pk__in=sorted(merged_into)).order_by("id"):
                # The locked, current row replaces the unlocked read in every index.
                for index, key in ((self.by_phone, lead.phone_e164), (self.by_email, lead.email_normalized)):
                    if key and index.get(key) is not None and index[key].pk == lead.pk:
                        del index[key]
                self._index(lead)
                self.locked.add(lead.pk)

    def _touch(self, lead: Lead) -> None:
        if id(lead) not in self.before and lead.pk:
            self.before[id(lead)] = (lead, columns(lead))

    def _plan(self, event: BusinessEvent, values, flags, keys) -> None:
        actor = f"system:{event.provider}"
        data = event.data
        if keys & self.tainted or event.event_type in _ONE_BY_ONE:
            self._later(event, keys)
            return
        kind = ACTIVITY_FOR_EVENT.get(event.event_type)
        if event.signal is not None:
            if event.signal.consent or (kind and kind in Activity.OUTBOUND_RESPONSE_KINDS):
                self._later(event, keys)
                return
            by_phone = self.by_phone.get(values["phone_e164"]) if values["phone_e164"] else None
            by_email = self.by_email.get(values["email_normalized"]) if values["email_normalized"] else None
            if by_phone is not None and by_email is not None and by_phone is not by_email:
                self._later(event, keys)  # two leads: lead_upsert flags the possible duplicate
                return
            occurred_at = event.signal.occurred_at or timezone.now()
            lead = by_phone or by_email
            if lead is not None and lead.pk and lead.pk not in self.locked:
                self._later(event, keys)  # not locked by _read_leads: let lead_upsert lock it
                return
            if lead is None:
                lead = lead_build(client=self.client, values=values, flags=flags, occurred_at=occurred_at)
                self.new_leads.append(lead)
                self._index(lead)
                self.activities.append(
                    capture_activity_build(lead=lead, signal=event.signal, occurred_at=occurred_at, actor=actor)
                )
            else:
                self._touch(lead)
                merge = signal_merge(
                    lead=lead,
                    other=None,
                    values=values,
                    flags=flags,
                    signal=event.signal,
                    occurred_at=occurred_at,
                    actor=actor,
                )
                self._index(lead)  # a filled phone or email now finds it too
                self.activities.append(merge.activity)
                self.merges.append((lead, merge))
            event.lead = lead
        else:
            event.lead = self._find(keys)

        if kind and event.lead is not None:
            self._touch(event.lead)
            activity = activity_build(
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
            )
            self.activities.append(activity)
            # _after_activity's bookkeeping for an inbound entry (outbound ones go one by one).
            if event.lead.last_activity_at is None or activity.occurred_at > event.lead.last_activity_at:
                event.lead.last_activity_at = activity.occurred_at
        elif event.event_type in _DELIVERY_KINDS and data.get("provider_id"):
            self.deliveries.append(
                (event.provider, data["provider_id"], _DELIVERY_KINDS[event.event_type], data.get("status", ""))
            )

    def _later(self, event: BusinessEvent, keys: set[object]) -> None:
        self.one_by_one.append(event)
        self.tainted |= keys
        if lead := self._find(keys):
            self.tainted.add(id(lead))
            for key in (("phone", lead.phone_e164), ("email", lead.email_normalized), ("id", str(lead.pk))):
                if key[1]:
                    self.tainted.add(key)

    # the writes ----------------------------------------------------------------------------

    def _write(self) -> None:
        now = timezone.now()
        if self.new_leads:
            if connection.features.can_return_rows_from_bulk_insert:
                Lead.objects.bulk_create(self.new_leads)
            else:  # an old SQLite/MariaDB cannot say which ids it gave: one INSERT each
                for lead in self.new_leads:
                    lead.save(force_insert=True)
        self._update_changed_leads(now)
        if self.activities:
            for activity in self.activities:
                activity.lead_id = activity.lead.pk  # leads created above got their ids just now
            Activity.objects.bulk_create(self.activities)
        if self.merges:
            actions_record_many(
                [
                    action_build(
                        verb="lead.merge",
                        actor=merge.activity.actor_label,
                        lead=lead,
                        target=merge.activity,
                        summary=merge.action_summary,
                        detail=merge.action_detail,
                    )
                    for lead, merge in self.merges
                ]
            )
        self._advance_deliveries()

    def _update_changed_leads(self, now) -> None:
        for lead, _ in self.before.values():
            lead.full_name = f"{lead.first_name} {lead.last_name}".strip()  # what Lead.save() derives
        update_changed(self.before.values(), now=now)

    def _advance_deliveries(self) -> None:
        if not self.deliveries:
            return
        wanted: dict[str, set[str]] = {}
        kinds: set[str] = set()
        for provider, provider_id, event_kinds, _ in self.deliveries:
            wanted.setdefault(provider, set()).add(provider_id)
            kinds.update(event_kinds)
        found: dict[tuple[str, str, str], Activity] = {}
        for provider, ids in wanted.items():
            rows = Activity.objects.select_for_update().filter(
                provider=provider, provider_id__in=sorted(ids), kind__in=sorted(kinds)
            )
            for activity in rows.order_by("id"):
                found[(activity.provider, activity.provider_id, activity.kind)] = activity
        changed: dict[str, list[int]] = {}
        original = {id(a): a.delivery_status for a in found.values()}
        for provider, provider_id, event_kinds, status in self.deliveries:
            activity = next((found[k] for kind in event_kinds if (k := (provider, provider_id, kind)) in found), None)
            if activity is not None and DELIVERY_RANK.get(status, -1) > DELIVERY_RANK.get(activity.delivery_status, -1):
                activity.delivery_status = status
        for activity in found.values():
            if activity.delivery_status != original[id(activity)]:
                changed.setdefault(activity.delivery_status, []).append(activity.pk)
        for status, ids in changed.items():
            Activity.objects.filter(pk__in=ids).update(delivery_status=status)
