from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .selectors import portal_client_for_user


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True


@login_required
def dashboard(request):
    client = portal_client_for_user(user=request.user)
    return render(request, "portal/dashboard.html", {"client": client})
