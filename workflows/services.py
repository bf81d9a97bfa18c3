"""Workflow definitions and enrollments: every change goes through here and is logged.

Editing happens on the workflow's draft version; `workflow_publish` freezes it. Published
versions are never edited: enrollments pinned to them run them to the end.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from adminops.services import Actor, action_record, actor_fields
from leads.models import Client, Lead
from zartsalgo.errors import ApplicationError, InvalidTransition
from zartsalgo.tasks import enqueue_on_commit

from .models import Enrollment, Step, Workflow, WorkflowVersion
from .steps import StepConfigError, step_targets, validate_step_config

# --- definitions ---------------------------------------------------------------------------------


def workflow_create(
    *, client: Client, name: str, actor: Actor, description: str = "", owner=None, template_key: str = ""
) -> Workflow:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A workflow needs a name.", {"fields": {"name": "required"}})
    with transaction.atomic():
        try:
            with transaction.atomic():
                workflow = Workflow.objects.create(
                    client=client,
                    name=name[:120],
                    description=description,
                    owner=owner,
                    template_key=template_key,
                )
        except IntegrityError as exc:
            raise ApplicationError(
                f"{client} already has a workflow named {name!r}.", {"fields": {"name": "already used"}}
            ) from exc
        WorkflowVersion.objects.create(workflow=workflow, number=1)
        action_record(verb="workflow.create", actor=actor, client=client, target=workflow, summary=f"Created {name}")
    return workflow


def workflow_draft(*, workflow: Workflow) -> WorkflowVersion:
    """The version being edited: the unpublished one, or a copy of the published one made now."""
    draft = workflow.versions.filter(published_at__isnull=True).order_by("-number").first()
    if draft is not None:
        return draft
    latest = workflow.versions.order_by("-number").first()
    draft = WorkflowVersion.objects.create(workflow=workflow, number=(latest.number if latest else 0) + 1)
    if latest is not None:
        Step.objects.bulk_create(
            Step(version=draft, key=s.key, position=s.position, kind=s.kind, name=s.name, config=s.config)
            for s in latest.steps.all()
        )
    return draft


def _unique_key(version: WorkflowVersion, wanted: str) -> str:
    base = slugify(wanted)[:32] or "step"
    taken = set(version.steps.values_list("key", flat=True))
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def step_add(
    *,
    workflow: Workflow,
    kind: str,
    config: dict[str, Any],
    actor: Actor,
    name: str = "",
    key: str = "",
    position: int | None = None,
) -> Step:
    """Add a step to the draft (at the end, or at `position`, shifting the later ones)."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        draft = workflow_draft(workflow=workflow)
        config = validate_step_config(kind, config)
        if key and draft.steps.filter(key=key).exists():
            raise ApplicationError(f"Step key {key!r} is already used in this workflow.", {"fields": {"key": "used"}})
        key = key if key and key == slugify(key) else _unique_key(draft, key or name or kind)
        count = draft.steps.count()
        position = count if position is None else max(0, min(position, count))
        for later in draft.steps.filter(position__gte=position).order_by("-position"):
            later.position += 1
            later.save(update_fields=["position"])
        step = Step.objects.create(version=draft, key=key, position=position, kind=kind, name=name, config=config)
        action_record(
            verb="workflow.step_add",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Added step {key} ({step.get_kind_display()}) to the draft of {workflow}",
        )
    return step


def _editable(step: Step) -> Step:
    step = Step.objects.select_related("version__workflow").get(pk=step.pk)
    if step.version.is_published:
        raise InvalidTransition(
            "Published versions cannot change: enrollments run them as they were. Edit the draft instead.",
            {"version": step.version.number},
        )
    return step


def step_update(
    *,
    step: Step,
    actor: Actor,
    config: dict[str, Any] | None = None,
    name: str | None = None,
    position: int | None = None,
) -> Step:
    with transaction.atomic():
        step = _editable(step)
        if config is not None:
            step.config = validate_step_config(step.kind, config)
        if name is not None:
            step.name = name[:120]
        if position is not None and position != step.position:
            siblings = [s for s in step.version.steps.order_by("position", "id") if s.pk != step.pk]
            siblings.insert(max(0, min(position, len(siblings))), step)
            for index, sibling in enumerate(siblings):
                if sibling.position != index and sibling.pk != step.pk:
                    Step.objects.filter(pk=sibling.pk).update(position=index)
                if sibling.pk == step.pk:
                    step.position = index
        step.save()
        workflow = step.version.workflow
        action_record(
            verb="workflow.step_update",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Changed step {step.key} in the draft of {workflow}",
        )
    return step


