"""The action log's one write path (every layer records through these functions), incidents and
heartbeats."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from zartsalgo.errors import ApplicationError, InvalidTransition

from .models import AdminAction, Heartbeat, Incident, IncidentEntry

Actor = AbstractBaseUser | str
State = AdminAction.State

# Where each outcome may be reached from. `unknown` can still be resolved by a person who
# checked the provider; finished outcomes never change (the log is append-only in spirit).
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    State.SUCCEEDED: (State.INTENDED, State.UNKNOWN),
    State.FAILED: (State.INTENDED, State.UNKNOWN),
    State.UNKNOWN: (State.INTENDED,),
}


def actor_fields(actor: Actor) -> dict[str, Any]:
    if isinstance(actor, str):
        label = actor if ":" in actor else f"system:{actor}"
        return {"actor_user": None, "actor_label": label[:150]}
    return {"actor_user": actor, "actor_label": f"user:{actor.get_username()}"[:150]}


def _target_fields(target: models.Model | None) -> dict[str, str]:
    if target is None:
        return {"target_type": "", "target_id": ""}
    return {"target_type": target._meta.label_lower, "target_id": str(target.pk)}


def action_record_intended(
    *,
    verb: str,
    actor: Actor,
    summary: str,
    client=None,
    lead=None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[AdminAction, bool]:
    """Log that `actor` is about to do `verb`. Returns (action, created).

    With an idempotency key a second call returns the first row instead of a new one: the
    caller looks at its state to decide whether the work already happened. The UNIQUE
    constraint decides races, not a read.
    """
    if lead is not None and client is None:
        client = lead.client
    fields = {
        "verb": verb,
        "summary": summary[:500],
        "client": client,
        "lead": lead,
        "detail": detail or {},
        "state": State.INTENDED,
        **actor_fields(actor),
        **_target_fields(target),
    }
    if idempotency_key is None:
        return AdminAction.objects.create(**fields), True
    try:
        with transaction.atomic():
            return AdminAction.objects.create(idempotency_key=idempotency_key, **fields), True
    except IntegrityError:
        return AdminAction.objects.get(idempotency_key=idempotency_key), False


def _finish(action: AdminAction, *, state: str, **changes: Any) -> AdminAction:
    allowed = _ALLOWED_FROM[state]
    now = timezone.now()
    # A conditional UPDATE so two processes finishing the same action cannot both win.
    updated = AdminAction.objects.filter(pk=action.pk, state__in=allowed).update(
        state=state, completed_at=now, updated_at=now, **changes
    )
    action.refresh_from_db()
    if not updated:
        raise InvalidTransition(
            f"Action {action.pk} is {action.state}; it cannot become {state}.",
            {"action_id": action.pk, "state": action.state, "wanted": state},
        )
    return action


def action_mark_succeeded(
    *, action: AdminAction, summary: str | None = None, detail: dict[str, Any] | None = None
) -> AdminAction:
    changes: dict[str, Any] = {"error": ""}
    if summary:
        changes["summary"] = summary[:500]
    if detail:
        changes["detail"] = {**action.detail, **detail}
    return _finish(action, state=State.SUCCEEDED, **changes)


def action_mark_failed(*, action: AdminAction, error: str, detail: dict[str, Any] | None = None) -> AdminAction:
    changes: dict[str, Any] = {"error": error}
    if detail:
        changes["detail"] = {**action.detail, **detail}
    return _finish(action, state=State.FAILED, **changes)


def action_mark_unknown(*, action: AdminAction, error: str) -> AdminAction:
    return _finish(action, state=State.UNKNOWN, error=error)


def action_build(
    *,
    verb: str,
    actor: Actor,
    summary: str,
    client=None,
    lead=None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AdminAction:
    """The unsaved row action_record writes: for callers that write many at once
    (actions_record_many), such as a batch of webhook events."""
    if lead is not None and client is None:
        client = lead.client
    return AdminAction(
        verb=verb,
        summary=summary[:500],
        client=client,
        lead=lead,
        detail=detail or {},
        state=State.SUCCEEDED,
        completed_at=timezone.now(),
        **actor_fields(actor),
        **_target_fields(target),
    )


def action_record(
    *,
    verb: str,
    actor: Actor,
    summary: str,
    client=None,
    lead=None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AdminAction:
    """Log a change that happens inside the caller's transaction (it commits or not with it).

    Written as succeeded in one INSERT: the change and its log row commit together, so there
    is no moment at which the log could say "intended" for it.
    """
    action = action_build(
        verb=verb, actor=actor, summary=summary, client=client, lead=lead, target=target, detail=detail
    )
    action.save(force_insert=True)
    return action


def actions_record_many(actions: list[AdminAction]) -> None:
    """Write rows from action_build in one INSERT, inside the caller's transaction."""
    if actions:
        AdminAction.objects.bulk_create(actions)


