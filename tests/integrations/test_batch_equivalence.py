"""A fast batch (set-wise consumers) must leave exactly what the careful path, one event at a
time, leaves: the same leads, timeline, consent, action log and normalized events.

The raw events are stored once; the fast batch runs inside a transaction that is then rolled
back, and the same raw events run again event by event. Both results are compared field by field.
"""

import logging
import urllib.parse
import uuid

import pytest
from django.db import transaction

from adminops.models import AdminAction
from integrations import services
from integrations.models import NormalizedEvent, RawEvent
from integrations.providers import get_adapter
from integrations.providers.base import InboundRequest
from leads.models import Activity, Consent, Lead
from leads.services import activity_record
from tests import factories

from .conftest import form_body, webform_secret
from .test_sendgrid import X_MESSAGE_ID, new_key_pair
from .test_sendgrid import event as sendgrid_event
from .test_twilio import call_status, inbound_sms, sid

pytestmark = pytest.mark.django_db


class _RolledBack(Exception):
    pass


def _store(connection, *, form=None, body: bytes = b"", content_type="application/json") -> list[int]:
    if form is not None:
        body, content_type = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = InboundRequest(
        location="http://testserver/",
        method="POST",
        headers={"webhook-id": f"msg_{uuid.uuid4().hex}"},
        body=body,
        content_type=content_type,
        form=form or {},
    )
    parsed = get_adapter(connection.provider).parse(request, connection)
    with transaction.atomic():
        created, _ = services.raw_events_store(connection=connection, receipt=None, events=parsed, enqueue=False)
    return [raw.pk for raw in created]


def _key(lead_id, names) -> str:
    return names.get(lead_id, "-") if lead_id else "-"


def _snapshot(actions_after: int) -> dict:
    leads = list(Lead.objects.order_by("id"))
    names = {lead.pk: lead.phone_e164 or lead.email_normalized or lead.phone_raw or lead.full_name for lead in leads}
    skip = {"id", "created_at", "updated_at", "status_changed_at"}  # wall-clock "now" in either run

    def lead_row(lead):
        return {f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields if f.attname not in skip}

    def activity_row(a):
        data = dict(a.data)
        if data.get("possible_duplicate_of"):
            data["possible_duplicate_of"] = _key(data["possible_duplicate_of"], names)
        return (
            _key(a.lead_id, names),
            a.occurred_at,
            a.kind,
            a.summary,
            a.body,
            a.provider,
            a.provider_id,
            a.delivery_status,
            a.actor_label,
            a.is_internal,
            repr(sorted(data.items())),
        )

    return {
        "leads": {names[lead.pk]: lead_row(lead) for lead in leads},
        "activities": sorted(activity_row(a) for a in Activity.objects.all()),
        "consents": sorted(
            (_key(c.lead_id, names), c.channel, c.state, c.changed_at, c.evidence) for c in Consent.objects.all()
        ),
        "actions": sorted(
            (a.verb, a.summary, a.state, a.actor_label, _key(a.lead_id, names), a.target_type, repr(a.detail))
            for a in AdminAction.objects.filter(pk__gt=actions_after)
        ),
        "normalized": sorted(
            (e.idempotency_key, e.event_type, _key(e.lead_id, names), tuple(e.applied_consumers), repr(e.data))
            for e in NormalizedEvent.objects.all()
        ),
        "raw": sorted(RawEvent.objects.values_list("idempotency_key", "status", "attempts")),
    }


@pytest.fixture
def world(acme, make_connection):
    """Leads the traffic refers to, and one outbound email whose delivery events arrive."""
    _, public_key = new_key_pair()
    twilio = make_connection("twilio", auth_token="x" * 32)
    sendgrid = make_connection("sendgrid", public_key=public_key)
    webform = make_connection("webform", signing_secret=webform_secret())
    known = factories.LeadFactory(
        client=acme,
        phone_raw="(512) 555-0101",
        phone_e164="+15125550101",
        email_raw="known@example.com",
        email_normalized="known@example.com",
        first_name="",
    )
    by_email = factories.LeadFactory(
        client=acme, phone_raw="", phone_e164=None, email_raw="Pat@Example.com", email_normalized="pat@example.com"
    )
    phone_only = factories.LeadFactory(
        client=acme, phone_raw="512-555-0103", phone_e164="+15125550103", email_raw="", email_normalized=None
    )
    email_only = factories.LeadFactory(
        client=acme, phone_raw="", phone_e164=None, email_raw="dup@example.com", email_normalized="dup@example.com"
    )
    activity_record(
        lead=by_email,
        kind="email_outbound",
        summary="Estimate follow-up",
        actor="system:test",
        provider="sendgrid",
        provider_id=X_MESSAGE_ID,
        delivery_status="queued",
    )
    return {
        "twilio": twilio,
        "sendgrid": sendgrid,
        "webform": webform,
        "leads": (known, by_email, phone_only, email_only),
    }


