"""The scheduler's batched runs (engine._run_batch) must leave what single runs leave.

A dozen enrollments cover every step kind and the cases a batch hands back (held sends, a lead
without an address, update_lead). They run once as one batch, inside a transaction that is then
rolled back, and once one by one; the rows each run leaves are compared. Times that are "now"
in either run (and the console channel's random ids) are masked; everything else must match.
"""

import datetime
import json
import logging
import re

import pytest
from django.db import transaction
from django.utils import timezone

from adminops.models import AdminAction
from leads.models import Activity, Lead
from leads.services import consent_set
from tests import factories
from workflows import engine, services
from workflows.models import Enrollment, OutboundMessage, StaffTask, StepRun

pytestmark = pytest.mark.django_db
ACTOR = "system:test"
TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00)?( UTC)?")
RANDOM_ID = re.compile(r"\b[0-9a-f]{32}\b")


class _RolledBack(Exception):
    pass


def _mask(value) -> str:
    return RANDOM_ID.sub("<id>", TIME.sub("<time>", json.dumps(value, sort_keys=True, default=str)))


def _when(value, now) -> str:
    if value is None:
        return "none"
    return "future" if value > now + datetime.timedelta(minutes=1) else "now-ish"


def _snapshot(ids, marks) -> dict:
    now = timezone.now()
    enrollments = {e.pk: e for e in Enrollment.objects.filter(pk__in=ids)}
    name = {pk: f"{e.workflow.name}/{e.lead.first_name}" for pk, e in enrollments.items()}
    messages = {m.pk: m for m in OutboundMessage.objects.filter(enrollment_id__in=ids)}

    def detail(d):
        d = dict(d)
        if "message_id" in d:
            d["message_id"] = messages[d["message_id"]].idempotency_key.rsplit("-", 2)[-2:]
        if "task_id" in d:
            d["task_id"] = "task"
        return _mask(d)

    return {
        "enrollments": sorted(
            (
                name[e.pk],
                e.state,
                e.step_key,
                e.visit,
                e.waiting_for,
                e.hold_kind,
                _mask(e.hold_reason),
                e.exit_reason,
                e.exit_detail,
                e.live_lead_id is None,
                _when(e.next_run_at, now),
            )
            for e in enrollments.values()
        ),
        "step_runs": sorted(
            (name[r.enrollment_id], r.step_key, r.visit, r.step_kind, r.state, _mask(r.summary), detail(r.detail))
            for r in StepRun.objects.filter(enrollment_id__in=ids)
        ),
        "messages": sorted(
            (name[m.enrollment_id], m.step_key, m.visit, m.status, m.channel, m.to, m.subject, m.body, m.provider)
            for m in messages.values()
        ),
        "activities": sorted(
            (a.lead.first_name, a.kind, _mask(a.summary), a.body, a.delivery_status, a.actor_label, a.provider)
            for a in Activity.objects.filter(pk__gt=marks["activity"])
        ),
        "actions": sorted(
            (a.verb, a.state, _mask(a.summary), a.idempotency_key is not None, a.target_type)
            for a in AdminAction.objects.filter(pk__gt=marks["action"])
        ),
        "leads": sorted(
            (lead.first_name, lead.status, lead.first_response_seconds is not None, tuple(lead.tags))
            for lead in Lead.objects.all()
        ),
        "tasks": sorted((t.title, t.assignee_id) for t in StaffTask.objects.filter(enrollment_id__in=ids)),
    }


