"""Search Console as a metric source: pull → raw events → drain → metric.observed → selector.

Only Google is fake (tests/fakes/search_console_server.py, a real HTTP server); the pipeline,
the ORM and Celery (in-process) are real.
"""

from __future__ import annotations

import datetime
import json
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.models import Connection, NormalizedEvent, RawEvent, SyncError
from integrations.search_console import (
    SearchConsolePullError,
    default_window,
    search_console_connections_due,
    search_console_metrics,
    search_console_pull,
    service_account_tokens_forget,
)
from integrations.services import connection_create, connections_flag_stale
from tests.fakes import search_console_server
from tests.fakes.search_console_server import SITE, TOKEN

pytestmark = pytest.mark.django_db
# The fake Google, as a fixture of this module (tests/fakes/search_console_server.py).
fake_search_console = search_console_server.fake_search_console

START, END = datetime.date(2026, 11, 18), datetime.date(2026, 11, 20)
HOME, QUOTE = "https://acme.example/", "https://acme.example/quote"


@pytest.fixture
def gsc(acme, monkeypatch, fake_search_console):
    """A connected search_console connection for acme pointing at the fake, token in the env."""

    def make(client=None, *, site: str = SITE, token: str = TOKEN, **config) -> Connection:
        var = f"TEST_GSC_TOKEN_{uuid.uuid4().hex[:6].upper()}"
        monkeypatch.setenv(var, token)
        return connection_create(
            client=client or acme,
            provider="search_console",
            reason="Organic search metrics",
            actor="system:test",
            credentials={"access_token": f"env:{var}"},
            config={"site_url": site, "api_base_url": fake_search_console.api_base_url, **config},
        )

    return make


@pytest.fixture
def three_rows(fake_search_console):
    fake_search_console.add_row("2026-11-18", HOME, "plumber near me", clicks=10, impressions=100, position=2.0)
    fake_search_console.add_row("2026-11-19", HOME, "plumber near me", clicks=4, impressions=200, position=5.0)
    fake_search_console.add_row("2026-11-19", QUOTE, "water heater repair", clicks=1, impressions=50, position=8.5)


def pull(connection, django_capture_on_commit_callbacks, **kwargs):
    """A pull whose on-commit work (the doorbell → in-process drain) runs, as in production."""
    with django_capture_on_commit_callbacks(execute=True):
        return search_console_pull(connection=connection, **{"start": START, "end": END, **kwargs})


def metric_events(connection):
    return NormalizedEvent.objects.filter(raw_event__connection=connection, event_type="metric.observed")


def test_pull_pages_with_start_row_and_the_drain_normalizes_rows(
    gsc, three_rows, fake_search_console, settings, django_capture_on_commit_callbacks
):
    settings.SEARCH_CONSOLE_ROW_LIMIT = 2
    connection = gsc()

    result = pull(connection, django_capture_on_commit_callbacks)

    assert (result.pages_requested, result.rows_fetched, result.new_raw_events, result.duplicates) == (2, 3, 3, 0)
    first, second = fake_search_console.queries
    assert first.path == f"/webmasters/v3/sites/{quote(SITE, safe='')}/searchAnalytics/query"
    assert "sc-domain%3Aacme.example" in first.path
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.json() == {
        "startDate": "2026-11-18",
        "endDate": "2026-11-20",
        "dimensions": ["date", "page", "query"],
        "type": "web",
        "dataState": "final",
        "rowLimit": 2,
        "startRow": 0,
    }
    assert second.json()["startRow"] == 2
    assert set(RawEvent.objects.filter(connection=connection).values_list("status", flat=True)) == {"normalized"}
    event = metric_events(connection).get(data__query="water heater repair")
    assert event.client_id == connection.client_id and event.lead_id is None
    assert event.occurred_at == datetime.datetime(2026, 11, 19, 12, tzinfo=datetime.UTC)
    data = dict(event.data)
    assert len(data.pop("row")) == 32
    assert data == {
        "source": "search_console",
        "site": SITE,
        "date": "2026-11-19",
        "page": QUOTE,
        "query": "water heater repair",
        "clicks": 1,
        "impressions": 50,
        "ctr": 0.02,
        "position": 8.5,
        "data_state": "final",
    }
    connection.refresh_from_db()
    assert connection.last_event_at is not None and connection.stale_since is None
    # The summary never carries the search term.
    assert "water heater" not in RawEvent.objects.get(normalized=event).summary


