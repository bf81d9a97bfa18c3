"""Failure review (/ops/failures/): every kind of failure listed, filterable, and each action
goes through the owning service and is logged with the staff user as actor."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from adminops.models import AdminAction
from integrations.models import Connection, CrmHandoff, RawEvent, SyncError
from tests import factories
from tests.adminops.helpers import dead_handoff, held_enrollment, stale_connection, unknown_send

pytestmark = pytest.mark.django_db

URL = "/ops/failures/"
ACT = "/ops/failures/act/"


@pytest.fixture
def everything(acme):
    error = factories.SyncErrorFactory(raw_event__connection__client=acme, state=SyncError.State.DEAD)
    RawEvent.objects.filter(pk=error.raw_event_id).update(status=RawEvent.Status.DEAD)
    enrollment, message = unknown_send(acme)
    return {
        "error": error,
        "message": message,
        "unknown_enrollment": enrollment,
        "held": held_enrollment(acme),
        "handoff": dead_handoff(acme),
        "stale": stale_connection(acme),
        "uncertain": factories.ConnectionFactory(client=acme, provider="callrail", status=Connection.Status.UNCERTAIN),
    }


def _logged(verb, user, **filters):
    return AdminAction.objects.filter(verb=verb, actor_user=user, **filters).exists()


def test_lists_each_kind_with_counts_and_links(client, data_ops_user, everything, django_assert_max_num_queries):
    client.force_login(data_ops_user)
    with django_assert_max_num_queries(20):
        response = client.get(URL)
    assert response.status_code == 200
    review = response.context["review"]
    assert [s.total for s in review.sections] == [1, 1, 1, 1, 2]
    html = response.content.decode()
    assert f"/admin/integrations/syncerror/{everything['error'].pk}/change/" in html
    assert f'value="not_sent:{everything["message"].pk}"' in html
    assert f'value="release:{everything["held"].pk}"' in html
    assert f'value="retry:{everything["handoff"].pk}"' in html
    assert f"/admin/integrations/connection/{everything['uncertain'].pk}/change/" in html


def test_query_count_does_not_grow_with_rows(client, data_ops_user, acme, everything):
    client.force_login(data_ops_user)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for _ in range(5):
        factories.SyncErrorFactory(raw_event__connection__client=acme, state=SyncError.State.RETRYING)
        unknown_send(acme)
        held_enrollment(acme)
        dead_handoff(acme)
        stale_connection(acme)
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    assert len(many) == len(few)


def test_filters_by_client_and_provider(client, data_ops_user, acme, other_client, everything):
    factories.SyncErrorFactory(raw_event__connection__client=other_client, raw_event__connection__provider="angi")
    client.force_login(data_ops_user)
    review = client.get(URL, {"client": other_client.pk}).context["review"]
    assert review.section("sync_errors").total == 1 and review.section("held_enrollments").total == 0
    review = client.get(URL, {"provider": "angi"}).context["review"]
    assert review.section("sync_errors").total == 1 and review.section("crm_handoffs").total == 0
    review = client.get(URL, {"provider": "hubspot", "client": acme.pk}).context["review"]
    assert review.section("crm_handoffs").total == 1 and review.section("sync_errors").total == 0
    assert review.section("unknown_sends").total == 0  # the message went through twilio


def test_retry_replays_the_raw_event_and_is_logged(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    error = everything["error"]
    response = client.post(ACT, {"kind": "sync_error", "row_op": f"retry:{error.pk}"})
    assert response.status_code == 302 and response["Location"].startswith(URL)
    assert RawEvent.objects.get(pk=error.raw_event_id).status == RawEvent.Status.RECEIVED
    assert _logged("raw_event.replay", data_ops_user, target_id=str(error.raw_event_id))


def test_resolve_and_ignore_need_a_reason(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    error = everything["error"]
    client.post(ACT, {"kind": "sync_error", "op": "resolved", "ids": [error.pk], "reason": ""})
    error.refresh_from_db()
    assert error.state == SyncError.State.DEAD
    client.post(ACT, {"kind": "sync_error", "op": "ignored", "ids": [error.pk], "reason": "Test form spam"})
    error.refresh_from_db()
    assert error.state == SyncError.State.IGNORED and error.resolved_by == data_ops_user
    assert _logged("sync_error.ignored", data_ops_user, target_id=str(error.pk))


def test_unknown_send_is_settled_as_not_sent(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    message = everything["message"]
    client.post(ACT, {"kind": "message", "row_op": f"not_sent:{message.pk}", "reason": "Not in Twilio's log"})
    message.refresh_from_db()
    enrollment = everything["unknown_enrollment"]
    enrollment.refresh_from_db()
    assert message.status == "failed" and enrollment.state == "active"
    assert _logged("workflow.release", data_ops_user, target_id=str(enrollment.pk))


def test_held_enrollment_is_released(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    held = everything["held"]
    client.post(ACT, {"kind": "enrollment", "op": "release", "ids": [held.pk]})
    held.refresh_from_db()
    assert held.state == "active"
    assert _logged("workflow.release", data_ops_user, target_id=str(held.pk))


def test_crm_handoff_retry_and_manual(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    handoff = everything["handoff"]
    client.post(ACT, {"kind": "crm_handoff", "row_op": f"retry:{handoff.pk}"})
    handoff.refresh_from_db()
    assert handoff.status == CrmHandoff.Status.PENDING
    assert _logged("crm.handoff.retry", data_ops_user, target_id=str(handoff.pk))
    client.post(ACT, {"kind": "crm_handoff", "op": "manual", "ids": [handoff.pk], "reason": "Typed into HubSpot"})
    handoff.refresh_from_db()
    assert handoff.status == CrmHandoff.Status.MANUAL
    assert _logged("crm.handoff.manual", data_ops_user, target_id=str(handoff.pk))


def test_clearing_an_uncertain_connection(client, data_ops_user, everything):
    client.force_login(data_ops_user)
    connection = everything["uncertain"]
    client.post(ACT, {"kind": "connection", "op": "clear", "ids": [connection.pk]})  # no reason: refused
    connection.refresh_from_db()
    assert connection.status == Connection.Status.UNCERTAIN
    client.post(ACT, {"kind": "connection", "op": "clear", "ids": [connection.pk], "reason": "Key rotated, test OK"})
    connection.refresh_from_db()
    assert connection.status == Connection.Status.CONNECTED
    assert _logged("connection.status", data_ops_user, target_id=str(connection.pk))


def test_filters_survive_the_redirect(client, data_ops_user, acme, everything):
    client.force_login(data_ops_user)
    response = client.post(
        ACT, {"kind": "enrollment", "op": "release", "ids": [everything["held"].pk], "client": acme.pk, "provider": ""}
    )
    assert response["Location"] == f"{URL}?client={acme.pk}"


def test_non_staff_are_sent_to_login_and_posts_need_the_permission(client, acme, everything):
    portal_user = factories.ClientUserFactory(client=acme).user
    client.force_login(portal_user)
    assert client.get(URL).status_code == 302
    assert client.post(ACT, {"kind": "enrollment", "op": "release", "ids": [everything["held"].pk]}).status_code == 302
    staff_without_perms = factories.UserFactory(is_staff=True)
    client.force_login(staff_without_perms)
    response = client.post(ACT, {"kind": "enrollment", "op": "release", "ids": [everything["held"].pk]})
    assert response.status_code == 403
    everything["held"].refresh_from_db()
    assert everything["held"].state == "held"


def test_get_is_not_allowed_on_the_action_url(client, data_ops_user):
    client.force_login(data_ops_user)
    assert client.get(ACT).status_code == 405
