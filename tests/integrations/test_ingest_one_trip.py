"""On MariaDB a delivery's receipt and raw events are written as one transaction in one round
trip (zartsalgo.db.insert_with_dependents). Same guarantees as the ORM path: all or nothing,
duplicates settled by the UNIQUE key, the receipt telling which."""

import json
import urllib.parse

import pytest
from django.db import IntegrityError, connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from integrations.models import RawEvent, WebhookEvent
from zartsalgo.celery import app
from zartsalgo.db import insert_with_dependents, multi_statements_enabled

from .test_sendgrid import event, new_key_pair, sign
from .test_twilio import inbound_sms, signed, webhook_url

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_worker():
    app.conf.task_always_eager = False  # deliveries publish to Redis; nothing processes them here
    app.control.purge()
    yield
    app.control.purge()
    app.conf.task_always_eager = True


def test_a_delivery_is_two_round_trips_and_a_redelivery_is_a_duplicate_receipt(make_connection):
    assert multi_statements_enabled(connection)
    token = "t" * 32
    twilio = make_connection("twilio", auth_token=token)
    params = inbound_sms("Can you come Tuesday?")
    url = webhook_url(twilio)
    http = HttpClient()

    def post():
        return http.post(
            url,
            data=urllib.parse.urlencode(params),
            content_type="application/x-www-form-urlencoded",
            **signed(token, url, params),
        )

    post()  # the connection lookup is cached from here on
    RawEvent.objects.all().delete()
    WebhookEvent.objects.all().delete()
    params = inbound_sms("Tuesday works")
    with CaptureQueriesContext(connection) as queries:
        assert post().status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("START TRANSACTION; INSERT") and writes[0].endswith("; COMMIT")

    assert post().status_code == 200  # Twilio retries the same message
    first, second = WebhookEvent.objects.order_by("id")
    raw = RawEvent.objects.get()
    assert raw.receipt_id == first.pk and raw.payload["MessageSid"] == params["MessageSid"]
    assert (first.outcome, first.duplicates_count) == ("accepted", 0)
    assert (second.outcome, second.duplicates_count, second.events_count) == ("duplicate", 1, 1)


def test_a_batch_with_an_inner_duplicate_keeps_one_row_per_event(make_connection):
    private_key, public_key = new_key_pair()
    sendgrid = make_connection("sendgrid", public_key=public_key)
    delivered, opened = event("delivered"), event("open")
    body = json.dumps([delivered, opened, delivered]).encode()
    response = HttpClient().post(
        f"/api/webhooks/sendgrid/{sendgrid.webhook_token}/",
        data=body,
        content_type="application/json",
        **sign(private_key, body),
    )
    assert response.status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.events_count, receipt.duplicates_count) == ("accepted", 3, 1)
    assert sorted(RawEvent.objects.filter(receipt=receipt).values_list("kind", flat=True)) == [
        "email.delivered",
        "email.open",
    ]


def test_a_failure_in_a_later_statement_rolls_the_whole_delivery_back(make_connection, acme):
    twilio = make_connection("twilio", auth_token="t" * 32)
    receipt = WebhookEvent(provider="twilio", connection=twilio, outcome="accepted", http_status=200)
    good = RawEvent(
        connection=twilio, client=acme, provider="twilio", idempotency_key="a", kind="sms.inbound", payload={}
    )
    bad = RawEvent(
        connection_id=twilio.pk + 10_000, client=acme, provider="twilio", idempotency_key="b", kind="x", payload={}
    )
    with pytest.raises(IntegrityError):  # the foreign key of the second raw event
        insert_with_dependents(receipt, [good, bad], link="receipt")
    assert not WebhookEvent.objects.exists() and not RawEvent.objects.exists()
    # The connection is usable and back in autocommit: the next delivery commits normally.
    assert connection.get_autocommit() and not connection.in_atomic_block
    receipt.pk = None
    assert insert_with_dependents(receipt, [good], link="receipt") == [True]
    assert RawEvent.objects.get().receipt_id == WebhookEvent.objects.get().pk
