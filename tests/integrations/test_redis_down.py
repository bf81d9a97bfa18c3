"""Redis accelerates, MariaDB records: with the broker down deliveries are still stored and
answered 2xx; when it returns, the sweeper's re-enqueue gets them processed by a real worker."""

import datetime

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from integrations.models import RawEvent, WebhookEvent
from integrations.tasks import sweep_raw_events
from leads.models import Lead
from tests.conftest import wait_for
from zartsalgo.celery import app

from .conftest import form_body, sign_standard_webhook, webform_secret


def _reconnect() -> None:
    """Drop Celery's cached broker connections so the next publish uses broker_url as now set."""
    # Not force_close_all(): kombu keeps pools in a registry keyed by URL, and a closed pool
    # would be handed back when the real broker URL is restored.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_deliveries_survive_a_broker_outage(make_connection, celery_worker):
    secret = webform_secret()
    connection = make_connection("webform", signing_secret=secret)
    real_broker = app.conf.broker_url
    # The web process loses Redis: publishing fails fast instead of retrying for minutes.
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.task_publish_retry = False
    _reconnect()
    try:
        for n in range(3):
            body = form_body(contact={"name": f"Outage {n}", "phone": f"512-555-01{10 + n}"})
            response = HttpClient().post(
                f"/api/webhooks/webform/{connection.webhook_token}/",
                data=body,
                content_type="application/json",
                **sign_standard_webhook(secret, body),
            )
            assert response.status_code == 200
    finally:
        app.conf.broker_url = real_broker
        app.conf.task_publish_retry = True
        _reconnect()
    assert WebhookEvent.objects.filter(outcome="accepted").count() == 3
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"received"}
    assert Lead.objects.count() == 0

    # Redis is back. The beat sweeper finds the rows whose messages never made it.
    RawEvent.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    assert sweep_raw_events() == 3
    assert wait_for(lambda: set(RawEvent.objects.values_list("status", flat=True)) == {"normalized"}, timeout=60)
    assert Lead.objects.count() == 3
