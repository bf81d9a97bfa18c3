import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from adminops.models import AdminAction
from leads.models import Activity, Consent, Lead
from leads.services import LeadSignal, activity_record, consent_set, lead_set_status, lead_upsert
from tests import factories
from zartsalgo.errors import InvalidTransition

pytestmark = pytest.mark.django_db


def upsert(client, **kwargs):
    kwargs.setdefault("source", "web_form")
    return lead_upsert(client=client, signal=LeadSignal(**kwargs))


def test_same_number_five_ways_is_one_lead_with_every_signal_on_its_timeline(acme):
    ways = ["(512) 555-0143", "512.555.0143", "+1 512 555 0143", "5125550143", "1-512-555-0143"]
    results = [
        upsert(acme, phone=w, source=s)
        for w, s in zip(ways, ["web_form", "sms", "missed_call", "angi", "csv"], strict=True)
    ]

    assert Lead.objects.filter(client=acme).count() == 1
    lead = Lead.objects.get(client=acme)
    assert lead.phone_e164 == "+15125550143"
    assert [r.created for r in results] == [True, False, False, False, False]
    assert lead.activities.filter(kind=Activity.Kind.MERGE).count() == 4
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).count() == 1
    # Each merge is on the action log, and says which source it came from.
    assert AdminAction.objects.filter(lead=lead, verb="lead.merge").count() == 4
    sources = {a.data["source"] for a in lead.activities.filter(kind=Activity.Kind.MERGE)}
    assert sources == {"sms", "missed_call", "angi", "csv_import"}
    # First source is kept; the others are recorded as conflicts, not silently dropped.
    assert lead.source == "web_form"
    assert results[1].conflicts["source"] == {"kept": "web_form", "received": "sms"}


def test_email_case_dedupes(acme):
    upsert(acme, email="Maria.Garcia@Gmail.COM")
    result = upsert(acme, email="  maria.garcia@gmail.com ", source="quote")
    assert not result.created
    assert Lead.objects.filter(client=acme).count() == 1
    assert Lead.objects.get().email_normalized == "maria.garcia@gmail.com"


def test_dedupe_is_per_client(acme, other_client):
    a = upsert(acme, phone="512-555-0143")
    b = upsert(other_client, phone="+15125550143")
    assert a.created and b.created and a.lead.pk != b.lead.pk


def test_invalid_values_are_kept_raw_and_flagged_never_dropped(acme):
    result = upsert(acme, phone="call me maybe", email="bob@", full_name="BOB JONES")
    lead = result.lead
    assert result.created
    assert lead.phone_raw == "call me maybe" and lead.phone_e164 is None
    assert lead.email_raw == "bob@" and lead.email_normalized is None
    codes = {f["code"] for f in lead.data_quality_flags}
    assert {"phone_unparseable", "email_invalid", "no_contact_point"} <= codes
    assert lead.has_data_quality_issues
    assert (lead.first_name, lead.last_name) == ("Bob", "Jones")


def test_two_unreadable_signals_make_two_leads_not_a_crash(acme):
    upsert(acme, phone="n/a")
    upsert(acme, phone="n/a")
    # Nothing to dedupe on: both are kept, both flagged for staff.
    assert Lead.objects.filter(client=acme, has_data_quality_issues=True).count() == 2


def test_a_valid_phone_arriving_later_fills_and_clears_the_phone_flag(acme):
    first = upsert(acme, email="kim@example.com", phone="555-12")
    assert any(f["field"] == "phone" for f in first.lead.data_quality_flags)
    second = upsert(acme, email="KIM@example.com", phone="(512) 555-0177", source="sms")
    lead = Lead.objects.get(pk=first.lead.pk)
    assert second.filled["phone_e164"] == "+15125550177"
    assert lead.phone_e164 == "+15125550177"
    assert not any(f["field"] == "phone" for f in lead.data_quality_flags)


def test_merge_fills_empty_fields_and_records_conflicts(acme):
    upsert(acme, phone="5125550143", first_name="Ana", service_type="drain cleaning", market="austin")
    result = upsert(
        acme,
        phone="5125550143",
        first_name="Anna",
        last_name="Lopez",
        service_type="Water Heater",
        attribution={"utm_source": "google", "gclid": "abc123"},
    )
    lead = result.lead
    assert lead.first_name == "Ana" and lead.last_name == "Lopez"
    assert lead.service_type == "Drain cleaning"  # catalog spelling of the first value
    assert lead.market == "Austin"
    assert lead.utm_source == "google" and lead.gclid == "abc123"
    assert result.conflicts["first_name"] == {"kept": "Ana", "received": "Anna"}
    assert result.conflicts["service_type"] == {"kept": "Drain cleaning", "received": "Water heater"}
    merge = lead.activities.get(kind=Activity.Kind.MERGE)
    assert set(merge.data["filled"]) == {"last_name", "utm_source", "gclid"}


def test_urgency_only_escalates(acme):
    upsert(acme, phone="5125550143", urgency="no rush")
    assert Lead.objects.get().urgency == "low"
    upsert(acme, phone="5125550143", urgency="ASAP water everywhere")
    assert Lead.objects.get().urgency == "emergency"
    upsert(acme, phone="5125550143", urgency="no rush")
    assert Lead.objects.get().urgency == "emergency"


