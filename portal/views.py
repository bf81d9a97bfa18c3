from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .selectors import portal_cards, portal_client_for_user, portal_summaries


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True


@login_required
def dashboard(request):
    client = portal_client_for_user(user=request.user)
    # Only published items of this client, only their client-safe columns (portal/selectors.py).
    context = {"client": client, "summaries": portal_summaries(client=client), "cards": portal_cards(client=client)}
    return render(request, "portal/dashboard.html", context)
