"""The client portal's pages: published, client-safe proof only; report pages for published
periods; charts with text alternatives; bounded queries."""

import datetime
import re

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Connection
from leads.rollups import rollups_refresh
from portal import services
from portal.models import MetricCard, ProofStatus
from portal.services import client_user_create
from tests import factories
from tests.portal.helpers import clean_lead, last_ten_days, publish

pytestmark = pytest.mark.django_db

SENTINELS = ("SENTINEL-DRAFT", "SENTINEL-NOTES", "SENTINEL-EVIDENCE", "SENTINEL-ACTIVITY", "SENTINEL-RAW")


@pytest.fixture
def owner(acme):
    return client_user_create(
        client=acme, email="owner@acme.example", password="pw-test-123456", actor="system:test"
    ).user


@pytest.fixture
def period(acme):
    return last_ten_days(acme)


def slug(start, end) -> str:
    return f"{start:%Y-%m-%d}--{end:%Y-%m-%d}"


def published_card(client, start, end, approver, **fields):
    """A published card row written directly (no checks): for volume tests and fixtures."""
    values = {
        "client": client,
        "period_start": start,
        "period_end": end,
        "status": ProofStatus.PUBLISHED,
        "approved_by": approver,
        "approved_at": timezone.now(),
        "published_by": approver,
        "published_at": timezone.now(),
        "internal_notes": "SENTINEL-NOTES",
        "evidence": {"why": "SENTINEL-EVIDENCE"},
    }
    values.update(fields)
    return factories.MetricCardFactory(**values)


def published_summary(client, start, end, approver, **fields):
    values = {
        "client": client,
        "period_start": start,
        "period_end": end,
        "status": ProofStatus.PUBLISHED,
        "approved_by": approver,
        "approved_at": timezone.now(),
        "published_by": approver,
        "published_at": timezone.now(),
        "internal_draft": "SENTINEL-DRAFT",
        "evidence": {"why": "SENTINEL-EVIDENCE"},
    }
    values.update(fields)
    return factories.SummaryFactory(**values)


# --- the dashboard -------------------------------------------------------------------------------------


def test_dashboard_shows_every_field_of_a_published_card(client, owner, acme, period, data_ops_user):
    start, end = period
    card = factories.MetricCardFactory(
        client=acme,
        period_start=start,
        period_end=end,
        source_label="Web form on acme.example",
        metric_key="booked_rate",
        metric_label="Booked rate",
        unit=MetricCard.Unit.PERCENT,
        baseline_value="21.5",
        current_value="37.5",
        health=MetricCard.Health.ON_TRACK,
        next_action="Keep answering within 5 minutes",
        meaning="Share of leads that became jobs",
        internal_notes="SENTINEL-NOTES",
        evidence={"why": "SENTINEL-EVIDENCE"},
    )
    publish(card, data_ops_user, override_reason="test")
    client.force_login(owner)

    html = client.get("/portal/").content.decode()

    for shown in (
        "Web form on acme.example",  # source
        "Booked rate",  # metric
        f"{start:%b} {start.day}",  # period
        "37.5%",  # current value, with its unit
        "21.5%",  # baseline
        "On track",  # status
        "Keep answering within 5 minutes",  # next action
        "Share of leads that became jobs",  # what it means
    ):
        assert shown in html, shown
    assert "SENTINEL" not in html


