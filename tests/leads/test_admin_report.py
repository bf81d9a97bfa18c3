"""The staff report page: every number links to a Lead admin list of exactly that many leads."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from leads import rollups
from leads.models import Lead
from tests import factories
from tests.leads.rollup_helpers import make_leads

pytestmark = pytest.mark.django_db

START, END = datetime.date(2026, 5, 1), datetime.date(2026, 5, 30)


@pytest.fixture
def reported(db):
    client = factories.ClientFactory(slug="reported", time_zone="America/Chicago", joined_on=datetime.date(2026, 4, 1))
    make_leads(client, n=90, first_day=datetime.date(2026, 4, 28), days=36, seed=21)
    make_leads(client, n=40, first_day=datetime.date(2026, 3, 1), days=31, seed=22)
    other = factories.ClientFactory(slug="other", time_zone="America/Denver")
    make_leads(other, n=20, first_day=START, days=30, seed=23)  # must never leak into the links
    now = timezone.now()
    factories.LeadFactory(client=client, next_action="Call", next_action_due=now - datetime.timedelta(hours=2))
    factories.LeadFactory(client=client, next_action="Call", status="quoted")
    rollups.rollups_refresh()
    return client


def _report(http, client, **params):
    url = reverse("admin:leads_client_report", args=[client.pk])
    return http.get(url, {"start": START.isoformat(), "end": END.isoformat(), **params})


def _count(http, url: str) -> int:
    response = http.get(url)
    assert response.status_code == 200, url
    # An unknown lookup makes the admin redirect with ?e=1 instead of filtering: a real list only.
    assert "e" not in parse_qs(urlsplit(response.wsgi_request.get_full_path()).query)
    return response.context["cl"].result_count


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_every_drill_down_link_lists_exactly_the_counted_leads(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    response = _report(client, reported)
    assert response.status_code == 200
    report, rows = response.context["report"], response.context["rows"]
    assert report.baseline is not None and report.current.leads > 0

    checked = 0
    counts = {"Leads (spam and duplicates excluded)", "Responded", "Booked", "With known source and attribution"}
    for row in rows["headline"]:
        for period in ("current", "baseline"):
            if row["label"] in counts:
                text, url = row[period]
                assert _count(client, url) == _int(text), (row["label"], period)
                checked += 1
    for section in ("lost", "sources", "services"):
        assert rows[section]
        for row in rows[section]:
            for period in ("current", "baseline"):
                if row[period] is not None:
                    text, url = row[period]
                    assert _count(client, url) == _int(text), (section, row["label"], period)
                    checked += 1
    for day, leads, booked, leads_url, booked_url in response.context["daily"][:10]:
        assert _count(client, leads_url) == leads, day
        assert _count(client, booked_url) == booked, day
    assert _count(client, response.context["next_actions_url"]) == report.next_actions_open > 0
    assert _count(client, response.context["overdue_url"]) == report.next_actions_overdue > 0
    assert checked > 20


def test_the_links_hold_the_numbers_the_report_shows(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    response = _report(client, reported)
    report, rows = response.context["report"], response.context["rows"]
    headline = {row["label"]: row for row in rows["headline"]}
    assert _int(headline["Booked"]["current"][0]) == report.current.booked
    assert headline["Booked rate"]["current"][0] == f"{report.current.booked_rate:.1f}"
    assert _int(headline["Leads (spam and duplicates excluded)"]["baseline"][0]) == report.baseline.leads
    # The "Not stated" service links to the leads with a blank service.
    not_stated = next(r for r in rows["services"] if r["label"] == "Not stated")
    assert parse_qs(urlsplit(not_stated["current"][1]).query, keep_blank_values=True)["service_type__exact"] == [""]
    html = response.content.decode()
    assert "Lead report: " in html and not_stated["current"][1].replace("&", "&amp;") in html


def test_the_link_to_the_report_is_on_the_client_pages(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    url = reverse("admin:leads_client_report", args=[reported.pk])
    assert url in client.get(reverse("admin:leads_client_changelist")).content.decode()
    assert url in client.get(reverse("admin:leads_client_change", args=[reported.pk])).content.decode()


def test_bad_periods_fall_back_to_the_default(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    response = _report(client, reported, start="2026-06-10", end="2026-06-01")
    assert response.status_code == 200
    assert response.context["report"].current.end == timezone.now().astimezone(reported.tz).date() - datetime.timedelta(
        days=1
    )
    response = client.get(reverse("admin:leads_client_report", args=[reported.pk]), {"start": "nonsense"})
    assert response.status_code == 200


def test_only_staff_see_the_report(client, reported):
    portal_user = factories.ClientUserFactory(client=reported).user
    client.force_login(portal_user)
    response = _report(client, reported)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_attribution_filter_is_the_reports_rule(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    base = reverse("admin:leads_lead_changelist") + f"?client__id__exact={reported.pk}"
    yes = _count(client, base + "&attributed=yes")
    no = _count(client, base + "&attributed=no")
    assert yes + no == Lead.objects.filter(client=reported).count()
    assert yes == Lead.objects.filter(rollups.source_and_attribution_q(), client=reported).count() > 0


def test_a_multi_month_report_links_to_exactly_its_numbers(client, data_ops_user, db):
    """Five months over a DST change, read from the day totals: the section and daily links
    still list exactly the leads counted, and the period's days add up to its total."""
    reported = factories.ClientFactory(slug="long", time_zone="America/Chicago", joined_on=datetime.date(2026, 1, 1))
    make_leads(reported, n=160, first_day=datetime.date(2025, 12, 20), days=170, seed=31)
    make_leads(reported, n=60, first_day=datetime.date(2025, 8, 1), days=150, seed=32)
    rollups.rollups_refresh()
    start, end = datetime.date(2026, 1, 10), datetime.date(2026, 6, 9)
    client.force_login(data_ops_user)
    url = reverse("admin:leads_client_report", args=[reported.pk])
    response = client.get(url, {"start": start.isoformat(), "end": end.isoformat()})
    report, rows = response.context["report"], response.context["rows"]
    assert (report.current.start, report.current.end) == (start, end) and report.baseline is not None

    headline = {row["label"]: row for row in rows["headline"]}
    for label in ("Leads (spam and duplicates excluded)", "Booked", "With known source and attribution"):
        for period in ("current", "baseline"):
            text, link = headline[label][period]
            assert _count(client, link) == _int(text), (label, period)
    for section in ("lost", "sources", "services"):
        for row in rows[section]:
            if row["current"] is not None:
                assert _count(client, row["current"][1]) == _int(row["current"][0]), (section, row["label"])
    daily = response.context["daily"]
    assert len(daily) == (end - start).days + 1
    assert sum(leads for _, leads, _, _, _ in daily) == report.current.leads
    march_8 = next(d for d in daily if d[0] == datetime.date(2026, 3, 8))  # the DST change day
    assert _count(client, march_8[3]) == march_8[1] and _count(client, march_8[4]) == march_8[2]


