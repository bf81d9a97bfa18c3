"""Summaries and metric cards: every transition and its log entry, checks that block publishing,
overrides with reasons, stale sources, and the numbers behind a summary."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from adminops.models import AdminAction
from portal import services
from portal.models import CheckRun, MetricCard, ProofStatus, Summary
from portal.services import PublishBlocked
from tests import factories
from tests.portal.helpers import actions_for, at, clean_lead, last_ten_days, publish
from zartsalgo.errors import ApplicationError, InvalidTransition

pytestmark = pytest.mark.django_db


@pytest.fixture
def period(acme):
    return last_ten_days(acme)


@pytest.fixture
def clean_period(acme, period):
    start, _ = period
    return [clean_lead(acme, start + datetime.timedelta(days=i)) for i in range(3)]


def test_summary_walks_every_transition_and_logs_each(acme, period, clean_period, data_ops_user):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    assert summary.status == ProofStatus.DRAFT and summary.body and summary.summarizer == "deterministic"

    run = services.summary_check(summary=summary, actor=data_ops_user)
    assert run.status == "pass", [(r.check_key, r.summary) for r in run.results.all()]
    assert summary.status == ProofStatus.CHECKED and summary.checked_at

    services.summary_approve(summary=summary, actor=data_ops_user)
    summary.refresh_from_db()
    assert summary.status == ProofStatus.APPROVED and summary.approved_by == data_ops_user

    services.summary_publish(summary=summary, actor=data_ops_user)
    assert summary.status == ProofStatus.PUBLISHED and summary.published_at and summary.publish_override_reason == ""

    services.summary_retract(summary=summary, actor=data_ops_user, reason="Client disputes the booked count")
    assert summary.status == ProofStatus.RETRACTED and summary.retracted_reason == "Client disputes the booked count"

    services.summary_update(summary=summary, actor=data_ops_user, data={"body": "Corrected text."})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.DRAFT and summary.approved_by is None and summary.published_at is None

    log = [(a.verb, a.state, a.actor_user) for a in actions_for(summary)]
    assert log == [
        ("summary.draft", "succeeded", data_ops_user),
        ("summary.check", "succeeded", data_ops_user),
        ("summary.approve", "succeeded", data_ops_user),
        ("summary.publish", "succeeded", data_ops_user),
        ("summary.retract", "succeeded", data_ops_user),
        ("summary.edit", "succeeded", data_ops_user),
    ]
    publish_log = actions_for(summary).get(verb="summary.publish")
    assert publish_log.completed_at >= publish_log.created_at and publish_log.client == acme
    assert actions_for(summary).get(verb="summary.check").detail["check_run_id"] == run.pk


def test_publish_is_logged_intended_before_the_change(acme, period, clean_period, data_ops_user, monkeypatch):
    """The intended row is committed before the item changes: a crash in between leaves it for review."""
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    services.summary_check(summary=summary, actor=data_ops_user)
    services.summary_approve(summary=summary, actor=data_ops_user)
    seen = {}

    def spy(*, action, **kwargs):
        seen["state_before"] = AdminAction.objects.get(pk=action.pk).state
        seen["status_in_tx"] = Summary.objects.get(pk=summary.pk).status
        return original(action=action, **kwargs)

    original = services.action_mark_succeeded
    monkeypatch.setattr(services, "action_mark_succeeded", spy)
    services.summary_publish(summary=summary, actor=data_ops_user)
    assert seen == {"state_before": "intended", "status_in_tx": "published"}


def test_a_failing_check_blocks_publish_until_overridden_with_a_reason(acme, period, clean_period, data_ops_user):
    start, end = period
    clean_lead(acme, start, email_raw="deals@mailinator.com", email_normalized="deals@mailinator.com")
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    run = services.summary_check(summary=summary, actor=data_ops_user)
    assert run.status == "fail"
    services.summary_approve(summary=summary, actor=data_ops_user)

    with pytest.raises(PublishBlocked, match="a check failed"):
        services.summary_publish(summary=summary, actor=data_ops_user)
    with pytest.raises(PublishBlocked):
        services.summary_publish(summary=summary, actor=data_ops_user, override_reason="   ")
    summary.refresh_from_db()
    assert summary.status == ProofStatus.APPROVED
    refused = actions_for(summary).filter(verb="summary.publish")
    assert [a.state for a in refused] == ["failed", "failed"] and "a check failed" in refused[0].error

    reason = "The flagged lead is a real customer using a throwaway address; confirmed by phone."
    services.summary_publish(summary=summary, actor=data_ops_user, override_reason=reason)
    assert summary.status == ProofStatus.PUBLISHED and summary.publish_override_reason == reason
    done = actions_for(summary).filter(verb="summary.publish", state="succeeded").get()
    assert done.detail["override_reason"] == reason and done.detail["overridden_failures"]
    assert "override" in done.summary


def test_publish_needs_checks_that_cover_the_current_text(acme, period, clean_period, data_ops_user):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    with pytest.raises(InvalidTransition):
        services.summary_publish(summary=summary, actor=data_ops_user, override_reason="urgent")  # never checked
    services.summary_check(summary=summary, actor=data_ops_user)
    services.summary_approve(summary=summary, actor=data_ops_user)
    # Checks older than the allowed age no longer vouch for it, override or not.
    CheckRun.objects.filter(summary=summary).update(ran_at=timezone.now() - datetime.timedelta(hours=25))
    Summary.objects.filter(pk=summary.pk).update(content_changed_at=timezone.now() - datetime.timedelta(hours=26))
    with pytest.raises(PublishBlocked, match="older than 24 h"):
        services.summary_publish(summary=summary, actor=data_ops_user, override_reason="urgent")
    # An edit after checking sends it back to draft: checks and approval again.
    services.summary_update(summary=summary, actor=data_ops_user, data={"title": "New title"})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.DRAFT and summary.approved_by is None
    with pytest.raises(InvalidTransition):
        services.summary_approve(summary=summary, actor=data_ops_user)


def test_editing_internal_notes_keeps_the_approval(acme, period, clean_period, data_ops_user):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    services.summary_check(summary=summary, actor=data_ops_user)
    services.summary_approve(summary=summary, actor=data_ops_user)
    services.summary_update(summary=summary, actor=data_ops_user, data={"internal_draft": "call client Friday"})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.APPROVED
    assert actions_for(summary).filter(verb="summary.edit_internal").exists()
    with pytest.raises(ApplicationError):
        services.summary_update(summary=summary, actor=data_ops_user, data={"status": "published"})


def test_approval_needs_a_named_staff_user(acme, period, clean_period, data_ops_user):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor="system:test")
    services.summary_check(summary=summary, actor="system:test")
    portal_user = factories.ClientUserFactory(client=acme).user
    inactive = factories.DataOpsUserFactory(is_active=False)
    for actor in ("system:test", portal_user, inactive):
        with pytest.raises(ApplicationError, match="named, active staff user"):
            services.summary_approve(summary=summary, actor=actor)
    summary.refresh_from_db()
    assert summary.status == ProofStatus.CHECKED and summary.approved_by is None
    assert not actions_for(summary).filter(verb="summary.approve").exists()
    services.summary_approve(summary=summary, actor=data_ops_user)
    assert actions_for(summary).get(verb="summary.approve").actor_user == data_ops_user


@pytest.mark.parametrize(
    "steps,call",
    [
        ([], "approve"),
        ([], "retract"),
        (["check"], "publish"),
        (["check", "approve"], "retract"),
    ],
)
def test_transitions_outside_the_table_are_refused(acme, period, clean_period, data_ops_user, steps, call):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    for step in steps:
        getattr(services, f"proof_{step}")(item=summary, actor=data_ops_user)
    status = Summary.objects.get(pk=summary.pk).status
    kwargs = {"reason": "because"} if call == "retract" else {}
    with pytest.raises(InvalidTransition):
        getattr(services, f"proof_{call}")(item=summary, actor=data_ops_user, **kwargs)
    assert Summary.objects.get(pk=summary.pk).status == status


def test_retract_needs_a_reason_and_hides_it_from_the_portal(client, acme, period, clean_period, data_ops_user):
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    publish(summary, data_ops_user)
    owner = factories.ClientUserFactory(client=acme).user
    client.force_login(owner)
    assert summary.title in client.get("/portal/").content.decode()
    with pytest.raises(ApplicationError, match="Say why"):
        services.summary_retract(summary=summary, actor=data_ops_user, reason=" ")
    services.summary_retract(summary=summary, actor=data_ops_user, reason="Wrong period")
    assert summary.title not in client.get("/portal/").content.decode()


def test_a_generated_draft_stays_internal(acme, period, clean_period, data_ops_user, settings):
    settings.PORTAL_SUMMARIZER = "tests.portal.test_proof.FakeModelSummarizer"
    start, end = period
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    assert summary.body == "" and "MODEL SAYS" in summary.internal_draft and summary.summarizer == "fake-model"
    with pytest.raises(ApplicationError, match="no client-safe body"):
        services.summary_check(summary=summary, actor=data_ops_user)


class FakeModelSummarizer:
    key = "fake-model"
    is_generated = True

    def summarize(self, client, start, end):
        from portal.summarizers import SummaryDraft

        return SummaryDraft(title="Model title", body="MODEL SAYS: leads tripled!", internal_notes="prompt v1")


# --- the deterministic summarizer and the cards use only lead records -----------------------------------


def test_deterministic_summary_numbers_match_the_lead_records(acme, period, data_ops_user):
    start, end = period
    day = start + datetime.timedelta(days=1)
    clean_lead(acme, day, source="web_form", status="booked", first_response_seconds=60)
    clean_lead(acme, day, source="web_form", status="booked", first_response_seconds=120)
    clean_lead(acme, day, source="web_form", status="lost", lost_reason="price", first_response_seconds=600)
    clean_lead(acme, day, source="angi", service_type="Water heater", status="lost", lost_reason="price")
    clean_lead(acme, day, source="angi", service_type="Water heater")
    clean_lead(acme, day, status="lost", lost_reason="spam")  # not counted
    clean_lead(acme, end + datetime.timedelta(days=1))  # after the period
    factories.LeadFactory(client=factories.ClientFactory(), captured_at=at(acme, day))  # another client

    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    body = summary.body
    assert "you received 5 new leads: Web form 3, Angi 2." in body
    assert "By service: Drain cleaning 3, Water heater 2." in body
    assert "Half of the 3 leads we responded to heard back within 2 minutes" in body
    assert "2 of them booked a job (40.0%)." in body
    assert "did not go ahead: Price 2." in body
    assert summary.evidence["lead_count"] == 5 and len(summary.evidence["lead_ids"]) == 5


def test_metric_cards_compute_from_leads_with_a_pre_join_baseline(acme, period, data_ops_user):
    start, end = period
    acme.joined_on = start
    acme.save(update_fields=["joined_on"])
    for i in range(4):
        clean_lead(
            acme, start + datetime.timedelta(days=i), first_response_seconds=300, status="booked" if i < 2 else "new"
        )
    clean_lead(acme, start - datetime.timedelta(days=3), first_response_seconds=3600, utm_source="")  # before joining
    clean_lead(acme, start - datetime.timedelta(days=4), first_response_seconds=1800)

    cards = {
        c.metric_key: c
        for c in services.metric_cards_compute(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    }
    assert set(cards) == {"leads_captured", "median_response_minutes", "booked_rate", "source_coverage"}
    leads = cards["leads_captured"]
    assert (leads.current_value, leads.baseline_value, leads.health) == (4, 2, MetricCard.Health.ON_TRACK)
    response = cards["median_response_minutes"]
    assert (response.current_value, response.baseline_value, response.unit) == (Decimal(5), Decimal(45), "minutes")
    assert response.health == MetricCard.Health.ON_TRACK  # lower is better
    assert cards["booked_rate"].current_value == Decimal(50) and cards["booked_rate"].baseline_value == 0
    assert cards["source_coverage"].current_value == 100 and cards["source_coverage"].baseline_value == 50
    assert all(c.status == ProofStatus.DRAFT and c.next_action and c.meaning for c in cards.values())
    assert AdminAction.objects.filter(verb="metric_card.draft", client=acme).count() == 4

    # Computing again refreshes the unpublished cards instead of duplicating them.
    clean_lead(acme, end)
    again = services.metric_cards_compute(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    assert MetricCard.objects.filter(client=acme).count() == 4
    assert {c.metric_key: c.current_value for c in again}["leads_captured"] == 5


def test_card_lifecycle_shares_the_workflow(acme, period, clean_period, data_ops_user):
    start, end = period
    card = services.metric_cards_compute(client=acme, period_start=start, period_end=end, actor=data_ops_user)[0]
    publish(card, data_ops_user)
    card.refresh_from_db()
    assert card.status == ProofStatus.PUBLISHED
    services.metric_card_retract(card=card, actor=data_ops_user, reason="Recomputing")
    verbs = [(a.verb, a.state) for a in actions_for(card)]
    assert verbs == [
        ("metric_card.draft", "succeeded"),
        ("metric_card.check", "succeeded"),
        ("metric_card.approve", "succeeded"),
        ("metric_card.publish", "succeeded"),
        ("metric_card.retract", "succeeded"),
    ]


def test_a_stale_source_makes_the_card_say_so(client, acme, period, clean_period, data_ops_user, engineer):
    start, end = period
    callrail = factories.ConnectionFactory(
        client=acme,
        provider="callrail",
        last_event_at=timezone.now() - datetime.timedelta(days=1),
        expected_freshness=datetime.timedelta(days=2),
    )
    card = services.metric_cards_compute(
        client=acme, period_start=start, period_end=end, actor=data_ops_user, connection=callrail
    )[0]
    services.metric_card_update(card=card, actor=data_ops_user, data={"current_value": Decimal("987")})
    publish(card, data_ops_user)
    owner = factories.ClientUserFactory(client=acme).user
    client.force_login(owner)
    html = client.get("/portal/").content.decode()
    assert "987 leads" in html and "Stale since" not in html

    # The provider goes quiet: the same published card now says stale instead of showing the number.
    type(callrail).objects.filter(pk=callrail.pk).update(last_event_at=timezone.now() - datetime.timedelta(days=5))
    html = client.get("/portal/").content.decode()
    assert "Stale since" in html and "987" not in html
    client.force_login(engineer)
    admin_html = client.get(f"/admin/portal/metriccard/{card.pk}/change/").content.decode()
    assert "Stale since" in admin_html


def test_an_uncertain_source_fails_the_freshness_check(acme, period, clean_period, data_ops_user):
    start, end = period
    factories.ConnectionFactory(
        client=acme,
        provider="twilio",
        status="uncertain",
        status_reason="auth token rotated",
        last_event_at=timezone.now(),
    )
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    run = services.summary_check(summary=summary, actor=data_ops_user)
    freshness = run.results.get(check_key="freshness")
    assert (
        freshness.status == "fail" and "auth token rotated" in freshness.summary and "last event" in freshness.summary
    )


def test_draft_summaries_command(acme, clean_period, capsys):
    from django.core.management import call_command

    call_command("draft_summaries", "--client", "acme", "--period-days", "30", "--cards", "--check")
    out = capsys.readouterr().out
    assert out.startswith("acme ") and "4 card(s)" in out and "checks:" in out
    assert Summary.objects.get(client=acme).status == ProofStatus.CHECKED
    assert AdminAction.objects.filter(verb="summary.draft", actor_label="system:draft_summaries").exists()
