"""Each data-quality check flags a planted case with a reason a person can read, and passes a clean one."""

import datetime

import pytest
from django.utils import timezone

from leads.models import Activity
from portal.checks import (
    DuplicateLeadsCheck,
    FieldCompletenessCheck,
    ProviderFreshnessCheck,
    SpamCheck,
    gibberish_reason,
)
from tests import factories
from tests.portal.helpers import at, clean_lead, last_ten_days

pytestmark = pytest.mark.django_db


@pytest.fixture
def period(acme):
    return last_ten_days(acme)


def _flagged(outcome):
    return {row["lead_id"]: " | ".join(row["reasons"]) for row in outcome.details.get("leads", [])}


def test_clean_leads_pass_every_check(acme, period):
    start, end = period
    for i in range(3):
        clean_lead(acme, start + datetime.timedelta(days=i))
    factories.ConnectionFactory(client=acme, provider="webform", last_event_at=timezone.now())
    for check in (DuplicateLeadsCheck(), SpamCheck(), ProviderFreshnessCheck(), FieldCompletenessCheck()):
        outcome = check.run(acme, start, end)
        assert outcome.status == "pass", (check.key, outcome.summary, outcome.details)


def test_spam_flags_gibberish_links_disposable_email_and_impossible_phone(acme, period):
    start, end = period
    day = start + datetime.timedelta(days=2)
    clean = clean_lead(acme, day)
    gibberish = clean_lead(acme, day, first_name="Xkcdqwrtzp", last_name="Jjjjjj")
    linky = clean_lead(acme, day)
    Activity.objects.create(
        client=acme,
        lead=linky,
        kind=Activity.Kind.SMS_INBOUND,
        occurred_at=at(acme, day, 13),
        summary="SMS received",
        body="Cheap meds http://a.example/1 http://b.example/2 www.c.example/3 https://d.example/4",
    )
    disposable = clean_lead(acme, day, email_raw="Deals@Mailinator.com", email_normalized="deals@mailinator.com")
    impossible = clean_lead(acme, day, phone_raw="555-0100", phone_e164=None)
    already = clean_lead(acme, day, first_name="Qwrtzpxkl", status="lost", lost_reason="spam")

    outcome = SpamCheck().run(acme, start, end)
    flagged = _flagged(outcome)
    assert outcome.status == "fail"
    assert set(flagged) == {gibberish.pk, linky.pk, disposable.pk, impossible.pk}
    assert clean.pk not in flagged and already.pk not in flagged
    assert "consonants in a row" in flagged[gibberish.pk] or "repeats one letter" in flagged[gibberish.pk]
    assert "has 4 links (limit 2)" in flagged[linky.pk]
    assert "email domain mailinator.com is a disposable-mailbox service" in flagged[disposable.pk]
    assert 'phone "555-0100" is not a valid number' in flagged[impossible.pk]
    assert outcome.details["already_marked_spam"] == 1


def test_gibberish_heuristic_spares_real_names():
    for text in ("Schmidt", "Strzelczyk", "Knightsbridge", "Nguyen", "Llewellyn", "O'Brien-Smith", "HVAC leak"):
        assert gibberish_reason(text) == "", text
    assert "repeats one letter" in gibberish_reason("aaaaaa")
    assert "consonants in a row" in gibberish_reason("asdfghjkl")


def test_duplicates_by_name_and_postal_code_and_raw_phone(acme, period):
    start, end = period
    day = start + datetime.timedelta(days=1)
    a = clean_lead(acme, day, first_name="Pat", last_name="Jones", postal_code="78701")
    b = clean_lead(acme, day, first_name="pat", last_name="JONES", postal_code="78701")
    c = clean_lead(acme, day, phone_raw="(512) 201-9999 ext", phone_e164=None)
    d = clean_lead(acme, day, phone_raw="512-201-9999 ext", phone_e164=None)
    single = clean_lead(acme, day, first_name="Pat", last_name="Jones", postal_code="78702")

    outcome = DuplicateLeadsCheck().run(acme, start, end)
    groups = {tuple(g["lead_ids"]): g["reason"] for g in outcome.details["groups"]}
    assert outcome.status == "fail"
    assert groups[(a.pk, b.pk)] == "same name and postal code: pat jones / 78701"
    assert groups[(c.pk, d.pk)] == "same phone: 5122019999"
    assert all(single.pk not in ids for ids in groups)


def test_freshness_fails_on_a_stale_connection_with_its_last_event(acme, period):
    start, end = period
    last = timezone.now() - datetime.timedelta(days=6)
    stale = factories.ConnectionFactory(client=acme, provider="callrail", last_event_at=last)
    factories.ConnectionFactory(client=acme, provider="hubspot", last_event_at=None)  # outbound only: ignored
    outcome = ProviderFreshnessCheck().run(acme, start, end)
    assert outcome.status == "fail"
    assert f"callrail #{stale.pk}: stale" in outcome.summary
    assert f"last event {timezone.localtime(last):%Y-%m-%d %H:%M}" in outcome.summary
    assert [c["provider"] for c in outcome.details["connections"]] == ["callrail"]


def test_completeness_warns_and_fails_by_share(acme, period, settings):
    start, end = period
    day = start + datetime.timedelta(days=1)
    for _ in range(7):
        clean_lead(acme, day)
    gaps = [clean_lead(acme, day, service_type="", utm_source="") for _ in range(3)]
    outcome = FieldCompletenessCheck().run(acme, start, end)
    assert outcome.status == "warn"  # 70%: below 90%, above 60%
    assert "service type 70%" in outcome.summary and "known source 100%" in outcome.summary
    assert sorted(outcome.details["missing_lead_ids"]["service_type"]) == sorted(g.pk for g in gaps)
    settings.PORTAL_COMPLETENESS_FAIL_BELOW = 0.75
    assert FieldCompletenessCheck().run(acme, start, end).status == "fail"
