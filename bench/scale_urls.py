"""Bench-only URLConf: the project's URLs plus the baseline of the scale benchmark.

The baseline is the least a Django page that reads the leads table can do: one SELECT of one
lead by primary key, answered as a tiny text body. It is served by the same gunicorn, through
the same middleware, with the same session cookie sent, so page p95 / baseline p95 isolates what
a page adds over one indexed row read (session and user lookups, its queries, template rendering).
"""

from django.db import connection
from django.http import HttpResponse
from django.urls import path

from zartsalgo.urls import urlpatterns as project_urlpatterns


def baseline_lead(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status, captured_at FROM leads_lead WHERE id = %s", [request.GET.get("id", "1")])
        row = cursor.fetchone()
    return HttpResponse(f"{row[0]} {row[1]} {row[2]:%Y-%m-%d}" if row else "none", content_type="text/plain")


urlpatterns = [path("bench/scale-baseline/", baseline_lead, name="bench-scale-baseline"), *project_urlpatterns]