def step_delete(*, step: Step, actor: Actor) -> None:
    with transaction.atomic():
        step = _editable(step)
        version, workflow = step.version, step.version.workflow
        step.delete()
        for index, sibling in enumerate(version.steps.order_by("position", "id")):
            if sibling.position != index:
                Step.objects.filter(pk=sibling.pk).update(position=index)
        action_record(
            verb="workflow.step_delete",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Removed step {step.key} from the draft of {workflow}",
        )


def version_validate(version: WorkflowVersion) -> list[Step]:
    """Every step's configuration and every branch target, against this version's steps."""
    steps = list(version.steps.order_by("position", "id"))
    if not steps:
        raise ApplicationError("A workflow needs at least one step to be published.", {"fields": {"steps": "empty"}})
    keys = {s.key for s in steps}
    problems: dict[str, str] = {}
    for step in steps:
        try:
            validate_step_config(step.kind, step.config, step_keys=keys)
        except StepConfigError as exc:
            for field, message in exc.extra.get("fields", {}).items():
                problems[f"{step.key}.{field}"] = message
        if step.key in step_targets(step):
            problems[f"{step.key}.target"] = "a step cannot branch to itself"
    if problems:
        first = next(iter(problems.items()))
        raise StepConfigError(f"The draft cannot be published: {first[0]}: {first[1]}", {"fields": problems})
    return steps


def workflow_publish(*, workflow: Workflow, actor: Actor, notes: str = "") -> WorkflowVersion:
    """Freeze the draft as the version new enrollments run; the workflow becomes active."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if workflow.status == Workflow.Status.ARCHIVED:
            raise InvalidTransition("An archived workflow cannot be published.", {"status": workflow.status})
        draft = workflow.versions.filter(published_at__isnull=True).order_by("-number").first()
        if draft is None:
            raise InvalidTransition("Nothing to publish: the published version has no pending changes.", {})
        version_validate(draft)
        draft.published_at = timezone.now()
        who = actor_fields(actor)  # the action log's convention: "user:<name>" / "system:<part>"
        draft.published_by, draft.published_by_label = who["actor_user"], who["actor_label"]
        draft.notes = notes[:300]
        draft.save(update_fields=["published_at", "published_by", "published_by_label", "notes"])
        workflow.published_version = draft
        if workflow.status == Workflow.Status.DRAFT:
            workflow.status = Workflow.Status.ACTIVE
        workflow.save(update_fields=["published_version", "status", "updated_at"])
        action_record(
            verb="workflow.publish",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Published {workflow} v{draft.number}",
            detail={"version": draft.number, "notes": notes[:300]},
        )
    return draft


_STATUS_MOVES = {
    Workflow.Status.ACTIVE: {Workflow.Status.PAUSED, Workflow.Status.ARCHIVED},
    Workflow.Status.PAUSED: {Workflow.Status.ACTIVE, Workflow.Status.ARCHIVED},
    Workflow.Status.DRAFT: {Workflow.Status.ARCHIVED},
    Workflow.Status.ARCHIVED: set(),
}


def workflow_set_status(*, workflow: Workflow, status: str, actor: Actor, reason: str = "") -> Workflow:
    """Pause stops new enrollments only: enrolled leads go on. Archive also stops new ones; live
    enrollments finish the version they run (unenroll them to stop them)."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if status not in _STATUS_MOVES.get(workflow.status, set()):
            raise InvalidTransition(
                f"A {workflow.get_status_display().lower()} workflow cannot become {status}.",
                {"status": workflow.status, "wanted": status},
            )
        previous = workflow.status
        workflow.status = status
        workflow.save(update_fields=["status", "updated_at"])
        action_record(
            verb=f"workflow.{status}",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"{workflow}: {previous} → {status}" + (f" ({reason})" if reason else ""),
        )
    return workflow


def workflow_hold_sends(*, workflow: Workflow, held: bool, actor: Actor, reason: str = "") -> Workflow:
    """Hold (or release) every send of one workflow. Enrollments keep their place; on release
    each one due resumes at the step it stopped at."""
    if held and not reason.strip():
        raise ApplicationError("Say why sends are held.", {"fields": {"reason": "required"}})
    with transaction.atomic():
        Workflow.objects.filter(pk=workflow.pk).update(
            sends_held=held, sends_held_reason=reason[:300] if held else "", updated_at=timezone.now()
        )
        workflow.refresh_from_db()
        action_record(
            verb="workflow.hold_sends" if held else "workflow.release_sends",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Sends of {workflow} {'held: ' + reason if held else 'released'}",
        )
        if not held:
            from .engine import enrollments_release_held

            enrollments_release_held(workflow=workflow, actor=actor)
    return workflow


