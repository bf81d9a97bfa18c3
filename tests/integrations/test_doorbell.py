"""The doorbell: deliveries announce waiting raw events with one drain task per burst, not one
Celery message per event — and nothing waits on a stale hint for longer than the sweeper."""

import datetime
import time

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from integrations import services
from integrations.models import RawEvent
from integrations.tasks import drain_raw_events, sweep_raw_events
from leads.models import Lead
from zartsalgo.celery import app
from zartsalgo.flags import flag_is_set, flag_set_if_absent

from .conftest import form_body, sign_standard_webhook, webform_secret


@pytest.fixture
def webform(make_connection):
    secret = webform_secret()
    return make_connection("webform", signing_secret=secret), secret


def post(webform, n: int):
    connection, secret = webform
    body = form_body(contact={"name": f"Burst {n}", "phone": f"512-555-{1000 + n}"})
    return HttpClient().post(
        f"/api/webhooks/webform/{connection.webhook_token}/",
        data=body,
        content_type="application/json",
        **sign_standard_webhook(secret, body),
    )


def ingest_queue_length() -> int:
    import redis
    from django.conf import settings

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    return redis.Redis.from_url(settings.REDIS_URL).llen(f"{prefix}ingest")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_deliveries_enqueues_one_drain_that_processes_them_all(make_connection):
    secret = webform_secret()
    webform = (make_connection("webform", signing_secret=secret), secret)
    app.conf.task_always_eager = False  # real publishes to Redis; no worker is running
    app.control.purge()
    try:
        for n in range(20):
            assert post(webform, n).status_code == 200
        assert RawEvent.objects.filter(status="received").count() == 20
        assert ingest_queue_length() == 1  # one message for the burst, not twenty

        # The drain (run here, as the worker would) takes all of them, oldest first.
        result = drain_raw_events.apply().get()
        assert result == {"normalized": 20}
        assert Lead.objects.count() == 20

        # The drain cleared the hint when it started: the next delivery rings again.
        assert post(webform, 99).status_code == 200
        assert ingest_queue_length() == 2
    finally:
        app.control.purge()
        app.conf.task_always_eager = True


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_debounced_burst_rings_once_at_once_and_once_at_the_end_of_the_window(make_connection, settings):
    settings.INTEGRATIONS_RING_DEBOUNCE_MS = 400
    secret = webform_secret()
    webform = (make_connection("webform", signing_secret=secret), secret)
    app.conf.task_always_eager = False
    app.control.purge()
    try:
        assert post(webform, 1).status_code == 200
        deadline = time.monotonic() + 0.3  # well inside the window: the leading ring is not held back
        while ingest_queue_length() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ingest_queue_length() == 1
        from zartsalgo.flags import flag_clear

        flag_clear(services.DRAIN_PENDING_FLAG)  # as the drain does when it starts
        for n in range(2, 6):  # inside the window: no ring of their own...
            assert post(webform, n).status_code == 200
        assert ingest_queue_length() == 1
        deadline = time.monotonic() + 5
        while ingest_queue_length() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingest_queue_length() == 2  # ...one trailing ring for all four, after their commits
        assert services.raw_events_drain(batch_size=50, max_seconds=60, fan_out=False) == {"normalized": 5}
    finally:
        app.control.purge()
        app.conf.task_always_eager = True


@pytest.mark.django_db
def test_a_pending_drain_absorbs_new_rows_and_a_finished_one_lets_them_ring(webform, deliver):
    connection, secret = webform
    # A drain is pending (queued, not started): a delivery just relies on it.
    flag_set_if_absent(services.DRAIN_PENDING_FLAG, ttl_seconds=30)
    body = form_body()
    assert deliver("webform", connection, body, sign_standard_webhook(secret, body)).status_code == 200
    raw = RawEvent.objects.get()
    assert raw.status == "received"

    # When it runs it finds the row, and clears the hint before looking.
    assert services.raw_events_drain(batch_size=50, max_seconds=60, fan_out=False) == {"normalized": 1}
    assert not flag_is_set(services.DRAIN_PENDING_FLAG)
    body = form_body(contact={"name": "Second", "phone": "512-555-0177"})
    assert deliver("webform", connection, body, sign_standard_webhook(secret, body)).status_code == 200
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"normalized"}


@pytest.mark.django_db
def test_the_sweeper_drains_stuck_rows_even_when_the_hint_says_a_drain_is_pending(webform, deliver):
    connection, secret = webform
    flag_set_if_absent(services.DRAIN_PENDING_FLAG, ttl_seconds=30)  # a hint left by a drain task that was lost
    body = form_body()
    deliver("webform", connection, body, sign_standard_webhook(secret, body))
    RawEvent.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    assert sweep_raw_events() == 1
    assert RawEvent.objects.get().status == "normalized"


@pytest.mark.django_db
def test_a_drain_batch_takes_the_oldest_first_and_stops_when_nothing_waits(webform, deliver, settings):
    connection, secret = webform
    flag_set_if_absent(services.DRAIN_PENDING_FLAG, ttl_seconds=30)
    for n in range(5):
        body = form_body(contact={"name": f"Order {n}", "phone": f"512-555-02{10 + n}"})
        deliver("webform", connection, body, sign_standard_webhook(secret, body))
    first_two = list(RawEvent.objects.order_by("received_at", "id").values_list("pk", flat=True)[:2])
    assert services.raw_events_process_batch(raw_event_id=None, batch_size=2) == {"normalized": 2}
    assert list(RawEvent.objects.filter(status="normalized").values_list("pk", flat=True).order_by("pk")) == first_two
    assert services.raw_events_drain(batch_size=2, max_seconds=60, fan_out=False) == {"normalized": 3}
    assert services.raw_events_drain(batch_size=2, max_seconds=60, fan_out=False) == {}


@pytest.mark.django_db
def test_a_status_change_reaches_the_next_delivery_despite_the_connection_cache(webform, deliver, data_ops_user):
    connection, secret = webform
    body = form_body()
    deliver("webform", connection, body, sign_standard_webhook(secret, body))  # looked up and cached
    services.connection_set_status(
        connection=connection, status="paused", actor=data_ops_user, reason="Client asked to pause"
    )
    body = form_body(contact={"name": "Paused", "phone": "512-555-0199"})
    deliver("webform", connection, body, sign_standard_webhook(secret, body))
    assert list(RawEvent.objects.order_by("id").values_list("status", flat=True)) == ["normalized", "held"]