def action_sweep_stale_intended(*, older_than: timedelta) -> int:
    """Mark actions stuck in `intended` as `unknown`. Returns how many were marked.

    Nothing is re-run: an intended send whose process died may or may not have reached the
    provider, so a person checks before anything is sent again.
    """
    cutoff = timezone.now() - older_than
    now = timezone.now()
    return AdminAction.objects.filter(state=State.INTENDED, created_at__lt=cutoff).update(
        state=State.UNKNOWN,
        completed_at=now,
        updated_at=now,
        error=f"No outcome was recorded within {int(older_than.total_seconds())} s; "
        "the process may have stopped between logging and acting. Check before retrying.",
    )


# --- incidents ----------------------------------------------------------------------------------
#
# Transitions (incident_set_status moves between the first three; only incident_close closes):
#
#   open ──▶ investigating ◀──▶ mitigated ──▶ closed
#     └──────────────────────────▶ mitigated
#   any of open / investigating / mitigated ──(incident_close, resolution required)──▶ closed
#
# Closed is final: a recurrence is a new incident (its timeline then starts clean).

IncidentStatus = Incident.Status

_INCIDENT_MOVES: dict[str, tuple[str, ...]] = {
    IncidentStatus.OPEN: (IncidentStatus.INVESTIGATING, IncidentStatus.MITIGATED),
    IncidentStatus.INVESTIGATING: (IncidentStatus.MITIGATED,),
    IncidentStatus.MITIGATED: (IncidentStatus.INVESTIGATING,),
    IncidentStatus.CLOSED: (),
}


def _hold_hooks() -> list:
    # The hold itself belongs to the layers that own the switches (workflows' client and
    # workflow send holds). adminops sits below them and must not import them, so the hooks
    # are named in settings (ADMINOPS_INCIDENT_HOLD_HOOKS) and called in that order — explicit
    # wiring, like the event consumers, instead of a signal the workflows app would listen to.
    return [import_string(path) for path in getattr(settings, "ADMINOPS_INCIDENT_HOLD_HOOKS", [])]


def _incident_log(
    incident: Incident,
    *,
    kind: str,
    actor: Actor,
    verb: str,
    message: str,
    detail: dict[str, Any] | None = None,
) -> IncidentEntry:
    """The timeline entry and its action-log row, inside the caller's transaction."""
    action = action_record(
        verb=verb,
        actor=actor,
        target=incident,
        summary=f"Incident #{incident.pk}: {message}",
        detail={"incident_id": incident.pk, **(detail or {})},
    )
    fields = actor_fields(actor)
    return IncidentEntry.objects.create(
        incident=incident,
        kind=kind,
        actor_user=fields["actor_user"],
        actor_label=fields["actor_label"],
        message=message,
        detail=detail or {},
        action=action,
    )