def client_hold_sends(*, client: Client, held: bool, actor: Actor, reason: str = "") -> Client:
    if held and not reason.strip():
        raise ApplicationError("Say why sends are held.", {"fields": {"reason": "required"}})
    with transaction.atomic():
        Client.objects.filter(pk=client.pk).update(sends_held=held, sends_held_reason=reason[:300] if held else "")
        client.refresh_from_db()
        action_record(
            verb="client.hold_sends" if held else "client.release_sends",
            actor=actor,
            client=client,
            target=client,
            summary=f"Workflow sends for {client} {'held: ' + reason if held else 'released'}",
        )
        if not held:
            from .engine import enrollments_release_held

            enrollments_release_held(client=client, actor=actor)
    return client


EDITABLE_FIELDS = ("name", "description", "owner")


def workflow_update(*, workflow: Workflow, actor: Actor, **fields: Any) -> Workflow:
    """Rename, re-describe or re-own a workflow. Steps change through the draft (step_*)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}")
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()[:120]
        if not fields["name"]:
            raise ApplicationError("A workflow needs a name.", {"fields": {"name": "required"}})
    if fields.get("owner") is not None and not fields["owner"].is_staff:
        raise ApplicationError("The owner must be a staff user.", {"fields": {"owner": "not a staff user"}})
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().select_related("client").get(pk=workflow.pk)
        changed = sorted(name for name, value in fields.items() if getattr(workflow, name) != value)
        if not changed:
            return workflow
        for name, value in fields.items():
            setattr(workflow, name, value)
        try:
            with transaction.atomic():
                workflow.save(update_fields=[*changed, "updated_at"])
        except IntegrityError as exc:
            raise ApplicationError(
                f"{workflow.client} already has a workflow named {fields.get('name')!r}.",
                {"fields": {"name": "already used"}},
            ) from exc
        action_record(
            verb="workflow.update",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Changed {', '.join(changed)} of {workflow}",
            detail={"fields": changed},
        )
    return workflow


def workflow_delete(*, workflow: Workflow, actor: Actor) -> None:
    """Only a never-published draft with no enrollments and no automation rules goes away;
    anything that ran keeps its history: archive it (workflow_set_status) instead."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().select_related("client").get(pk=workflow.pk)
        if workflow.status != Workflow.Status.DRAFT or workflow.published_version_id is not None:
            raise InvalidTransition(
                f"{workflow} was published: its versions and enrollments are history. Archive it instead "
                "(POST .../archive/).",
                {"status": workflow.status},
            )
        if workflow.enrollments.exists():
            raise InvalidTransition(f"{workflow} has enrollments: archive it instead.", {"status": workflow.status})
        if workflow.rules.exists():
            raise InvalidTransition(
                f"Automation rules point at {workflow}: delete or change them first.",
                {"rules": list(workflow.rules.values_list("pk", flat=True))},
            )
        action_record(
            verb="workflow.delete",
            actor=actor,
            client=workflow.client,
            target=workflow,
            summary=f"Deleted draft workflow {workflow}",
        )
        workflow.delete()


def workflow_build(
    *,
    client,
    actor: Actor,
    name: str = "",
    description: str | None = None,
    owner=None,
    template: str = "",
) -> Workflow:
    """A new draft workflow: empty, or with a template's steps (workflows.templates)."""
    from .templates import workflow_from_template  # templates build on these services

    with transaction.atomic():
        if template:
            workflow = workflow_from_template(client=client, key=template, actor=actor, name=name)
            extra = {k: v for k, v in (("description", description), ("owner", owner)) if v is not None}
            if extra:
                workflow = workflow_update(workflow=workflow, actor=actor, **extra)
            return workflow
        if owner is not None and not owner.is_staff:
            raise ApplicationError("The owner must be a staff user.", {"fields": {"owner": "not a staff user"}})
        return workflow_create(client=client, name=name, description=description or "", owner=owner, actor=actor)


