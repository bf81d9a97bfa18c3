"""Incident → send holds: the hook that turns an incident's "hold the affected sends" into the
workflows app's own kill switches (Client.sends_held, Workflow.sends_held).

Why here and why through a setting: adminops is the leaf every layer imports, so its services
must not import workflows (a cycle, and the action log would drag the engine in everywhere).
This module is an interface, like adminops' views, that sits above every app: adminops.services
reaches it only by its dotted path in ADMINOPS_INCIDENT_HOLD_HOOKS, and it changes nothing itself
— each hold and release goes through workflows.services, which logs it with the actor.

Hook protocol: hook(*, incident, actor, hold: bool, placed: list[dict]) -> list[dict]
- hold=True: place holds, return the ones placed ({"type", "id", "label", "placed_at"}).
- hold=False: release those in `placed` that are still this incident's, return the released
  ones; a hold now carrying another reason was re-placed by someone else and is left on.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .services import Actor, incident_hold_reason


def workflow_send_holds(*, incident, actor: Actor, hold: bool, placed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from leads.models import Client
    from workflows import services as workflow_services
    from workflows.models import Workflow

    reason = incident_hold_reason(incident)
    if hold:
        now = timezone.now().isoformat()
        done = []
        for client in incident.affected_clients.filter(sends_held=False).order_by("pk"):
            workflow_services.client_hold_sends(client=client, held=True, actor=actor, reason=reason)
            done.append({"type": "client", "id": client.pk, "label": client.name, "placed_at": now})
        for workflow in incident.affected_workflows.filter(sends_held=False).order_by("pk"):
            workflow_services.workflow_hold_sends(workflow=workflow, held=True, actor=actor, reason=reason)
            done.append({"type": "workflow", "id": workflow.pk, "label": workflow.name, "placed_at": now})
        return done

    released = []
    ids = {kind: [h["id"] for h in placed if h["type"] == kind] for kind in ("client", "workflow")}
    for client in Client.objects.filter(pk__in=ids["client"]).order_by("pk"):
        row = {"type": "client", "id": client.pk, "label": client.name}
        if client.sends_held and client.sends_held_reason == reason:
            workflow_services.client_hold_sends(client=client, held=False, actor=actor)
        else:
            row["note"] = "already released or re-held by someone else; left as is"
        released.append(row)
    for workflow in Workflow.objects.filter(pk__in=ids["workflow"]).order_by("pk"):
        row = {"type": "workflow", "id": workflow.pk, "label": workflow.name}
        if workflow.sends_held and workflow.sends_held_reason == reason:
            workflow_services.workflow_hold_sends(workflow=workflow, held=False, actor=actor)
        else:
            row["note"] = "already released or re-held by someone else; left as is"
        released.append(row)
    return released
