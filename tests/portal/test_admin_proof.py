"""The staff side of proof: drafting from the admin, actions through the services, the checks on
the page, and traceability (published item → its leads and events → a lead's timeline)."""

import datetime
import re
from html import unescape

import pytest

from adminops.models import AdminAction
from portal import services
from portal.models import MetricCard, ProofStatus, Summary
from tests import factories
from tests.portal.helpers import at, clean_lead, last_ten_days, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def period(acme):
    return last_ten_days(acme)


def _href(html: str, text: str) -> str:
    match = re.search(r'<a href="([^"]+)">[^<]*' + re.escape(text), html)
    assert match, f"no link with {text!r}"
    return unescape(match.group(1))


def test_from_a_published_summary_staff_reach_exactly_its_leads_and_events(
    client, data_ops_user, acme, other_client, period
):
    start, end = period
    behind = [clean_lead(acme, start + datetime.timedelta(days=i)) for i in range(3)]
    behind.append(clean_lead(acme, start, status="lost", lost_reason="price"))
    clean_lead(acme, start, status="lost", lost_reason="spam")  # excluded from every number
    clean_lead(acme, end + datetime.timedelta(days=1))  # after the period
    clean_lead(acme, start - datetime.timedelta(days=1))  # before it
    clean_lead(other_client, start)
    in_period = factories.NormalizedEventFactory(
        raw_event__connection__client=acme, lead=behind[0], occurred_at=at(acme, start, 9)
    )
    factories.NormalizedEventFactory(
        raw_event__connection__client=acme, occurred_at=at(acme, end + datetime.timedelta(days=2))
    )
    factories.NormalizedEventFactory(raw_event__connection__client=other_client, occurred_at=at(acme, start, 9))

    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    publish(summary, data_ops_user, override_reason="test data")
    client.force_login(data_ops_user)
    page = client.get(f"/admin/portal/summary/{summary.pk}/change/").content.decode()
    assert "4 leads behind this" in page

    # Click 1: the lead list, exactly the leads the numbers came from.
    response = client.get(_href(page, "leads behind this"))
    assert response.status_code == 200
    assert "?e=1" not in response.request.get("QUERY_STRING", "")
    assert sorted(lead.pk for lead in response.context["cl"].result_list) == sorted(lead.pk for lead in behind)
    assert summary.evidence["lead_count"] == 4

    # Click 2: a lead's page shows its timeline (and the action log) — the source of each number.
    lead_page = client.get(f"/admin/leads/lead/{behind[0].pk}/change/")
    assert lead_page.status_code == 200 and "Timeline (newest first)" in lead_page.content.decode()

    # And the source events of the period, one click from the summary too.
    events = client.get(_href(page, "source event"))
    assert events.status_code == 200
    assert [e.pk for e in events.context["cl"].result_list] == [in_period.pk]


def test_drafting_from_the_add_page_goes_through_the_service(client, data_ops_user, acme, period):
    start, end = period
    clean_lead(acme, start)
    client.force_login(data_ops_user)
    response = client.post(
        "/admin/portal/summary/add/",
        {"client": acme.pk, "period_start": start.isoformat(), "period_end": end.isoformat()},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    summary = Summary.objects.get(client=acme)
    assert summary.summarizer == "deterministic" and "1 new lead" in summary.body
    assert AdminAction.objects.get(verb="summary.draft").actor_user == data_ops_user

    response = client.post(
        "/admin/portal/metriccard/add/",
        {"client": acme.pk, "period_start": start.isoformat(), "period_end": end.isoformat(), "connection": ""},
    )
    assert response.status_code == 302
    assert MetricCard.objects.filter(client=acme, status=ProofStatus.DRAFT).count() == 4


def test_admin_actions_check_approve_and_publish_with_an_override_form(client, data_ops_user, acme, period):
    start, end = period
    clean_lead(acme, start, first_name="Xkcdqwrtzp")
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    client.force_login(data_ops_user)
    url = "/admin/portal/summary/"
    client.post(url, {"action": "run_checks", "_selected_action": [summary.pk]})
    client.post(url, {"action": "approve", "_selected_action": [summary.pk]})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.APPROVED and summary.approved_by == data_ops_user

    page = client.get(f"/admin/portal/summary/{summary.pk}/change/").content.decode()
    assert "Spam heuristics" in page and "consonants in a row" in page  # the reasons, on the page

    form = client.post(url, {"action": "publish", "_selected_action": [summary.pk]})
    assert form.status_code == 200 and "Override reason" in form.content.decode()
    client.post(url, {"action": "publish", "_selected_action": [summary.pk], "apply": "1", "reason": ""})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.APPROVED  # refused: a check failed and no reason was given
    client.post(url, {"action": "publish", "_selected_action": [summary.pk], "apply": "1", "reason": "Real customer"})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.PUBLISHED and summary.publish_override_reason == "Real customer"

    form = client.post(url, {"action": "retract", "_selected_action": [summary.pk], "apply": "1", "reason": ""})
    assert form.status_code == 200 and "Why it is retracted" in form.content.decode()
    client.post(url, {"action": "retract", "_selected_action": [summary.pk], "apply": "1", "reason": "Wrong month"})
    summary.refresh_from_db()
    assert summary.status == ProofStatus.RETRACTED and summary.retracted_by == data_ops_user


def test_staff_edit_of_client_text_goes_back_to_draft(client, data_ops_user, acme, period):
    start, end = period
    clean_lead(acme, start)
    summary = services.summary_draft(client=acme, period_start=start, period_end=end, actor=data_ops_user)
    services.summary_check(summary=summary, actor=data_ops_user)
    client.force_login(data_ops_user)
    url = f"/admin/portal/summary/{summary.pk}/change/"
    response = client.post(url, {"title": summary.title, "body": "Rewritten for the client.", "internal_draft": ""})
    assert response.status_code == 302
    summary.refresh_from_db()
    assert summary.body == "Rewritten for the client." and summary.status == ProofStatus.DRAFT
    assert AdminAction.objects.filter(verb="summary.edit", actor_user=data_ops_user).exists()
