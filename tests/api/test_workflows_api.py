"""The done-when of issue #5: build, publish, enroll, inspect and purge a workflow through the API
only, with a token — and the action log names the API user for each change."""

import datetime

import pytest
from django.utils import timezone

from adminops.models import AdminAction
from tests import factories
from workflows.models import Enrollment, StepRun, Workflow, WorkflowTemplate


@pytest.fixture
def acme_no_quiet(acme):
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    return acme


@pytest.mark.django_db
def test_build_publish_enroll_inspect_and_purge_through_the_api(
    staff_api, data_ops_user, acme_no_quiet, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    acme = acme_no_quiet

    # given a draft workflow with three steps
    r = staff_api.post(
        "/api/v1/workflows/", {"client": acme.pk, "name": "Quote follow-up", "description": "API built"}, format="json"
    )
    assert r.status_code == 201, r.json()
    workflow_id = r.json()["id"]
    assert r.json()["status"] == "draft" and r.json()["draft_version"] == 1
    steps = [
        {"kind": "send_email", "key": "welcome", "config": {"subject": "Hi {{ lead.first_name }}", "body": "Thanks!"}},
        {"kind": "delay", "key": "wait-1d", "config": {"duration": {"amount": 1, "unit": "days"}}},
        {"kind": "create_task", "key": "call", "config": {"title": "Call {{ lead.full_name }}"}},
    ]
    for step in steps:
        r = staff_api.post(f"/api/v1/workflows/{workflow_id}/steps/", step, format="json")
        assert r.status_code == 201, r.json()
    r = staff_api.patch(f"/api/v1/workflows/{workflow_id}/steps/call/", {"name": "Call the lead"}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "Call the lead"
    listed = staff_api.get(f"/api/v1/workflows/{workflow_id}/steps/").json()
    assert listed["editable"] is True and [s["key"] for s in listed["steps"]] == ["welcome", "wait-1d", "call"]

    # when it is published
    r = staff_api.post(f"/api/v1/workflows/{workflow_id}/publish/", {"notes": "first cut"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "active" and r.json()["published_version"]["number"] == 1
    assert r.json()["published_version"]["published_by_label"] == f"user:{data_ops_user.username}"

    # and a lead created through the API is enrolled
    r = staff_api.post(
        "/api/v1/leads/",
        {"client": acme.pk, "first_name": "Dana", "phone": "(512) 555-0199", "email": "Dana@Example.com"},
        format="json",
    )
    assert r.status_code == 201, r.json()
    lead = r.json()
    assert (lead["phone"], lead["email"]) == ("+15125550199", "dana@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        r = staff_api.post("/api/v1/enrollments/", {"workflow": workflow_id, "lead": lead["id"]}, format="json")
    assert r.status_code == 201, r.json()
    enrollment_id = r.json()["id"]

    # then the enrollment shows where it is and what ran
    r = staff_api.get(f"/api/v1/enrollments/{enrollment_id}/")
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "active" and body["step_key"] == "call" and body["version"] == 1
    assert [(run["step_key"], run["state"]) for run in body["step_runs"]] == [
        ("welcome", "succeeded"),
        ("wait-1d", "succeeded"),
    ]
    runs = staff_api.get("/api/v1/step-runs/", {"enrollment": enrollment_id}).json()
    assert {run["step_key"] for run in runs["results"]} == {"welcome", "wait-1d"}
    assert staff_api.get("/api/v1/enrollments/", {"workflow": workflow_id, "state": "active"}).json()["results"]

    # and the preview answers for that lead
    preview = staff_api.get(f"/api/v1/workflows/{workflow_id}/preview/", {"lead": lead["id"]})
    assert preview.status_code == 200 and [row["step"] for row in preview.json()] == ["welcome", "wait-1d", "call"]

    # when history older than tomorrow is purged
    before = (timezone.now() + datetime.timedelta(days=1)).isoformat()
    r = staff_api.post("/api/v1/step-runs/purge/", {"before": before, "client": acme.pk}, format="json")
    assert r.status_code == 200 and r.json() == {"deleted": 2}
    assert not StepRun.objects.exists()

    # and the lead is unenrolled: the row stays, exited
    r = staff_api.delete(f"/api/v1/enrollments/{enrollment_id}/?reason=test+done")
    assert r.status_code == 200 and (r.json()["state"], r.json()["exit_reason"]) == ("exited", "unenrolled")
    assert Enrollment.objects.filter(pk=enrollment_id).exists()
    assert staff_api.delete(f"/api/v1/enrollments/{enrollment_id}/").status_code == 409

    # the action log names the API user for every change
    verbs = set(AdminAction.objects.filter(actor_user=data_ops_user).values_list("verb", flat=True))
    assert {
        "workflow.create",
        "workflow.step_add",
        "workflow.step_update",
        "workflow.publish",
        "workflow.enroll",
        "workflow.purge_history",
        "workflow.unenroll",
    } <= verbs


@pytest.mark.django_db
def test_step_validation_names_the_config_field(staff_api, acme):
    workflow = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "name": "W"}, format="json").json()
    r = staff_api.post(f"/api/v1/workflows/{workflow['id']}/steps/", {"kind": "send_sms", "config": {}}, format="json")
    assert r.status_code == 400
    assert r.json()["extra"]["fields"] == {"config.body": "required text"}
    r = staff_api.post(
        f"/api/v1/workflows/{workflow['id']}/steps/",
        {"kind": "delay", "config": {"duration": {"amount": 0, "unit": "fortnights"}}},
        format="json",
    )
    assert set(r.json()["extra"]["fields"]) == {"config.duration.amount", "config.duration.unit"}
    r = staff_api.post(f"/api/v1/workflows/{workflow['id']}/steps/", {"kind": "teleport", "config": {}}, format="json")
    assert r.status_code == 400 and "kind" in r.json()["extra"]["fields"]


@pytest.mark.django_db
def test_publish_errors_name_the_step_and_field(staff_api, acme):
    workflow = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "name": "W"}, format="json").json()
    staff_api.post(
        f"/api/v1/workflows/{workflow['id']}/steps/",
        {"kind": "branch", "key": "fork", "config": {"condition": "job.booked", "yes": "nowhere"}},
        format="json",
    )
    r = staff_api.post(f"/api/v1/workflows/{workflow['id']}/publish/", {}, format="json")
    assert r.status_code == 400 and r.json()["extra"]["fields"] == {
        "fork.yes": "no step with key 'nowhere' in this version"
    }


@pytest.mark.django_db
def test_workflow_from_template_pause_resume_archive_and_delete_rules(staff_api, acme):
    r = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "template": "post-job-review"}, format="json")
    assert r.status_code == 201, r.json()
    workflow = r.json()
    assert (workflow["name"], workflow["template_key"]) == ("Post-Job Review Request", "post-job-review")
    assert len(staff_api.get(f"/api/v1/workflows/{workflow['id']}/steps/").json()["steps"]) == 6
    r = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "template": "no-such"}, format="json")
    assert r.status_code == 404 and r.json()["extra"]["fields"] == {"template": "unknown key"}

    url = f"/api/v1/workflows/{workflow['id']}/"
    assert staff_api.patch(url, {"name": "Reviews", "owner": None}, format="json").json()["name"] == "Reviews"
    assert staff_api.post(url + "publish/", {}, format="json").status_code == 200
    assert staff_api.post(url + "pause/", {"reason": "holiday"}, format="json").json()["status"] == "paused"
    assert staff_api.post(url + "pause/", {}, format="json").status_code == 409
    assert staff_api.post(url + "resume/", {}, format="json").json()["status"] == "active"
    # a published workflow is history: delete says archive instead
    r = staff_api.delete(url)
    assert r.status_code == 409 and "Archive it instead" in r.json()["message"]
    assert staff_api.post(url + "archive/", {}, format="json").json()["status"] == "archived"

    # a never-published draft goes away
    draft = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "name": "Scratch"}, format="json").json()
    assert staff_api.delete(f"/api/v1/workflows/{draft['id']}/").status_code == 204
    assert not Workflow.objects.filter(pk=draft["id"]).exists()


