"""Every admin page renders, and the lead pages behave as staff use them."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from adminops.models import AdminAction
from leads.models import Activity, Lead
from leads.services import LeadSignal, lead_upsert
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_everything(acme):
    lead = factories.LeadFactory(client=acme)
    factories.ActivityFactory(lead=lead)
    factories.ConsentFactory(lead=lead)
    factories.AdminActionFactory(lead=lead)
    factories.ClientUserFactory(client=acme)
    factories.proof_rows(client=acme)  # a summary, a metric card and a check run
    error = factories.SyncErrorFactory(raw_event__connection__client=acme)
    receipt = factories.WebhookEventFactory(connection=error.connection)
    error.raw_event.receipt = receipt  # the receipt page lists its raw events
    error.raw_event.save(update_fields=["receipt"])
    factories.NormalizedEventFactory(raw_event=error.raw_event, lead=lead)
    factories.ImportJobFactory(client=acme)
    factories.IncidentFactory(affected_clients=[acme])
    _one_workflow_of_everything(acme, lead)
    factories.ConnectionFactory(client=acme, provider="hubspot")
    from integrations.crm import crm_handoff_request

    crm_handoff_request(lead=lead, source="manual", source_key="admin-pages", actor="system:test")
    return lead


def _one_workflow_of_everything(client, lead):
    from workflows import services as wf
    from workflows.models import OutboundMessage, StaffTask, StepRun

    workflow = wf.workflow_create(client=client, name="Follow-up", actor="system:test")
    wf.step_add(workflow=workflow, kind="send_sms", config={"body": "Hi {{ lead.first_name }}"}, key="hi", actor="t")
    wf.workflow_publish(workflow=workflow, actor="system:test")
    wf.step_add(workflow=workflow, kind="exit", config={}, key="done", actor="t")  # a draft v2 exists too
    enrollment = wf.enrollment_create(workflow=workflow, lead=lead, actor="system:test", run_now=False)
    StepRun.objects.create(
        enrollment=enrollment, client=client, step_key="hi", step_kind="send_sms", visit=0, state="succeeded"
    )
    OutboundMessage.objects.create(
        client=client,
        lead=lead,
        enrollment=enrollment,
        step_key="hi",
        idempotency_key="k",
        channel="sms",
        to="+15125550100",
        body="Hi",
    )
    StaffTask.objects.create(client=client, lead=lead, enrollment=enrollment, title="Call back")
    from workflows.rules import rule_create

    rule_create(client=client, actor="system:test", name="New leads", event_type="lead.captured", workflow=workflow)


def _admin_models():
    return [model for model in admin.site._registry]


@pytest.mark.parametrize("model", _admin_models(), ids=lambda m: m._meta.label)
def test_every_changelist_add_and_change_page_renders(client, engineer, one_of_everything, model):
    client.force_login(engineer)
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    assert client.get(reverse(f"{prefix}_changelist")).status_code == 200
    obj = model._default_manager.first()
    assert obj is not None, f"fixture made no {model._meta.label}"
    assert client.get(reverse(f"{prefix}_change", args=[obj.pk])).status_code == 200
    model_admin = admin.site._registry[model]
    add = client.get(reverse(f"{prefix}_add"))
    request = add.wsgi_request
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)


def test_changelists_render_for_data_ops(client, data_ops_user, one_of_everything):
    client.force_login(data_ops_user)
    for url in [
        "/admin/",
        "/admin/leads/lead/",
        "/admin/leads/client/",
        "/admin/leads/activity/",
        "/admin/adminops/adminaction/",
    ]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("term", ["(512) 555-0143", "512.555.0143", "+15125550143", "5125550143"])
def test_search_finds_a_lead_by_phone_in_any_format(client, data_ops_user, acme, term):
    target = lead_upsert(
        client=acme, signal=LeadSignal(source="web", phone="512-555-0143", full_name="Target Person")
    ).lead
    lead_upsert(client=acme, signal=LeadSignal(source="web", phone="512-555-0199", full_name="Other Person"))
    client.force_login(data_ops_user)
    response = client.get("/admin/leads/lead/", {"q": term})
    assert list(response.context["cl"].result_list) == [target]


def test_search_by_email_and_name_prefix(client, data_ops_user, acme):
    lead = lead_upsert(
        client=acme, signal=LeadSignal(source="web", email="Maria.Garcia@Gmail.com", full_name="Maria Garcia")
    ).lead
    lead_upsert(client=acme, signal=LeadSignal(source="web", email="someone@else.com", full_name="Bob Smith"))
    client.force_login(data_ops_user)
    for term in ["MARIA.GARCIA@gmail.com", "maria", "Garc"]:
        assert list(client.get("/admin/leads/lead/", {"q": term}).context["cl"].result_list) == [lead], term


def test_filters_narrow_the_list(client, data_ops_user, acme, other_client):
    mine = factories.LeadFactory(client=acme, owner=data_ops_user, urgency="emergency", market="Austin")
    factories.LeadFactory(client=other_client, urgency="low", market="Denver")
    client.force_login(data_ops_user)
    for params in [{"client__id__exact": acme.pk}, {"owner": "me"}, {"urgency": "emergency"}, {"market": "Austin"}]:
        assert list(client.get("/admin/leads/lead/", params).context["cl"].result_list) == [mine], params


def test_lead_list_query_count_does_not_grow_with_rows(client, data_ops_user, acme):
    client.force_login(data_ops_user)
    factories.LeadFactory.create_batch(3, client=acme, owner=data_ops_user)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/admin/leads/lead/").status_code == 200
    factories.LeadFactory.create_batch(40, client=acme, owner=data_ops_user)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/admin/leads/lead/").status_code == 200
    assert len(many) == len(few)
    sqls = " ".join(q["sql"].upper() for q in many.captured_queries)
    assert "DISTINCT" not in sqls  # no per-page DISTINCT scans for filters/date hierarchy


def test_list_stops_counting_at_the_cap(client, data_ops_user, acme, settings):
    settings.ADMIN_COUNT_CAP = 5
    factories.LeadFactory.create_batch(8, client=acme)
    client.force_login(data_ops_user)
    response = client.get("/admin/leads/lead/")
    assert response.context["cl"].result_count == 6  # cap + 1: it stopped counting
    assert "More than 5 leads" in response.content.decode()
    response = client.get("/admin/leads/lead/", {"q": factories.Lead.objects.first().phone_e164})
    assert "1 lead" in response.content.decode()


def test_lead_page_shows_timeline_consent_and_action_log(client, data_ops_user, acme):
    lead = lead_upsert(
        client=acme, signal=LeadSignal(source="web", phone="5125550143", consent={"sms": (True, "checkbox on /quote")})
    ).lead
    lead_upsert(client=acme, signal=LeadSignal(source="missed call", phone="512.555.0143"))
    client.force_login(data_ops_user)
    html = client.get(f"/admin/leads/lead/{lead.pk}/change/").content.decode()
    assert "Timeline (newest first)" in html and "Lead captured from Web form" in html
    assert "merged into this lead" in html
    assert "checkbox on /quote" in html
    assert "lead.merge" in html


def _change_form_post_data(response):
    """The POST a browser would send from a rendered admin change form (fields + inline management forms)."""
    data = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if hasattr(value, "pk"):
            value = value.pk
        data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        mgmt = inline.formset.management_form
        for name in ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"):
            data[f"{mgmt.prefix}-{name}"] = mgmt.initial.get(name, 0)
    return data


def test_staff_edit_goes_through_the_service_and_is_logged(client, data_ops_user, acme):
    lead = lead_upsert(client=acme, signal=LeadSignal(source="web", phone="5125550143")).lead
    client.force_login(data_ops_user)
    url = f"/admin/leads/lead/{lead.pk}/change/"
    data = _change_form_post_data(client.get(url))
    data.update(status="quoted", next_action="Send estimate PDF", add_note="Customer wants a Friday visit")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    lead.refresh_from_db()
    assert lead.status == "quoted" and lead.next_action == "Send estimate PDF"
    kinds = set(lead.activities.values_list("kind", flat=True))
    assert {Activity.Kind.STATUS_CHANGE, Activity.Kind.NOTE, Activity.Kind.FIELD_CHANGE} <= kinds
    verbs = set(AdminAction.objects.filter(lead=lead).values_list("verb", flat=True))
    assert {"lead.status_change", "lead.update"} <= verbs
    assert AdminAction.objects.get(lead=lead, verb="lead.status_change").actor_user == data_ops_user


def test_invalid_status_move_and_missing_lost_reason_are_form_errors(client, data_ops_user, acme):
    lead = factories.LeadFactory(client=acme, status="booked")
    client.force_login(data_ops_user)
    url = f"/admin/leads/lead/{lead.pk}/change/"
    data = _change_form_post_data(client.get(url))
    response = client.post(url, {**data, "status": "new"})
    assert response.status_code == 200 and "status" in response.context["adminform"].form.errors
    response = client.post(url, {**data, "status": "lost", "lost_reason": ""})
    assert "lost_reason" in response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert lead.status == "booked"


def test_editing_phone_to_another_leads_number_is_refused(client, data_ops_user, acme):
    factories.LeadFactory(client=acme, phone_raw="+15125550100", phone_e164="+15125550100")
    lead = factories.LeadFactory(client=acme, phone_raw="+15125550101", phone_e164="+15125550101")
    client.force_login(data_ops_user)
    url = f"/admin/leads/lead/{lead.pk}/change/"
    data = _change_form_post_data(client.get(url))
    response = client.post(url, {**data, "phone_raw": "(512) 555-0100"})
    assert "phone_raw" in response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert lead.phone_e164 == "+15125550101"


def test_adding_a_known_person_in_the_admin_merges(client, data_ops_user, acme):
    existing = lead_upsert(client=acme, signal=LeadSignal(source="web", phone="5125550143")).lead
    client.force_login(data_ops_user)
    data = _change_form_post_data(client.get("/admin/leads/lead/add/"))
    data.update(
        client=acme.pk,
        phone_raw="(512) 555-0143",
        first_name="Pat",
        source="manual",
        status="new",
        urgency="normal",
        contact_method="any",
    )
    response = client.post("/admin/leads/lead/add/", data, follow=True)
    assert response.status_code == 200
    assert Lead.objects.filter(client=acme).count() == 1
    existing.refresh_from_db()
    assert existing.first_name == "Pat"
    assert "already existed" in response.content.decode()
