"""Workflows over the REST API: definitions, draft steps, publishing, enrollments, execution
history, templates and automation rules (docs/api.md). Thin: each view validates its input with
its own small serializer and calls one service with the caller as actor, so the action log
(event_admin_actions) names who did it.

Client API users read their own client's workflows, enrollments, step runs and rules, and the
templates; every write here is staff only (data ops own message timing and triggers).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Max, Q
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.models import NormalizedEvent
from leads.models import Client, Lead
from zartsalgo.api import (
    ErrorSerializer,
    IdFilter,
    OutputSerializer,
    ScopedMixin,
    ScopedPrimaryKeyRelatedField,
    StaffOnly,
)
from zartsalgo.errors import NotFound

from . import engine, rules, services, templates
from .models import Enrollment, Step, StepRun, Workflow, WorkflowVersion
from .models_rules import AutomationRule
from .models_templates import WorkflowTemplate
from .steps import StepConfigError

ERRORS = {400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


def _staff_users():
    return get_user_model().objects.filter(is_staff=True, is_active=True)


# --- workflows -----------------------------------------------------------------------------------


class VersionOutput(OutputSerializer):
    class Meta:
        model = WorkflowVersion
        fields = ("id", "number", "published_at", "published_by_label", "notes")
        read_only_fields = fields


class WorkflowOutput(OutputSerializer):
    published_version = VersionOutput(read_only=True, allow_null=True)
    draft_version = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Number of the unpublished version being edited, if any."
    )

    class Meta:
        model = Workflow
        fields = (
            "id",
            "client",
            "name",
            "description",
            "status",
            "owner",
            "template_key",
            "published_version",
            "draft_version",
            "sends_held",
            "sends_held_reason",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


def workflow_rows():
    return Workflow.objects.select_related("published_version").annotate(
        draft_version=Max("versions__number", filter=Q(versions__published_at__isnull=True))
    )


class WorkflowCreateInput(serializers.Serializer):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())
    template = serializers.SlugField(
        max_length=40, required=False, allow_blank=True, help_text="A template key: start from its steps."
    )
    name = serializers.CharField(
        max_length=120, required=False, allow_blank=True, help_text="Required without a template."
    )
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    owner = serializers.PrimaryKeyRelatedField(queryset=_staff_users(), required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs.get("template") and not (attrs.get("name") or "").strip():
            raise serializers.ValidationError({"name": "required unless a template is given"})
        return attrs


class WorkflowUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    owner = serializers.PrimaryKeyRelatedField(queryset=_staff_users(), required=False, allow_null=True)


class WorkflowFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    status = filters.ChoiceFilter(choices=Workflow.Status.choices)

    class Meta:
        model = Workflow
        fields = ()


@extend_schema_view(
    get=extend_schema(summary="List workflows", tags=["workflows"]),
    post=extend_schema(
        summary="Create a draft workflow",
        description='From scratch ({"client", "name"}) or from a template ({"client", "template": key}). '
        "Add steps, then publish.",
        tags=["workflows"],
        request=WorkflowCreateInput,
        responses={201: WorkflowOutput, **ERRORS},
    ),
)
class WorkflowListCreateApi(ScopedMixin, generics.ListAPIView):
    serializer_class = WorkflowOutput
    filterset_class = WorkflowFilter

    def get_queryset(self):
        return self.scope.filter(workflow_rows())

    def post(self, request):
        data = WorkflowCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        workflow = services.workflow_build(
            client=v["client"],
            actor=request.user,
            name=v.get("name", ""),
            description=v.get("description"),
            owner=v.get("owner"),
            template=v.get("template", ""),
        )
        return Response(WorkflowOutput(workflow_rows().get(pk=workflow.pk)).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read a workflow", tags=["workflows"]),
    patch=extend_schema(
        summary="Change a workflow's name, description or owner",
        tags=["workflows"],
        request=WorkflowUpdateInput,
        responses={200: WorkflowOutput, **ERRORS},
    ),
    delete=extend_schema(
        summary="Delete a draft workflow",
        description="Only a never-published draft without enrollments or rules is deleted (204). Anything that ran "
        "keeps its history: the answer is 409 and the way out is POST /workflows/{id}/archive/.",
        tags=["workflows"],
        responses={204: None, 404: ErrorSerializer, 409: ErrorSerializer},
    ),
)
class WorkflowDetailApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = WorkflowOutput

    def get_queryset(self):
        return self.scope.filter(workflow_rows())

    def get(self, request, pk: int):
        return Response(WorkflowOutput(self.get_object()).data)

    def patch(self, request, pk: int):
        workflow = self.get_object()
        data = WorkflowUpdateInput(data=request.data, context={"request": request}, partial=True)
        data.is_valid(raise_exception=True)
        services.workflow_update(workflow=workflow, actor=request.user, **data.validated_data)
        return Response(WorkflowOutput(workflow_rows().get(pk=workflow.pk)).data)

    def delete(self, request, pk: int):
        services.workflow_delete(workflow=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublishInput(serializers.Serializer):
    notes = serializers.CharField(max_length=300, required=False, allow_blank=True, help_text="What changed.")


@extend_schema(
    summary="Publish the draft",
    description="Freezes the draft as the version new enrollments run; a draft workflow becomes active. "
    "Every step and branch target is checked first (errors name `<step key>.<field>`).",
    tags=["workflows"],
    request=PublishInput,
    responses={200: WorkflowOutput, **ERRORS},
)
class WorkflowPublishApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = WorkflowOutput

    def get_queryset(self):
        return self.scope.filter(Workflow.objects.all())

    def post(self, request, pk: int):
        workflow = self.get_object()
        data = PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.workflow_publish(workflow=workflow, actor=request.user, notes=data.validated_data.get("notes", ""))
        return Response(WorkflowOutput(workflow_rows().get(pk=workflow.pk)).data)


class StatusInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class WorkflowStatusApi(ScopedMixin, generics.GenericAPIView):
    """POST /workflows/{id}/pause|resume|archive/ — one class, three routes (see `target`)."""

    serializer_class = WorkflowOutput
    target = ""

    def get_queryset(self):
        return self.scope.filter(Workflow.objects.all())

    def post(self, request, pk: int):
        workflow = self.get_object()
        data = StatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.workflow_set_status(
            workflow=workflow, status=self.target, actor=request.user, reason=data.validated_data.get("reason", "")
        )
        return Response(WorkflowOutput(workflow_rows().get(pk=workflow.pk)).data)


def _status_view(target: str, summary: str, description: str):
    return extend_schema(
        summary=summary,
        description=description,
        tags=["workflows"],
        request=StatusInput,
        responses={200: WorkflowOutput, **ERRORS},
    )(type(f"Workflow{target.title()}Api", (WorkflowStatusApi,), {"target": target}))


WorkflowPauseApi = _status_view(Workflow.Status.PAUSED, "Pause a workflow", "No new enrollments; enrolled leads go on.")
WorkflowResumeApi = _status_view(Workflow.Status.ACTIVE, "Resume a paused workflow", "New enrollments again.")
WorkflowArchiveApi = _status_view(
    Workflow.Status.ARCHIVED,
    "Archive a workflow",
    "No new enrollments ever; live enrollments finish the version they run (unenroll them to stop them).",
)


class PreviewRow(serializers.Serializer):
    step = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField(help_text="UTC")
    local = serializers.CharField(help_text="In the client's time zone (ISO 8601 with offset).")
    note = serializers.CharField(allow_blank=True)


@extend_schema(
    summary="Preview when each step would fire",
    description="For a lead of the workflow's client enrolled now (without `lead`: a blank lead), given delays and "
    "quiet hours. Uses the published version, else the latest draft.",
    tags=["workflows"],
    parameters=[OpenApiParameter("lead", OpenApiTypes.INT, required=False, description="A lead id")],
    responses={200: PreviewRow(many=True), 400: ErrorSerializer, 404: ErrorSerializer},
)
class WorkflowPreviewApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = PreviewRow
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return self.scope.filter(Workflow.objects.select_related("client", "published_version"))

    def get(self, request, pk: int):
        workflow = self.get_object()
        lead_id = request.query_params.get("lead", "").strip()
        if lead_id:
            if not lead_id.isdigit():
                raise serializers.ValidationError({"lead": "a lead id"})
            lead = Lead.objects.filter(pk=int(lead_id), client_id=workflow.client_id).first()
            if lead is None:
                raise serializers.ValidationError({"lead": f"no lead #{lead_id} of this workflow's client"})
        else:
            lead = Lead(client=workflow.client)
        rows = engine.workflow_preview(workflow=workflow, lead=lead)
        for row in rows:
            row["local"] = row["local"].isoformat()
        return Response(PreviewRow(rows, many=True).data)


# --- steps (of the draft) ------------------------------------------------------------------------


class StepOutput(OutputSerializer):
    class Meta:
        model = Step
        fields = ("id", "key", "position", "kind", "name", "config")
        read_only_fields = fields


class StepListOutput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version these steps belong to.")
    editable = serializers.BooleanField(help_text="False: the published version (a change makes a new draft).")
    steps = StepOutput(many=True)


class StepCreateInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Step.Kind.choices)
    config = serializers.DictField(help_text="Per kind; see docs/workflows.md. Errors name config.<field>.")
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    key = serializers.SlugField(
        max_length=40, required=False, allow_blank=True, help_text="Stable name; branches point at it."
    )
    position = serializers.IntegerField(min_value=0, max_value=10_000, required=False, help_text="0 = first.")


class StepUpdateInput(serializers.Serializer):
    config = serializers.DictField(required=False)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    position = serializers.IntegerField(min_value=0, max_value=10_000, required=False)


def _step_errors(exc: StepConfigError) -> StepConfigError:
    """The step checker names config keys bare ("body"); the API names them as sent ("config.body")."""
    return StepConfigError(exc.message, {**exc.extra, "fields": templates.step_error_fields(exc)})


class _WorkflowChild(ScopedMixin, APIView):
    def workflow(self, pk: int) -> Workflow:
        return self.scope.get(Workflow.objects.all(), pk=pk)


@extend_schema_view(
    get=extend_schema(
        summary="List the steps being edited",
        operation_id="workflows_steps_list",
        description="The draft's steps; without a draft, the published version's (editable=false).",
        tags=["steps"],
        responses={200: StepListOutput, 404: ErrorSerializer},
    ),
    post=extend_schema(
        summary="Add a step to the draft",
        description="At the end, or at `position` (later steps shift). A published workflow gets a new draft.",
        tags=["steps"],
        request=StepCreateInput,
        responses={201: StepOutput, **ERRORS},
    ),
)
class StepListCreateApi(_WorkflowChild):
    def get(self, request, pk: int):
        workflow = self.workflow(pk)
        version = workflow.versions.filter(published_at__isnull=True).order_by("-number").first()
        version = version or workflow.versions.order_by("-number").first()
        steps = list(version.steps.order_by("position", "id")) if version else []
        return Response(
            StepListOutput(
                {
                    "version": version.number if version else 0,
                    "editable": bool(version and not version.is_published),
                    "steps": steps,
                }
            ).data
        )

    def post(self, request, pk: int):
        workflow = self.workflow(pk)
        data = StepCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            step = services.step_add(workflow=workflow, actor=request.user, **data.validated_data)
        except StepConfigError as exc:
            raise _step_errors(exc) from exc
        return Response(StepOutput(step).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read a draft step", tags=["steps"], responses={200: StepOutput, 404: ErrorSerializer}),
    patch=extend_schema(
        summary="Change a draft step",
        tags=["steps"],
        request=StepUpdateInput,
        responses={200: StepOutput, **ERRORS},
    ),
    delete=extend_schema(
        summary="Remove a step from the draft",
        tags=["steps"],
        responses={204: None, 404: ErrorSerializer, 409: ErrorSerializer},
    ),
)
class StepDetailApi(_WorkflowChild):
    """Steps are addressed by key: it is kept across versions, while ids change with each draft."""

    def _read(self, pk: int, key: str) -> Step:
        workflow = self.workflow(pk)
        version = workflow.versions.filter(published_at__isnull=True).order_by("-number").first()
        version = version or workflow.published_version
        step = version.steps.filter(key=key).first() if version else None
        if step is None:
            raise NotFound(f"No step {key!r} in this workflow.")
        return step

    def _draft(self, pk: int, key: str) -> Step:
        self._read(pk, key)  # 404 before a draft is made for nothing
        step = services.draft_step(workflow=self.workflow(pk), key=key)
        if step is None:
            raise NotFound(f"No step {key!r} in the draft.")
        return step

    def get(self, request, pk: int, key: str):
        return Response(StepOutput(self._read(pk, key)).data)

    def patch(self, request, pk: int, key: str):
        data = StepUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        step = self._draft(pk, key)
        try:
            step = services.step_update(step=step, actor=request.user, **data.validated_data)
        except StepConfigError as exc:
            raise _step_errors(exc) from exc
        return Response(StepOutput(step).data)

    def delete(self, request, pk: int, key: str):
        services.step_delete(step=self._draft(pk, key), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- enrollments and execution history -----------------------------------------------------------


class EnrollmentOutput(OutputSerializer):
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = Enrollment
        fields = (
            "id",
            "workflow",
            "version",
            "client",
            "lead",
            "state",
            "step_key",
            "visit",
            "next_run_at",
            "waiting_for",
            "hold_kind",
            "hold_reason",
            "held_at",
            "exit_reason",
            "exit_detail",
            "finished_at",
            "enrolled_by_label",
            "source_event",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields
        staff_only_fields = ("hold_reason", "exit_detail", "enrolled_by_label")


class StepRunOutput(OutputSerializer):
    class Meta:
        model = StepRun
        fields = (
            "id",
            "enrollment",
            "client",
            "step_key",
            "step_kind",
            "visit",
            "state",
            "started_at",
            "finished_at",
            "summary",
            "error",
        )
        read_only_fields = fields
        staff_only_fields = ("error",)


STEP_RUNS_SHOWN = 500


class EnrollmentDetailOutput(EnrollmentOutput):
    step_runs = serializers.SerializerMethodField(help_text=f"Oldest first, at most {STEP_RUNS_SHOWN}.")

    class Meta(EnrollmentOutput.Meta):
        fields = (*EnrollmentOutput.Meta.fields, "step_runs")
        read_only_fields = fields

    @extend_schema_field(StepRunOutput(many=True))
    def get_step_runs(self, obj):
        runs = obj.step_runs.order_by("started_at", "id")[:STEP_RUNS_SHOWN]
        return StepRunOutput(runs, many=True, context=self.context).data


class EnrollmentCreateInput(serializers.Serializer):
    workflow = ScopedPrimaryKeyRelatedField(queryset=Workflow.objects.all())
    lead = ScopedPrimaryKeyRelatedField(queryset=Lead.objects.all())


class EnrollmentFilter(filters.FilterSet):
    workflow = IdFilter(field_name="workflow_id")
    lead = IdFilter(field_name="lead_id")
    client = IdFilter(field_name="client_id")
    state = filters.ChoiceFilter(choices=Enrollment.State.choices)

    class Meta:
        model = Enrollment
        fields = ()


def enrollment_rows():
    return Enrollment.objects.select_related("version")


@extend_schema_view(
    get=extend_schema(summary="List enrollments", tags=["enrollments"]),
    post=extend_schema(
        summary="Enroll a lead",
        description="In the workflow's published version; the first step runs right away (after commit). "
        "A lead is never live twice in one workflow (400, code already_enrolled).",
        tags=["enrollments"],
        request=EnrollmentCreateInput,
        responses={201: EnrollmentOutput, **ERRORS},
    ),
)
class EnrollmentListCreateApi(ScopedMixin, generics.ListAPIView):
    serializer_class = EnrollmentOutput
    filterset_class = EnrollmentFilter

    def get_queryset(self):
        return self.scope.filter(enrollment_rows())

    def post(self, request):
        data = EnrollmentCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        enrollment = services.enrollment_create(actor=request.user, **data.validated_data)
        return Response(
            EnrollmentOutput(enrollment_rows().get(pk=enrollment.pk), context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema_view(
    get=extend_schema(summary="Read an enrollment with its step runs", tags=["enrollments"]),
    delete=extend_schema(
        summary="Unenroll",
        description="Stops a live enrollment. The row is kept (state `exited`, exit_reason `unenrolled`) with its "
        "step runs, and returned; 409 when it already ended.",
        tags=["enrollments"],
        parameters=[OpenApiParameter("reason", OpenApiTypes.STR, required=False, description="Why (logged).")],
        responses={200: EnrollmentOutput, 404: ErrorSerializer, 409: ErrorSerializer},
    ),
)
class EnrollmentDetailApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = EnrollmentDetailOutput

    def get_queryset(self):
        return self.scope.filter(enrollment_rows())

    def get(self, request, pk: int):
        return Response(EnrollmentDetailOutput(self.get_object(), context={"request": request}).data)

    def delete(self, request, pk: int):
        reason = StatusInput(data={"reason": request.query_params.get("reason", "")})
        reason.is_valid(raise_exception=True)
        enrollment = services.enrollment_unenroll(
            enrollment=self.get_object(), actor=request.user, reason=reason.validated_data.get("reason", "")
        )
        return Response(EnrollmentOutput(enrollment_rows().get(pk=enrollment.pk), context={"request": request}).data)


class StepRunFilter(filters.FilterSet):
    enrollment = IdFilter(field_name="enrollment_id")
    workflow = IdFilter(field_name="enrollment__workflow_id")
    client = IdFilter(field_name="client_id")
    state = filters.ChoiceFilter(choices=StepRun.State.choices)
    started_after = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = StepRun
        fields = ()


@extend_schema_view(get=extend_schema(summary="List step runs (execution history)", tags=["execution history"]))
class StepRunListApi(ScopedMixin, generics.ListAPIView):
    serializer_class = StepRunOutput
    filterset_class = StepRunFilter

    def get_queryset(self):
        return self.scope.filter(StepRun.objects.all())


@extend_schema_view(get=extend_schema(summary="Read a step run", tags=["execution history"]))
class StepRunDetailApi(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = StepRunOutput

    def get_queryset(self):
        return self.scope.filter(StepRun.objects.all())


class PurgeInput(serializers.Serializer):
    before = serializers.DateTimeField(help_text="Delete step runs started before this time.")
    client = serializers.PrimaryKeyRelatedField(
        queryset=Client.objects.all(), required=False, allow_null=True, help_text="Only this client's (default: all)."
    )


class PurgeOutput(serializers.Serializer):
    deleted = serializers.IntegerField()


@extend_schema(
    summary="Purge execution history",
    description="Staff only. Deletes step runs started before `before` (enrollments keep their state and position), "
    "in batches; logged.",
    tags=["execution history"],
    request=PurgeInput,
    responses={200: PurgeOutput, 400: ErrorSerializer, 403: ErrorSerializer},
)
class StepRunPurgeApi(APIView):
    permission_classes = [StaffOnly]

    def post(self, request):
        data = PurgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        deleted = services.step_runs_purge(
            before=data.validated_data["before"], client=data.validated_data.get("client"), actor=request.user
        )
        return Response(PurgeOutput({"deleted": deleted}).data)


# --- templates -----------------------------------------------------------------------------------


class TemplateStep(serializers.Serializer):
    key = serializers.SlugField(max_length=40)
    kind = serializers.ChoiceField(choices=Step.Kind.choices)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    config = serializers.DictField()


class TemplateOutput(OutputSerializer):
    steps = TemplateStep(many=True, read_only=True)

    class Meta:
        model = WorkflowTemplate
        fields = ("id", "key", "name", "description", "is_builtin", "steps", "created_at", "updated_at")
        read_only_fields = fields


class TemplateCreateInput(serializers.Serializer):
    key = serializers.SlugField(max_length=40)
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    steps = TemplateStep(many=True, help_text="Checked like workflow steps; errors name steps[i].config.<field>.")


class TemplateUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    steps = TemplateStep(many=True, required=False)


class TemplateFilter(filters.FilterSet):
    is_builtin = filters.BooleanFilter()

    class Meta:
        model = WorkflowTemplate
        fields = ()


class _TemplateAccess(ScopedMixin):
    """Templates belong to no client: every API user reads them; staff change them."""


@extend_schema_view(
    get=extend_schema(summary="List workflow templates", tags=["templates"]),
    post=extend_schema(
        summary="Create a template",
        tags=["templates"],
        request=TemplateCreateInput,
        responses={201: TemplateOutput, 400: ErrorSerializer},
    ),
)
class TemplateListCreateApi(_TemplateAccess, generics.ListAPIView):
    serializer_class = TemplateOutput
    filterset_class = TemplateFilter
    queryset = WorkflowTemplate.objects.all()

    def post(self, request):
        data = TemplateCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        template = templates.template_create(actor=request.user, **data.validated_data)
        return Response(TemplateOutput(template).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read a template", tags=["templates"]),
    patch=extend_schema(
        summary="Change a template",
        description="Workflows made from it earlier keep their own steps.",
        tags=["templates"],
        request=TemplateUpdateInput,
        responses={200: TemplateOutput, 400: ErrorSerializer, 404: ErrorSerializer},
    ),
    delete=extend_schema(
        summary="Delete a template",
        description="Built-in templates are never deleted (409): change their steps instead.",
        tags=["templates"],
        responses={204: None, 404: ErrorSerializer, 409: ErrorSerializer},
    ),
)
class TemplateDetailApi(_TemplateAccess, generics.GenericAPIView):
    serializer_class = TemplateOutput
    queryset = WorkflowTemplate.objects.all()
    lookup_field = "key"

    def get(self, request, key: str):
        return Response(TemplateOutput(self.get_object()).data)

    def patch(self, request, key: str):
        template = self.get_object()
        data = TemplateUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = templates.template_update(template=template, actor=request.user, **data.validated_data)
        return Response(TemplateOutput(template).data)

    def delete(self, request, key: str):
        templates.template_delete(template=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- automation rules ----------------------------------------------------------------------------


class RuleOutput(OutputSerializer):
    class Meta:
        model = AutomationRule
        fields = (
            "id",
            "client",
            *rules.EDITABLE,
            "created_by_label",
            "updated_by_label",
            "fired_count",
            "last_fired_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class RuleFields(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    event_type = serializers.CharField(max_length=32, help_text="A normalized event type, e.g. lead.captured.")
    filters = serializers.DictField(
        required=False,
        help_text='{"source": [...], "service_type": [...], "market": [...], "urgency": [...], '
        '"contact_method": [...], "consent": {"sms": "granted"}}',
    )
    action = serializers.ChoiceField(choices=AutomationRule.Action.choices, required=False)
    workflow = ScopedPrimaryKeyRelatedField(queryset=Workflow.objects.all(), required=False, allow_null=True)
    reenroll = serializers.ChoiceField(choices=AutomationRule.Reenroll.choices, required=False)
    priority = serializers.IntegerField(min_value=0, max_value=32_767, required=False)


class RuleCreateInput(RuleFields):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())


class RuleFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    workflow = IdFilter(field_name="workflow_id")
    event_type = filters.CharFilter()
    is_active = filters.BooleanFilter()

    class Meta:
        model = AutomationRule
        fields = ()


@extend_schema_view(
    get=extend_schema(summary="List automation rules", tags=["rules"]),
    post=extend_schema(
        summary="Create an automation rule",
        tags=["rules"],
        request=RuleCreateInput,
        responses={201: RuleOutput, 400: ErrorSerializer},
    ),
)
class RuleListCreateApi(ScopedMixin, generics.ListAPIView):
    serializer_class = RuleOutput
    filterset_class = RuleFilter

    def get_queryset(self):
        return self.scope.filter(AutomationRule.objects.all())

    def post(self, request):
        data = RuleCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        rule = rules.rule_create(client=fields.pop("client"), actor=request.user, **fields)
        return Response(RuleOutput(rule).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Read an automation rule", tags=["rules"]),
    patch=extend_schema(
        summary="Change an automation rule",
        tags=["rules"],
        request=RuleFields(partial=True),
        responses={200: RuleOutput, 400: ErrorSerializer, 404: ErrorSerializer},
    ),
    delete=extend_schema(
        summary="Delete an automation rule",
        description="The action log keeps what it was; enrollments it made keep their trace.",
        tags=["rules"],
        responses={204: None, 404: ErrorSerializer},
    ),
)
class RuleDetailApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = RuleOutput

    def get_queryset(self):
        return self.scope.filter(AutomationRule.objects.select_related("client"))

    def get(self, request, pk: int):
        return Response(RuleOutput(self.get_object()).data)

    def patch(self, request, pk: int):
        rule = self.get_object()
        data = RuleFields(data=request.data, context={"request": request}, partial=True)
        data.is_valid(raise_exception=True)
        rule = rules.rule_update(rule=rule, actor=request.user, **data.validated_data)
        return Response(RuleOutput(rule).data)

    def delete(self, request, pk: int):
        rules.rule_delete(rule=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleTestInput(serializers.Serializer):
    event = ScopedPrimaryKeyRelatedField(queryset=NormalizedEvent.objects.all(), help_text="A normalized event id.")


class RuleTestOutput(serializers.Serializer):
    fired = serializers.BooleanField(help_text="The event and its lead match the rule.")
    would_enroll = serializers.BooleanField(help_text="…and the re-enrollment policy and the workflow let it act.")
    reasons = serializers.ListField(child=serializers.CharField())


@extend_schema(
    summary="Would this rule fire on that event?",
    description="Judged on the lead as it is now; enrolls no one and writes nothing.",
    tags=["rules"],
    request=RuleTestInput,
    responses={200: RuleTestOutput, 400: ErrorSerializer, 404: ErrorSerializer},
)
class RuleTestApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = RuleTestOutput
    # A dry run writes nothing: a client's own API user may ask it about their rules.
    client_user_writes = ("POST",)

    def get_queryset(self):
        return self.scope.filter(AutomationRule.objects.select_related("workflow"))

    def post(self, request, pk: int):
        rule = self.get_object()
        data = RuleTestInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        verdict = rules.rule_explain(rule=rule, event=data.validated_data["event"])
        return Response(
            RuleTestOutput(
                {"fired": verdict.fired, "would_enroll": verdict.would_enroll, "reasons": verdict.reasons}
            ).data
        )