@pytest.mark.django_db
def test_editing_a_published_workflow_makes_a_draft_and_leaves_the_version(staff_api, acme):
    workflow = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "template": "payment-overdue"}, format="json")
    workflow_id = workflow.json()["id"]
    staff_api.post(f"/api/v1/workflows/{workflow_id}/publish/", {}, format="json")
    listed = staff_api.get(f"/api/v1/workflows/{workflow_id}/steps/").json()
    assert listed == {**listed, "version": 1, "editable": False}
    r = staff_api.delete(f"/api/v1/workflows/{workflow_id}/steps/collections-task/")
    assert r.status_code == 204
    listed = staff_api.get(f"/api/v1/workflows/{workflow_id}/steps/").json()
    assert (listed["version"], listed["editable"]) == (2, True)
    assert "collections-task" not in [s["key"] for s in listed["steps"]]
    published = Workflow.objects.get(pk=workflow_id).published_version
    assert published.steps.filter(key="collections-task").exists()
    assert staff_api.get(f"/api/v1/workflows/{workflow_id}/steps/nope/").status_code == 404


@pytest.mark.django_db
def test_templates_are_rows_with_checked_steps(staff_api, acme_api, acme):
    keys = {t["key"] for t in staff_api.get("/api/v1/templates/", {"is_builtin": "true"}).json()["results"]}
    assert keys == {"new-lead-follow-up", "post-job-review", "recurring-service-reminder", "payment-overdue"}
    bad = {
        "key": "welcome",
        "name": "Welcome",
        "steps": [
            {"key": "hello", "kind": "send_sms", "config": {}},
            {"key": "fork", "kind": "branch", "config": {"condition": "job.booked", "yes": "nowhere"}},
        ],
    }
    r = staff_api.post("/api/v1/templates/", bad, format="json")
    assert r.status_code == 400
    assert r.json()["extra"]["fields"] == {
        "steps[0].config.body": "required text",
        "steps[1].config.yes": "no step with key 'nowhere' in this version",
    }
    good = {**bad, "steps": [{"key": "hello", "kind": "send_sms", "config": {"body": "Hi from {{ client.name }}"}}]}
    assert acme_api.post("/api/v1/templates/", good, format="json").status_code == 403
    r = staff_api.post("/api/v1/templates/", good, format="json")
    assert r.status_code == 201, r.json()
    assert staff_api.post("/api/v1/templates/", good, format="json").json()["extra"]["fields"] == {
        "key": "already used"
    }
    r = staff_api.patch("/api/v1/templates/welcome/", {"name": "Welcome!"}, format="json")
    assert r.json()["name"] == "Welcome!"
    # a workflow made from the row has the row's steps
    r = staff_api.post("/api/v1/workflows/", {"client": acme.pk, "template": "welcome"}, format="json")
    steps = staff_api.get(f"/api/v1/workflows/{r.json()['id']}/steps/").json()["steps"]
    assert (r.json()["name"], [s["key"] for s in steps]) == ("Welcome!", ["hello"])
    assert acme_api.get("/api/v1/templates/welcome/").status_code == 200
    # built-ins are not deleted; others are
    r = staff_api.delete("/api/v1/templates/new-lead-follow-up/")
    assert r.status_code == 409 and "built-in" in r.json()["message"]
    assert staff_api.delete("/api/v1/templates/welcome/").status_code == 204
    assert not WorkflowTemplate.objects.filter(key="welcome").exists()


