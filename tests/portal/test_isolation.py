"""A client user reaches their own client and nothing of any other."""

import pytest

from leads.selectors import client_list_for_user, lead_list_for_user
from portal.services import client_user_create
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants(acme, other_client):
    mine = factories.LeadFactory(client=acme, first_name="Mine")
    theirs = factories.LeadFactory(client=other_client, first_name="Theirs")
    link = client_user_create(client=acme, email="Owner@Acme.example", password="pw-test-123456", actor="system:test")
    return link.user, mine, theirs


def test_selectors_scope_a_client_user_to_one_client(two_tenants, acme):
    user, mine, _ = two_tenants
    assert list(client_list_for_user(user=user)) == [acme]
    assert list(lead_list_for_user(user=user)) == [mine]


def test_staff_see_every_client(data_ops_user, acme, other_client):
    assert set(client_list_for_user(user=data_ops_user)) == {acme, other_client}


def test_portal_dashboard_shows_only_own_client(client, two_tenants, other_client):
    user, _, _ = two_tenants
    client.force_login(user)
    html = client.get("/portal/").content.decode()
    assert "Acme Plumbing" in html
    assert other_client.name not in html and "Theirs" not in html


def test_client_user_reaches_no_admin_object_of_any_client(client, two_tenants):
    user, mine, theirs = two_tenants
    client.force_login(user)
    for lead in (mine, theirs):
        response = client.get(f"/admin/leads/lead/{lead.pk}/change/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_portal_login_with_email_and_password(client, two_tenants):
    response = client.post("/portal/login/", {"username": "owner@acme.example", "password": "pw-test-123456"})
    assert response.status_code == 302 and response["Location"] == "/portal/"


def test_portal_requires_login_and_a_client_link(client, data_ops_user):
    assert client.get("/portal/")["Location"].startswith("/portal/login/")
    client.force_login(data_ops_user)  # staff have no client link: no portal page
    assert client.get("/portal/").status_code == 404


def test_portal_users_are_never_staff(two_tenants):
    user, _, _ = two_tenants
    assert not user.is_staff and not user.is_superuser
    assert user.client_user.client.slug == "acme"


# --- published proof: only this client's, only published, never the internal fields ---------------


def test_portal_shows_only_this_clients_published_proof(client, two_tenants, acme, other_client, data_ops_user):
    from django.utils import timezone

    from portal import services
    from tests.portal.helpers import last_ten_days, publish

    user, _, _ = two_tenants
    start, end = last_ten_days(acme)

    def summary(c, title, internal):
        return factories.SummaryFactory(
            client=c, period_start=start, period_end=end, title=title, body=f"{title} body", internal_draft=internal
        )

    mine = summary(acme, "Mine published", "SECRET-DRAFT-MINE")
    publish(mine, data_ops_user, override_reason="test")
    theirs = summary(other_client, "Theirs published", "SECRET-DRAFT-THEIRS")
    publish(theirs, data_ops_user, override_reason="test")
    summary(acme, "Mine draft", "SECRET-DRAFT-2")
    approved = summary(acme, "Mine approved only", "SECRET-DRAFT-3")
    services.summary_check(summary=approved, actor=data_ops_user)
    services.summary_approve(summary=approved, actor=data_ops_user)
    card = factories.MetricCardFactory(
        client=acme, period_start=start, period_end=end, metric_label="Leads captured", internal_notes="SECRET-NOTES"
    )
    publish(card, data_ops_user, override_reason="test")
    factories.MetricCardFactory(client=acme, metric_label="Unpublished metric", internal_notes="SECRET-NOTES-2")
    other_card = factories.MetricCardFactory(client=other_client, metric_label="Their metric")
    publish(other_card, data_ops_user, override_reason="test")
    assert mine.published_at <= timezone.now()

    client.force_login(user)
    html = client.get("/portal/").content.decode()
    assert "Mine published" in html and "Leads captured" in html and "12 leads" in html
    for hidden in (
        "Theirs published",
        "Mine draft",
        "Mine approved only",
        "Unpublished metric",
        "Their metric",
        "SECRET",  # internal drafts and notes of every item
        "Spam heuristics",  # check names/details never reach the portal
        "override",
    ):
        assert hidden not in html, hidden
