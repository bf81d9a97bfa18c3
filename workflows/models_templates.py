"""Workflow templates as rows: the four built-ins (a data migration loads them from
workflows.templates.TEMPLATES) and any staff add. A template is a starting point only: making a
workflow from one copies its steps into the new workflow's draft (workflows.templates)."""

from __future__ import annotations

from django.db import models

from zartsalgo.models import TimeStampedModel


class WorkflowTemplate(TimeStampedModel):
    key = models.SlugField(max_length=40, unique=True, help_text="Stable name, e.g. new-lead-follow-up.")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # [{"key": "confirm", "kind": "send_sms", "name": "", "config": {...}}, …] in order; each
    # config is checked by workflows.steps.validate_step_config when the template is saved.
    steps = models.JSONField(default=list, blank=True)
    is_builtin = models.BooleanField(default=False, help_text="Shipped with the product; cannot be deleted.")

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name
