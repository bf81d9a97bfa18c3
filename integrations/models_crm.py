"""CRM handoff: which lead fields go to a client's CRM, and one row per lead handed off.

See docs/crm.md. The handoff row is the durable record of the outbound call: it exists (with its
`intended` action-log row) before anything is sent, and its idempotency key is what makes a
repeated send a no-op on the CRM's side.
"""

from __future__ import annotations

from django.db import models

from zartsalgo.models import TimeStampedModel

# The lead fields staff may map to CRM fields. A whitelist, not every model field: internal
# columns (data-quality flags, tags, notes) never leave the building by accident.
# "lead_id" is our primary key, "lead_url" the lead's admin page (for the client's staff to
# click back), both computed in integrations.crm.
LEAD_FIELD_CHOICES: list[tuple[str, str]] = [
    ("lead_id", "Lead id (ZartsAlgo)"),
    ("lead_url", "Lead link (ZartsAlgo admin)"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("full_name", "Full name"),
    ("phone_e164", "Phone (E.164)"),
    ("email_normalized", "Email"),
    ("postal_code", "Postal code"),
    ("city", "City"),
    ("state_region", "State"),
    ("source", "Source"),
    ("source_detail", "Source detail"),
    ("service_type", "Service type"),
    ("contact_method", "Preferred contact method"),
    ("market", "Market"),
    ("urgency", "Urgency"),
    ("status", "Status"),
    ("captured_at", "Captured at (ISO 8601)"),
    ("utm_source", "UTM source"),
    ("utm_medium", "UTM medium"),
    ("utm_campaign", "UTM campaign"),
    ("utm_term", "UTM term"),
    ("utm_content", "UTM content"),
    ("gclid", "Google click id"),
    ("fbclid", "Meta click id"),
    ("msclkid", "Microsoft click id"),
    ("tracking_number", "Tracking number"),
    ("landing_page", "Landing page"),
    ("referrer", "Referrer"),
]


class CrmFieldMapping(models.Model):
    """One lead field → one CRM field of a CRM connection, edited by data ops in the admin.

    A connection without any row uses the provider's default mapping (integrations.crm
    DEFAULT_MAPPINGS), so a new connection works before anyone maps anything.
    """

    connection = models.ForeignKey("integrations.Connection", on_delete=models.CASCADE, related_name="crm_mappings")
    lead_field = models.CharField(max_length=32, choices=LEAD_FIELD_CHOICES)
    crm_field = models.CharField(max_length=100, help_text="The CRM's property/field name, e.g. firstname.")
    position = models.PositiveSmallIntegerField(default=0)
    required = models.BooleanField(
        default=False,
        help_text="A lead without a value for it is not sent: the handoff fails (dead) for a person to settle.",
    )

    class Meta:
        db_table = "integration_crm_field_mappings"
        ordering = ("connection", "position", "id")
        constraints = [
            models.UniqueConstraint(fields=["connection", "crm_field"], name="crm_mapping_unique_crm_field"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_field} → {self.crm_field}"


class CrmHandoff(TimeStampedModel):
    """One request to put a lead into a client's CRM, and what became of it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending (call in flight)"
        SUCCEEDED = "succeeded", "Succeeded"
        RETRYING = "retrying", "Retrying"
        DEAD = "dead", "Dead letter"
        MANUAL = "manual", "Settled by hand"

    OPEN_STATUSES = (Status.PENDING, Status.SENDING, Status.RETRYING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.MANUAL)

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="crm_handoffs")
    lead = models.ForeignKey("leads.Lead", on_delete=models.PROTECT, related_name="crm_handoffs")
    connection = models.ForeignKey("integrations.Connection", on_delete=models.PROTECT, related_name="crm_handoffs")
    # "crm:<connection>:<lead>:<source_key>" (hashed past 255 characters). Also the Standard
    # Webhooks `webhook-id` the CRM dedupes on: the same key on every attempt of this handoff.
    idempotency_key = models.CharField(max_length=255, unique=True)
    source = models.CharField(max_length=32, help_text='Who asked: "workflow", "rule", "manual".')
    source_key = models.CharField(max_length=255, help_text="What made the request unique (step visit, rule event).")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the sweeper looks at the row next: a retry's due time, or, for pending and sending
    # rows, the moment they count as stuck (lost queue message, worker died mid-call).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    crm_id = models.CharField(max_length=255, blank=True, help_text="The CRM's id for the contact, once known.")
    last_error = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="The prepared payload. Internal only.")
    must_reach = models.BooleanField(
        default=False, help_text="If it dies, a staff task with the prepared payload is opened (manual fallback)."
    )
    action = models.ForeignKey(
        "adminops.AdminAction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "integration_crm_handoffs"
        ordering = ("-created_at", "-id")
        indexes = [
            # The sweeper's question: which open rows are due (a retry, or stuck).
            models.Index(fields=["status", "next_attempt_at"], name="crm_handoff_due_idx"),
            # The lead page's question: this lead's handoffs, newest first.
            models.Index(fields=["lead", "created_at"], name="crm_handoff_lead_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sending", "succeeded", "retrying", "dead", "manual"]),
                name="crm_handoff_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"CRM handoff #{self.pk} of lead {self.lead_id} [{self.status}]"
