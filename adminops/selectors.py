from django.db.models import QuerySet

from .models import AdminAction


def action_list_for_lead(*, lead) -> QuerySet[AdminAction]:
    return AdminAction.objects.filter(lead=lead).select_related("actor_user").order_by("-created_at", "-id")


def action_list_needing_review() -> QuerySet[AdminAction]:
    return AdminAction.objects.filter(state=AdminAction.State.UNKNOWN).order_by("created_at")
