"""Retries, dead letters, replay, holds, freshness and the sweeper — through the real pipeline."""

import datetime
import threading

import pytest
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client as HttpClient
from django.utils import timezone

from adminops.models import AdminAction
from integrations import services
from integrations.models import Connection, NormalizedEvent, RawEvent, SyncError, WebhookEvent
from integrations.tasks import flag_stale_connections, sweep_raw_events
from leads.models import Activity, Lead

from . import consumers as test_consumers
from .conftest import form_body, sign_standard_webhook, webform_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def webform(make_connection):
    secret = webform_secret()
    return make_connection("webform", signing_secret=secret), secret


@pytest.fixture
def flaky_consumer(settings):
    settings.INTEGRATIONS_EVENT_CONSUMERS = ["leads.consumers.apply_event", "tests.integrations.consumers.flaky"]
    settings.INTEGRATIONS_RETRY_SCHEDULE = [30, 120]
    yield test_consumers.FAILURES
    test_consumers.FAILURES["remaining"] = 0


def send(deliver, webform, **body_overrides):
    connection, secret = webform
    body = form_body(**body_overrides)
    return deliver("webform", connection, body, sign_standard_webhook(secret, body))


def test_a_failure_that_clears_on_the_careful_rerun_is_not_recorded(deliver, webform, flaky_consumer):
    flaky_consumer["remaining"] = 1  # fails in the fast batch only
    assert send(deliver, webform).status_code == 200
    raw = RawEvent.objects.get()
    assert raw.status == "normalized" and raw.attempts == 1
    assert not SyncError.objects.exists()
    assert Lead.objects.count() == 1 and NormalizedEvent.objects.count() == 1


def test_a_failing_consumer_rolls_back_everything_and_schedules_a_retry(deliver, webform, flaky_consumer):
    flaky_consumer["remaining"] = 2  # the fast batch, then the careful re-run
    assert send(deliver, webform).status_code == 200  # the delivery is safe whatever happens next

    raw = RawEvent.objects.get()
    assert raw.status == "failed" and raw.attempts == 1 and raw.next_attempt_at > timezone.now()
    assert "downstream unavailable" in raw.last_error
    # Nothing half-written: the lead the first consumer upserted was rolled back with the failure.
    assert Lead.objects.count() == 0 and NormalizedEvent.objects.count() == 0
    error = SyncError.objects.get()
    assert (error.stage, error.state, error.attempt, error.review_status) == ("apply", "retrying", 1, "open")
    assert "RuntimeError" in error.traceback

    # The retry time comes; the sweeper re-enqueues it and it succeeds.
    RawEvent.objects.filter(pk=raw.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
    assert sweep_raw_events() == 1
    raw.refresh_from_db()
    assert raw.status == "normalized" and raw.attempts == 2
    assert Lead.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    error.refresh_from_db()
    assert error.state == "resolved" and "attempt 2" in error.resolution


def test_after_the_last_retry_the_event_is_dead_then_replay_recovers_it(deliver, webform, flaky_consumer, engineer):
    flaky_consumer["remaining"] = 10
    send(deliver, webform)
    raw = RawEvent.objects.get()
    for _ in range(2):
        RawEvent.objects.filter(pk=raw.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
        sweep_raw_events()
    raw.refresh_from_db()
    assert raw.status == "dead" and raw.attempts == 3 and raw.next_attempt_at is None
    assert SyncError.objects.get().state == "dead"
    assert sweep_raw_events() == 0  # dead letters wait for a person

    flaky_consumer["remaining"] = 0
    call_command("replay_events", "--status", "dead", "--inline")
    raw.refresh_from_db()
    assert raw.status == "normalized"
    assert Lead.objects.count() == 1
    assert AdminAction.objects.filter(verb="raw_event.replay", target_id=str(raw.pk)).exists()


def test_replay_dry_run_changes_nothing(deliver, webform, flaky_consumer, capsys):
    flaky_consumer["remaining"] = 10
    send(deliver, webform)
    call_command("replay_events", "--status", "failed", "--dry-run")
    out = capsys.readouterr().out
    assert "1 raw event(s) match" in out and "Dry run" in out
    assert RawEvent.objects.get().status == "failed"
    assert not AdminAction.objects.filter(verb="raw_event.replay").exists()


def test_replay_of_a_processed_event_repeats_nothing(deliver, webform):
    send(deliver, webform)
    raw = RawEvent.objects.get()
    call_command("replay_events", "--id", str(raw.pk), "--inline")
    raw.refresh_from_db()
    assert raw.status == "normalized"
    assert Lead.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    assert Activity.objects.filter(kind="lead_captured").count() == 1


def test_a_lost_queue_message_only_delays_work(webform, settings):
    """The row commits but its Celery message never arrives: the sweeper finds it."""
    connection, secret = webform
    body = form_body()
    HttpClient().post(
        f"/api/webhooks/webform/{connection.webhook_token}/",
        data=body,
        content_type="application/json",
        **sign_standard_webhook(secret, body),
    )  # on_commit callbacks are not run here: the message is "lost"
    raw = RawEvent.objects.get()
    assert raw.status == "received"
    assert sweep_raw_events() == 0  # too fresh to be called stuck
    RawEvent.objects.filter(pk=raw.pk).update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    assert sweep_raw_events() == 1
    raw.refresh_from_db()
    assert raw.status == "normalized" and Lead.objects.count() == 1


def test_uncertain_connection_stores_and_holds_then_resumes_in_order(
    deliver, webform, data_ops_user, django_capture_on_commit_callbacks
):
    connection, _ = webform
    services.connection_set_status(
        connection=connection, status=Connection.Status.UNCERTAIN, actor=data_ops_user, reason="Privacy review"
    )
    send(deliver, webform, contact={"name": "First", "phone": "512-555-0101"})
    send(deliver, webform, contact={"name": "Second", "phone": "512-555-0102"})
    assert list(WebhookEvent.objects.values_list("outcome", flat=True)) == ["paused", "paused"]
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"held"}
    assert Lead.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        services.connection_set_status(
            connection=connection, status=Connection.Status.CONNECTED, actor=data_ops_user, reason="Cleared"
        )
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"normalized"}
    assert Lead.objects.count() == 2
    action = AdminAction.objects.filter(verb="connection.status").latest("id")
    assert "released 2 held event(s)" in action.summary and action.actor_user == data_ops_user