def test_only_published_items_reach_the_portal_and_never_their_internal_fields(
    client, owner, acme, other_client, period, data_ops_user
):
    start, end = period
    lead = clean_lead(acme, start, first_name="Rosalind", last_name="Quixote", phone_e164="+15122019999")
    factories.ActivityFactory(lead=lead, summary="SENTINEL-ACTIVITY call transcript")
    factories.RawEventFactory(
        connection=factories.ConnectionFactory(client=acme), payload={"note": "SENTINEL-RAW"}, summary="SENTINEL-RAW"
    )
    rollups_refresh(client=acme)

    def summary(title, **extra):
        return factories.SummaryFactory(
            client=acme,
            period_start=start,
            period_end=end,
            title=title,
            body=f"{title} body",
            internal_draft="SENTINEL-DRAFT",
            evidence={"numbers": "SENTINEL-EVIDENCE"},
            **extra,
        )

    def card(label):
        return factories.MetricCardFactory(
            client=acme,
            period_start=start,
            period_end=end,
            metric_label=label,
            internal_notes="SENTINEL-NOTES",
            evidence={"how": "SENTINEL-EVIDENCE"},
        )

    publish(summary("Published summary"), data_ops_user, override_reason="test")
    publish(card("Published metric"), data_ops_user, override_reason="test")
    summary("Draft summary")
    card("Draft metric")
    approved = card("Approved metric")
    services.proof_check(item=approved, actor=data_ops_user)
    services.proof_approve(item=approved, actor=data_ops_user)
    retracted = publish(summary("Retracted summary"), data_ops_user, override_reason="test")
    services.proof_retract(item=retracted, actor=data_ops_user, reason="wrong numbers")
    retracted_card = publish(card("Retracted metric"), data_ops_user, override_reason="test")
    services.proof_retract(item=retracted_card, actor=data_ops_user, reason="wrong numbers")
    other_start = start - datetime.timedelta(days=40)
    theirs = factories.MetricCardFactory(
        client=other_client, period_start=other_start, period_end=end, metric_label="Their metric"
    )
    publish(theirs, data_ops_user, override_reason="test")
    client.force_login(owner)

    dashboard = client.get("/portal/").content.decode()
    reports = client.get("/portal/reports/").content.decode()
    report = client.get(f"/portal/reports/{slug(start, end)}/").content.decode()

    assert "Published summary" in dashboard and "Published metric" in dashboard
    assert "Published metric" in report and "Published summary body" in report
    for page in (dashboard, reports, report):
        for hidden in (
            "Draft summary",
            "Draft metric",
            "Approved metric",
            "Retracted summary",
            "Retracted metric",
            "Their metric",
            "Zenith",
            "Rosalind",  # a lead's name
            "Quixote",
            "2019999",  # a lead's phone
            "wrong numbers",  # a retraction reason
            "override",
            *SENTINELS,
        ):
            assert hidden not in page, hidden
    assert slug(other_start, end) not in reports  # the other client's period is not listed


def test_a_stale_card_says_so_instead_of_showing_a_number(client, owner, acme, period, data_ops_user):
    start, end = period
    stale = factories.ConnectionFactory(
        client=acme, provider="callrail", last_event_at=timezone.now() - datetime.timedelta(days=9)
    )
    stale.stale_since = timezone.now() - datetime.timedelta(days=7)
    stale.save(update_fields=["stale_since"])
    published_card(
        acme,
        start,
        end,
        data_ops_user,
        connection=stale,
        source_label="CallRail calls",
        metric_key="leads_captured",
        metric_label="Calls captured",
        current_value=987,
    )
    client.force_login(owner)

    html = client.get("/portal/").content.decode()
    report = client.get(f"/portal/reports/{slug(start, end)}/").content.decode()

    for page in (html, report):
        assert "Data from CallRail calls has not been arriving" in page
        assert "Stale since" in page
        assert "987" not in page  # the frozen number is not shown as if it were current
    assert "trend-leads_captured" not in html  # no trend that would end in a false collapse


def test_a_fresh_card_shows_its_number_and_a_trend_chart_with_a_table(client, owner, acme, period, data_ops_user):
    start, end = period
    fresh = factories.ConnectionFactory(client=acme, provider="callrail", last_event_at=timezone.now())
    clean_lead(acme, start)
    clean_lead(acme, end)
    rollups_refresh(client=acme)
    published_card(acme, start, end, data_ops_user, connection=fresh, metric_key="leads_captured", current_value=2)
    client.force_login(owner)

    html = client.get("/portal/").content.decode()

    assert "2 leads" in html and "has not been arriving" not in html
    # The chart's data as a JSON block, its caption, and the same numbers as a table.
    assert '<script id="trend-leads_captured-data" type="application/json">' in html
    assert 'aria-labelledby="trend-leads_captured-caption"' in html
    assert "Show the numbers as a table" in html
    assert '<th scope="col">Day</th>' in html
    assert f'<th scope="row">{start:%b} {start.day}</th>' in html


