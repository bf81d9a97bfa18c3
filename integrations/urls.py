from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("webhooks/<str:provider>/<str:token>/", views.WebhookView.as_view(), name="webhook"),
]
