"""Failure review and diagnosis in the admin, as data ops use them."""

import pytest
from django.contrib.auth.models import Group

from adminops.models import AdminAction
from adminops.roles import PAYLOAD_REVIEWERS_GROUP
from integrations.models import RawEvent, SyncError
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_letter(acme):
    return factories.SyncErrorFactory(raw_event__connection__client=acme, raw_event__status="dead")


def test_raw_payload_is_shown_only_with_the_dedicated_permission(client, data_ops_user, dead_letter):
    client.force_login(data_ops_user)
    url = f"/admin/integrations/rawevent/{dead_letter.raw_event_id}/change/"
    html = client.get(url).content.decode()
    assert "+1•••0143" in html  # the redacted summary is there for diagnosis
    assert "+15125550143" not in html and "Payload (restricted)" not in html
    data_ops_user.groups.add(Group.objects.get(name=PAYLOAD_REVIEWERS_GROUP))
    html = client.get(url).content.decode()
    assert "Payload (restricted)" in html and "+15125550143" in html


def test_open_filter_and_resolve_with_a_written_reason(client, data_ops_user, dead_letter):
    factories.SyncErrorFactory(raw_event__connection=dead_letter.connection, state="resolved")
    client.force_login(data_ops_user)
    listed = client.get("/admin/integrations/syncerror/", {"review": "open"}).context["cl"].result_list
    assert list(listed) == [dead_letter]

    form = {"action": "mark_resolved", "_selected_action": [dead_letter.pk]}
    response = client.post("/admin/integrations/syncerror/", form)
    assert response.status_code == 200 and "Resolution" in response.content.decode()  # asks why first
    assert SyncError.objects.get(pk=dead_letter.pk).state == "dead"

    client.post("/admin/integrations/syncerror/", {**form, "resolution": "Fixed the form's phone field"})
    dead_letter.refresh_from_db()
    assert dead_letter.state == "resolved" and dead_letter.resolved_by == data_ops_user
    assert AdminAction.objects.filter(verb="sync_error.resolved", actor_user=data_ops_user).exists()


def test_retry_from_failure_review_replays_the_raw_event(client, data_ops_user, dead_letter):
    client.force_login(data_ops_user)
    client.post("/admin/integrations/syncerror/", {"action": "retry_now", "_selected_action": [dead_letter.pk]})
    assert RawEvent.objects.get(pk=dead_letter.raw_event_id).status in {"received", "normalized", "ignored", "failed"}
    assert AdminAction.objects.filter(verb="raw_event.replay", actor_user=data_ops_user).exists()


def test_connection_page_shows_its_webhook_url(client, data_ops_user, acme):
    connection = factories.ConnectionFactory(client=acme, provider="twilio")
    client.force_login(data_ops_user)
    html = client.get(f"/admin/integrations/connection/{connection.pk}/change/").content.decode()
    assert f"/api/webhooks/twilio/{connection.webhook_token}/" in html