def test_links_built_once_per_page_are_the_single_link_urls(reported):
    from urllib.parse import urlencode

    from leads.admin_reports import LeadListLinks, lead_list_url
    from leads.rollups import COUNTED_LOST_REASONS, local_day_start

    links = LeadListLinks(reported)
    day = datetime.date(2026, 5, 3)
    expected = f"{reverse('admin:leads_lead_changelist')}?" + urlencode(
        {
            "client__id__exact": reported.pk,
            "captured_at__gte": local_day_start(reported.tz, day).astimezone(datetime.UTC).isoformat(),
            "captured_at__lt": local_day_start(reported.tz, day + datetime.timedelta(days=1))
            .astimezone(datetime.UTC)
            .isoformat(),
            "lost_reason__in": ",".join(["", *COUNTED_LOST_REASONS]),
            "status__exact": "booked",
        }
    )
    assert links.url(day, day, status__exact="booked") == expected
    assert lead_list_url(client=reported, start=day, end=day, status__exact="booked") == expected


def test_the_by_day_rows_show_each_day_with_its_links(client, data_ops_user, reported):
    client.force_login(data_ops_user)
    response = _report(client, reported)
    html = response.content.decode()
    day, leads, booked, leads_url, booked_url = response.context["daily"][0]
    assert day == START and START.strftime("%a") == "Fri"
    row = (
        f'<tr><td>Fri May 1</td><td><a href="{leads_url.replace("&", "&amp;")}">{leads}</a></td>'
        f'<td><a href="{booked_url.replace("&", "&amp;")}">{booked}</a></td></tr>'
    )
    assert row in html
    assert html.count("<tr><td>") >= len(response.context["daily"]) == 30
