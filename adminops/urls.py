"""Staff ops pages, mounted at /ops/ (docs/operations.md). Incidents live in the admin."""

from django.urls import path

from . import views

app_name = "adminops"

urlpatterns = [
    path("failures/", views.failure_review, name="failure_review"),
    path("failures/act/", views.failure_review_act, name="failure_review_act"),
    path("status/", views.ops_status_page, name="status"),
    path("status.json", views.ops_status_json, name="status_json"),
]
