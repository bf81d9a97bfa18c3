"""`manage.py seed_demo`: demo clients, logins and messy leads, all written through the services."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count

from adminops.roles import DATA_OPS_GROUP
from leads.models import Activity, Client, Consent, Lead
from portal.models import ClientUser, MetricCard, Summary

DEMO_SLUGS = {"rapid-rooter", "polar-air", "summit-roofing", "sparkle-cleaning"}


def _seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_loads_messy_traceable_data_once():
    output = _seed(leads=60)
    User = get_user_model()

    clients = Client.objects.all()
    assert set(clients.values_list("slug", flat=True)) == DEMO_SLUGS
    assert {c.time_zone for c in clients} == {
        "America/Chicago",
        "America/Phoenix",
        "America/Denver",
        "America/New_York",
    }
    assert sorted(clients.values_list("status", flat=True)) == ["active", "active", "active", "onboarding"]

    engineer = User.objects.get(username="engineer")
    assert engineer.is_superuser and engineer.is_staff
    for username in ("dataops", "dataops2"):
        staff = User.objects.get(username=username)
        assert staff.is_staff and not staff.is_superuser
        assert staff.groups.filter(name=DATA_OPS_GROUP).exists()
        assert staff.check_password("demo-pass-2026")

    links = ClientUser.objects.select_related("user", "client")
    assert {link.client.slug for link in links} == DEMO_SLUGS
    assert links.count() == len(DEMO_SLUGS)  # one portal login per client
    for link in links:
        assert not link.user.is_staff and not link.user.is_superuser
        assert link.user.get_username() == f"owner@{link.client.slug}.example"
        assert ClientUser.objects.filter(user=link.user).count() == 1

    leads = Lead.objects.all()
    assert leads.count() == 60
    assert set(leads.values_list("client__slug", flat=True)) == DEMO_SLUGS
    # The merge path ran and shows on the timeline.
    assert Activity.objects.filter(kind=Activity.Kind.MERGE).exists()
    # Messy input left data-quality flags behind.
    assert leads.filter(has_data_quality_issues=True).exists()
    # Some history from before each client joined (the reports' baseline)…
    assert any(leads.filter(client=c, captured_at__date__lt=c.joined_on).exists() for c in clients)
    # …and the first client's portal has published, approved proof to show.
    published = MetricCard.objects.filter(status="published", client__slug="rapid-rooter")
    assert published.count() == 4 and not published.filter(approved_by=None).exists()
    assert Summary.objects.filter(status="published", client__slug="rapid-rooter").count() == 1
    # Replies were recorded after capture, so response times exist and vary.
    response_times = set(leads.exclude(first_response_seconds=None).values_list("first_response_seconds", flat=True))
    assert len(response_times) > 1
    assert leads.exclude(status=Lead.Status.NEW).exists()
    assert Consent.objects.filter(channel="sms", state=Consent.State.REVOKED).exists()
    # Dedupe held: no two leads of one client share a phone number.
    dupes = leads.exclude(phone_e164=None).values("client", "phone_e164").annotate(n=Count("id")).filter(n__gt=1)
    assert not dupes.exists()
    assert "owner@rapid-rooter.example" in output and "http://127.0.0.1:8000/portal/" in output

    # Idempotent: a second run changes nothing and says so.
    activities = Activity.objects.count()
    second = _seed(leads=60)
    assert "already exists" in second
    assert "engineer" in second
    assert Lead.objects.count() == 60
    assert Activity.objects.count() == activities
    assert Client.objects.count() == len(DEMO_SLUGS)
    assert User.objects.count() == 3 + len(DEMO_SLUGS)
