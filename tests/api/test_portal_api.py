"""/api/v1/summaries/ and /api/v1/metric-cards/: published proof only, client-safe fields only,
scoped like every /api/v1 endpoint (own client's items; another client's id is 404)."""

import datetime
import json

import pytest
from django.utils import timezone

from portal.models import ProofStatus
from tests import factories

pytestmark = pytest.mark.django_db

SECRETS = ("SECRET-INTERNAL-DRAFT", "SECRET-INTERNAL-NOTE", "SECRET-EVIDENCE", "SECRET-OVERRIDE")
SUMMARY_KEYS = {"id", "client", "period_start", "period_end", "title", "body", "published_at"}
CARD_KEYS = {
    "id",
    "client",
    "period_start",
    "period_end",
    "metric_key",
    "metric_label",
    "source_label",
    "unit",
    "baseline_value",
    "current_value",
    "health",
    "next_action",
    "meaning",
    "value_text",
    "baseline_text",
    "status_label",
    "is_stale",
    "stale_note",
    "published_at",
}


def _published(approver):
    return {
        "status": ProofStatus.PUBLISHED,
        "approved_by": approver,
        "approved_at": timezone.now(),
        "published_by": approver,
        "published_at": timezone.now(),
        "publish_override_reason": "SECRET-OVERRIDE",
    }


def summary(client, title, approver=None, **fields):
    return factories.SummaryFactory(
        client=client,
        title=title,
        body=f"{title} body",
        internal_draft="SECRET-INTERNAL-DRAFT",
        evidence={"note": "SECRET-EVIDENCE"},
        **(_published(approver) if approver else {}),
        **fields,
    )


def card(client, label, approver=None, **fields):
    values = {
        "client": client,
        "metric_label": label,
        "current_value": 12,
        "baseline_value": 8,
        "internal_notes": "SECRET-INTERNAL-NOTE",
        "evidence": {"note": "SECRET-EVIDENCE"},
        **(_published(approver) if approver else {}),
    }
    return factories.MetricCardFactory(**{**values, **fields})


@pytest.fixture
def proof(acme, other_client, data_ops_user):
    return {
        "acme_summary": summary(acme, "Acme published", data_ops_user),
        "acme_draft_summary": summary(acme, "Acme draft"),
        "zenith_summary": summary(other_client, "Zenith published", data_ops_user),
        "acme_card": card(acme, "Acme leads", data_ops_user),
        "acme_draft_card": card(acme, "Acme draft card"),
        "zenith_card": card(other_client, "Zenith leads", data_ops_user),
    }


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_a_client_user_lists_only_their_clients_published_items(acme_api, proof):
    assert ids(acme_api.get("/api/v1/summaries/")) == {proof["acme_summary"].pk}
    assert ids(acme_api.get("/api/v1/metric-cards/")) == {proof["acme_card"].pk}
    # Asking for another client by filter changes nothing: the scope comes first.
    assert ids(acme_api.get(f"/api/v1/summaries/?client={proof['zenith_summary'].client_id}")) == set()


def test_only_client_safe_fields_leave(acme_api, proof):
    for url, keys in (("/api/v1/summaries/", SUMMARY_KEYS), ("/api/v1/metric-cards/", CARD_KEYS)):
        response = acme_api.get(url)
        (row,) = response.json()["results"]
        assert set(row) == keys
        text = response.content.decode()
        for secret in (*SECRETS, "dataops"):
            assert secret not in text
    row = acme_api.get(f"/api/v1/metric-cards/{proof['acme_card'].pk}/").json()
    assert row["current_value"] == "12.00" and row["value_text"] == "12 leads" and row["is_stale"] is False
    assert row["baseline_text"] == "8 leads" and row["health"] == "on_track" and row["status_label"] == "On track"


@pytest.mark.parametrize("resource", ["summaries", "metric-cards"])
def test_another_clients_or_an_unpublished_item_is_404(acme_api, zenith_api, proof, resource):
    kind = "summary" if resource == "summaries" else "card"
    own, draft, theirs = proof[f"acme_{kind}"], proof[f"acme_draft_{kind}"], proof[f"zenith_{kind}"]

    assert acme_api.get(f"/api/v1/{resource}/{own.pk}/").status_code == 200
    for other in (theirs, draft):
        response = acme_api.get(f"/api/v1/{resource}/{other.pk}/")
        assert response.status_code == 404
        assert "Zenith" not in response.content.decode()
    assert zenith_api.get(f"/api/v1/{resource}/{own.pk}/").status_code == 404
    assert zenith_api.get(f"/api/v1/{resource}/{theirs.pk}/").status_code == 200


def test_staff_see_every_clients_published_items_and_no_drafts(staff_api, proof):
    assert ids(staff_api.get("/api/v1/summaries/")) == {proof["acme_summary"].pk, proof["zenith_summary"].pk}
    assert ids(staff_api.get("/api/v1/metric-cards/")) == {proof["acme_card"].pk, proof["zenith_card"].pk}
    acme_id = proof["acme_card"].client_id
    assert ids(staff_api.get(f"/api/v1/metric-cards/?client={acme_id}")) == {proof["acme_card"].pk}
    assert staff_api.get(f"/api/v1/summaries/{proof['acme_draft_summary'].pk}/").status_code == 404


def test_a_stale_sources_card_withholds_its_value(acme_api, acme, data_ops_user):
    connection = factories.ConnectionFactory(
        client=acme, last_event_at=timezone.now() - datetime.timedelta(days=5), stale_since=timezone.now()
    )
    stale = card(acme, "Leads via form", data_ops_user, connection=connection, current_value=4321)

    row = acme_api.get(f"/api/v1/metric-cards/{stale.pk}/").json()

    assert row["is_stale"] is True and row["current_value"] is None and row["value_text"] == "—"
    assert row["health"] is None and row["status_label"].startswith("Stale since") and row["stale_note"]
    assert "4321" not in json.dumps(row)


def test_read_only_for_everyone(acme_api, staff_api, anonymous_api, proof):
    pk = proof["acme_summary"].pk
    assert acme_api.post("/api/v1/summaries/", {}, format="json").status_code == 403
    assert acme_api.patch(f"/api/v1/summaries/{pk}/", {"title": "x"}, format="json").status_code == 403
    assert staff_api.post("/api/v1/metric-cards/", {}, format="json").status_code == 405
    assert staff_api.delete(f"/api/v1/summaries/{pk}/").status_code == 405
    assert anonymous_api.get("/api/v1/summaries/").status_code == 401


def test_list_query_count_does_not_grow_with_cards(acme_api, acme, data_ops_user, django_assert_max_num_queries):
    connection = factories.ConnectionFactory(client=acme)
    for n in range(5):
        card(acme, f"Card {n}", data_ops_user, connection=connection, metric_key=f"k{n}")
    with django_assert_max_num_queries(6):
        assert len(ids(acme_api.get("/api/v1/metric-cards/"))) == 5
