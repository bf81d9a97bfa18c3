"""CRM handoff (issue #5): mapping, send, retries, dead letters, fallback, idempotency.

The CRM is a real HTTP server on a thread (tests/fakes/crm_server.py) that verifies Standard
Webhooks signatures with the real library and implements HubSpot's batch upsert; everything on
our side — ORM, Celery (in-process), adapters, `requests` — is the real thing.
"""

import datetime
import json
import uuid

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from adminops.models import AdminAction
from integrations import crm
from integrations.crm import NoCrmConnection, crm_handoff_request, crm_payload_build
from integrations.models import Connection, CrmFieldMapping, CrmHandoff, SyncError
from integrations.services import connection_create, connection_set_status
from leads.models import Activity
from tests import factories
from tests.fakes.crm_server import running_fake_crm
from workflows.models import StaffTask

ACTOR = "system:test"
PROVIDERS = ["crm_webhook", "hubspot"]


@pytest.fixture
def fake_crm():
    with running_fake_crm() as server:
        yield server


@pytest.fixture
def make_crm(acme, fake_crm, monkeypatch):
    """A connected CRM connection pointing at the fake CRM, its secret in a real env variable."""

    def make(provider: str = "crm_webhook", client=None, **config) -> Connection:
        var = f"TEST_CRM_{uuid.uuid4().hex[:8].upper()}"
        if provider == "crm_webhook":
            monkeypatch.setenv(var, fake_crm.signing_secret)
            credentials = {"signing_secret": f"env:{var}"}
            config = {"url": fake_crm.webhook_url, **config}
        else:
            monkeypatch.setenv(var, fake_crm.access_token)
            credentials = {"access_token": f"env:{var}"}
            config = {"base_url": fake_crm.url, **config}
        return connection_create(
            client=client or acme,
            provider=provider,
            reason="Leads go to the client's CRM",
            actor=ACTOR,
            credentials=credentials,
            config=config,
        )

    return make


@pytest.fixture
def lead(acme):
    return factories.LeadFactory(
        client=acme,
        first_name="Maria",
        last_name="Garcia",
        phone_raw="+15125550143",
        email_raw="maria@example.com",
        postal_code="78701",
        city="Austin",
        service_type="Water heater",
        utm_source="google",
    )


def request_committed(django_capture_on_commit_callbacks, **kwargs) -> CrmHandoff:
    """Request inside a transaction, then run what it enqueued on commit (the Celery send)."""
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        handoff = crm_handoff_request(actor=ACTOR, source=kwargs.pop("source", "workflow"), **kwargs)
    handoff.refresh_from_db()
    return handoff


def make_due(handoff: CrmHandoff) -> None:
    """Time passes: the row's next attempt is now due (the data a clock would produce)."""
    CrmHandoff.objects.filter(pk=handoff.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))


# --- mapping → payload ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_staff_mapping_decides_the_payload(make_crm, lead):
    connection = make_crm("crm_webhook")
    CrmFieldMapping.objects.create(connection=connection, lead_field="first_name", crm_field="FirstName", position=1)
    CrmFieldMapping.objects.create(connection=connection, lead_field="phone_e164", crm_field="Mobile", position=2)
    CrmFieldMapping.objects.create(connection=connection, lead_field="utm_source", crm_field="Campaign", position=3)
    CrmFieldMapping.objects.create(connection=connection, lead_field="lead_id", crm_field="ExternalId", position=4)
    CrmFieldMapping.objects.create(connection=connection, lead_field="market", crm_field="Region", position=5)
    CrmFieldMapping.objects.create(connection=connection, lead_field="gclid", crm_field="Gclid", position=6)
    lead.market = ""
    lead.save()

    payload, missing = crm_payload_build(connection=connection, lead=lead)

    assert payload == {
        "lead_key": f"zartsalgo-lead-{lead.pk}",
        # Empty values are left out: a CRM would read "" as "clear this field".
        "properties": {"FirstName": "Maria", "Mobile": "+15125550143", "Campaign": "google", "ExternalId": lead.pk},
    }
    assert missing == []

    CrmFieldMapping.objects.filter(crm_field="Gclid").update(required=True)
    assert crm_payload_build(connection=connection, lead=lead)[1] == ["Gclid"]


