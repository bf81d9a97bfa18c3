from django.conf import settings
from django.db import models
from django.utils import timezone

from zartsalgo.models import TimeStampedModel


class AdminAction(TimeStampedModel):
    """One internal log entry: something the system or a staff user is about to do, or did.

    Written *before* a message is sent, a CRM payload created or a portal note published, then
    moved to its outcome. A row left `intended` means the process died in between; the sweeper
    turns it `unknown` and a person decides — it is never silently re-run.
    """

    class State(models.TextChoices):
        INTENDED = "intended", "Intended"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown outcome"

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="admin_actions",
        help_text="The staff user who acted, if a person did.",
    )
    actor_label = models.CharField(
        max_length=150,
        help_text='Who acted, kept even if the user is deleted: "user:alice" or "system:ingest".',
    )
    verb = models.CharField(max_length=64, help_text='What was done, e.g. "lead.status_change", "sms.send".')
    client = models.ForeignKey(
        "leads.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="admin_actions"
    )
    lead = models.ForeignKey(
        "leads.Lead", null=True, blank=True, on_delete=models.PROTECT, related_name="admin_actions"
    )
    target_type = models.CharField(max_length=100, blank=True, help_text='"app_label.model" of the object acted on.')
    target_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INTENDED)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True, help_text="Internal detail. Never shown to clients.")
    error = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "event_admin_actions"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["state", "created_at"], name="action_state_created_idx"),
            models.Index(fields=["client", "created_at"], name="action_client_created_idx"),
            models.Index(fields=["lead", "created_at"], name="action_lead_created_idx"),
            models.Index(fields=["verb", "created_at"], name="action_verb_created_idx"),
            models.Index(fields=["target_type", "target_id"], name="action_target_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["intended", "succeeded", "failed", "unknown"]),
                name="action_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verb} by {self.actor_label} [{self.state}]"


class Incident(TimeStampedModel):
    """Something is going wrong for one or more clients, and a named person owns it.

    The owner and the rollback path are required when it opens: the product principle is that
    both are visible before automation runs at scale, not worked out in the middle of an outage.
    Every change goes through adminops.services (incident_*) and leaves a timeline entry and an
    action-log row with its actor.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        INVESTIGATING = "investigating", "Investigating"
        MITIGATED = "mitigated", "Mitigated (impact stopped, not closed)"
        CLOSED = "closed", "Closed"

    class Severity(models.TextChoices):
        SEV1 = "sev1", "SEV1 · critical: clients losing leads or messages now"
        SEV2 = "sev2", "SEV2 · major: a client or provider degraded"
        SEV3 = "sev3", "SEV3 · minor: a workaround exists"
        SEV4 = "sev4", "SEV4 · low: cosmetic or internal"

    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_incidents",
        help_text="The staff member who drives it to closed.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SEV3)
    summary = models.TextField(blank=True, help_text="What is happening and who notices it.")
    rollback_path = models.TextField(
        help_text="How to undo or switch off what caused it: which hold, which connection to pause, which "
        "workflow version to go back to."
    )
    # String references, no imports: adminops stays a leaf the other layers can import.
    affected_clients = models.ManyToManyField("leads.Client", blank=True, related_name="incidents")
    affected_connections = models.ManyToManyField("integrations.Connection", blank=True, related_name="incidents")
    affected_workflows = models.ManyToManyField("workflows.Workflow", blank=True, related_name="incidents")
    sends_held = models.BooleanField(default=False, help_text="The incident holds sends it placed (see holds placed).")
    # Exactly the holds this incident switched on, so releasing them never clears a hold someone
    # else placed: [{"type": "client"|"workflow", "id", "label", "placed_at", "released_at", "note"}].
    holds_placed = models.JSONField(default=list, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    opened_by_label = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_label = models.CharField(max_length=150, blank=True)
    resolution = models.TextField(blank=True, help_text="On close: what was done, and what stops it recurring.")

    class Meta:
        db_table = "adminops_incidents"
        ordering = ("-opened_at", "-id")
        indexes = [models.Index(fields=["status", "opened_at"], name="incident_status_opened_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "investigating", "mitigated", "closed"]),
                name="incident_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=["sev1", "sev2", "sev3", "sev4"]), name="incident_severity_valid"
            ),
            # A closed incident always says when and what was done.
            models.CheckConstraint(
                condition=~models.Q(status="closed") | (models.Q(closed_at__isnull=False) & ~models.Q(resolution="")),
                name="incident_closed_has_resolution",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} [{self.severity}, {self.status}]"

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.CLOSED


class IncidentEntry(models.Model):
    """One line of an incident's timeline: opened, a status change, a note, a hold, closed."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        STATUS = "status", "Status change"
        NOTE = "note", "Note"
        OWNER = "owner", "Owner change"
        HOLD = "hold", "Sends held"
        RELEASE = "release", "Sends released"
        CLOSED = "closed", "Closed"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    message = models.TextField()
    detail = models.JSONField(default=dict, blank=True)
    action = models.ForeignKey(AdminAction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "adminops_incident_entries"
        ordering = ("incident", "created_at", "id")
        verbose_name_plural = "incident entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"


class Heartbeat(models.Model):
    """The last time a periodic task ran, by name. A database row rather than a cache key so the
    ops status page can read it without Redis (the embedded `make run`) and after a Redis flush."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        db_table = "adminops_heartbeats"

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"