def test_a_page_exactly_full_asks_once_more_and_stops_on_the_empty_answer(
    gsc, three_rows, fake_search_console, settings, django_capture_on_commit_callbacks
):
    settings.SEARCH_CONSOLE_ROW_LIMIT = 3
    result = pull(gsc(), django_capture_on_commit_callbacks)
    assert (result.pages_requested, result.rows_fetched) == (2, 3)
    assert [q.json()["startRow"] for q in fake_search_console.queries] == [0, 3]


def test_re_pulling_the_same_window_stores_nothing_twice(gsc, three_rows, django_capture_on_commit_callbacks):
    connection = gsc()
    pull(connection, django_capture_on_commit_callbacks)

    again = pull(connection, django_capture_on_commit_callbacks)

    assert (again.rows_fetched, again.new_raw_events, again.duplicates) == (3, 0, 3)
    assert RawEvent.objects.filter(connection=connection).count() == 3
    assert metric_events(connection).count() == 3


def test_revised_numbers_are_a_new_observation_that_replaces_the_old_one(
    acme, gsc, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    connection = gsc()
    pull(connection, django_capture_on_commit_callbacks)
    # Google revised one row of the 19th (late data): 4/200 became 6/240.
    fake_search_console.add_row("2026-11-19", HOME, "plumber near me", clicks=6, impressions=240, position=5.0)

    again = pull(connection, django_capture_on_commit_callbacks)

    assert (again.new_raw_events, again.duplicates) == (1, 2)
    assert metric_events(connection).count() == 4  # the old observation stays, traceable
    metrics = search_console_metrics(client=acme, start=START, end=END)
    assert metrics["rows"] == 3
    assert (metrics["clicks"], metrics["impressions"]) == (10 + 6 + 1, 100 + 240 + 50)
    day = {d["date"]: d for d in metrics["series"]}["2026-11-19"]
    assert (day["clicks"], day["impressions"]) == (7, 290)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_put_the_connection_in_error_with_a_sync_error(
    status, gsc, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    connection = gsc()
    fake_search_console.fail_next(status)

    with pytest.raises(SearchConsolePullError) as info:
        pull(connection, django_capture_on_commit_callbacks)

    assert not info.value.cause.retryable
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ERROR
    assert f"HTTP {status}" in connection.status_reason and f"HTTP {status}" in connection.last_error
    error = SyncError.objects.get(connection=connection)
    assert (error.stage, error.state, error.next_retry_at) == ("sync", "dead", None)
    assert f"HTTP {status}" in error.error
    assert not RawEvent.objects.filter(connection=connection).exists()
    assert connection.last_event_at is None
    assert connection.pk not in search_console_connections_due()  # the beat leaves it alone

    # Fixed by hand (new token in the env), pulled by hand: back to connected, error resolved.
    result = pull(connection, django_capture_on_commit_callbacks)
    assert result.new_raw_events == 3
    connection.refresh_from_db()
    error.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED and error.state == "resolved"


def test_a_wrong_token_is_answered_401_by_the_fake(
    gsc, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    connection = gsc(token="ya29.expired")
    with pytest.raises(SearchConsolePullError, match="401"):
        pull(connection, django_capture_on_commit_callbacks)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ERROR


def test_a_property_the_account_cannot_read_is_403(gsc, fake_search_console, django_capture_on_commit_callbacks):
    connection = gsc(site="https://other.example/")
    with pytest.raises(SearchConsolePullError, match="403"):
        pull(connection, django_capture_on_commit_callbacks)
    # The URL-prefix property went out as one encoded path segment.
    assert "/sites/https%3A%2F%2Fother.example%2F/searchAnalytics/query" in fake_search_console.queries[0].path


@pytest.mark.parametrize("status", [429, 500, 503])
def test_busy_or_failing_google_is_a_retrying_sync_error(
    status, gsc, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    connection = gsc()
    fake_search_console.fail_next(status)
    before = timezone.now()

    with pytest.raises(SearchConsolePullError) as info:
        pull(connection, django_capture_on_commit_callbacks)

    assert info.value.cause.retryable
    error = SyncError.objects.get(connection=connection)
    assert (error.stage, error.state, error.attempt) == ("sync", "retrying", 1)
    # INTEGRATIONS_RETRY_SCHEDULE[0] = 30 s, ±20 %.
    assert before + timedelta(seconds=23) < error.next_retry_at < timezone.now() + timedelta(seconds=37)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED and connection.last_event_at is None
    # Backing off: not due until next_retry_at, then due.
    assert connection.pk not in search_console_connections_due()
    assert connection.pk in search_console_connections_due(now=error.next_retry_at + timedelta(seconds=1))

    # A second failure is attempt 2 of the same open error (one row per broken connection).
    fake_search_console.fail_next(status)
    with pytest.raises(SearchConsolePullError):
        pull(connection, django_capture_on_commit_callbacks)
    error.refresh_from_db()
    assert error.attempt == 2 and SyncError.objects.filter(connection=connection).count() == 1

    pull(connection, django_capture_on_commit_callbacks)
    error.refresh_from_db()
    assert error.state == "resolved"


def test_a_timeout_is_retried(gsc, three_rows, fake_search_console, settings, django_capture_on_commit_callbacks):
    settings.SEARCH_CONSOLE_TIMEOUT_SECONDS = 0.3
    connection = gsc()
    fake_search_console.delay_next(2)
    with pytest.raises(SearchConsolePullError, match="Timed out"):
        pull(connection, django_capture_on_commit_callbacks)
    assert SyncError.objects.get(connection=connection).state == "retrying"


def test_a_malformed_body_is_a_sync_error_and_stores_no_rows(
    gsc, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    connection = gsc()
    fake_search_console.malformed_next()

    with pytest.raises(SearchConsolePullError, match="not JSON"):
        pull(connection, django_capture_on_commit_callbacks)

    error = SyncError.objects.get(connection=connection)
    assert "not JSON" in error.error and error.stage == "sync"
    assert not RawEvent.objects.filter(connection=connection).exists()
    assert not metric_events(connection).exists()


def test_one_unreadable_row_fails_its_whole_page(gsc, fake_search_console, django_capture_on_commit_callbacks):
    connection = gsc()
    good = {"keys": ["2026-11-18", HOME, "plumber"], "clicks": 1, "impressions": 9, "ctr": 0.1, "position": 3}
    bad = {"keys": ["2026-11-18", HOME], "clicks": 1, "impressions": 9, "ctr": 0.1, "position": 3}
    fake_search_console.malformed_next(json.dumps({"rows": [good, bad]}).encode())

    with pytest.raises(SearchConsolePullError, match="keys"):
        pull(connection, django_capture_on_commit_callbacks)

    assert not RawEvent.objects.filter(connection=connection).exists()


def test_a_failure_on_page_two_keeps_page_one_and_the_retry_completes_it(
    gsc, three_rows, fake_search_console, settings, django_capture_on_commit_callbacks
):
    settings.SEARCH_CONSOLE_ROW_LIMIT = 2
    connection = gsc()
    fake_search_console.delay_next(0)  # page 1 normal
    fake_search_console.fail_next(500)  # page 2 fails

    with pytest.raises(SearchConsolePullError):
        pull(connection, django_capture_on_commit_callbacks)
    assert RawEvent.objects.filter(connection=connection).count() == 2
    connection.refresh_from_db()
    assert connection.last_event_at is None  # not fresh: the window is incomplete

    result = pull(connection, django_capture_on_commit_callbacks)
    assert (result.new_raw_events, result.duplicates) == (1, 2)
    assert metric_events(connection).count() == 3


def test_the_selector_weights_ctr_and_position_by_impressions(
    acme, other_client, gsc, three_rows, django_capture_on_commit_callbacks
):
    pull(gsc(), django_capture_on_commit_callbacks)
    pull(gsc(other_client), django_capture_on_commit_callbacks)  # another client's rows never count

    metrics = search_console_metrics(client=acme, start=START, end=END)

    # clicks 10 + 4 + 1 = 15; impressions 100 + 200 + 50 = 350
    assert (metrics["clicks"], metrics["impressions"], metrics["rows"]) == (15, 350, 3)
    assert metrics["ctr"] == pytest.approx(15 / 350)
    # (2.0·100 + 5.0·200 + 8.5·50) / 350 = 1625 / 350
    assert metrics["position"] == pytest.approx(1625 / 350)
    assert metrics["series"] == [
        {"date": "2026-11-18", "clicks": 10, "impressions": 100, "ctr": 0.1, "position": 2.0},
        {
            "date": "2026-11-19",
            "clicks": 5,
            "impressions": 250,
            "ctr": pytest.approx(5 / 250),
            "position": pytest.approx((5.0 * 200 + 8.5 * 50) / 250),
        },
    ]
    assert metrics["connected"] is True and metrics["stale"] is False
    assert metrics["last_pulled_at"] is not None
    # The period bounds are dates, inclusive.
    only_18th = search_console_metrics(client=acme, start=START, end=START)
    assert (only_18th["clicks"], only_18th["impressions"]) == (10, 100)


def test_the_selector_reads_a_bounded_number_of_queries(acme, gsc, three_rows, django_capture_on_commit_callbacks):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    pull(gsc(), django_capture_on_commit_callbacks)
    with CaptureQueriesContext(db) as queries:
        search_console_metrics(client=acme, start=START, end=END)
    assert len(queries) == 2  # the events (one index range), the connections


def test_the_selector_without_a_connection_or_data(acme):
    metrics = search_console_metrics(client=acme, start=START, end=END)
    assert (metrics["clicks"], metrics["impressions"], metrics["ctr"], metrics["position"]) == (0, 0, None, None)
    assert metrics["series"] == [] and metrics["stale"] is True and metrics["connected"] is False


def test_a_connection_whose_pulls_stop_is_flagged_stale(acme, gsc, three_rows, django_capture_on_commit_callbacks):
    connection = gsc()
    assert connection.expected_freshness == timedelta(days=2)
    pull(connection, django_capture_on_commit_callbacks)
    assert connections_flag_stale() == 0

    # No successful pull for longer than the connection's expected freshness.
    Connection.objects.filter(pk=connection.pk).update(last_event_at=timezone.now() - timedelta(days=2, hours=1))

    assert connections_flag_stale() == 1
    connection.refresh_from_db()
    assert connection.stale_since is not None
    assert search_console_metrics(client=acme, start=START, end=END)["stale"] is True

    pull(connection, django_capture_on_commit_callbacks)  # pulls resume: fresh again
    connection.refresh_from_db()
    assert connection.stale_since is None
    assert search_console_metrics(client=acme, start=START, end=END)["stale"] is False


def test_the_beat_task_pulls_every_connected_search_console_connection_that_is_due(
    acme, other_client, gsc, make_connection, fake_search_console, django_capture_on_commit_callbacks, monkeypatch
):
    from integrations.services import connection_set_status
    from integrations.tasks import pull_search_console_due

    today = timezone.now().date()
    start, end = default_window(today)
    fake_search_console.add_row(end.isoformat(), HOME, "plumber", clicks=2, impressions=20, position=3.0)
    first, second = gsc(), gsc(other_client)
    paused = gsc()
    connection_set_status(connection=paused, status=Connection.Status.PAUSED, actor="system:test", reason="test")
    recent = gsc()
    Connection.objects.filter(pk=recent.pk).update(last_event_at=timezone.now() - timedelta(hours=1))
    make_connection("twilio", auth_token="secret")

    with django_capture_on_commit_callbacks(execute=True):
        assert pull_search_console_due.apply().get() == 2

    assert len(fake_search_console.queries) == 2
    assert {q.json()["startDate"] for q in fake_search_console.queries} == {start.isoformat()}
    for connection in (first, second):
        connection.refresh_from_db()
        assert connection.last_event_at is not None
        assert metric_events(connection).count() == 1
    assert not RawEvent.objects.filter(connection__in=[paused, recent]).exists()
    # Pulled now, so not due again until SEARCH_CONSOLE_PULL_EVERY_HOURS have passed.
    assert search_console_connections_due() == []


def test_the_beat_entry_reaches_run_scheduler_and_the_default_queue(settings):
    from celery.schedules import crontab  # noqa: F401 - run_scheduler reads plain numbers exactly

    from adminops.management.commands.run_scheduler import _seconds
    from zartsalgo.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["pull-search-console"]
    assert entry["task"] == "integrations.tasks.pull_search_console_due"
    assert _seconds(entry["schedule"]) == 900.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks and "integrations.tasks.pull_search_console" in app.tasks
    for name in (entry["task"], "integrations.tasks.pull_search_console"):
        assert app.amqp.router.route({}, name)["queue"].name == "default"


def test_the_webhook_url_refuses_every_delivery(gsc, client):
    connection = gsc()
    response = client.post(
        f"/api/webhooks/search_console/{connection.webhook_token}/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 403
    assert not RawEvent.objects.filter(connection=connection).exists()


def test_a_service_account_key_mints_a_token_with_a_jwt_bearer_grant(
    acme, monkeypatch, tmp_path, three_rows, fake_search_console, django_capture_on_commit_callbacks
):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake_search_console.public_key = key.public_key()
    key_file = tmp_path / "gsc-key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "metrics@acme-project.iam.gserviceaccount.com",
                "private_key_id": "abc123",
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode(),
                "token_uri": fake_search_console.token_uri,
            }
        )
    )
    monkeypatch.setenv("TEST_GSC_KEY_FILE", str(key_file))
    service_account_tokens_forget()
    connection = connection_create(
        client=acme,
        provider="search_console",
        reason="test",
        actor="system:test",
        credentials={"service_account_file": "env:TEST_GSC_KEY_FILE"},
        config={"site_url": SITE, "api_base_url": fake_search_console.api_base_url},
    )
    try:
        assert pull(connection, django_capture_on_commit_callbacks).new_raw_events == 3
        pull(connection, django_capture_on_commit_callbacks)
        assert fake_search_console.token_requests == 1  # cached until shortly before expiry

        # A key Google does not know: the grant is refused → an auth error on the connection.
        service_account_tokens_forget()
        fake_search_console.public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        with pytest.raises(SearchConsolePullError, match="refused the service account"):
            pull(connection, django_capture_on_commit_callbacks)
        connection.refresh_from_db()
        assert connection.status == Connection.Status.ERROR
    finally:
        service_account_tokens_forget()


def test_a_missing_env_variable_is_an_auth_error(acme, fake_search_console, django_capture_on_commit_callbacks):
    connection = connection_create(
        client=acme,
        provider="search_console",
        reason="test",
        actor="system:test",
        credentials={"access_token": "env:TEST_GSC_NOT_SET_ANYWHERE"},
        config={"site_url": SITE, "api_base_url": fake_search_console.api_base_url},
    )
    with pytest.raises(SearchConsolePullError, match="TEST_GSC_NOT_SET_ANYWHERE"):
        pull(connection, django_capture_on_commit_callbacks)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ERROR
    assert fake_search_console.queries == []


def test_the_command_pulls_and_its_dry_run_writes_nothing(
    acme, gsc, fake_search_console, capsys, django_capture_on_commit_callbacks
):
    _, end = default_window()
    fake_search_console.add_row(end.isoformat(), HOME, "plumber", clicks=2, impressions=20, position=3.0)
    connection = gsc()

    call_command("pull_search_console", "--client", "acme", "--days", "3", "--dry-run")
    assert "1 row(s) fetched, 0 new" in capsys.readouterr().out
    assert not RawEvent.objects.filter(connection=connection).exists()
    connection.refresh_from_db()
    assert connection.last_event_at is None
    assert fake_search_console.queries[0].json()["startDate"] == (end - timedelta(days=2)).isoformat()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("pull_search_console", "--client", "acme", "--days", "3")
    assert "1 row(s) fetched, 1 new" in capsys.readouterr().out
    assert metric_events(connection).count() == 1

    fake_search_console.fail_next(500)
    with pytest.raises(CommandError) as info:
        call_command("pull_search_console", "--client", "acme")
    assert info.value.returncode == 2
    with pytest.raises(CommandError, match="No client"):
        call_command("pull_search_console", "--client", "nobody")