def _locked_incident(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


def _require_open(incident: Incident) -> None:
    if incident.status == IncidentStatus.CLOSED:
        raise InvalidTransition(f"Incident #{incident.pk} is closed.", {"incident_id": incident.pk})


def _require_staff_owner(owner) -> None:
    if owner is None or not getattr(owner, "is_staff", False) or not owner.is_active:
        raise ApplicationError("An incident needs an active staff member as its owner.", {"fields": {"owner": "staff"}})


def incident_hold_reason(incident: Incident) -> str:
    """The reason written on every hold an incident places; releasing checks it is still this."""
    return f"Incident #{incident.pk}: {incident.title}"[:300]


def incident_open(
    *,
    title: str,
    owner,
    rollback_path: str,
    actor: Actor,
    severity: str = Incident.Severity.SEV3,
    summary: str = "",
    clients=(),
    connections=(),
    workflows=(),
    hold_sends: bool = False,
) -> Incident:
    """Open an incident. With hold_sends, every affected client's and workflow's sends are held
    through the existing kill switches (enrollments keep their place) and the incident records
    exactly which holds it placed."""
    if not title.strip():
        raise ApplicationError("Give the incident a title.", {"fields": {"title": "required"}})
    if not rollback_path.strip():
        raise ApplicationError(
            "Write the rollback path before opening: how to undo or switch off what is going wrong.",
            {"fields": {"rollback_path": "required"}},
        )
    if severity not in Incident.Severity.values:
        raise ApplicationError(f"Unknown severity {severity!r}.", {"fields": {"severity": "invalid"}})
    _require_staff_owner(owner)
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title.strip()[:200],
            owner=owner,
            severity=severity,
            summary=summary,
            rollback_path=rollback_path.strip(),
            opened_by_label=actor_fields(actor)["actor_label"],
        )
        incident.affected_clients.set(clients)
        incident.affected_connections.set(connections)
        incident.affected_workflows.set(workflows)
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.OPENED,
            actor=actor,
            verb="incident.open",
            message=f"Opened ({incident.severity}), owner {owner.get_username()}: {incident.title}",
            detail={
                "severity": incident.severity,
                "owner": owner.get_username(),
                "clients": [c.pk for c in incident.affected_clients.all()],
                "connections": [c.pk for c in incident.affected_connections.all()],
                "workflows": [w.pk for w in incident.affected_workflows.all()],
            },
        )
        if hold_sends:
            incident = incident_hold_sends(incident=incident, actor=actor)
    return incident


def incident_set_status(*, incident: Incident, status: str, actor: Actor, note: str = "") -> Incident:
    """open → investigating / mitigated, investigating ⇄ mitigated. Closing is incident_close."""
    with transaction.atomic():
        incident = _locked_incident(incident)
        if status == IncidentStatus.CLOSED:
            raise InvalidTransition("Close an incident with incident_close (it needs a resolution).")
        if status not in _INCIDENT_MOVES.get(incident.status, ()):
            raise InvalidTransition(
                f"Incident #{incident.pk} is {incident.status}; it cannot become {status}.",
                {"incident_id": incident.pk, "status": incident.status, "wanted": status},
            )
        previous = incident.status
        incident.status = status
        incident.save(update_fields=["status", "updated_at"])
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.STATUS,
            actor=actor,
            verb=f"incident.{status}",
            message=f"{previous} → {status}" + (f": {note}" if note.strip() else ""),
            detail={"previous": previous, "status": status},
        )
    return incident


def incident_add_note(*, incident: Incident, actor: Actor, note: str) -> IncidentEntry:
    if not note.strip():
        raise ApplicationError("The note is empty.", {"fields": {"note": "required"}})
    with transaction.atomic():
        incident = _locked_incident(incident)
        _require_open(incident)
        return _incident_log(
            incident, kind=IncidentEntry.Kind.NOTE, actor=actor, verb="incident.note", message=note.strip()
        )


def incident_set_owner(*, incident: Incident, owner, actor: Actor, note: str = "") -> Incident:
    _require_staff_owner(owner)
    with transaction.atomic():
        incident = _locked_incident(incident)
        _require_open(incident)
        if incident.owner_id == owner.pk:
            return incident
        previous = incident.owner.get_username()
        incident.owner = owner
        incident.save(update_fields=["owner", "updated_at"])
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.OWNER,
            actor=actor,
            verb="incident.owner",
            message=f"Owner {previous} → {owner.get_username()}" + (f": {note}" if note.strip() else ""),
            detail={"previous": previous, "owner": owner.get_username()},
        )
    return incident


