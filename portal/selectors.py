from django.http import Http404

from leads.models import Client


def portal_client_for_user(*, user) -> Client:
    """The one client a portal user belongs to; 404 for anyone else (no hint that it exists)."""
    link = getattr(user, "client_user", None) if user.is_authenticated else None
    if link is None or not user.is_active:
        raise Http404("No portal access")
    return link.client