def draft_step(*, workflow: Workflow, key: str):
    """The step with this key in the workflow's draft (made from the published version if there
    is no draft yet), for step_update / step_delete. None when the draft has no such step."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if workflow.status == Workflow.Status.ARCHIVED:
            raise InvalidTransition("An archived workflow cannot change.", {"status": workflow.status})
        return workflow_draft(workflow=workflow).steps.filter(key=key).first()


# --- enrollments ---------------------------------------------------------------------------------


def enrollment_create(
    *,
    workflow: Workflow,
    lead: Lead,
    actor: Actor,
    source_event=None,
    source_event_id: int | None = None,
    run_now: bool = True,
) -> Enrollment:
    """Enroll a lead in the workflow's published version. A lead is never live twice in one
    workflow: the database refuses it (UNIQUE on the live lead id)."""
    workflow = Workflow.objects.select_related("published_version").get(pk=workflow.pk)  # as it is now
    if workflow.status != Workflow.Status.ACTIVE or workflow.published_version_id is None:
        raise InvalidTransition(
            f"{workflow} is {workflow.get_status_display().lower()}: it takes no new enrollments.",
            {"status": workflow.status},
        )
    if lead.client_id != workflow.client_id:
        raise ApplicationError("The lead and the workflow belong to different clients.", {})
    first = workflow.published_version.steps.order_by("position", "id").first()
    who = actor_fields(actor)
    now = timezone.now()
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                workflow=workflow,
                version_id=workflow.published_version_id,
                client_id=workflow.client_id,
                lead=lead,
                state=Enrollment.State.ACTIVE,
                step_key=first.key if first else "",
                next_run_at=now,
                enrolled_by=who["actor_user"],
                enrolled_by_label=who["actor_label"],
                source_event_id=source_event.pk if source_event is not None else source_event_id,
                live_lead_id=lead.pk,
            )
            action_record(
                verb="workflow.enroll",
                actor=actor,
                lead=lead,
                target=enrollment,
                summary=f"Enrolled in {workflow} v{workflow.published_version.number}",
            )
    except IntegrityError as exc:
        raise ApplicationError(
            f"{lead} is already enrolled in {workflow}.", {"code": "already_enrolled", "lead": lead.pk}
        ) from exc
    if run_now:
        from .tasks import run_enrollment

        enqueue_on_commit(run_enrollment, enrollment.pk)
    return enrollment


def enrollment_unenroll(*, enrollment: Enrollment, actor: Actor, reason: str = "") -> Enrollment:
    from .engine import enrollment_finish

    with transaction.atomic():
        enrollment = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
        if enrollment.state not in Enrollment.LIVE_STATES:
            raise InvalidTransition(f"This enrollment already ended ({enrollment.state}).", {"state": enrollment.state})
        enrollment_finish(
            enrollment=enrollment,
            state=Enrollment.State.EXITED,
            reason=Enrollment.ExitReason.UNENROLLED,
            detail=reason or "Unenrolled by staff",
        )
        action_record(
            verb="workflow.unenroll",
            actor=actor,
            lead=enrollment.lead,
            target=enrollment,
            summary=f"Unenrolled from {enrollment.workflow}" + (f": {reason}" if reason else ""),
        )
    return enrollment


def step_runs_purge(*, before, actor: Actor, client: Client | None = None, batch: int = 5000) -> int:
    """Delete execution history older than `before` (finished enrollments' and live ones' alike:
    the enrollment keeps its state and position). In batches, so it never locks the table long."""
    from .models import StepRun

    total = 0
    rows = StepRun.objects.filter(started_at__lt=before)
    if client is not None:
        rows = rows.filter(client=client)
    while True:
        ids = list(rows.order_by("started_at").values_list("pk", flat=True)[:batch])
        if not ids:
            break
        total += StepRun.objects.filter(pk__in=ids).delete()[0]
    action_record(
        verb="workflow.purge_history",
        actor=actor,
        client=client,
        summary=f"Purged {total} step run(s) started before {before:%Y-%m-%d %H:%M}",
        detail={"before": before.isoformat(), "deleted": total},
    )
    return total


def staff_tasks_complete(*, tasks, actor: Actor) -> int:
    from .models import StaffTask

    now = timezone.now()
    with transaction.atomic():
        open_tasks = list(tasks.filter(status=StaffTask.Status.OPEN).select_for_update())
        for task in open_tasks:
            task.status, task.completed_at = StaffTask.Status.DONE, now
            task.completed_by = actor_fields(actor)["actor_user"]
            task.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
            action_record(
                verb="task.done", actor=actor, client=task.client, lead=task.lead, target=task, summary=task.title
            )
    return len(open_tasks)