def test_charting_library_is_served_from_static_never_a_cdn(client, owner, acme, period, data_ops_user):
    start, end = period
    published_card(acme, start, end, data_ops_user, metric_key="leads_captured")
    client.force_login(owner)

    html = client.get("/portal/").content.decode()

    scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert "/static/portal/vendor/chart.umd.min.js" in scripts and "/static/portal/charts.js" in scripts
    assert all(src.startswith("/static/") for src in scripts)
    assert finders.find("portal/vendor/chart.umd.min.js") and finders.find("portal/vendor/LICENSE.md")
    assert client.get("/static/portal/vendor/chart.umd.min.js").status_code == 200


def test_pages_have_landmarks_a_skip_link_and_a_nav(client, owner, acme, period, data_ops_user):
    start, end = period
    published_card(acme, start, end, data_ops_user)
    client.force_login(owner)

    for url in ("/portal/", "/portal/reports/", f"/portal/reports/{slug(start, end)}/"):
        html = client.get(url).content.decode()
        assert '<a class="skip-link" href="#main">' in html
        assert '<main id="main"' in html and '<nav aria-label="Portal">' in html
        assert 'aria-current="page"' in html
        for link in ("/portal/", "/portal/reports/", "export.csv", "Sign out"):
            assert link in html
    client.logout()
    login_page = client.get("/portal/login/").content.decode()
    assert '<label for="id_username">' in login_page and '<label for="id_password">' in login_page
    assert "/portal/password-reset/" in login_page


# --- report pages --------------------------------------------------------------------------------------


def test_reports_list_published_periods_and_report_shows_aggregates_only(client, owner, acme, period, data_ops_user):
    start, end = period
    for day in (start, start, end):
        clean_lead(acme, day, first_name="Evangeline", source="google_ads" if day == end else "web_form")
    clean_lead(acme, end, status="booked")
    rollups_refresh(client=acme)
    published_summary(acme, start, end, data_ops_user, title="Ten good days")
    draft_start = start - datetime.timedelta(days=30)
    factories.MetricCardFactory(client=acme, period_start=draft_start, period_end=start)  # draft only
    client.force_login(owner)

    index = client.get("/portal/reports/").content.decode()
    response = client.get(f"/portal/reports/{slug(start, end)}/")
    html = response.content.decode()

    assert f"/portal/reports/{slug(start, end)}/" in index
    assert slug(draft_start, start) not in index
    assert response.status_code == 200
    assert "Ten good days" in html and "The period in numbers" in html
    assert re.search(r'<th scope="row">Leads</th><td>4</td>', html)
    assert re.search(r'<th scope="row">Booked</th><td>1</td>', html)
    assert "Leads by source" in html and '<script id="daily-leads-data" type="application/json">' in html
    assert "Evangeline" not in html and "@gmail.com" not in html


def test_report_urls_resolve_only_through_the_users_client(client, owner, acme, other_client, period, data_ops_user):
    start, end = period
    published_card(acme, start, end, data_ops_user)
    their_start = start - datetime.timedelta(days=3)
    published_card(other_client, their_start, end, data_ops_user)
    draft_start = start - datetime.timedelta(days=60)
    factories.SummaryFactory(client=acme, period_start=draft_start, period_end=end)
    client.force_login(owner)

    assert client.get(f"/portal/reports/{slug(start, end)}/").status_code == 200
    for bad in (
        slug(their_start, end),  # another client's published period
        slug(draft_start, end),  # a draft's period
        slug(end, start),  # reversed
        "2026-02-30--2026-03-01",  # not a date
    ):
        assert client.get(f"/portal/reports/{bad}/").status_code == 404, bad
        assert client.get(f"/portal/reports/{bad}/export.csv").status_code == 404, bad
    assert client.get(f"/portal/reports/?period={slug(their_start, end)}").status_code == 404
    chosen = client.get(f"/portal/reports/?period={slug(start, end)}")
    assert chosen.status_code == 302 and chosen["Location"] == f"/portal/reports/{slug(start, end)}/"


