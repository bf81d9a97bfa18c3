"""The action log's one write path. Every layer records through these functions."""

from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from zartsalgo.errors import InvalidTransition

from .models import AdminAction

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
