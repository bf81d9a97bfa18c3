"""CSV export: exactly what the client can see, Excel-friendly and safe against formula injection."""

import csv
import datetime
import io

import pytest
from django.utils import timezone

from leads.rollups import rollups_refresh
from portal.models import MetricCard
from portal.services import client_user_create
from portal.views import CSV_HEADER, csv_safe
from tests import factories
from tests.portal.helpers import clean_lead, last_ten_days, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(acme):
    return client_user_create(
        client=acme, email="owner@acme.example", password="pw-test-123456", actor="system:test"
    ).user


def read_csv(response) -> list[list[str]]:
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff"), "UTF-8 with BOM so Excel reads it as UTF-8"
    return list(csv.reader(io.StringIO(body[1:])))


def slug(start, end) -> str:
    return f"{start:%Y-%m-%d}--{end:%Y-%m-%d}"


def test_dashboard_export_has_published_cards_and_summaries_only(client, owner, acme, other_client, data_ops_user):
    start, end = last_ten_days(acme)
    card = factories.MetricCardFactory(
        client=acme,
        period_start=start,
        period_end=end,
        source_label="Leads (all sources)",
        metric_label="Booked rate",
        unit=MetricCard.Unit.PERCENT,
        baseline_value="20.00",
        current_value="37.50",
        health=MetricCard.Health.ON_TRACK,
        next_action="Keep it up",
        meaning="Share of leads that booked — ça marche",
        internal_notes="SENTINEL-NOTES",
        evidence={"how": "SENTINEL-EVIDENCE"},
    )
    publish(card, data_ops_user, override_reason="test")
    summary = factories.SummaryFactory(
        client=acme, period_start=start, period_end=end, title="March results", internal_draft="SENTINEL-DRAFT"
    )
    publish(summary, data_ops_user, override_reason="test")
    factories.MetricCardFactory(client=acme, metric_label="Draft metric")
    publish(factories.MetricCardFactory(client=other_client, metric_label="Their metric"), data_ops_user, "test")
    client.force_login(owner)

    response = client.get("/portal/export.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="acme-results-')
    rows = read_csv(response)
    assert rows[0] == list(CSV_HEADER)
    assert rows[1] == [
        "Metric card",
        start.isoformat(),
        end.isoformat(),
        "Leads (all sources)",
        "Booked rate",
        "%",
        "20",
        "37.5",
        "On track",
        "Keep it up",
        "Share of leads that booked — ça marche",
    ]
    assert rows[2][:5] == ["Summary", start.isoformat(), end.isoformat(), "", "March results"]
    assert len(rows) == 3
    text = response.content.decode()
    for hidden in ("SENTINEL", "Draft metric", "Their metric", "override"):
        assert hidden not in text, hidden


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(client, owner, acme, data_ops_user):
    start, end = last_ten_days(acme)
    card = factories.MetricCardFactory(
        client=acme,
        period_start=start,
        period_end=end,
        source_label="-2+3",
        metric_label='=HYPERLINK("http://evil.example","click")',
        next_action="+SUM(A1:A9)",
        meaning="@cmd|' /C calc'!A0",
    )
    publish(card, data_ops_user, override_reason="test")
    client.force_login(owner)

    row = read_csv(client.get("/portal/export.csv"))[1]

    assert row[3] == "'-2+3"
    assert row[4] == '\'=HYPERLINK("http://evil.example","click")'
    assert row[9] == "'+SUM(A1:A9)"
    assert row[10] == "'@cmd|' /C calc'!A0"
    for cell in row:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1+1", "'=1+1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("plain", "plain"), (None, ""), ("a=b", "a=b")],
)
def test_csv_safe(value, expected):
    assert csv_safe(value) == expected


def test_a_stale_card_exports_no_number_and_says_why(client, owner, acme, data_ops_user):
    start, end = last_ten_days(acme)
    stale = factories.ConnectionFactory(client=acme, provider="callrail")
    stale.stale_since = timezone.now() - datetime.timedelta(days=3)
    stale.save(update_fields=["stale_since"])
    card = factories.MetricCardFactory(
        client=acme, period_start=start, period_end=end, connection=stale, source_label="CallRail", current_value=987
    )
    publish(card, data_ops_user, override_reason="test")
    client.force_login(owner)

    row = read_csv(client.get("/portal/export.csv"))[1]

    assert row[7] == ""
    assert row[8].startswith("Stale since") and "has not been arriving" in row[8]
    assert "987" not in ",".join(row)


def test_report_export_has_the_reports_aggregate_numbers(client, owner, acme, data_ops_user):
    start, end = last_ten_days(acme)
    for day in (start, start, end):
        clean_lead(acme, day, first_name="Evangeline")
    clean_lead(acme, end, status="booked", phone_e164="+15122017777")
    rollups_refresh(client=acme)
    card = factories.MetricCardFactory(client=acme, period_start=start, period_end=end, metric_label="Leads captured")
    publish(card, data_ops_user, override_reason="test")
    client.force_login(owner)

    response = client.get(f"/portal/reports/{slug(start, end)}/export.csv")

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="acme-report-{slug(start, end)}.csv"'
    rows = read_csv(response)
    assert rows[0] == list(CSV_HEADER)
    by_metric = {(r[0], r[4]): r for r in rows[1:]}
    assert by_metric[("Metric card", "Leads captured")][7] == "12"
    assert by_metric[("Report", "Leads")][7] == "4"
    assert by_metric[("Report", "Booked")][7] == "1"
    assert by_metric[("Report: leads by service", "Drain cleaning")][7] == "4"
    assert all(r[1] == start.isoformat() and r[2] == end.isoformat() for r in rows[1:])
    text = response.content.decode()
    assert "Evangeline" not in text and "7777" not in text and "@gmail.com" not in text


def test_export_needs_a_portal_login(client, data_ops_user, acme):
    assert client.get("/portal/export.csv")["Location"].startswith("/portal/login/")
    client.force_login(data_ops_user)
    assert client.get("/portal/export.csv").status_code == 404