@pytest.mark.parametrize("path", ["", "reports/", "export.csv", "reports/2026-01-01--2026-01-31/"])
def test_every_page_needs_a_login_and_a_client_link(client, data_ops_user, path):
    response = client.get(f"/portal/{path}")
    assert response.status_code == 302 and response["Location"].startswith("/portal/login/")
    client.force_login(data_ops_user)  # staff have no client link
    assert client.get(f"/portal/{path}").status_code == 404


def test_report_shows_search_console_clicks_when_connected(client, owner, acme, period, data_ops_user):
    from integrations.models import EventType

    start, end = period
    published_card(acme, start, end, data_ops_user)
    gsc = factories.ConnectionFactory(client=acme, provider="search_console", last_event_at=timezone.now())
    raw = factories.RawEventFactory(connection=gsc, kind="search_console.rows")
    for n, day in enumerate((start, end)):
        factories.NormalizedEventFactory(
            raw_event=raw,
            client=acme,
            event_type=EventType.METRIC_OBSERVED,
            occurred_at=datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC),
            data={
                "source": "search_console",
                "row": f"{day}|/|plumber{n}",
                "date": str(day),
                "clicks": 7 + n,
                "impressions": 300,
                "position": 4.5,
            },
        )
    client.force_login(owner)

    html = client.get(f"/portal/reports/{slug(start, end)}/").content.decode()

    assert "Google Search" in html and '<script id="search-console-data" type="application/json">' in html
    assert "Totals: 15 clicks, 600 impressions." in html
    Connection.objects.filter(pk=gsc.pk).update(status=Connection.Status.ERROR)
    html = client.get(f"/portal/reports/{slug(start, end)}/").content.decode()
    assert "Search data may be out of date" in html


# --- bounded queries ------------------------------------------------------------------------------------

LEAD_METRICS = ("leads_captured", "booked_rate", "source_coverage")


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


def test_dashboard_queries_do_not_grow_with_cards(
    client, owner, acme, period, data_ops_user, django_assert_max_num_queries
):
    start, end = period
    stale = factories.ConnectionFactory(client=acme, provider="callrail", stale_since=timezone.now())
    for key in LEAD_METRICS:  # 3 cards
        published_card(acme, start, end, data_ops_user, metric_key=key)
    published_summary(acme, start, end, data_ops_user)
    client.force_login(owner)
    small = _count(client, "/portal/")

    for weeks in range(1, 10):  # 27 more cards (the same metrics, older periods), some with a connection
        s, e = start - datetime.timedelta(weeks=weeks), end - datetime.timedelta(weeks=weeks)
        for key in LEAD_METRICS:
            published_card(acme, s, e, data_ops_user, metric_key=key, connection=stale if weeks % 2 else None)
        published_summary(acme, s, e, data_ops_user)
    assert MetricCard.objects.filter(client=acme, status=ProofStatus.PUBLISHED).count() == 30
    large = _count(client, "/portal/")

    assert large == small
    with django_assert_max_num_queries(small):
        client.get("/portal/")


def test_report_and_export_queries_do_not_grow_with_cards_or_leads(
    client, owner, acme, period, data_ops_user, django_assert_max_num_queries
):
    start, end = period
    for key in LEAD_METRICS:
        published_card(acme, start, end, data_ops_user, metric_key=key)
    for day in (start, start, end):
        clean_lead(acme, day)
    rollups_refresh(client=acme)
    client.force_login(owner)
    urls = (f"/portal/reports/{slug(start, end)}/", f"/portal/reports/{slug(start, end)}/export.csv", "/portal/")
    small = {url: _count(client, url) for url in urls}

    for n in range(27):
        clean_lead(acme, start + datetime.timedelta(days=n % 10), status="booked" if n % 3 else "new")
        published_card(
            acme,
            start,
            end,
            data_ops_user,
            metric_key=LEAD_METRICS[n % 3],
            connection=factories.ConnectionFactory(client=acme),
        )
    rollups_refresh(client=acme)
    for n in range(27):
        published_summary(acme, start, end, data_ops_user, title=f"Summary {n}")
    large = {url: _count(client, url) for url in urls}

    assert large == small
    for url in urls:
        with django_assert_max_num_queries(small[url]):
            client.get(url)