@pytest.fixture
def scenario(acme, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.WORKFLOWS_CONSOLE_CHANNEL = True
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    night = factories.ClientFactory(name="Night Owl HVAC", slug="night-owl", time_zone="America/Chicago")
    night.quiet_hours_start, night.quiet_hours_end = datetime.time(0, 0), datetime.time(23, 59)
    night.save()

    def workflow(name, steps, client=acme):
        wf = services.workflow_create(client=client, name=name, actor=ACTOR)
        for kind, config, key in steps:
            services.step_add(workflow=wf, kind=kind, config=config, key=key, actor=ACTOR)
        services.workflow_publish(workflow=wf, actor=ACTOR)
        wf.refresh_from_db()
        return wf

    sms = ("send_sms", {"body": "Hi {{ lead.first_name }}, {{ client.name }} here."}, "hello")
    email = (
        "send_email",
        {"subject": "Your {{ lead.service_type }} quote", "body": "Hello {{ lead.first_name }}"},
        "mail",
    )
    delay = ("delay", {"duration": {"amount": 1, "unit": "days"}}, "later")
    flows = {
        "sms-delay": workflow("sms-delay", [sms, delay, ("send_sms", {"body": "Day 1"}, "day1")]),
        "email-delay": workflow("email-delay", [email, delay]),
        "branch": workflow(
            "branch",
            [
                (
                    "branch",
                    {
                        "condition": "lead_field",
                        "field": "service_type",
                        "op": "eq",
                        "value": "Water heater",
                        "no": "bye",
                    },
                    "which",
                ),
                sms,
                ("exit", {"reason": "Not ours"}, "bye"),
            ],
        ),
        "wait": workflow(
            "wait",
            [sms, ("wait_for_event", {"event": "sms.replied", "timeout": {"amount": 1, "unit": "days"}}, "reply")],
        ),
        "task": workflow("task", [("create_task", {"title": "Call {{ lead.first_name }}"}, "call"), sms]),
        "tag": workflow("tag", [sms, ("update_lead", {"add_tag": "contacted-by-flow"}, "tag"), email]),
        "two-sends": workflow("two-sends", [sms, ("send_sms", {"body": "And again"}, "again"), delay]),
        "exit": workflow("exit", [("exit", {"reason": "Done"}, "done")]),
        "held": workflow("held", [sms]),
        "night": workflow("night", [sms], client=night),
    }
    services.workflow_hold_sends(workflow=flows["held"], held=True, actor=ACTOR, reason="Client review")

    def lead(first, client=acme, **extra):
        extra.setdefault("service_type", "Water heater")
        return factories.LeadFactory(client=client, first_name=first, status="new", **extra)

    people = [
        ("sms-delay", lead("Ava")),
        ("sms-delay", lead("Ben", email_raw="", email_normalized=None)),
        ("email-delay", lead("Cleo")),
        ("branch", lead("Dan")),
        ("branch", lead("Eve", service_type="Roofing")),
        ("wait", lead("Fay")),
        ("task", lead("Gus")),
        ("tag", lead("Hal")),
        ("two-sends", lead("Ivy")),
        ("exit", lead("Jo")),
        ("held", lead("Kim")),
        ("sms-delay", lead("Lou", phone_raw="", phone_e164=None)),  # no phone: handed back, skipped
        ("email-delay", lead("Max", email_raw="", email_normalized=None)),
        ("night", lead("Ned", client=night)),
    ]
    revoked = lead("Oz")
    consent_set(lead=revoked, channel="sms", state="revoked", evidence="STOP", actor=ACTOR)
    people.append(("sms-delay", revoked))
    ids = []
    with django_capture_on_commit_callbacks(execute=False):  # enrolled, not run: the scheduler runs them
        for flow, person in people:
            ids.append(services.enrollment_create(workflow=flows[flow], lead=person, actor=ACTOR).pk)
    due = timezone.now() - datetime.timedelta(seconds=5)
    Enrollment.objects.filter(pk__in=ids).update(next_run_at=due)
    return ids, due.isoformat(), tmp_path / "outbox.jsonl"


def test_a_batch_leaves_what_single_runs_leave(scenario, caplog):
    ids, claim, outbox = scenario
    marks = {
        "activity": Activity.objects.order_by("-id").values_list("id", flat=True).first() or 0,
        "action": AdminAction.objects.order_by("-id").values_list("id", flat=True).first() or 0,
    }
    caplog.set_level(logging.INFO, logger="workflows.engine")
    try:
        with transaction.atomic():
            done, due_now, under_claim = engine._run_batch(ids, claim)
            for pk in due_now:
                engine.enrollment_run(enrollment_id=pk)
            batched = _snapshot(ids, marks)
            # Email custom args name the message row (for delivery events): the batch fills the
            # id in after its INSERT, before the call.
            for line in outbox.read_text().splitlines():
                entry = json.loads(line)
                if "custom_args" in entry:
                    message = OutboundMessage.objects.get(pk=entry["custom_args"]["zid_message"])
                    assert (message.to, str(message.lead_id)) == (entry["to"], entry["custom_args"]["zid_lead"])
            raise _RolledBack
    except _RolledBack:
        pass
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert under_claim == [] and len(done) >= 10  # most finished in the batch; a few handed back
    sent_by_batch = outbox.read_text().splitlines()

    engine.steps_forget_cached()
    for pk in ids:
        engine.enrollment_run(enrollment_id=pk, claim=claim)
    single = _snapshot(ids, marks)
    sent_singly = outbox.read_text().splitlines()[len(sent_by_batch) :]

    for part in batched:
        assert batched[part] == single[part], part

    def sent(lines):
        out = []
        for line in lines:
            entry = {k: v for k, v in json.loads(line).items() if k not in ("id", "at")}
            entry.get("custom_args", {}).pop("zid_message", None)  # an id: compared in the batch run itself
            out.append(entry)
        return out

    strip, again = sent(sent_by_batch), sent(sent_singly)
    assert sorted(map(_mask, strip)) == sorted(map(_mask, again)) and len(strip) == 10
    # And what it did is what the workflows say (a sample): sent, contacted, held, deferred, exited.
    states = {row[0]: row[1] for row in single["enrollments"]}
    assert states["sms-delay/Ava"] == "active" and states["held/Kim"] == "held"
    assert states["exit/Jo"] == "exited" and states["sms-delay/Oz"] == "exited" and states["wait/Fay"] == "waiting"
    assert ("Ava", "contacted", True, ()) in single["leads"]