@pytest.mark.django_db
def test_a_connection_without_mappings_uses_the_provider_default(make_crm, lead):
    payload, missing = crm_payload_build(connection=make_crm("hubspot"), lead=lead)

    assert payload["properties"] == {
        "firstname": "Maria",
        "lastname": "Garcia",
        "email": "maria@example.com",
        "phone": "+15125550143",
        "zip": "78701",
        "city": "Austin",
    }
    assert missing == []


# --- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.django_db(transaction=True)
def test_success_records_the_crm_id_and_the_log_entry_existed_before_the_call(provider, make_crm, fake_crm, lead):
    connection = make_crm(provider)
    seen_at_call_time = []

    def look_at_our_database(request):
        # In the CRM's thread, on its own database connection: what had we committed when the
        # request arrived?
        try:
            handoff = CrmHandoff.objects.get()
            action = AdminAction.objects.get(idempotency_key=handoff.idempotency_key)
            seen_at_call_time.append((handoff.status, handoff.attempts, action.verb, action.state))
        finally:
            db_connection.close()

    fake_crm.on_request = look_at_our_database
    with transaction.atomic():  # the caller's transaction, e.g. a workflow step
        handoff = crm_handoff_request(
            lead=lead, source="workflow", source_key="enrollment:1:step:crm:visit:1", actor=ACTOR
        )
        assert fake_crm.requests == []  # nothing leaves before the caller commits

    handoff.refresh_from_db()
    assert seen_at_call_time == [("sending", 1, "crm.handoff", "intended")]
    assert handoff.status == "succeeded" and handoff.attempts == 1 and handoff.succeeded_at
    [(crm_id, contact)] = fake_crm.contacts.items()
    assert handoff.crm_id == crm_id
    assert contact["properties"]["firstname" if provider == "hubspot" else "first_name"] == "Maria"
    assert handoff.payload["lead_key"] == f"zartsalgo-lead-{lead.pk}"
    action = AdminAction.objects.get(pk=handoff.action_id)
    assert action.state == "succeeded" and action.lead_id == lead.pk and action.target_id == str(handoff.pk)
    assert crm_id in action.summary
    note = Activity.objects.get(lead=lead, provider_id=f"crm-handoff-{handoff.pk}")
    assert note.kind == "note" and crm_id in note.summary and note.is_internal
    assert not SyncError.objects.exists()
    assert connection.crm_handoffs.count() == 1


@pytest.mark.django_db
def test_webhook_is_signed_with_standard_webhooks_and_keyed_by_the_handoff(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm("crm_webhook")
    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:4:event:991")

    [request] = fake_crm.requests
    assert (
        request.headers["webhook-id"]
        == handoff.idempotency_key
        == f"crm:{handoff.connection_id}:{lead.pk}:rule:4:event:991"
    )
    body = request.json()
    assert body["type"] == "lead.handoff" and body["data"] == handoff.payload
    assert handoff.status == "succeeded"  # the fake verified the signature (401 otherwise)


@pytest.mark.django_db
def test_a_bad_signature_is_a_permanent_rejection(
    make_crm, fake_crm, lead, monkeypatch, django_capture_on_commit_callbacks
):
    connection = make_crm("crm_webhook")
    monkeypatch.setenv(connection.credentials["signing_secret"][4:], "whsec_" + "A" * 32)  # not the receiver's

    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="manual:1")

    assert handoff.status == "dead" and "HTTP 401" in handoff.last_error
    assert fake_crm.contacts == {}


# --- retries, dead letters, fallback ----------------------------------------------------------


