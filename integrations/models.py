"""The receiving pipeline's tables. The five event tables keep the names DESIGN.md fixes."""

import os
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from zartsalgo.models import TimeStampedModel


def new_webhook_token() -> str:
    return secrets.token_urlsafe(24)


class CredentialMissing(LookupError):
    """A connection names a secret that the environment does not hold."""


class Connection(TimeStampedModel):
    """One client's link to one provider: who owns it, why, and how to reach its secrets."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CONNECTED = "connected", "Connected"
        PAUSED = "paused", "Paused"
        ERROR = "error", "Error"
        UNCERTAIN = "uncertain", "Uncertain (processing held)"

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="connections")
    provider = models.CharField(max_length=32)
    name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=500, blank=True, help_text="Why it is paused, in error or uncertain.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="connections"
    )
    reason = models.CharField(max_length=500, help_text="Why this connection exists (what it brings the client).")
    webhook_token = models.CharField(max_length=64, unique=True, default=new_webhook_token, editable=False)
    # Secrets never live in the database: each entry maps a name the adapter asks for
    # ("auth_token", "public_key", …) to "env:VARIABLE_NAME".
    credentials = models.JSONField(default=dict, blank=True, help_text='e.g. {"auth_token": "env:TWILIO_AUTH_TOKEN"}')
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret adapter settings.")
    expected_freshness = models.DurationField(
        default=timedelta(days=2), help_text="How long silence is normal before the connection counts as stale."
    )
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    stale_since = models.DateTimeField(
        null=True, blank=True, help_text="Set by the freshness check; cleared by the next delivery."
    )

    class Meta:
        db_table = "integration_connections"
        ordering = ("client__name", "provider")
        indexes = [models.Index(fields=["provider", "status"], name="connection_provider_status_idx")]

    def __str__(self) -> str:
        return f"{self.client} · {self.provider}" + (f" ({self.name})" if self.name else "")

    def secret(self, name: str) -> str:
        ref = (self.credentials or {}).get(name, "")
        if not ref.startswith("env:"):
            raise CredentialMissing(f"Connection {self.pk} has no env reference for {name!r}")
        value = os.environ.get(ref[4:], "")
        if not value:
            raise CredentialMissing(f"Environment variable {ref[4:]} (for {name!r}) is not set")
        return value

    @property
    def is_stale(self) -> bool:
        if self.status not in (self.Status.CONNECTED, self.Status.UNCERTAIN):
            return False
        reference = self.last_event_at or self.created_at
        return reference is not None and timezone.now() - reference > self.expected_freshness

    @property
    def holds_processing(self) -> bool:
        return self.status in (self.Status.PAUSED, self.Status.UNCERTAIN)


class WebhookEvent(models.Model):
    """One HTTP delivery, whatever became of it. Written for rejected deliveries too."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DUPLICATE = "duplicate", "Duplicate"
        REJECTED_SIGNATURE = "rejected_signature", "Rejected: signature"
        REJECTED_MALFORMED = "rejected_malformed", "Rejected: malformed"
        REJECTED_CONTENT_TYPE = "rejected_content_type", "Rejected: content type"
        REJECTED_TOO_LARGE = "rejected_too_large", "Rejected: too large"
        UNKNOWN_CONNECTION = "unknown_connection", "Unknown connection"
        UNKNOWN_PROVIDER = "unknown_provider", "Unknown provider"
        PAUSED = "paused", "Stored, processing held"

    class Signature(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"
        MISSING = "missing", "Missing"
        NOT_CHECKED = "not_checked", "Not checked"
        UNVERIFIABLE = "unverifiable", "Unverifiable (credential missing)"

    provider = models.CharField(max_length=32)
    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="receipts")
    received_at = models.DateTimeField(default=timezone.now)
    content_type = models.CharField(max_length=100, blank=True)
    body_sha256 = models.CharField(max_length=64, blank=True)
    body_size = models.PositiveIntegerField(default=0)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    signature = models.CharField(max_length=16, choices=Signature.choices, default=Signature.NOT_CHECKED)
    outcome = models.CharField(max_length=24, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=500, blank=True)
    events_count = models.PositiveIntegerField(default=0)
    duplicates_count = models.PositiveIntegerField(default=0)
    # The raw events of a delivery point here (RawEvent.receipt); no link back, so storing a
    # delivery is INSERTs only.

    class Meta:
        db_table = "event_webhook_events"
        ordering = ("-received_at", "-id")
        indexes = [
            models.Index(fields=["connection", "received_at"], name="receipt_connection_idx"),
            models.Index(fields=["outcome", "received_at"], name="receipt_outcome_idx"),
            models.Index(fields=["received_at"], name="receipt_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} delivery {self.pk}: {self.outcome}"


class RawEvent(models.Model):
    """One unique provider event as received. Internal only: the portal never reads it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        HELD = "held", "Held (connection uncertain or paused)"
        NORMALIZED = "normalized", "Normalized"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Dead letter"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="raw_events")
    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="raw_events")
    provider = models.CharField(max_length=32)
    receipt = models.ForeignKey(
        WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="raw_events"
    )
    idempotency_key = models.CharField(max_length=255)
    kind = models.CharField(max_length=64, help_text="The provider's own event kind, as the adapter read it.")
    payload = models.JSONField(help_text="The event as received. Staff with 'view raw payload' only.")
    summary = models.CharField(max_length=300, help_text="Redacted, for diagnosis.")
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "integration_raw_events"
        ordering = ("-received_at", "-id")
        permissions = [("view_raw_payload", "Can view full raw provider payloads")]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "idempotency_key"], name="raw_event_unique_key_per_connection"
            )
        ]
        indexes = [
            # The sweeper's two questions: what is stuck in received, what is due a retry.
            models.Index(fields=["status", "next_attempt_at"], name="raw_status_next_attempt_idx"),
            models.Index(fields=["status", "received_at"], name="raw_status_received_idx"),
            models.Index(fields=["connection", "received_at"], name="raw_connection_received_idx"),
            models.Index(fields=["client", "received_at"], name="raw_client_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.kind} {self.summary}"


class EventType(models.TextChoices):
    LEAD_CAPTURED = "lead.captured", "Lead captured"
    QUOTE_REQUESTED = "quote.requested", "Quote requested"
    CALL_MISSED = "call.missed", "Call missed"
    CALL_COMPLETED = "call.completed", "Call completed"
    SMS_RECEIVED = "sms.received", "SMS received"
    SMS_STATUS = "sms.status", "SMS status"
    EMAIL_EVENT = "email.event", "Email event"
    CONTACT_OPTED_OUT = "contact.opted_out", "Contact opted out"
    CONTACT_OPTED_IN = "contact.opted_in", "Contact opted in"
    CONTACT_HELP = "contact.help", "Contact asked for help"
    JOB_BOOKED = "job.booked", "Job booked"
    INVOICE_CREATED = "invoice.created", "Invoice created"
    INVOICE_PAID = "invoice.paid", "Invoice paid"
    INVOICE_UPDATED = "invoice.updated", "Invoice updated"
    IMPORT_COMPLETED = "import.completed", "Import completed"
    METRIC_OBSERVED = "metric.observed", "Metric observed"
    CRM_HANDOFF = "crm.handoff", "CRM handoff"


class NormalizedEvent(models.Model):
    """A business event in our vocabulary, traced to the raw event it came from."""

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="normalized_events")
    lead = models.ForeignKey(
        "leads.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="normalized_events"
    )
    raw_event = models.ForeignKey(RawEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="normalized")
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=255, unique=True)
    applied_consumers = models.JSONField(default=list, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "integration_normalized_events"
        ordering = ("-occurred_at", "-id")
        indexes = [
            models.Index(fields=["client", "event_type", "occurred_at"], name="normalized_client_type_idx"),
            models.Index(fields=["lead", "occurred_at"], name="normalized_lead_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(event_type__in=EventType.values), name="normalized_event_type_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class SyncError(TimeStampedModel):
    """A failure at any stage, kept with its traceback until a person or a retry settles it."""

    class Stage(models.TextChoices):
        VERIFY = "verify", "Verify"
        NORMALIZE = "normalize", "Normalize"
        APPLY = "apply", "Apply"
        OUTBOUND = "outbound", "Outbound"
        SYNC = "sync", "Sync"
        IMPORT = "import", "Import"

    class State(models.TextChoices):
        RETRYING = "retrying", "Retrying"
        DEAD = "dead", "Dead"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="errors")
    client = models.ForeignKey("leads.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    raw_event = models.ForeignKey(RawEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="errors")
    # Outbound CRM handoffs fail into the same review as inbound events (docs/crm.md).
    crm_handoff = models.ForeignKey(
        "integrations.CrmHandoff", null=True, blank=True, on_delete=models.PROTECT, related_name="errors"
    )
    stage = models.CharField(max_length=12, choices=Stage.choices)
    error = models.TextField()
    traceback = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RETRYING)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "integration_sync_errors"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["state", "created_at"], name="sync_error_state_idx"),
            models.Index(fields=["connection", "state"], name="sync_error_connection_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} error #{self.pk} [{self.state}]"

    @property
    def review_status(self) -> str:
        """Hookdeck-style status for people: open → acknowledged → resolved / ignored."""
        if self.state in (self.State.RESOLVED, self.State.IGNORED):
            return self.state
        return "acknowledged" if self.acknowledged_at else "open"


from .models_crm import CrmFieldMapping, CrmHandoff  # noqa: E402, F401
from .models_imports import ImportJob  # noqa: E402, F401