def _traffic(world) -> list[int]:
    twilio, sendgrid, webform = world["twilio"], world["sendgrid"], world["webform"]
    new_phone = "+15125550199"
    ids = []
    ids += _store(twilio, form=inbound_sms("Is Tuesday ok?", From="+15125550101"))  # known lead
    ids += _store(twilio, form=inbound_sms("My water heater leaks", From=new_phone))  # a new lead
    ids += _store(twilio, form=inbound_sms("Hello?", From=new_phone))  # the same new lead, again
    ids += _store(twilio, form=call_status(sid("CA"), "no-answer", From="+15125550177"))  # missed call, new
    ids += _store(twilio, form=call_status(sid("CA"), "completed", From="+15125550101"))  # call, known
    ids += _store(twilio, form=inbound_sms("STOP", From=new_phone))  # consent: one by one
    ids += _store(twilio, form=inbound_sms("Sorry, wrong button", From=new_phone))  # after it, same person
    email = "pat@example.com"
    ids += _store(sendgrid, body=_json([sendgrid_event("delivered", email=email, seconds_ago=50)]))
    ids += _store(sendgrid, body=_json([sendgrid_event("open", email=email, seconds_ago=40)]))
    ids += _store(sendgrid, body=_json([sendgrid_event("processed", email=email, seconds_ago=60)]))  # late
    ids += _store(sendgrid, body=_json([sendgrid_event("delivered", email="nobody@example.com")]))
    ids += _store(sendgrid, body=_json([sendgrid_event("bogus_kind", email=email)]))  # ignored
    # A web form with consent (one by one), then an email event about its new address.
    ids += _store(webform, body=form_body(contact={"name": "Lee Ortiz", "phone": "", "email": "lee@example.com"}))
    ids += _store(sendgrid, body=_json([sendgrid_event("delivered", email="lee@example.com")]))
    # A form without consent whose phone and email belong to two different leads.
    ids += _store(
        webform,
        body=form_body(consent={}, contact={"name": "Sam Doe", "phone": "512-555-0103", "email": "dup@example.com"}),
    )
    # A form without consent filling the known lead's empty first name, then an SMS from it.
    ids += _store(
        webform,
        body=form_body(consent={}, contact={"name": "Alex Known", "phone": "512 555 0101", "email": ""}, urgency=""),
    )
    ids += _store(twilio, form=inbound_sms("Thanks!", From="+15125550101"))
    return ids


def _json(events) -> bytes:
    import json

    return json.dumps(events).encode()


def test_a_fast_batch_leaves_what_the_careful_path_leaves(world, caplog):
    ids = _traffic(world)
    assert len(ids) == 17
    actions_after = AdminAction.objects.order_by("-id").values_list("id", flat=True).first() or 0

    caplog.set_level(logging.INFO, logger="integrations.services")
    try:
        with transaction.atomic():
            results = services.raw_events_process_ids(ids=ids)
            fast = _snapshot(actions_after)
            raise _RolledBack
    except _RolledBack:
        pass
    # The fast batch really ran set-wise: nothing made it fall back to the careful path.
    assert not [r for r in caplog.records if "carefully" in r.getMessage()]
    assert sorted(results.values()).count("normalized") == 16 and "ignored" in results.values()

    for pk in ids:
        services.raw_event_process(raw_event_id=pk)
    careful = _snapshot(actions_after)

    differences = {
        name: {
            f: (row.get(f), careful["leads"].get(name, {}).get(f))
            for f in row
            if row.get(f) != careful["leads"].get(name, {}).get(f)
        }
        for name, row in fast["leads"].items()
    }
    assert not any(differences.values()), {k: v for k, v in differences.items() if v}  # (fast, careful)
    for part in fast:
        assert fast[part] == careful[part], part
    # And the traffic did what it says: the same person once, consent revoked, status never back.
    assert Lead.objects.filter(phone_e164="+15125550199").count() == 1
    assert Consent.objects.get(lead__phone_e164="+15125550199", channel="sms").state == "revoked"
    assert Activity.objects.get(provider_id=X_MESSAGE_ID).delivery_status == "opened"
    assert Lead.objects.get(phone_e164="+15125550101").first_name == "Alex"
    assert any("possible_duplicate" in str(lead.data_quality_flags) for lead in Lead.objects.all())


def test_a_fast_batch_with_a_held_and_a_retried_event_takes_them_one_by_one(world):
    ids = _store(world["twilio"], form=inbound_sms("one", From="+15125550188"))
    ids += _store(world["twilio"], form=inbound_sms("two", From="+15125550188"))
    RawEvent.objects.filter(pk=ids[0]).update(attempts=1)  # a retry: per-event path after the set
    results = services.raw_events_process_ids(ids=ids)
    assert results == {ids[0]: "normalized", ids[1]: "normalized"}
    lead = Lead.objects.get(phone_e164="+15125550188")
    assert sorted(lead.activities.values_list("kind", flat=True)) == [
        "lead_captured",
        "merge",
        "sms_inbound",
        "sms_inbound",
    ]
    assert dict(RawEvent.objects.filter(pk__in=ids).values_list("pk", "attempts")) == {ids[0]: 2, ids[1]: 1}
