"""The REST API, mounted at /api/v1/ (docs/api.md). One view per operation, in the apps' apis.py."""

from django.urls import path

from integrations import apis as integrations_apis
from leads import apis as leads_apis
from portal import apis as portal_apis
from workflows import apis as workflows_apis

app_name = "api"

urlpatterns = [
    # workflows and their draft steps
    path("workflows/", workflows_apis.WorkflowListCreateApi.as_view(), name="workflow-list"),
    path("workflows/<int:pk>/", workflows_apis.WorkflowDetailApi.as_view(), name="workflow-detail"),
    path("workflows/<int:pk>/publish/", workflows_apis.WorkflowPublishApi.as_view(), name="workflow-publish"),
    path("workflows/<int:pk>/pause/", workflows_apis.WorkflowPauseApi.as_view(), name="workflow-pause"),
    path("workflows/<int:pk>/resume/", workflows_apis.WorkflowResumeApi.as_view(), name="workflow-resume"),
    path("workflows/<int:pk>/archive/", workflows_apis.WorkflowArchiveApi.as_view(), name="workflow-archive"),
    path("workflows/<int:pk>/preview/", workflows_apis.WorkflowPreviewApi.as_view(), name="workflow-preview"),
    path("workflows/<int:pk>/steps/", workflows_apis.StepListCreateApi.as_view(), name="step-list"),
    path("workflows/<int:pk>/steps/<slug:key>/", workflows_apis.StepDetailApi.as_view(), name="step-detail"),
    # enrollments and execution history
    path("enrollments/", workflows_apis.EnrollmentListCreateApi.as_view(), name="enrollment-list"),
    path("enrollments/<int:pk>/", workflows_apis.EnrollmentDetailApi.as_view(), name="enrollment-detail"),
    path("step-runs/", workflows_apis.StepRunListApi.as_view(), name="steprun-list"),
    path("step-runs/purge/", workflows_apis.StepRunPurgeApi.as_view(), name="steprun-purge"),
    path("step-runs/<int:pk>/", workflows_apis.StepRunDetailApi.as_view(), name="steprun-detail"),
    # templates and automation rules
    path("templates/", workflows_apis.TemplateListCreateApi.as_view(), name="template-list"),
    path("templates/<slug:key>/", workflows_apis.TemplateDetailApi.as_view(), name="template-detail"),
    path("rules/", workflows_apis.RuleListCreateApi.as_view(), name="rule-list"),
    path("rules/<int:pk>/", workflows_apis.RuleDetailApi.as_view(), name="rule-detail"),
    path("rules/<int:pk>/test/", workflows_apis.RuleTestApi.as_view(), name="rule-test"),
    # leads, connections, normalized events
    path("leads/", leads_apis.LeadListCreateApi.as_view(), name="lead-list"),
    path("leads/<int:pk>/", leads_apis.LeadDetailApi.as_view(), name="lead-detail"),
    path("connections/", integrations_apis.ConnectionListApi.as_view(), name="connection-list"),
    path("connections/<int:pk>/", integrations_apis.ConnectionDetailApi.as_view(), name="connection-detail"),
    path("normalized-events/", integrations_apis.NormalizedEventListApi.as_view(), name="normalizedevent-list"),
    path(
        "normalized-events/<int:pk>/",
        integrations_apis.NormalizedEventDetailApi.as_view(),
        name="normalizedevent-detail",
    ),
    # published client-facing proof (read only)
    path("summaries/", portal_apis.SummaryListApi.as_view(), name="summary-list"),
    path("summaries/<int:pk>/", portal_apis.SummaryDetailApi.as_view(), name="summary-detail"),
    path("metric-cards/", portal_apis.MetricCardListApi.as_view(), name="metriccard-list"),
    path("metric-cards/<int:pk>/", portal_apis.MetricCardDetailApi.as_view(), name="metriccard-detail"),
]
