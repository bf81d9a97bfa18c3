"""Workflow definitions, the versions enrollments pin, enrollments, their execution history, the
outbound messages they send and the staff tasks they create (docs/workflows.md).

A workflow is edited as a draft version; publishing freezes that version's steps. An enrollment
runs the version it enrolled under to the end, so editing a live workflow only affects new
enrollments (HighLevel's and HubSpot's most common complaint, designed out).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from leads.models import Client, Lead
from zartsalgo.models import TimeStampedModel


class Workflow(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft (never published)"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused (no new enrollments)"
        ARCHIVED = "archived", "Archived"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_version = models.ForeignKey(
        "WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="New enrollments run this version.",
    )
    sends_held = models.BooleanField(
        default=False, help_text="Hold every send of this workflow; enrollments keep their place."
    )
    sends_held_reason = models.CharField(max_length=300, blank=True)
    template_key = models.CharField(max_length=40, blank=True, help_text="Built-in template it was made from.")

    class Meta:
        ordering = ("client", "name")
        constraints = [models.UniqueConstraint(fields=["client", "name"], name="workflow_unique_name_per_client")]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_by_label = models.CharField(max_length=150, blank=True)
    notes = models.CharField(max_length=300, blank=True, help_text="What changed in this version.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("workflow", "-number")
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="version_unique_number")]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}{'' if self.published_at else ' (draft)'}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class Step(models.Model):
    class Kind(models.TextChoices):
        SEND_SMS = "send_sms", "Send SMS"
        SEND_EMAIL = "send_email", "Send email"
        DELAY = "delay", "Delay"
        WAIT_FOR_EVENT = "wait_for_event", "Wait for an event"
        BRANCH = "branch", "Branch"
        CREATE_TASK = "create_task", "Create staff task"
        UPDATE_LEAD = "update_lead", "Update lead"
        CRM_HANDOFF = "crm_handoff", "CRM handoff"
        EXIT = "exit", "Exit"

    SENDS = frozenset({Kind.SEND_SMS, Kind.SEND_EMAIL})

    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(max_length=40, help_text="Stable name; branches point at it. Kept across versions.")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=120, blank=True)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("version", "position", "id")
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="step_unique_key_per_version")]

    def __str__(self) -> str:
        return f"{self.position + 1}. {self.name or self.get_kind_display()}"


class Enrollment(TimeStampedModel):
    class State(models.TextChoices):
        ACTIVE = "active", "Active (a step is due)"
        WAITING = "waiting", "Waiting for an event"
        HELD = "held", "Held for review"
        COMPLETED = "completed", "Completed"
        EXITED = "exited", "Exited"
        FAILED = "failed", "Failed"

    class ExitReason(models.TextChoices):
        JOB_BOOKED = "job_booked", "Job booked"
        INVOICE_PAID = "invoice_paid", "Invoice paid"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        LEAD_LOST = "lead_lost", "Lead lost"
        UNENROLLED = "unenrolled", "Unenrolled by staff"
        EXIT_STEP = "exit_step", "Reached an exit step"
        ERROR = "error", "Error"

    LIVE_STATES = frozenset({State.ACTIVE, State.WAITING, State.HELD})

    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="enrollments")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="enrollments")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="enrollments")
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="enrollments")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    step_key = models.SlugField(max_length=40, blank=True, help_text="The step to run next (empty: at the end).")
    visit = models.PositiveIntegerField(default=0, help_text="Steps executed so far; part of every send's key.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    waiting_for = models.CharField(max_length=32, blank=True, help_text="Event a wait step is waiting for.")
    hold_reason = models.CharField(max_length=300, blank=True)
    hold_kind = models.CharField(
        max_length=12,
        choices=[
            ("switch", "A client or workflow send hold"),
            ("channel", "The provider connection is not usable"),
            ("send_unknown", "A send's outcome is unknown (a person decides)"),
        ],
        blank=True,
    )
    held_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices, blank=True)
    exit_detail = models.CharField(max_length=300, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enrolled_by_label = models.CharField(max_length=150, blank=True)
    source_event = models.ForeignKey(
        "integrations.NormalizedEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The lead's id while the enrollment is live, NULL once it is finished: UNIQUE with the
    # workflow, it lets the database refuse a second live enrollment of one lead (MariaDB has
    # no partial unique indexes; NULLs never collide).
    live_lead_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["workflow", "live_lead_id"], name="enrollment_one_live_per_lead"),
            models.CheckConstraint(
                condition=Q(live_lead_id__isnull=True, state__in=["completed", "exited", "failed"])
                | Q(live_lead_id__isnull=False, state__in=["active", "waiting", "held"]),
                name="enrollment_live_lead_matches_state",
            ),
        ]
        indexes = [
            # The scheduler's one question: what is due now. Its cost follows the due rows.
            models.Index(fields=["state", "next_run_at"], name="enrollment_due_idx"),
            models.Index(fields=["lead", "state"], name="enrollment_lead_state_idx"),
            models.Index(fields=["workflow", "state"], name="enrollment_workflow_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} in {self.workflow} ({self.state})"


class StepRun(models.Model):
    """One execution of one step for one enrollment: the execution history."""

    class State(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        DEFERRED = "deferred", "Deferred (quiet hours)"
        WAITING = "waiting", "Waiting"
        SKIPPED = "skipped", "Skipped"
        HELD = "held", "Held"
        UNKNOWN = "unknown", "Outcome unknown"
        FAILED = "failed", "Failed"

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="step_runs")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    step_key = models.SlugField(max_length=40)
    step_kind = models.CharField(max_length=16, choices=Step.Kind.choices)
    visit = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="Internal.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-started_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "step_key", "visit"], name="step_run_unique_visit")
        ]
        indexes = [models.Index(fields=["started_at"], name="step_run_started_idx")]

    def __str__(self) -> str:
        return f"{self.step_key} #{self.visit}: {self.state}"


class OutboundMessage(TimeStampedModel):
    """A message we send: its row and the action log's `intended` row commit before the provider
    is called, so a retried task finds them and never sends twice (docs/workflows.md)."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Email"

    class Status(models.TextChoices):
        INTENDED = "intended", "Intended (not sent yet)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (not sent)"
        UNKNOWN = "unknown", "Outcome unknown (held for review)"
        SKIPPED = "skipped", "Skipped"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="outbound_messages")
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="outbound_messages")
    enrollment = models.ForeignKey(
        Enrollment, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    step_key = models.SlugField(max_length=40, blank=True)
    visit = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=120, unique=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    to = models.CharField(max_length=254)
    from_address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.INTENDED)
    provider = models.CharField(max_length=32, blank=True)
    provider_id = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    action = models.ForeignKey(
        "adminops.AdminAction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activity = models.ForeignKey("leads.Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["status", "created_at"], name="outbound_status_idx"),
            models.Index(fields=["lead", "created_at"], name="outbound_lead_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to}: {self.status}"


class StaffTask(TimeStampedModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="staff_tasks")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.PROTECT, related_name="staff_tasks")
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    idempotency_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="staff_tasks"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("status", "due_at", "id")
        indexes = [models.Index(fields=["assignee", "status", "due_at"], name="task_assignee_idx")]

    def __str__(self) -> str:
        return self.title


# Models kept in their own modules (one topic per file); imported here so Django sees them.
from .models_rules import AutomationRule  # noqa: E402, F401
from .models_templates import WorkflowTemplate  # noqa: E402, F401
