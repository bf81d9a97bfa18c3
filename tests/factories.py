"""factory_boy factories for every model. Leads built here bypass dedupe on purpose: tests of
dedupe call leads.services.lead_upsert instead."""

import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from adminops.models import AdminAction
from adminops.roles import DATA_OPS_GROUP
from leads.models import Activity, Channel, Client, Consent, Lead, LeadSource
from portal.models import ClientUser


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-test-123456")


class DataOpsUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"dataops{n}")
    is_staff = True

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create:
            self.groups.add(Group.objects.get(name=DATA_OPS_GROUP))


class EngineerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"engineer{n}")
    is_staff = True
    is_superuser = True


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    name = factory.Sequence(lambda n: f"Client {n} Plumbing")
    slug = factory.Sequence(lambda n: f"client-{n}")
    status = Client.Status.ACTIVE
    time_zone = "America/Chicago"
    markets = factory.LazyFunction(lambda: ["Austin", "Round Rock"])
    service_catalog = factory.LazyFunction(lambda: ["Drain cleaning", "Water heater"])
    joined_on = factory.LazyFunction(lambda: datetime.date.today() - datetime.timedelta(days=90))


class ClientUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClientUser

    user = factory.SubFactory(UserFactory)
    client = factory.SubFactory(ClientFactory)


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    client = factory.SubFactory(ClientFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    phone_raw = factory.Sequence(lambda n: f"+1512555{n % 10000:04d}")
    phone_e164 = factory.LazyAttribute(lambda o: o.phone_raw)
    email_raw = factory.LazyAttribute(lambda o: f"{o.first_name}.{o.last_name}{o.phone_raw[-4:]}@example.com".lower())
    email_normalized = factory.LazyAttribute(lambda o: o.email_raw)
    source = LeadSource.WEB_FORM
    market = "Austin"
    captured_at = factory.LazyFunction(timezone.now)


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    lead = factory.SubFactory(LeadFactory)
    client = factory.LazyAttribute(lambda o: o.lead.client)
    kind = Activity.Kind.NOTE
    summary = "Called back, left voicemail"
    actor_label = "system:test"


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    lead = factory.SubFactory(LeadFactory)
    channel = Channel.SMS
    state = Consent.State.GRANTED
    evidence = "TCPA checkbox on /quote"


class AdminActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AdminAction

    actor_label = "system:test"
    verb = "test.verb"
    summary = "Something was done"
    lead = factory.SubFactory(LeadFactory)
    client = factory.LazyAttribute(lambda o: o.lead.client if o.lead else None)


# --- integrations --------------------------------------------------------------------------------
from integrations.models import Connection, NormalizedEvent, RawEvent, SyncError, WebhookEvent  # noqa: E402


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    client = factory.SubFactory(ClientFactory)
    provider = "webform"
    status = Connection.Status.CONNECTED
    reason = "Quote form on the client's site"


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    connection = factory.SubFactory(ConnectionFactory)
    provider = factory.LazyAttribute(lambda o: o.connection.provider)
    outcome = WebhookEvent.Outcome.ACCEPTED
    http_status = 200
    events_count = 1


class RawEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RawEvent

    connection = factory.SubFactory(ConnectionFactory)
    client = factory.LazyAttribute(lambda o: o.connection.client)
    provider = factory.LazyAttribute(lambda o: o.connection.provider)
    idempotency_key = factory.Sequence(lambda n: f"msg_{n}")
    kind = "quote.requested"
    payload = factory.LazyFunction(lambda: {"type": "quote.requested", "contact": {"phone": "+15125550143"}})
    summary = "Free estimate (quote.requested) from +1•••0143"


class NormalizedEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NormalizedEvent

    raw_event = factory.SubFactory(RawEventFactory)
    client = factory.LazyAttribute(lambda o: o.raw_event.client)
    event_type = "quote.requested"
    occurred_at = factory.LazyFunction(timezone.now)
    idempotency_key = factory.Sequence(lambda n: f"webform:1:msg_{n}")


class SyncErrorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncError

    raw_event = factory.SubFactory(RawEventFactory)
    connection = factory.LazyAttribute(lambda o: o.raw_event.connection)
    client = factory.LazyAttribute(lambda o: o.raw_event.client)
    stage = SyncError.Stage.APPLY
    error = "RuntimeError: downstream unavailable"
    state = SyncError.State.DEAD


from integrations.models_imports import ImportJob  # noqa: E402


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportJob

    client = factory.SubFactory(ClientFactory)
    connection = factory.SubFactory(
        ConnectionFactory, client=factory.SelfAttribute("..client"), provider="csv_import", reason="Manual CSV import"
    )
    file = "imports/2026/11/leads.csv"  # a name only: admin pages never open it
    original_name = "leads.csv"
    sha256 = "0" * 64
    size = 1024
    status = ImportJob.Status.COMPLETED


# --- adminops: incidents ---------------------------------------------------------------------------
from adminops.models import Incident  # noqa: E402


class IncidentFactory(factory.django.DjangoModelFactory):
    """A bare row (no timeline, no holds): tests of the lifecycle call adminops.services."""

    class Meta:
        model = Incident
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Twilio delivery failures {n}")
    owner = factory.SubFactory(DataOpsUserFactory)
    severity = Incident.Severity.SEV2
    rollback_path = "Hold the client's sends; pause the Twilio connection."
    opened_by_label = "system:test"

    @factory.post_generation
    def affected_clients(self, create, extracted, **kwargs):
        if create and extracted:
            self.affected_clients.set(extracted)


# --- portal: client-facing proof ---------------------------------------------------------------------
from portal.models import CheckResult, CheckRun, MetricCard, Summary  # noqa: E402


class SummaryFactory(factory.django.DjangoModelFactory):
    """A bare draft row; tests of the life cycle call portal.services."""

    class Meta:
        model = Summary

    client = factory.SubFactory(ClientFactory)
    period_start = factory.LazyFunction(lambda: datetime.date.today() - datetime.timedelta(days=30))
    period_end = factory.LazyFunction(datetime.date.today)
    title = "Results for the last 30 days"
    body = "You received 12 new leads."
    internal_draft = "INTERNAL: model draft, not for the client"
    summarizer = "deterministic"


class MetricCardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricCard

    client = factory.SubFactory(ClientFactory)
    period_start = factory.LazyFunction(lambda: datetime.date.today() - datetime.timedelta(days=30))
    period_end = factory.LazyFunction(datetime.date.today)
    source_label = "Leads (all sources)"
    metric_key = "leads_captured"
    metric_label = "Leads captured"
    unit = MetricCard.Unit.LEADS
    current_value = 12
    health = MetricCard.Health.ON_TRACK
    internal_notes = "INTERNAL: card notes"


def proof_rows(*, client) -> tuple[Summary, MetricCard, CheckRun]:
    """One summary, one metric card and one check run with a result (the admin pages need a row each)."""
    summary = SummaryFactory(client=client)
    card = MetricCardFactory(client=client)
    run = CheckRun.objects.create(
        client=client,
        summary=summary,
        period_start=summary.period_start,
        period_end=summary.period_end,
        ran_by_label="system:test",
        status="warn",
    )
    CheckResult.objects.create(
        run=run,
        check_key="spam",
        name="Spam heuristics",
        status="warn",
        summary="1 lead looks like spam",
        details={"leads": [{"lead_id": 1, "reasons": ["email domain mailinator.com is a disposable-mailbox service"]}]},
    )
    return summary, card, run