@pytest.mark.django_db
def test_503_retries_on_the_schedule_then_dies_into_failure_review_with_a_staff_task(
    make_crm, fake_crm, lead, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATIONS_RETRY_SCHEDULE = [60, 600]
    make_crm("hubspot")
    fake_crm.fail(3, status=503)

    before = timezone.now()
    handoff = request_committed(
        django_capture_on_commit_callbacks, lead=lead, source_key="enrollment:7:step:crm:visit:1", must_reach=True
    )

    assert handoff.status == "retrying" and handoff.attempts == 1 and "HTTP 503" in handoff.last_error
    assert (
        before + datetime.timedelta(seconds=47)
        < handoff.next_attempt_at
        < timezone.now() + datetime.timedelta(seconds=73)
    )  # 60 s ± 20% jitter
    error = SyncError.objects.get(crm_handoff=handoff)
    assert (error.stage, error.state, error.attempt, error.next_retry_at) == (
        "outbound",
        "retrying",
        1,
        handoff.next_attempt_at,
    )
    assert AdminAction.objects.get(pk=handoff.action_id).state == "intended"  # still on its way

    assert crm.crm_handoffs_requeue_due() == 0  # not due yet: nothing is sent early
    assert len(fake_crm.requests) == 1

    make_due(handoff)
    assert crm.crm_handoffs_requeue_due() == 1
    handoff.refresh_from_db()
    assert handoff.status == "retrying" and handoff.attempts == 2

    make_due(handoff)
    crm.crm_handoffs_requeue_due()
    handoff.refresh_from_db()

    assert handoff.status == "dead" and handoff.attempts == 3 and handoff.next_attempt_at is None
    assert len(fake_crm.requests) == 3 and fake_crm.contacts == {}
    error.refresh_from_db()
    assert (error.state, error.attempt) == ("dead", 3)
    assert SyncError.objects.filter(crm_handoff=handoff).count() == 1  # one review row, updated
    action = AdminAction.objects.get(pk=handoff.action_id)
    assert action.state == "failed" and "503" in action.error
    task = StaffTask.objects.get(idempotency_key=f"crm-fallback:{handoff.pk}")
    assert task.lead_id == lead.pk and task.client_id == lead.client_id and task.status == "open"
    assert task.due_at and task.due_at > timezone.now()
    payload_in_notes = json.loads(task.notes.split("Prepared payload:\n", 1)[1])
    assert payload_in_notes == handoff.payload and payload_in_notes["properties"]["firstname"] == "Maria"

    # Staff fix the cause and retry from failure review: a fresh schedule, and it goes through.
    staff = factories.EngineerFactory()
    assert crm.crm_handoffs_retry(handoffs=CrmHandoff.objects.filter(pk=handoff.pk), actor=staff) == 1
    # (no on-commit capture here: the test's transaction never commits, so send it as the task would)
    crm.crm_handoff_send(handoff_id=handoff.pk)
    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and handoff.attempts == 1 and len(fake_crm.contacts) == 1
    error.refresh_from_db()
    assert error.state == "resolved"
    assert AdminAction.objects.filter(verb="crm.handoff.retry", actor_user=staff).count() == 1
    assert AdminAction.objects.get(pk=handoff.action_id).state == "succeeded"  # the retry's own intent
    assert StaffTask.objects.filter(idempotency_key=f"crm-fallback:{handoff.pk}").count() == 1


@pytest.mark.django_db
def test_400_is_dead_at_once_and_only_must_reach_handoffs_open_a_task(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm("hubspot")
    fake_crm.respond(
        400, {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"}
    )

    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:4:event:1")

    assert handoff.status == "dead" and handoff.attempts == 1 and "Property values were not valid" in handoff.last_error
    assert SyncError.objects.get(crm_handoff=handoff).state == "dead"
    assert AdminAction.objects.get(pk=handoff.action_id).state == "failed"
    assert not StaffTask.objects.exists()  # must_reach was False: failure review is enough
    assert len(fake_crm.requests) == 1
    assert crm.crm_handoffs_requeue_due() == 0  # a dead letter is never picked up again by itself


@pytest.mark.django_db
def test_a_required_field_without_value_dies_without_calling_the_crm(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    connection = make_crm("crm_webhook")
    CrmFieldMapping.objects.create(connection=connection, lead_field="gclid", crm_field="gclid", required=True)

    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="manual:1", must_reach=True)

    assert handoff.status == "dead" and "gclid" in handoff.last_error
    assert fake_crm.requests == []
    assert StaffTask.objects.filter(idempotency_key=f"crm-fallback:{handoff.pk}").exists()


# --- repeats never duplicate a contact ----------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.django_db
def test_a_handoff_repeated_after_a_crash_mid_call_creates_no_second_contact(
    provider, make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm(provider)
    handoff = request_committed(
        django_capture_on_commit_callbacks, lead=lead, source_key="enrollment:3:step:crm:visit:1"
    )
    assert handoff.status == "succeeded" and len(fake_crm.contacts) == 1
    first_id = handoff.crm_id
    # Given what a worker killed mid-call leaves behind: the CRM applied the request, our row
    # never heard back and still says `sending`, past its stuck time.
    CrmHandoff.objects.filter(pk=handoff.pk).update(
        status="sending", crm_id="", succeeded_at=None, next_attempt_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    assert crm.crm_handoffs_requeue_due() == 1  # the sweeper sends it again, same key

    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and handoff.attempts == 2 and handoff.crm_id == first_id
    assert len(fake_crm.requests) == 2
    assert len(fake_crm.contacts) == 1  # the CRM treated the repeat as the same contact
    assert fake_crm.requests[0].body == fake_crm.requests[1].body or provider == "crm_webhook"  # (timestamps differ)
    assert Activity.objects.filter(lead=lead, provider_id=f"crm-handoff-{handoff.pk}").count() == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.django_db
def test_a_timed_out_call_that_landed_is_retried_without_a_second_contact(
    provider, make_crm, fake_crm, lead, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATIONS_CRM_TIMEOUT_SECONDS = 1
    make_crm(provider)
    fake_crm.hang(3)  # the CRM applies it, the answer comes too late

    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:9:event:5")
    assert handoff.status == "retrying" and "Timed out" in handoff.last_error
    assert len(fake_crm.contacts) == 1

    make_due(handoff)
    crm.crm_handoffs_requeue_due()

    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and len(fake_crm.contacts) == 1
    assert handoff.crm_id == next(iter(fake_crm.contacts))
    assert SyncError.objects.get(crm_handoff=handoff).state == "resolved"


@pytest.mark.django_db
def test_requesting_twice_returns_the_same_row_and_sends_once(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm("hubspot")
    first = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:4:event:991")
    again = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:4:event:991")

    assert again.pk == first.pk
    assert CrmHandoff.objects.count() == 1 and len(fake_crm.requests) == 1
    assert AdminAction.objects.filter(verb="crm.handoff").count() == 1

    # Another request for the same lead is another handoff, but HubSpot upserts on the lead's
    # stable key: still one contact.
    other = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="rule:5:event:992")
    assert other.pk != first.pk and other.crm_id == first.crm_id and len(fake_crm.contacts) == 1


@pytest.mark.django_db
def test_a_long_source_key_is_hashed_to_fit(make_crm, lead, django_capture_on_commit_callbacks):
    make_crm("crm_webhook")
    source_key = "enrollment:1:" + "x" * 400
    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key=source_key)
    assert len(handoff.idempotency_key) <= 255 and ":sha256:" in handoff.idempotency_key
    assert request_committed(django_capture_on_commit_callbacks, lead=lead, source_key=source_key).pk == handoff.pk


# --- the caller's transaction, connections -------------------------------------------------


@pytest.mark.django_db
def test_a_caller_that_rolls_back_leaves_no_handoff_and_sends_nothing(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm("crm_webhook")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        crm_handoff_request(lead=lead, source="workflow", source_key="x", actor=ACTOR)
        raise RuntimeError("the workflow step failed after asking")

    assert not CrmHandoff.objects.exists() and not AdminAction.objects.filter(verb="crm.handoff").exists()
    assert fake_crm.requests == []


@pytest.mark.django_db
def test_no_usable_crm_connection_raises(acme, other_client, make_crm, lead, make_connection):
    with pytest.raises(NoCrmConnection):
        crm_handoff_request(lead=lead, source="rule", source_key="r", actor=ACTOR)

    zenith_crm = make_crm("crm_webhook", client=other_client)
    with pytest.raises(NoCrmConnection):  # another client's CRM
        crm_handoff_request(lead=lead, source="rule", source_key="r", actor=ACTOR, connection=zenith_crm)
    webform = make_connection("webform", signing_secret="whsec_x")
    with pytest.raises(NoCrmConnection):  # not a CRM
        crm_handoff_request(lead=lead, source="rule", source_key="r", actor=ACTOR, connection=webform)

    paused = make_crm("hubspot")
    connection_set_status(connection=paused, status="paused", actor=ACTOR)
    with pytest.raises(NoCrmConnection) as caught:  # the client's CRM, but not connected
        crm_handoff_request(lead=lead, source="rule", source_key="r", actor=ACTOR)
    assert isinstance(caught.value, LookupError) and caught.value.code == "no_crm_connection"
    assert not CrmHandoff.objects.exists()


@pytest.mark.django_db
def test_a_paused_connection_holds_the_handoff_until_it_is_connected_again(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    connection = make_crm("crm_webhook")
    with django_capture_on_commit_callbacks(execute=True):
        handoff = crm_handoff_request(lead=lead, source="rule", source_key="held", actor=ACTOR)
        connection_set_status(connection=connection, status="paused", actor=ACTOR, reason="client is switching CRM")

    handoff.refresh_from_db()
    assert handoff.status == "pending" and handoff.attempts == 0 and "paused" in handoff.last_error
    assert fake_crm.requests == []

    connection_set_status(connection=connection, status="connected", actor=ACTOR)
    make_due(handoff)
    crm.crm_handoffs_requeue_due()
    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and len(fake_crm.contacts) == 1


@pytest.mark.django_db
def test_the_sweeper_sends_a_handoff_whose_queue_message_was_lost(make_crm, fake_crm, lead):
    make_crm("hubspot")
    # No on-commit capture: the test transaction never commits, so the send message is never
    # enqueued — exactly a lost message.
    handoff = crm_handoff_request(lead=lead, source="manual", source_key="lost", actor=ACTOR)
    assert crm.crm_handoffs_requeue_due() == 0  # not stuck yet
    make_due(handoff)

    assert crm.crm_handoffs_requeue_due() == 1
    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and len(fake_crm.contacts) == 1


@pytest.mark.django_db
def test_settled_by_hand_is_logged_resolves_the_failure_and_is_never_sent_again(
    make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    make_crm("hubspot")
    fake_crm.respond(400, {"status": "error", "message": "bad email"})
    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="manual:2")
    staff = factories.EngineerFactory()

    crm.crm_handoff_mark_manual(handoff=handoff, actor=staff, reason="Typed into HubSpot by hand", crm_id="9001")

    handoff.refresh_from_db()
    assert (handoff.status, handoff.crm_id) == ("manual", "9001")
    error = SyncError.objects.get(crm_handoff=handoff)
    assert error.state == "resolved" and error.resolved_by == staff and "by hand" in error.resolution
    assert AdminAction.objects.get(verb="crm.handoff.manual").actor_user == staff
    assert crm.crm_handoffs_retry(handoffs=CrmHandoff.objects.all(), actor=staff) == 0
    crm.crm_handoff_send(handoff_id=handoff.pk)
    assert len(fake_crm.requests) == 1
    with pytest.raises(crm.InvalidTransition):
        crm.crm_handoff_mark_manual(handoff=handoff, actor=staff, reason="again")
    with pytest.raises(crm.ApplicationError):
        crm.crm_handoff_mark_manual(handoff=handoff, actor=staff, reason=" ")


# --- admin --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_lists_retries_exports_and_settles_handoffs(
    client, engineer, data_ops_user, make_crm, fake_crm, lead, django_capture_on_commit_callbacks
):
    connection = make_crm("hubspot")
    fake_crm.fail(1, status=400)
    handoff = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="admin:1")
    assert handoff.status == "dead"
    client.force_login(engineer)

    listing = client.get("/admin/integrations/crmhandoff/?status__exact=dead")
    assert listing.status_code == 200 and b"dead" in listing.content
    page = client.get(f"/admin/integrations/crmhandoff/{handoff.pk}/change/")
    assert page.status_code == 200 and b"payload (restricted)" in page.content  # engineers may see it
    assert client.get(f"/admin/integrations/connection/{connection.pk}/change/").content.count(b"crm_mappings") > 0

    export = client.post(
        "/admin/integrations/crmhandoff/", {"action": "export_payloads", "_selected_action": [handoff.pk]}
    )
    assert export.status_code == 200 and export["Content-Disposition"].startswith("attachment")
    assert json.loads(export.content)[0]["payload"] == handoff.payload
    assert AdminAction.objects.filter(verb="crm.handoff.export", actor_user=engineer).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/integrations/syncerror/",
            {"action": "retry_now", "_selected_action": [SyncError.objects.get(crm_handoff=handoff).pk]},
        )
    assert response.status_code == 302
    handoff.refresh_from_db()
    assert handoff.status == "succeeded" and len(fake_crm.contacts) == 1
    review = client.get(f"/admin/integrations/syncerror/?crm_handoff={handoff.pk}")  # the handoff page links here
    assert review.status_code == 200
    assert f"/admin/integrations/crmhandoff/{handoff.pk}/change/".encode() in review.content

    fake_crm.fail(1, status=400)
    other = request_committed(django_capture_on_commit_callbacks, lead=lead, source_key="admin:2")
    form = client.post("/admin/integrations/crmhandoff/", {"action": "mark_manual", "_selected_action": [other.pk]})
    assert form.status_code == 200 and b'name="reason"' in form.content  # asks why first
    done = client.post(
        "/admin/integrations/crmhandoff/",
        {"action": "mark_manual", "_selected_action": [other.pk], "reason": "Client added it", "crm_id": "77"},
    )
    assert done.status_code == 302
    other.refresh_from_db()
    assert (other.status, other.crm_id) == ("manual", "77")


@pytest.mark.django_db
def test_the_prepared_payload_is_hidden_without_the_raw_payload_permission(client, make_crm, lead, fake_crm):
    from django.contrib.auth.models import Permission

    make_crm("crm_webhook")
    handoff = crm_handoff_request(lead=lead, source="manual", source_key="perm", actor=ACTOR)
    staff = factories.UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_crmhandoff", "change_crmhandoff"]))
    client.force_login(staff)

    page = client.get(f"/admin/integrations/crmhandoff/{handoff.pk}/change/")
    assert page.status_code == 200 and b"payload (restricted)" not in page.content and b"lead_key" not in page.content
    export = client.post(
        "/admin/integrations/crmhandoff/", {"action": "export_payloads", "_selected_action": [handoff.pk]}
    )
    assert "attachment" not in export.get("Content-Disposition", "")  # the action is not offered
    assert not AdminAction.objects.filter(verb="crm.handoff.export").exists()


@pytest.mark.django_db
def test_a_crm_connection_accepts_no_webhook_deliveries(client, make_crm):
    connection = make_crm("hubspot")
    response = client.post(
        f"/api/webhooks/hubspot/{connection.webhook_token}/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 403
