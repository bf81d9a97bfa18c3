import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from zartsalgo.models import TimeStampedModel


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. America/Chicago).") from exc


def validate_string_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError('Enter a JSON list of non-empty names, e.g. ["Austin", "Round Rock"].')


class Client(TimeStampedModel):
    """A home-service business the agency works for: the tenant every record belongs to."""

    class Status(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CHURNED = "churned", "Churned"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ONBOARDING)
    time_zone = models.CharField(max_length=64, default="America/Chicago", validators=[validate_time_zone])
    phone_region = models.CharField(
        max_length=2, default="US", help_text="ISO country used to read phone numbers typed without +country code."
    )
    quiet_hours_start = models.TimeField(
        default=datetime.time(21, 0), help_text="Local time after which no SMS/email is sent."
    )
    quiet_hours_end = models.TimeField(default=datetime.time(8, 0), help_text="Local time sends may resume.")
    sends_held = models.BooleanField(
        default=False, help_text="Hold every workflow send for this client; enrollments keep their place."
    )
    sends_held_reason = models.CharField(max_length=300, blank=True)
    review_url = models.URLField(
        max_length=500, blank=True, help_text="Where customers leave a review (Google, Yelp…); {{ client.review_url }}."
    )
    markets = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], help_text="Markets / service areas (a list)."
    )
    service_catalog = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], help_text="Services offered (a list)."
    )
    joined_on = models.DateField(
        default=datetime.date.today, help_text="When the client joined: the baseline for every report."
    )

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["onboarding", "active", "paused", "churned"]),
                name="client_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class LeadSource(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    QUOTE_REQUEST = "quote_request", "Quote request"
    MISSED_CALL = "missed_call", "Missed call"
    PHONE_CALL = "phone_call", "Phone call"
    SMS = "sms", "SMS"
    THUMBTACK = "thumbtack", "Thumbtack"
    ANGI = "angi", "Angi"
    CSV_IMPORT = "csv_import", "CSV import"
    REFERRAL = "referral", "Referral"
    MANUAL = "manual", "Entered by staff"
    OTHER = "other", "Other"


class ContactMethod(models.TextChoices):
    SMS = "sms", "SMS"
    CALL = "call", "Phone call"
    EMAIL = "email", "Email"
    ANY = "any", "Any"


class Urgency(models.TextChoices):
    EMERGENCY = "emergency", "Emergency"
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"


