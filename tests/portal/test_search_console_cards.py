"""Search Console → metric cards: pull (fake Google over real HTTP) → raw events → drain →
metric.observed → search_console_cards_compute → draft cards, shown through card_display.

Only Google is fake (tests/fakes/search_console_server.py); the pipeline, the ORM and Celery
(in-process) are real.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from adminops.models import AdminAction
from integrations.models import Connection
from integrations.search_console import search_console_pull
from integrations.services import connection_create, connections_flag_stale
from portal.models import MetricCard, ProofStatus
from portal.search_console_cards import search_console_cards_compute
from portal.selectors import card_display
from tests import factories
from tests.fakes import search_console_server
from tests.fakes.search_console_server import SITE, TOKEN
from zartsalgo.errors import ApplicationError

pytestmark = pytest.mark.django_db
fake_search_console = search_console_server.fake_search_console

JOINED = datetime.date(2026, 11, 1)
START, END = datetime.date(2026, 11, 18), datetime.date(2026, 11, 20)  # 3 days
BASELINE_DAY = "2026-10-30"  # inside the 3 days before joining: Oct 29-31
HOME, QUOTE = "https://acme.example/", "https://acme.example/quote"
ACTOR = "system:test"
KEYS = ["search_clicks", "search_impressions", "search_ctr", "search_position"]


@pytest.fixture
def joined_acme(acme):
    acme.joined_on = JOINED
    acme.save(update_fields=["joined_on"])
    return acme


@pytest.fixture
def gsc(joined_acme, monkeypatch, fake_search_console):
    """A connected search_console connection for acme pointing at the fake, token in the env."""
    var = f"TEST_GSC_TOKEN_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.setenv(var, TOKEN)
    return connection_create(
        client=joined_acme,
        provider="search_console",
        reason="Organic search metrics",
        actor=ACTOR,
        credentials={"access_token": f"env:{var}"},
        config={"site_url": SITE, "api_base_url": fake_search_console.api_base_url},
    )


@pytest.fixture
def period_rows(fake_search_console):
    # clicks 15, impressions 350, CTR 15/350 = 4.29 %, position (2·100 + 5·200 + 8.5·50)/350 = 4.64
    fake_search_console.add_row("2026-11-18", HOME, "plumber near me", clicks=10, impressions=100, position=2.0)
    fake_search_console.add_row("2026-11-19", HOME, "plumber near me", clicks=4, impressions=200, position=5.0)
    fake_search_console.add_row("2026-11-19", QUOTE, "water heater repair", clicks=1, impressions=50, position=8.5)


@pytest.fixture
def baseline_rows(fake_search_console):
    # Before joining: clicks 5, impressions 250, CTR 2 %, position 3.0 (better than now)
    fake_search_console.add_row(BASELINE_DAY, HOME, "plumber near me", clicks=5, impressions=250, position=3.0)


def pull(connection, django_capture_on_commit_callbacks, start=datetime.date(2026, 10, 25), end=END):
    """A pull whose on-commit work (the doorbell → in-process drain) runs, as in production."""
    with django_capture_on_commit_callbacks(execute=True):
        return search_console_pull(connection=connection, start=start, end=end)


def compute(client, connection, actor=ACTOR):
    cards = search_console_cards_compute(
        client=client, connection=connection, period_start=START, period_end=END, actor=actor
    )
    return {card.metric_key: card for card in cards}


def test_a_pull_becomes_four_draft_cards_with_the_right_values(
    joined_acme, gsc, period_rows, baseline_rows, django_capture_on_commit_callbacks
):
    result = pull(gsc, django_capture_on_commit_callbacks)
    assert result.rows_fetched == 4

    cards = compute(joined_acme, gsc)

    assert sorted(cards) == sorted(KEYS)
    values = {k: (c.unit, c.current_value, c.baseline_value, c.health) for k, c in cards.items()}
    assert values == {
        "search_clicks": ("clicks", Decimal("15.0"), Decimal("5.0"), "on_track"),
        "search_impressions": ("impressions", Decimal("350.0"), Decimal("250.0"), "on_track"),
        "search_ctr": ("percent", Decimal("4.3"), Decimal("2.0"), "on_track"),
        # Lower is better: 4.6 against 3.0 before joining is more than 10 % worse.
        "search_position": ("position", Decimal("4.6"), Decimal("3.0"), "off_track"),
    }
    for card in cards.values():
        card.refresh_from_db()
        assert card.status == ProofStatus.DRAFT and card.client == joined_acme and card.connection == gsc
        assert card.source_label == f"Google Search Console ({SITE})"
        assert (card.period_start, card.period_end) == (START, END)
        assert card.evidence["rows"] == 3 and card.evidence["baseline_period"] == ["2026-10-29", "2026-10-31"]
        assert card.drafted_by_label == ACTOR and card.meaning and card.next_action
    shown = {k: card_display(c) for k, c in cards.items()}
    assert shown["search_clicks"].value_text == "15 clicks" and shown["search_clicks"].baseline_text == "5 clicks"
    assert shown["search_ctr"].value_text == "4.3%"
    assert shown["search_position"].value_text == "#4.6"
    assert shown["search_position"].status_label == "Off track" and not shown["search_position"].is_stale
    drafted = AdminAction.objects.filter(verb="metric_card.draft", client=joined_acme, actor_label=ACTOR)
    assert sorted(drafted.values_list("target_id", flat=True)) == sorted(str(c.pk) for c in cards.values())


def test_computing_again_refreshes_the_same_cards_and_a_revision_sends_them_back_to_draft(
    joined_acme, gsc, period_rows, fake_search_console, data_ops_user, django_capture_on_commit_callbacks
):
    pull(gsc, django_capture_on_commit_callbacks)
    first = compute(joined_acme, gsc)
    clicks = first["search_clicks"]
    from portal import services

    services.proof_check(item=clicks, actor=data_ops_user)
    services.proof_approve(item=clicks, actor=data_ops_user)

    # Unchanged numbers: same rows, nothing edited, the approval stands.
    again = compute(joined_acme, gsc)
    assert {k: c.pk for k, c in again.items()} == {k: c.pk for k, c in first.items()}
    assert MetricCard.objects.filter(client=joined_acme).count() == 4
    clicks.refresh_from_db()
    assert clicks.status == ProofStatus.APPROVED

    # Google revises a row: the next pull stores the revision, the cards refresh in place.
    fake_search_console.add_row("2026-11-18", HOME, "plumber near me", clicks=30, impressions=100, position=2.0)
    pull(gsc, django_capture_on_commit_callbacks)
    revised = compute(joined_acme, gsc)

    assert revised["search_clicks"].pk == clicks.pk and MetricCard.objects.filter(client=joined_acme).count() == 4
    clicks.refresh_from_db()
    assert clicks.current_value == Decimal("35.0") and clicks.status == ProofStatus.DRAFT
    assert clicks.approved_by is None
    assert AdminAction.objects.filter(
        verb="metric_card.edit", target_id=str(clicks.pk), summary__contains="current_value"
    ).exists()


def test_a_published_card_is_never_rewritten_a_new_draft_is_made(
    joined_acme, gsc, period_rows, data_ops_user, django_capture_on_commit_callbacks
):
    from tests.portal.helpers import publish

    pull(gsc, django_capture_on_commit_callbacks)
    published = publish(compute(joined_acme, gsc)["search_clicks"], data_ops_user, override_reason="test")

    fresh = compute(joined_acme, gsc)["search_clicks"]

    assert fresh.pk != published.pk and fresh.status == ProofStatus.DRAFT
    published.refresh_from_db()
    assert published.status == ProofStatus.PUBLISHED


def test_a_stale_connection_flags_the_card_instead_of_showing_the_number(
    joined_acme, gsc, period_rows, django_capture_on_commit_callbacks
):
    pull(gsc, django_capture_on_commit_callbacks)
    cards = compute(joined_acme, gsc)
    assert card_display(cards["search_clicks"]).value_text == "15 clicks"

    # Pulls stop: the last one was three days ago (expected every 2 days), the beat flags it.
    Connection.objects.filter(pk=gsc.pk).update(last_event_at=timezone.now() - datetime.timedelta(days=3))
    assert connections_flag_stale() == 1

    card = MetricCard.objects.select_related("connection").get(pk=cards["search_clicks"].pk)
    shown = card_display(card)
    assert shown.is_stale and shown.value_text == "—"
    assert shown.status_label.startswith("Stale since")
    assert "Google Search Console" in shown.stale_note


def test_no_search_console_data_before_joining_means_no_baseline(
    joined_acme, gsc, period_rows, django_capture_on_commit_callbacks
):
    pull(gsc, django_capture_on_commit_callbacks)

    cards = compute(joined_acme, gsc)

    assert {k: c.baseline_value for k, c in cards.items()} == dict.fromkeys(KEYS)
    # Nothing to fall behind: on track, and the card says there is no baseline.
    assert {c.health for c in cards.values()} == {"on_track"}
    assert card_display(cards["search_clicks"]).baseline_text == "No baseline"
    assert cards["search_clicks"].current_value == Decimal("15.0")


def test_a_period_without_rows_has_no_value_rather_than_zero(joined_acme, gsc, django_capture_on_commit_callbacks):
    pull(gsc, django_capture_on_commit_callbacks)  # Google answers, with no rows

    cards = compute(joined_acme, gsc)

    assert {c.current_value for c in cards.values()} == {None}
    assert {c.health for c in cards.values()} == {"watch"}
    assert card_display(cards["search_clicks"]).value_text == "—"


def test_refuses_another_clients_connection_and_other_providers(joined_acme, other_client, gsc):
    theirs = factories.ConnectionFactory(client=other_client, provider="search_console")
    webform = factories.ConnectionFactory(client=joined_acme, provider="webform")
    for connection in (theirs, webform):
        with pytest.raises(ApplicationError):
            compute(joined_acme, connection)
    with pytest.raises(ApplicationError):
        search_console_cards_compute(
            client=joined_acme, connection=gsc, period_start=END, period_end=START, actor=ACTOR
        )
    assert not MetricCard.objects.exists()


def test_draft_summaries_drafts_search_console_cards_per_connection(
    joined_acme, gsc, period_rows, capsys, django_capture_on_commit_callbacks
):
    pull(gsc, django_capture_on_commit_callbacks)

    call_command("draft_summaries", "--client", "acme", "--period-days", "7", "--cards")

    out = capsys.readouterr().out
    assert "4 card(s)" in out and "4 Search Console card(s)" in out
    assert set(MetricCard.objects.filter(connection=gsc).values_list("metric_key", flat=True)) == set(KEYS)


def test_the_admin_add_form_with_a_search_console_connection_drafts_its_cards(
    client, engineer, joined_acme, gsc, period_rows, django_capture_on_commit_callbacks
):
    pull(gsc, django_capture_on_commit_callbacks)
    client.force_login(engineer)

    response = client.post(
        "/admin/portal/metriccard/add/",
        {"client": joined_acme.pk, "period_start": START, "period_end": END, "connection": gsc.pk},
    )

    assert response.status_code == 302
    assert set(MetricCard.objects.filter(connection=gsc).values_list("metric_key", flat=True)) == set(KEYS)
    assert not MetricCard.objects.filter(metric_key="leads_captured").exists()