def test_silent_connection_is_flagged_stale_once_and_a_delivery_clears_it(deliver, webform):
    connection, _ = webform
    Connection.objects.filter(pk=connection.pk).update(
        last_event_at=timezone.now() - datetime.timedelta(days=3), expected_freshness=datetime.timedelta(days=1)
    )
    assert flag_stale_connections() == 1
    assert flag_stale_connections() == 0  # flagged once, not every ten minutes
    connection.refresh_from_db()
    assert connection.is_stale and connection.stale_since is not None
    assert AdminAction.objects.filter(verb="connection.stale").count() == 1
    send(deliver, webform)
    connection.refresh_from_db()
    assert not connection.is_stale and connection.stale_since is None


def test_failure_review_actions_are_logged_and_need_a_reason(deliver, webform, flaky_consumer, data_ops_user):
    from zartsalgo.errors import ApplicationError

    flaky_consumer["remaining"] = 2
    send(deliver, webform)
    errors = SyncError.objects.all()
    assert services.sync_errors_acknowledge(errors=errors, actor=data_ops_user) == 1
    assert SyncError.objects.get().review_status == "acknowledged"
    with pytest.raises(ApplicationError):
        services.sync_errors_set_state(errors=errors, state="ignored", actor=data_ops_user, resolution=" ")
    services.sync_errors_set_state(errors=errors, state="ignored", actor=data_ops_user, resolution="Test form")
    assert SyncError.objects.get().review_status == "ignored"
    verbs = set(AdminAction.objects.values_list("verb", flat=True))
    assert {"sync_error.acknowledge", "sync_error.ignored"} <= verbs


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_deliveries_of_one_event_make_one_of_everything(make_connection):
    if db_connection.vendor != "mysql":
        pytest.skip("concurrent connections are exercised on MariaDB")
    from zartsalgo.celery import app

    app.conf.task_always_eager = True
    secret = webform_secret()
    connection = make_connection("webform", signing_secret=secret)
    body = form_body()
    headers = sign_standard_webhook(secret, body, msg_id="msg_storm")
    barrier = threading.Barrier(50)
    statuses, errors = [], []

    def deliver_once():
        try:
            barrier.wait()
            response = HttpClient().post(
                f"/api/webhooks/webform/{connection.webhook_token}/",
                data=body,
                content_type="application/json",
                **headers,
            )
            statuses.append(response.status_code)
        except Exception as exc:  # pragma: no cover - reported by the assertion
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=deliver_once) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and statuses == [200] * 50
    assert WebhookEvent.objects.count() == 50
    assert WebhookEvent.objects.filter(outcome="accepted").count() == 1
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    assert Lead.objects.count() == 1
    assert Activity.objects.filter(kind="lead_captured").count() == 1


def test_one_task_processes_a_batch_and_isolates_a_failure(webform, flaky_consumer, settings):
    from integrations.tasks import process_raw_event

    settings.INTEGRATIONS_PROCESS_BATCH_SIZE = 10
    connection, secret = webform
    for n in range(4):
        body = form_body(contact={"name": f"Batch {n}", "phone": f"512-555-01{20 + n}"})
        HttpClient().post(
            f"/api/webhooks/webform/{connection.webhook_token}/",
            data=body,
            content_type="application/json",
            **sign_standard_webhook(secret, body),
        )  # messages "lost": nothing processed yet
    first = RawEvent.objects.order_by("id").first()
    # The first event fails in the fast batch (all of it rolls back) and again in the careful
    # re-run, where the other three must still succeed.
    flaky_consumer["remaining"] = 2

    counts = process_raw_event(first.pk)

    assert counts == {"failed": 1, "normalized": 3}
    assert RawEvent.objects.get(pk=first.pk).status == "failed"
    assert Lead.objects.count() == 3 and NormalizedEvent.objects.count() == 3
    assert SyncError.objects.get().raw_event_id == first.pk
