from django.conf import settings
from django.db import models
from django.utils import timezone

from zartsalgo.models import TimeStampedModel


class ClientUser(TimeStampedModel):
    """Links a portal login to exactly one client. Portal users are never staff."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        VIEWER = "viewer", "Viewer"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_user")
    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="portal_users")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        verbose_name = "client portal user"

    def __str__(self) -> str:
        return f"{self.user.get_username()} → {self.client}"


# --- client-facing proof: summaries, metric cards and the checks that guard them ------------------
#
# Both kinds of proof share one life cycle (portal/services.py owns the transitions):
#
#   draft ──check──▶ checked ──approve──▶ approved ──publish──▶ published ──retract──▶ retracted
#     ▲                 │                    │                                          │
#     └──────edit───────┴────────edit────────┘◀────────────────edit──────────────────────┘
#
# The portal reads only `published` rows, and only their client-safe fields.


class ProofStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    CHECKED = "checked", "Checked"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"
    RETRACTED = "retracted", "Retracted"


class ProofItem(TimeStampedModel):
    """What a summary and a metric card have in common: a client, a period and the approval trail."""

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="+")
    # Calendar days in the client's time zone, both inclusive (portal/selectors.period_bounds).
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=12, choices=ProofStatus.choices, default=ProofStatus.DRAFT)
    drafted_by_label = models.CharField(max_length=150, blank=True)
    # When the client-facing content last changed: a check run older than this no longer vouches for it.
    content_changed_at = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"is_staff": True},
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    publish_override_reason = models.TextField(
        blank=True, help_text="Why it was published although a check failed (required in that case)."
    )
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    retracted_at = models.DateTimeField(null=True, blank=True)
    retracted_reason = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_published(self) -> bool:
        return self.status == ProofStatus.PUBLISHED


def _proof_constraints(prefix: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(condition=models.Q(status__in=ProofStatus.values), name=f"{prefix}_status_valid"),
        models.CheckConstraint(
            condition=models.Q(period_end__gte=models.F("period_start")), name=f"{prefix}_period_ordered"
        ),
        # Anything past `checked` was approved by a named person; the database refuses otherwise.
        models.CheckConstraint(
            condition=models.Q(status__in=[ProofStatus.DRAFT, ProofStatus.CHECKED])
            | models.Q(approved_by__isnull=False),
            name=f"{prefix}_approved_by_named",
        ),
    ]


class Summary(ProofItem):
    """A written account of a period's results for one client."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Client-safe text: exactly what the portal shows.")
    internal_draft = models.TextField(
        blank=True, help_text="Internal only (an AI model's draft, working notes). Never shown in the portal."
    )
    summarizer = models.CharField(max_length=200, blank=True, help_text="Which summarizer drafted it.")
    evidence = models.JSONField(default=dict, blank=True, help_text="Internal: the numbers the draft was built from.")

    class Meta:
        verbose_name_plural = "summaries"
        ordering = ("-period_end", "-id")
        constraints = _proof_constraints("summary")
        # The portal's one question: this client's published items, newest period first.
        indexes = [models.Index(fields=["client", "status", "period_end"], name="summary_client_status_idx")]

    def __str__(self) -> str:
        return self.title


class MetricCard(ProofItem):
    """One number for one period, with its baseline, how it is going and what happens next."""

    class Health(models.TextChoices):
        ON_TRACK = "on_track", "On track"
        WATCH = "watch", "Watch"
        OFF_TRACK = "off_track", "Off track"

    class Unit(models.TextChoices):
        LEADS = "leads", "leads"
        MINUTES = "minutes", "minutes"
        PERCENT = "percent", "%"
        # Search Console cards (portal/search_console_cards.py). The value is shown after the
        # number ("17 clicks"), so it is a word a client reads.
        CLICKS = "clicks", "clicks"
        IMPRESSIONS = "impressions", "impressions"
        POSITION = "position", "position"

    source_label = models.CharField(
        max_length=120, help_text='Where the number comes from, e.g. "Leads (all sources)".'
    )
    connection = models.ForeignKey(
        "integrations.Connection",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The provider whose freshness governs this card (stale → the card says so).",
    )
    metric_key = models.CharField(max_length=64)
    metric_label = models.CharField(max_length=120)
    unit = models.CharField(max_length=12, choices=Unit.choices)
    baseline_value = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Before the client joined (same length)."
    )
    current_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    health = models.CharField("status", max_length=12, choices=Health.choices, default=Health.WATCH)
    next_action = models.CharField(max_length=300, blank=True)
    meaning = models.TextField(blank=True, help_text="Client-facing: what this number means.")
    internal_notes = models.TextField(blank=True, help_text="Internal only. Never shown in the portal.")
    evidence = models.JSONField(default=dict, blank=True, help_text="Internal: how the value was computed.")

    class Meta:
        ordering = ("-period_end", "metric_key", "-id")
        constraints = _proof_constraints("metric_card")
        indexes = [models.Index(fields=["client", "status", "period_end"], name="metric_card_client_status_idx")]

    def __str__(self) -> str:
        return f"{self.metric_label} · {self.source_label} ({self.period_start:%b %-d} to {self.period_end:%b %-d, %Y})"


class CheckStatus(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"


class CheckRun(models.Model):
    """One run of every data-quality check for one summary or card. Internal only."""

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="+")
    summary = models.ForeignKey(Summary, null=True, blank=True, on_delete=models.CASCADE, related_name="check_runs")
    card = models.ForeignKey(MetricCard, null=True, blank=True, on_delete=models.CASCADE, related_name="check_runs")
    period_start = models.DateField()
    period_end = models.DateField()
    ran_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ran_by_label = models.CharField(max_length=150)
    ran_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=8, choices=CheckStatus.choices)

    class Meta:
        ordering = ("-ran_at", "-id")
        constraints = [
            # Exactly one subject: a run vouches for one summary or one card.
            models.CheckConstraint(
                condition=(models.Q(summary__isnull=False) & models.Q(card__isnull=True))
                | (models.Q(summary__isnull=True) & models.Q(card__isnull=False)),
                name="check_run_one_subject",
            ),
            models.CheckConstraint(condition=models.Q(status__in=CheckStatus.values), name="check_run_status_valid"),
        ]
        # "The latest run for this subject" is what publish asks.
        indexes = [
            models.Index(fields=["summary", "ran_at"], name="check_run_summary_idx"),
            models.Index(fields=["card", "ran_at"], name="check_run_card_idx"),
        ]

    def __str__(self) -> str:
        return f"Checks #{self.pk} {self.status} @ {self.ran_at:%Y-%m-%d %H:%M}"

    @property
    def subject(self):
        return self.summary if self.summary_id else self.card


class CheckResult(models.Model):
    """One check's verdict inside a run, with readable reasons and the lead/event ids involved."""

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    check_key = models.CharField(max_length=40)
    name = models.CharField(max_length=120)
    status = models.CharField(max_length=8, choices=CheckStatus.choices)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("run", "id")
        constraints = [
            models.UniqueConstraint(fields=["run", "check_key"], name="check_result_unique_key_per_run"),
            models.CheckConstraint(condition=models.Q(status__in=CheckStatus.values), name="check_result_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"
