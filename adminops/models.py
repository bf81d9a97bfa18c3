from django.conf import settings
from django.db import models

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