def test_phone_and_email_matching_different_leads_flags_possible_duplicate(acme):
    by_phone = upsert(acme, phone="5125550143").lead
    by_email = upsert(acme, email="sam@example.com").lead
    result = upsert(acme, phone="512-555-0143", email="Sam@Example.com")
    assert result.lead.pk == by_phone.pk
    assert Lead.objects.filter(client=acme).count() == 2
    lead = Lead.objects.get(pk=by_phone.pk)
    assert lead.email_normalized is None  # the email stays with the lead that owns it
    flag = next(f for f in lead.data_quality_flags if f["code"] == "possible_duplicate")
    assert f"#{by_email.pk}" in flag["reason"]


def test_captured_at_is_the_earliest_signal(acme):
    now = timezone.now()
    upsert(acme, phone="5125550143", occurred_at=now)
    upsert(acme, phone="5125550143", occurred_at=now - datetime.timedelta(days=2), source="csv")
    assert Lead.objects.get().captured_at == now - datetime.timedelta(days=2)


def test_signal_consent_and_late_older_consent_does_not_override(acme):
    now = timezone.now()
    lead = upsert(acme, phone="5125550143", consent={"sms": (True, "TCPA checkbox")}, occurred_at=now).lead
    consent = Consent.objects.get(lead=lead, channel="sms")
    assert consent.state == "granted" and consent.evidence == "TCPA checkbox"

    consent_set(
        lead=lead,
        channel="sms",
        state="revoked",
        evidence="SMS STOP",
        actor="twilio",
        occurred_at=now + datetime.timedelta(hours=1),
    )
    # A START that happened *before* the STOP but arrives after it must not re-grant.
    consent_set(
        lead=lead,
        channel="sms",
        state="granted",
        evidence="SMS START",
        actor="twilio",
        occurred_at=now + datetime.timedelta(minutes=30),
    )
    consent.refresh_from_db()
    assert consent.state == "revoked" and consent.evidence == "SMS STOP"
    changes = lead.activities.filter(kind=Activity.Kind.CONSENT_CHANGE).count()
    assert changes == 2  # granted, revoked — the stale START left no trace as a change


@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_one_person_make_one_lead():
    if connection.vendor != "mysql":
        pytest.skip("row locks and concurrent connections are exercised on MariaDB")
    client = factories.ClientFactory()
    barrier = threading.Barrier(4)
    errors = []

    def worker(raw):
        try:
            barrier.wait()
            lead_upsert(client=client, signal=LeadSignal(source="web_form", phone=raw))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(w,))
        for w in ["5125550143", "(512) 555-0143", "+15125550143", "512.555.0143"]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Lead.objects.filter(client=client).count() == 1
    lead = Lead.objects.get(client=client)
    assert lead.activities.count() == 4  # one capture + three merges: no signal lost


def test_merge_flags_only_values_the_lead_took(acme):
    # Lead keeps its catalog service: a rejected off-catalog value must not flag it.
    kept = upsert(acme, phone="5125550143", service_type="drain cleaning").lead
    upsert(acme, phone="5125550143", service_type="Gas line", source="sms")
    kept.refresh_from_db()
    assert kept.service_type == "Drain cleaning"
    assert not any(f["field"] == "service_type" for f in kept.data_quality_flags)
    # Lead had no service: the off-catalog value is adopted and flagged like on a new lead.
    filled = upsert(acme, phone="5125550144", source="missed call").lead
    upsert(acme, phone="5125550144", service_type="Gas line", market="Narnia")
    filled.refresh_from_db()
    assert filled.service_type == "Gas line" and filled.market == "Narnia"
    codes = {f["code"] for f in filled.data_quality_flags}
    assert {"service_type_not_in_catalog", "market_not_in_catalog"} <= codes


def test_status_change_is_checked_against_the_database_not_a_stale_copy(acme):
    stale = upsert(acme, phone="5125550143").lead
    fresh = Lead.objects.get(pk=stale.pk)
    lead_set_status(lead=fresh, status="booked", actor="system:test")
    with pytest.raises(InvalidTransition):
        lead_set_status(lead=stale, status="quoted", actor="system:test")  # booked → quoted is not allowed
    assert Lead.objects.get(pk=stale.pk).status == "booked"


def test_first_response_sets_response_time_and_backdated_contacted_status(acme):
    captured = timezone.now() - datetime.timedelta(hours=3)
    lead = upsert(acme, phone="5125550143", occurred_at=captured).lead
    replied = captured + datetime.timedelta(minutes=7)
    activity_record(
        lead=lead,
        kind="sms_outbound",
        summary="Thanks, we'll call",
        actor="system:test",
        occurred_at=replied,
        provider="twilio",
        provider_id="SM1",
    )
    # The same provider message recorded again adds nothing.
    _, created = activity_record(
        lead=lead,
        kind="sms_outbound",
        summary="dup",
        actor="system:test",
        occurred_at=replied,
        provider="twilio",
        provider_id="SM1",
    )
    lead.refresh_from_db()
    assert not created
    assert lead.first_response_seconds == 7 * 60 and lead.first_response_at == replied
    assert lead.status == "contacted" and lead.status_changed_at == replied
    assert lead.activities.filter(kind="sms_outbound").count() == 1
