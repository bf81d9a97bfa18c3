"""Automation rules (the product definition's "Smart Automation"): when a normalized event of a
type arrives for a lead that matches the filters, enroll it in a workflow, or hand it to the
client's CRM. Owned by data ops: who made and changed each rule is on the row and in the action
log (every change is an `event_admin_actions` entry with the before/after values).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from leads.models import Client
from zartsalgo.models import TimeStampedModel


class AutomationRule(TimeStampedModel):
    class Action(models.TextChoices):
        ENROLL = "enroll", "Enroll in a workflow"
        CRM_HANDOFF = "crm_handoff", "Hand off to the client's CRM"

    class Reenroll(models.TextChoices):
        NEVER = "never", "Never (a lead enrolls once, ever)"
        AFTER_ENDED = "after_ended", "After the previous enrollment ended"
        ALWAYS = "always", "Always (a new enrollment whenever the previous one is not live)"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="automation_rules")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(
        default=True, help_text="Inactive rules are kept (with their history) but never fire."
    )
    event_type = models.CharField(
        max_length=32, help_text="The normalized event type that triggers the rule (e.g. lead.captured)."
    )
    # {"source": [...], "service_type": [...], "market": [...], "urgency": [...], "consent": {"sms": "granted"}}:
    # each key narrows the rule; a missing key or empty list matches everything. Validated by
    # workflows.rules.validate_filters, which names the field that is wrong.
    filters = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=12, choices=Action.choices, default=Action.ENROLL)
    workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.PROTECT, related_name="rules"
    )
    reenroll = models.CharField(max_length=12, choices=Reenroll.choices, default=Reenroll.AFTER_ENDED)
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower runs first when several rules fire.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by_label = models.CharField(max_length=150, blank=True)
    fired_count = models.PositiveIntegerField(default=0, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("client", "priority", "id")
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="rule_unique_name_per_client"),
            models.CheckConstraint(
                condition=~models.Q(action="enroll") | models.Q(workflow__isnull=False),
                name="rule_enroll_needs_workflow",
            ),
        ]
        indexes = [
            # The consumer's one question per event: the active rules of this client for this type.
            models.Index(fields=["client", "event_type", "is_active"], name="rule_client_event_idx"),
        ]

    def __str__(self) -> str:
        return self.name