def incident_hold_sends(*, incident: Incident, actor: Actor) -> Incident:
    """Hold the sends of every affected client and workflow that is not held already. A hold that
    was on before stays someone else's: it is not recorded, so closing will not clear it."""
    with transaction.atomic():
        incident = _locked_incident(incident)
        _require_open(incident)
        placed: list[dict[str, Any]] = []
        for hook in _hold_hooks():
            placed.extend(hook(incident=incident, actor=actor, hold=True, placed=[]))
        incident.holds_placed = [*incident.holds_placed, *placed]
        incident.sends_held = any(not h.get("released_at") for h in incident.holds_placed)
        incident.save(update_fields=["holds_placed", "sends_held", "updated_at"])
        labels = ", ".join(f"{h['type']} {h['label']}" for h in placed) or "nothing new (already held or none affected)"
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.HOLD,
            actor=actor,
            verb="incident.hold_sends",
            message=f"Held sends: {labels}",
            detail={"placed": placed},
        )
    return incident


def incident_release_sends(*, incident: Incident, actor: Actor) -> Incident:
    """Release the holds this incident placed and that still carry its reason. A hold someone
    re-placed with another reason since is theirs now and stays on."""
    with transaction.atomic():
        incident = _locked_incident(incident)
        pending = [h for h in incident.holds_placed if not h.get("released_at")]
        outcome: dict[tuple[str, int], dict[str, Any]] = {}
        for hook in _hold_hooks():
            for row in hook(incident=incident, actor=actor, hold=False, placed=pending):
                outcome[(row["type"], row["id"])] = row
        now = timezone.now().isoformat()
        holds = []
        for h in incident.holds_placed:
            row = outcome.get((h["type"], h["id"])) if not h.get("released_at") else None
            holds.append({**h, "released_at": now, "note": row.get("note", "")} if row else h)
        incident.holds_placed = holds
        incident.sends_held = any(not h.get("released_at") for h in holds)
        incident.save(update_fields=["holds_placed", "sends_held", "updated_at"])
        labels = ", ".join(
            f"{r['type']} {r['label']}" + (f" ({r['note']})" if r.get("note") else "") for r in outcome.values()
        )
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.RELEASE,
            actor=actor,
            verb="incident.release_sends",
            message=f"Released sends: {labels or 'nothing to release'}",
            detail={"released": list(outcome.values())},
        )
    return incident


def incident_close(*, incident: Incident, actor: Actor, resolution: str, release_holds: bool = True) -> Incident:
    """Close with what was done. By default the holds the incident placed are released first
    (only those; see incident_release_sends)."""
    if not resolution.strip():
        raise ApplicationError(
            "Say what was done to close the incident (it stays on the record).", {"fields": {"resolution": "required"}}
        )
    with transaction.atomic():
        incident = _locked_incident(incident)
        _require_open(incident)
        if release_holds and incident.sends_held:
            incident = incident_release_sends(incident=incident, actor=actor)
        previous = incident.status
        incident.status = IncidentStatus.CLOSED
        incident.closed_at = timezone.now()
        incident.closed_by_label = actor_fields(actor)["actor_label"]
        incident.resolution = resolution.strip()
        incident.save(update_fields=["status", "closed_at", "closed_by_label", "resolution", "updated_at"])
        _incident_log(
            incident,
            kind=IncidentEntry.Kind.CLOSED,
            actor=actor,
            verb="incident.close",
            message=f"Closed (was {previous}): {incident.resolution}"
            + ("" if not incident.sends_held else " — holds left on by choice"),
            detail={"previous": previous, "holds_still_on": incident.sends_held},
        )
    return incident


# --- heartbeats ---------------------------------------------------------------------------------


def heartbeat_record(*, name: str, at=None) -> Heartbeat:
    """Note that the periodic task `name` ran now (one row per name, updated in place)."""
    at = at or timezone.now()
    updated = Heartbeat.objects.filter(name=name).update(beat_at=at)
    if not updated:
        try:
            with transaction.atomic():
                return Heartbeat.objects.create(name=name, beat_at=at)
        except IntegrityError:  # a concurrent first beat won the insert; ours is as recent
            Heartbeat.objects.filter(name=name).update(beat_at=at)
    return Heartbeat.objects.get(name=name)