class Lead(TimeStampedModel):
    """One person asking one client for work: the record every event, message and task traces to."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        CONTACTED = "contacted", "Contacted"
        QUOTED = "quoted", "Quoted"
        BOOKED = "booked", "Booked"
        LOST = "lost", "Lost"

    class LostReason(models.TextChoices):
        NO_RESPONSE = "no_response", "No response"
        PRICE = "price", "Price"
        HIRED_OTHER = "hired_other", "Hired someone else"
        OUT_OF_AREA = "out_of_area", "Outside service area"
        SERVICE_NOT_OFFERED = "service_not_offered", "Service not offered"
        NOT_READY = "not_ready", "Not ready / just browsing"
        SPAM = "spam", "Spam or fake"
        DUPLICATE = "duplicate", "Duplicate"
        OTHER = "other", "Other"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="leads")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    full_name = models.CharField(max_length=201, blank=True, editable=False, help_text="Kept for search.")

    # Contact points: raw as received, normalized when it could be read. Dedupe keys on the
    # normalized values per client; unreadable input stays in *_raw with a data-quality flag.
    phone_raw = models.CharField(max_length=64, blank=True)
    phone_e164 = models.CharField(max_length=20, null=True, blank=True, editable=False)
    email_raw = models.CharField(max_length=254, blank=True)
    email_normalized = models.CharField(max_length=254, null=True, blank=True, editable=False)
    postal_code = models.CharField(max_length=12, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state_region = models.CharField("state", max_length=50, blank=True)

    # Normalized lead fields.
    source = models.CharField(max_length=24, choices=LeadSource.choices, default=LeadSource.OTHER)
    source_detail = models.CharField(max_length=200, blank=True, help_text="Form name, campaign, marketplace id…")
    service_type = models.CharField(max_length=100, blank=True)
    contact_method = models.CharField(max_length=8, choices=ContactMethod.choices, default=ContactMethod.ANY)
    market = models.CharField(max_length=100, blank=True)
    urgency = models.CharField(max_length=12, choices=Urgency.choices, default=Urgency.NORMAL)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_leads",
        limit_choices_to={"is_staff": True},
    )

    # Attribution (first touch; later touches are recorded on the timeline when merged).
    utm_source = models.CharField(max_length=200, blank=True)
    utm_medium = models.CharField(max_length=200, blank=True)
    utm_campaign = models.CharField(max_length=200, blank=True)
    utm_term = models.CharField(max_length=200, blank=True)
    utm_content = models.CharField(max_length=200, blank=True)
    gclid = models.CharField("Google click id", max_length=255, blank=True)
    fbclid = models.CharField("Meta click id", max_length=255, blank=True)
    msclkid = models.CharField("Microsoft click id", max_length=255, blank=True)
    tracking_number = models.CharField(max_length=20, blank=True, help_text="Call-tracking number dialled (E.164).")
    landing_page = models.URLField(max_length=1000, blank=True)
    referrer = models.URLField(max_length=1000, blank=True)

    # Pipeline.
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    lost_reason = models.CharField(max_length=24, choices=LostReason.choices, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    next_action = models.CharField(max_length=300, blank=True)
    next_action_due = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(default=timezone.now, help_text="When the first signal for this lead occurred.")
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)

    # Data quality: a list of {"field", "code", "reason", "value"}; the boolean serves the filter.
    tags = models.JSONField(default=list, blank=True, help_text='Labels set by staff or workflows, e.g. "collections".')
    data_quality_flags = models.JSONField(default=list, blank=True, editable=False)
    has_data_quality_issues = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ("-captured_at", "-id")
        constraints = [
            # Dedupe is enforced by the database, per client: two concurrent deliveries for
            # the same person cannot both create a lead.
            models.UniqueConstraint(fields=["client", "phone_e164"], name="lead_unique_phone_per_client"),
            models.UniqueConstraint(fields=["client", "email_normalized"], name="lead_unique_email_per_client"),
            models.CheckConstraint(
                condition=models.Q(status="lost") | models.Q(lost_reason=""),
                name="lead_lost_reason_only_when_lost",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["new", "contacted", "quoted", "booked", "lost"]),
                name="lead_status_valid",
            ),
        ]
        # Every admin filter and sort has an index that starts with it and ends with the
        # default sort (captured_at: when the lead came in, which an import may backdate), so a
        # filtered page is an index range read, not a table scan. Ascending on purpose: InnoDB
        # appends the primary key ascending, so only an ascending index read backwards matches
        # ORDER BY captured_at DESC, id DESC (and serves MIN/MAX); a DESC index forces a
        # filesort (measured: bench/README.md).
        indexes = [
            models.Index(fields=["client", "captured_at"], name="lead_client_captured_idx"),
            models.Index(fields=["status", "captured_at"], name="lead_status_captured_idx"),
            models.Index(fields=["source", "captured_at"], name="lead_source_captured_idx"),
            models.Index(fields=["market", "captured_at"], name="lead_market_captured_idx"),
            models.Index(fields=["urgency", "captured_at"], name="lead_urgency_captured_idx"),
            models.Index(fields=["owner", "captured_at"], name="lead_owner_captured_idx"),
            models.Index(fields=["has_data_quality_issues", "captured_at"], name="lead_dq_captured_idx"),
            models.Index(fields=["client", "status", "captured_at"], name="lead_client_status_idx"),
            models.Index(fields=["status", "urgency", "captured_at"], name="lead_status_urgency_idx"),
            models.Index(fields=["captured_at"], name="lead_captured_idx"),
            models.Index(fields=["phone_e164"], name="lead_phone_idx"),
            models.Index(fields=["email_normalized"], name="lead_email_idx"),
            # Name search (leads.selectors.lead_name_prefix_ids): a prefix range of either index
            # gives (id, captured_at) index-only, so the newest matches are found, sorted and
            # counted without reading a lead row; only the page's rows are then read by id.
            models.Index(fields=["full_name", "captured_at"], name="lead_full_name_captured_idx"),
            models.Index(fields=["last_name", "captured_at"], name="lead_last_name_captured_idx"),
            models.Index(fields=["last_activity_at"], name="lead_last_activity_idx"),
            models.Index(fields=["status_changed_at"], name="lead_status_changed_idx"),
            # Report rollups (leads.rollups): the leads changed since the last refresh, and a
            # client's overdue next actions, counted from this index alone (leads.reports).
            models.Index(fields=["updated_at"], name="lead_updated_idx"),
            models.Index(fields=["client", "status", "next_action_due"], name="lead_client_status_due_idx"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.phone_e164 or self.email_normalized or self.phone_raw or f"Lead {self.pk}"

    def save(self, *args, **kwargs):
        # full_name is derived, kept in a column so name search is one index prefix read.
        self.full_name = f"{self.first_name} {self.last_name}".strip()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and ({"first_name", "last_name"} & set(update_fields)):
            kwargs["update_fields"] = {*update_fields, "full_name"}
        super().save(*args, **kwargs)


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    CALL = "call", "Phone call"


class Consent(TimeStampedModel):
    """The current consent state of one lead on one channel; each change is also on the timeline."""

    class State(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        GRANTED = "granted", "Granted"
        REVOKED = "revoked", "Revoked"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.UNKNOWN)
    changed_at = models.DateTimeField(default=timezone.now)
    evidence = models.CharField(
        max_length=500, help_text='How we know, e.g. "web form checkbox on /quote", "SMS STOP from +1512…".'
    )
    source_activity = models.ForeignKey("Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead", "channel"], name="consent_unique_lead_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.get_state_display()}"


class Activity(models.Model):
    """One entry on a lead's timeline: conversation, calls, notes, status and consent changes."""

    class Kind(models.TextChoices):
        LEAD_CAPTURED = "lead_captured", "Lead captured"
        SMS_INBOUND = "sms_inbound", "SMS received"
        SMS_OUTBOUND = "sms_outbound", "SMS sent"
        EMAIL_INBOUND = "email_inbound", "Email received"
        EMAIL_OUTBOUND = "email_outbound", "Email sent"
        CALL_INBOUND = "call_inbound", "Inbound call"
        CALL_OUTBOUND = "call_outbound", "Outbound call"
        CALL_MISSED = "call_missed", "Missed call"
        NOTE = "note", "Internal note"
        STATUS_CHANGE = "status_change", "Status change"
        CONSENT_CHANGE = "consent_change", "Consent change"
        MERGE = "merge", "Merged signal"
        FIELD_CHANGE = "field_change", "Field change"

    OUTBOUND_RESPONSE_KINDS = frozenset({Kind.SMS_OUTBOUND, Kind.EMAIL_OUTBOUND, Kind.CALL_OUTBOUND})

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="activities")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="activities")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    summary = models.CharField(max_length=300)
    body = models.TextField(blank=True, help_text="Message text, transcript or note. Internal unless marked visible.")
    is_internal = models.BooleanField(
        default=True, help_text="Internal entries never reach the portal. Only staff-approved ones are visible."
    )
    provider = models.CharField(max_length=32, blank=True)
    provider_id = models.CharField(max_length=128, null=True, blank=True, help_text="MessageSid, CallSid, …")
    delivery_status = models.CharField(max_length=32, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Structured detail (internal).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "activities"
        ordering = ("-occurred_at", "-id")
        constraints = [
            # A provider's message/call id appears once per kind on the timeline, so a webhook
            # delivered three times still makes one entry.
            models.UniqueConstraint(fields=["provider", "provider_id", "kind"], name="activity_unique_provider_id"),
        ]
        indexes = [
            models.Index(fields=["lead", "occurred_at"], name="activity_lead_occurred_idx"),
            models.Index(fields=["client", "kind", "occurred_at"], name="activity_client_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary}"

    @property
    def is_provider_made(self) -> bool:
        return bool(self.provider)


# Daily report rollups live in their own module; imported here so Django registers them.
from .models_rollups import LeadDailyRollup, LeadRollupClientState, LeadRollupWatermark  # noqa: E402, F401