@pytest.mark.django_db
def test_workflow_made_from_a_changed_template_row_uses_the_row(staff_api, acme):
    staff_api.patch(
        "/api/v1/templates/post-job-review/",
        {"steps": [{"key": "ask", "kind": "send_sms", "config": {"body": "Review us: {{ client.review_url }}"}}]},
        format="json",
    )
    r = staff_api.post(
        "/api/v1/workflows/", {"client": acme.pk, "template": "post-job-review", "name": "R"}, format="json"
    )
    steps = staff_api.get(f"/api/v1/workflows/{r.json()['id']}/steps/").json()["steps"]
    assert [s["key"] for s in steps] == ["ask"]


@pytest.mark.django_db
def test_enrollment_list_stays_at_a_fixed_number_of_queries(staff_api, acme, django_assert_max_num_queries):
    from workflows import services

    wf = services.workflow_create(client=acme, name="Q", actor="system:test")
    services.step_add(workflow=wf, kind="exit", config={}, actor="system:test")
    services.workflow_publish(workflow=wf, actor="system:test")
    for _ in range(30):
        services.enrollment_create(
            workflow=wf, lead=factories.LeadFactory(client=acme), actor="system:test", run_now=False
        )
    with django_assert_max_num_queries(4):  # token + user, page; no per-row queries
        r = staff_api.get("/api/v1/enrollments/", {"page_size": 25})
    assert r.status_code == 200 and len(r.json()["results"]) == 25 and r.json()["next"]
    with django_assert_max_num_queries(4):
        assert len(staff_api.get("/api/v1/workflows/").json()["results"]) == 1
