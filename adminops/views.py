"""Staff ops pages: failure review (/ops/failures/) and ops status (/ops/status/, /ops/status.json).

Thin interfaces (DESIGN.md: adminops' views may read every app). Reads come from
adminops.selectors; every action calls the owning app's service — integrations for sync errors,
replays, CRM handoffs and connections, the workflow engine for holds — which writes the
event_admin_actions row with the staff user as actor. Nothing here changes a row itself.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin import site as admin_site
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from zartsalgo.errors import ApplicationError

from . import selectors


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _filters(params) -> dict:
    return {"client_id": _int_or_none(params.get("client")), "provider": (params.get("provider") or "").strip()[:32]}


def _query(filters: dict) -> str:
    return urlencode({k: v for k, v in (("client", filters["client_id"]), ("provider", filters["provider"])) if v})


@never_cache
@staff_member_required
@require_GET
def failure_review(request: HttpRequest) -> HttpResponse:
    filters = _filters(request.GET)
    review = selectors.failure_review(**filters)
    return TemplateResponse(
        request,
        "adminops/failure_review.html",
        {
            **admin_site.each_context(request),
            "title": "Failure review",
            "review": review,
            "filters": filters,
            "choices": selectors.failure_review_filters(),
            "query": _query(filters),
        },
    )


# kind → (permission, {op: needs a reason}). The permission is the one the admin checks for the
# same action on that model, so this page grants nothing the admin does not.
_ACTIONS: dict[str, tuple[str, dict[str, bool]]] = {
    "sync_error": (
        "integrations.change_syncerror",
        {"retry": False, "acknowledge": False, "resolved": True, "ignored": True},
    ),
    "crm_handoff": ("integrations.change_crmhandoff", {"retry": False, "manual": True}),
    "message": ("workflows.change_enrollment", {"sent": False, "not_sent": False}),
    "enrollment": ("workflows.change_enrollment", {"release": False}),
    "connection": ("integrations.change_connection", {"clear": True}),
}


def _act(kind: str, op: str, ids: list[int], actor, reason: str) -> str:
    """Run one failure-review action through the owning service. Returns what was done."""
    from integrations import crm
    from integrations import services as integrations
    from integrations.models import Connection, CrmHandoff, RawEvent, SyncError
    from workflows import engine
    from workflows.models import Enrollment, OutboundMessage

    if kind == "sync_error":
        errors = SyncError.objects.filter(pk__in=ids)
        if op == "retry":
            raws = RawEvent.objects.filter(pk__in=errors.exclude(raw_event=None).values("raw_event"))
            replayed = integrations.raw_events_replay(
                raw_events=raws, actor=actor, reason=reason or "Retry from failure review"
            )
            handoffs = CrmHandoff.objects.filter(pk__in=errors.exclude(crm_handoff=None).values("crm_handoff"))
            retried = crm.crm_handoffs_retry(handoffs=handoffs, actor=actor)
            return f"Replayed {replayed} raw event(s), retrying {retried} CRM handoff(s)."
        if op == "acknowledge":
            return f"Acknowledged {integrations.sync_errors_acknowledge(errors=errors, actor=actor)} failure(s)."
        count = integrations.sync_errors_set_state(errors=errors, state=op, actor=actor, resolution=reason)
        return f"{count} failure(s) marked {op}."
    if kind == "crm_handoff":
        handoffs = CrmHandoff.objects.filter(pk__in=ids)
        if op == "retry":
            return f"Retrying {crm.crm_handoffs_retry(handoffs=handoffs, actor=actor)} CRM handoff(s)."
        for handoff in handoffs.order_by("pk"):
            crm.crm_handoff_mark_manual(handoff=handoff, actor=actor, reason=reason)
        return f"{len(ids)} CRM handoff(s) settled by hand."
    if kind == "message":
        done = 0
        for message in OutboundMessage.objects.filter(pk__in=ids).select_related("enrollment").order_by("pk"):
            if message.enrollment is None or message.enrollment.state != Enrollment.State.HELD:
                raise ApplicationError(
                    f"Message #{message.pk} has no held enrollment to release; settle it in the admin."
                )
            engine.enrollment_release(enrollment=message.enrollment, actor=actor, resolution=op, note=reason)
            done += 1
        return f"{done} unknown send(s) settled as {op.replace('_', ' ')}."
    if kind == "enrollment":
        done = 0
        for enrollment in Enrollment.objects.filter(pk__in=ids).order_by("pk"):
            engine.enrollment_release(enrollment=enrollment, actor=actor, resolution="", note=reason)
            done += 1
        return f"Released {done} enrollment(s)."
    for connection in Connection.objects.filter(pk__in=ids).order_by("pk"):
        integrations.connection_set_status(
            connection=connection, status=Connection.Status.CONNECTED, actor=actor, reason=reason
        )
    return f"{len(ids)} connection(s) marked connected."


@staff_member_required
@require_POST
def failure_review_act(request: HttpRequest) -> HttpResponse:
    """One POST for every action: bulk (op + checked ids) or per row (row_op = "op:id")."""
    kind = request.POST.get("kind", "")
    op = request.POST.get("op", "")
    ids = [i for i in (_int_or_none(v) for v in request.POST.getlist("ids")) if i]
    if row_op := request.POST.get("row_op"):
        op, _, row_id = row_op.partition(":")
        ids = [i for i in [_int_or_none(row_id)] if i]
    reason = request.POST.get("reason", "").strip()
    back = reverse("adminops:failure_review")
    if query := _query(_filters(request.POST)):  # back to the same filtered view
        back = f"{back}?{query}"
    spec = _ACTIONS.get(kind)
    if spec is None or op not in spec[1]:
        messages.error(request, "Unknown action.")
        return redirect(back)
    permission, ops = spec
    if not request.user.has_perm(permission):
        raise PermissionDenied
    if not ids:
        messages.warning(request, "Select at least one row.")
        return redirect(back)
    if ops[op] and not reason:
        messages.error(request, "Give a reason: it goes in the action log.")
        return redirect(back)
    try:
        messages.success(request, _act(kind, op, ids, request.user, reason))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(back)


@never_cache
@staff_member_required
@require_GET
def ops_status_page(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(
        request,
        "adminops/status.html",
        {**admin_site.each_context(request), "title": "Ops status", "status": selectors.ops_status()},
    )


@never_cache
@require_GET
def ops_status_json(request: HttpRequest) -> JsonResponse:
    """Staff only, for dashboards and scripts with a staff session. Load balancers use /readyz."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"message": "Log in as staff.", "code": "not_authenticated"}, status=401)
    if not (user.is_active and user.is_staff):
        return JsonResponse({"message": "Staff only.", "code": "permission_denied"}, status=403)
    return JsonResponse(selectors.ops_status())
