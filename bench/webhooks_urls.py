"""Bench-only URLConf: the project's URLs plus the baseline of the webhook benchmark.

The baseline is the least a Django endpoint that stores a delivery can do: read the body, insert
one row with one autocommitted INSERT, answer 200. It runs in the same gunicorn, through the
same middleware, with bodies of the same size as the Twilio deliveries, so the ratio
webhook/baseline isolates what the pipeline adds (lookup, signature check, receipt + raw event
in one transaction, the Redis enqueue after commit).
"""

import hashlib

from django.db import connection
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from zartsalgo.urls import urlpatterns as project_urlpatterns

# Created by bench/webhooks.py with raw SQL (no migration: the table is the benchmark's, not the project's).
BASELINE_TABLE = "bench_webhooks_baseline"


@csrf_exempt
@require_POST
def baseline_ingest(request):
    body = request.body
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BASELINE_TABLE} (received_at, body_sha256, body_size) VALUES (NOW(6), %s, %s)",  # noqa: S608 - constant name
            [hashlib.sha256(body).hexdigest(), len(body)],
        )
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("bench/baseline/", baseline_ingest, name="bench-baseline"), *project_urlpatterns]
