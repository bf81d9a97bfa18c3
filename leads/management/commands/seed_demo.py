"""Load realistic demo data for the embedded run (`make run`).

Everything goes through the service functions, exactly as webhooks, imports and staff edits
do: leads are upserted from messy `LeadSignal`s (so normalization, data-quality flags and the
dedupe/merge path all run), the timeline is written with `activity_record` / `note_add`,
statuses move with `lead_set_status`, consent with `consent_set`, owners with `lead_update`.

Deterministic for a given --seed (times are relative to "now"). Idempotent: when the demo
clients already exist it prints the logins and changes nothing.

Contact details are fictional on purpose: phone numbers are NANP 555-01XX (reserved for
fiction, yet valid for `phonenumbers`) and every email address is on an RFC 2606 example
domain, so nothing here can ever reach a real person.
"""

from __future__ import annotations

import datetime as dt
import random
import string
import time
import zoneinfo
from collections import Counter
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from adminops.roles import DATA_OPS_GROUP, roles_sync
from leads.models import Activity, Client, Consent, Lead, LeadSource
from leads.rollups import rollups_refresh
from leads.services import (
    STATUS_TRANSITIONS,
    LeadSignal,
    activity_record,
    client_save,
    consent_set,
    lead_set_status,
    lead_update,
    lead_upsert,
    note_add,
)
from portal import services as portal_services
from portal.models import ClientUser
from portal.services import client_user_create

ACTOR = "system:demo"
ADMIN_URL = "http://127.0.0.1:8000/admin/"
PORTAL_URL = "http://127.0.0.1:8000/portal/"
UTC = dt.UTC
# Share of demo leads from before each client joined (its imported history): the baseline.
PRE_JOIN_SHARE = 0.2

# --- The four demo clients ------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSpec:
    name: str
    short: str
    slug: str
    status: str
    time_zone: str
    quiet_start: dt.time
    quiet_end: dt.time
    joined_days_ago: int
    weight: float  # share of the demo leads
    response_factor: float  # how quickly this client's team answers (1 = typical)
    area_codes: tuple[str, ...]
    state: str
    website: str
    markets: dict[str, tuple[str, ...]]  # catalog market -> postal codes
    out_of_area: tuple[tuple[str, str], ...]  # (city, postal code) outside the markets
    service_catalog: tuple[str, ...]
    # Spellings people type that still match the catalog (normalization folds them)...
    service_spellings: tuple[str, ...]
    # ...near misses that do not (flagged "not in catalog"), and services not offered at all.
    service_near_misses: tuple[str, ...]
    service_off_catalog: tuple[str, ...]
    urgency_words: tuple[str, ...]
    sms_openers: tuple[str, ...]
    quote_range: tuple[int, int]
    portal_owner: str

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def tracking_numbers(self) -> tuple[str, ...]:
        # Call-tracking lines the agency set up for this client (kept out of the people pool).
        return (f"{self.area_codes[0]}5550100", f"{self.area_codes[0]}5550101")


CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec(
        name="Rapid Rooter Plumbing",
        short="Rapid Rooter",
        slug="rapid-rooter",
        status=Client.Status.ACTIVE,
        time_zone="America/Chicago",
        quiet_start=dt.time(21, 0),
        quiet_end=dt.time(8, 0),
        joined_days_ago=200,
        weight=0.34,
        response_factor=1.0,
        area_codes=("512", "737"),
        state="TX",
        website="rapidrooter.example",
        markets={
            "Austin": ("78701", "78704", "78745", "78751", "78758"),
            "Round Rock": ("78664", "78665", "78681"),
            "Cedar Park": ("78613",),
        },
        out_of_area=(("Georgetown", "78626"), ("Pflugerville", "78660"), ("San Marcos", "78666")),
        service_catalog=("Drain cleaning", "Water heater", "Leak repair", "Repiping"),
        service_spellings=(
            "Drain cleaning",
            "drain cleaning",
            "DRAIN CLEANING",
            "Water heater",
            "WATER HEATER",
            "water heater",
            "Water-Heater",
            "Leak repair",
            "leak  repair",
            "Repiping",
        ),
        service_near_misses=("drain clog", "re-piping", "hot water heater", "leaky faucet"),
        service_off_catalog=("Sewer camera inspection", "garbage disposal install", "Gas line"),
        urgency_words=("water everywhere, burst pipe", "leak now!!", "toilet overflowing - URGENT"),
        sms_openers=(
            "Hi do you guys do drain cleaning? kitchen sink is backed up",
            "water heater is making a popping noise, can someone look at it this week?",
            "Need a quote to repipe a 1970s house",
            "Leak under the bathroom sink, how soon can you come out?",
        ),
        quote_range=(180, 6800),
        portal_owner="Ray Alvarez",
    ),
    ClientSpec(
        name="Polar Air HVAC",
        short="Polar Air",
        slug="polar-air",
        status=Client.Status.ACTIVE,
        time_zone="America/Phoenix",  # Arizona: no DST
        quiet_start=dt.time(20, 0),
        quiet_end=dt.time(7, 0),
        joined_days_ago=165,
        weight=0.28,
        response_factor=0.6,
        area_codes=("602", "480", "623"),
        state="AZ",
        website="polarairhvac.example",
        markets={
            "Phoenix": ("85004", "85016", "85032"),
            "Scottsdale": ("85251", "85260"),
            "Tempe": ("85281", "85283"),
            "Mesa": ("85201", "85210"),
        },
        out_of_area=(("Tucson", "85701"), ("Flagstaff", "86001")),
        service_catalog=(
            "AC repair",
            "AC installation",
            "Heat pump",
            "Duct cleaning",
            "Maintenance plan",
        ),
        service_spellings=(
            "AC repair",
            "ac repair",
            "AC installation",
            "ac installation",
            "Heat pump",
            "HEAT PUMP",
            "Duct cleaning",
            "maintenance plan",
        ),
        service_near_misses=("A/C Repair", "air conditioner not cooling", "new AC unit", "tune up", "ducts"),
        service_off_catalog=("Water heater", "Pool pump repair", "Solar panels"),
        urgency_words=(
            "NO AC - urgent",
            "no ac, 112 outside!!",
            "emergency, elderly parent at home",
        ),
        sms_openers=(
            "AC is blowing warm air, can you come today?",
            "How much for a tune-up before summer?",
            "Looking for a quote on a new heat pump",
            "Thermostat says 88 inside, help",
        ),
        quote_range=(95, 14500),
        portal_owner="Priya Shah",
    ),
    ClientSpec(
        name="Summit Roofing",
        short="Summit Roofing",
        slug="summit-roofing",
        status=Client.Status.ACTIVE,
        time_zone="America/Denver",
        quiet_start=dt.time(20, 30),
        quiet_end=dt.time(8, 30),
        joined_days_ago=130,
        weight=0.22,
        response_factor=1.8,
        area_codes=("303", "720"),
        state="CO",
        website="summitroofing.example",
        markets={
            "Denver": ("80202", "80205", "80210", "80220"),
            "Aurora": ("80012", "80015"),
            "Lakewood": ("80226", "80228"),
            "Boulder": ("80302", "80304"),
        },
        out_of_area=(("Colorado Springs", "80903"), ("Fort Collins", "80521")),
        service_catalog=(
            "Roof inspection",
            "Roof repair",
            "Roof replacement",
            "Gutter install",
            "Hail damage claim",
        ),
        service_spellings=(
            "Roof inspection",
            "roof inspection",
            "ROOF REPAIR",
            "Roof repair",
            "roof replacement",
            "Roof Replacement",
            "gutter install",
            "Hail Damage Claim",
        ),
        service_near_misses=("hail damage", "new roof", "roof leak", "gutters"),
        service_off_catalog=("Skylight install", "Siding repair", "Solar panel removal"),
        urgency_words=("storm damage, tarp needed ASAP", "roof leaking into bedroom - urgent"),
        sms_openers=(
            "Hail last night, think we have roof damage. Do you do inspections?",
            "Need a quote for a full roof replacement",
            "Gutters are pulling away from the house",
            "Missing shingles after the wind storm, can someone come look",
        ),
        quote_range=(250, 28000),
        portal_owner="Tom Becker",
    ),
    ClientSpec(
        name="Sparkle Home Cleaning",
        short="Sparkle",
        slug="sparkle-cleaning",
        status=Client.Status.ONBOARDING,
        time_zone="America/New_York",
        quiet_start=dt.time(19, 0),
        quiet_end=dt.time(9, 0),
        joined_days_ago=60,
        weight=0.16,
        response_factor=1.2,
        area_codes=("718", "347", "917"),
        state="NY",
        website="sparklehomecleaning.example",
        markets={
            "Brooklyn": ("11201", "11215", "11238"),
            "Queens": ("11101", "11375"),
            "Manhattan": ("10003", "10025"),
        },
        out_of_area=(("Hoboken", "07030"), ("Yonkers", "10701")),
        service_catalog=(
            "Standard cleaning",
            "Deep cleaning",
            "Move-out cleaning",
            "Recurring weekly",
        ),
        service_spellings=(
            "Standard cleaning",
            "standard cleaning",
            "Deep cleaning",
            "DEEP CLEANING",
            "deep cleaning",
            "Move out cleaning",
            "move-out cleaning",
            "Recurring weekly",
        ),
        service_near_misses=("deep clean", "biweekly cleaning", "post construction clean"),
        service_off_catalog=("Carpet shampoo", "Window washing", "Laundry service"),
        urgency_words=("need it before Friday!!", "today if possible, guests coming"),
        sms_openers=(
            "Do you have anything this Saturday for a deep clean?",
            "Moving out end of month, need a move-out clean quote",
            "How much for biweekly cleaning, 3bd 2ba?",
            "hi! looking for a regular cleaner for a 2 bedroom in Park Slope",
        ),
        quote_range=(120, 680),
        portal_owner="Grace Kim",
    ),
)

STAFF_USERS = (
    # username, first, last, superuser?
    ("engineer", "Eli", "Navarro", True),
    ("dataops", "Dana", "Okafor", False),
    ("dataops2", "Sam", "Whitfield", False),
)

# --- Vocabulary for messy inbound values ----------------------------------------------------

FIRST_NAMES = (
    "Maria", "James", "Jose", "Linda", "Michael", "Patricia", "David", "Jennifer", "Robert",
    "Elizabeth", "Luis", "Ashley", "Daniel", "Jessica", "Carlos", "Sarah", "Anthony", "Karen",
    "Kevin", "Nancy", "Brian", "Lisa", "Juan", "Betty", "Jason", "Sandra", "Ryan", "Emily",
    "Jacob", "Michelle", "Nguyen", "Priya", "Tyler", "Amanda", "Aaron", "Melissa", "Omar",
    "Stephanie", "Wei", "Rebecca", "Marcus", "Laura", "Diego", "Olivia", "Andre", "Hannah",
    "Tomás", "Chloe", "Raj", "Grace", "Zoe", "Ahmed", "Fatima", "Connor", "Megan", "Lucas",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Smith", "Johnson", "Martinez", "Brown", "Rodriguez", "Williams", "Hernandez",
    "Lopez", "Davis", "Nguyen", "Miller", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Patel", "Kim", "Chen",
    "Okafor", "O'Brien", "McDonald", "Delgado", "Reyes", "Cruz", "Morales", "Sullivan",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# Phone numbers as people and forms write them. (a, b, c) = ("512", "555", "0143").
PHONE_FORMATS = (
    lambda a, b, c: f"({a}) {b}-{c}",
    lambda a, b, c: f"{a}.{b}.{c}",
    lambda a, b, c: f"+1 {a} {b} {c}",
    lambda a, b, c: f"{a}{b}{c}",
    lambda a, b, c: f"1-{a}-{b}-{c}",
    lambda a, b, c: f"{a}-{b}-{c}",
    lambda a, b, c: f"  {a} {b} {c} ",
    lambda a, b, c: f"({a}){b}{c}",
)
BAD_PHONES = ("call me", "555-12", "512-555-01", "n/a", "same as email", "000")
BAD_EMAILS = ("bob@", "n/a", "none", "maria.garcia@gmail", "john at example dot com", "x")

URGENCY_WORDS = (
    "ASAP!!", "asap", "no rush", "this week", "today if possible", "flexible", "Emergency",
    "next month", "Just getting quotes", "whenever", "soon please", "in the next 2 weeks",
    "Standard", "", "", "", "", "", "",
)  # fmt: skip
CONTACT_METHODS = (
    "Text me", "email pls", "Call", "phone call", "either", "text or call", "Email",
    "texting is best", "Call after 5pm", "", "", "",
)  # fmt: skip

SOURCE_WEIGHTS = {
    LeadSource.WEB_FORM: 28,
    LeadSource.QUOTE_REQUEST: 14,
    LeadSource.MISSED_CALL: 16,
    LeadSource.SMS: 8,
    LeadSource.THUMBTACK: 10,
    LeadSource.ANGI: 8,
    LeadSource.CSV_IMPORT: 8,
    LeadSource.REFERRAL: 8,
}
# How providers and spreadsheets spell the source (normalization maps them back).
SOURCE_SPELLINGS = {
    LeadSource.WEB_FORM: ("Web Form", "webform", "website"),
    LeadSource.QUOTE_REQUEST: ("Quote Request", "estimate"),
    LeadSource.MISSED_CALL: ("Missed Call",),
    LeadSource.SMS: ("Text",),
    LeadSource.THUMBTACK: ("Thumbtack",),
    LeadSource.ANGI: ("Angi", "HomeAdvisor"),
    LeadSource.CSV_IMPORT: ("CSV",),
    LeadSource.REFERRAL: ("Referral",),
}
PHONE_ONLY_SOURCES = (LeadSource.MISSED_CALL, LeadSource.SMS)

# Hour-of-day weights (client local time) for when leads arrive: mostly daytime and evening.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 6, 9, 10, 10, 9, 8, 8, 8, 8, 8, 9, 9, 8, 6, 4, 3, 2)

INBOUND_REPLIES = (
    "Tomorrow morning works",
    "Yes please",
    "What's the trip fee?",
    "Can you do after 4pm?",
    "ok thanks",
    "Sounds good, see you then",
    "How much roughly?",
    "Still waiting to hear back...",
    "Can you send the estimate by email?",
    "My husband will be home, he'll let you in",
)
OUTBOUND_FOLLOW_UPS = (
    "We can be there tomorrow between 8-10am. Does that work?",
    "Our tech can stop by Thursday afternoon. Want me to hold that slot?",
    "Could you send a couple of photos? It helps us give you an accurate price.",
)
NUDGE = "Just checking in - do you still need help with {service}?"
BOOKED = "Great, you're on the schedule for {day} 8-10am. You'll get a text when the tech is on the way."
NOTES = (
    "Left voicemail, will try again after 5pm",
    "Customer prefers text; works nights",
    "Gate code 4412#, dog in the backyard",
    "Asked about financing options - sent the financing link",
    "Spoke with the spouse; homeowner calls back tomorrow",
    "Landlord approval needed before we can quote",
)
LOST_REASONS = {
    Lead.LostReason.NO_RESPONSE: 30,
    Lead.LostReason.PRICE: 18,
    Lead.LostReason.HIRED_OTHER: 18,
    Lead.LostReason.NOT_READY: 14,
    Lead.LostReason.OTHER: 5,
}


@dataclass
class Person:
    """One demo customer: the truth behind the signals we send through the services."""

    spec: ClientSpec
    first: str
    last: str
    phone: str  # 10 NANP digits, "" when they gave none we can read
    bad_phone: str  # what they typed instead, if anything
    email: str  # clean address, "" if none
    bad_email: str
    city: str
    postal_code: str
    market: str  # as typed on the form
    service: str  # as typed
    urgency: str
    contact_method: str
    source: str
    captured_at: dt.datetime
    outcome: str  # new / contacted / quoted / booked / lost
    lost_reason: str = ""
    repeat_source: str = ""  # a second signal through another source (the merge path)
    repeat_at: dt.datetime | None = None
    opt_out: bool = False
    phone_format: int = 0


class Command(BaseCommand):
    help = "Load realistic demo clients, logins and leads through the service layer (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument(
            "--leads",
            type=int,
            default=300,
            help="Leads to create across all clients (default 300).",
        )
        parser.add_argument(
            "--password",
            default="demo-pass-2026",
            help="Password for every demo login (default demo-pass-2026).",
        )

    def handle(self, *args, **options):
        if options["leads"] < 0:
            raise CommandError("--leads must be zero or more.")
        existing = list(Client.objects.filter(slug__in=[s.slug for s in CLIENTS]).order_by("name"))
        if existing:
            names = ", ".join(c.name for c in existing)
            self.stdout.write(self.style.WARNING(f"Demo data already exists ({names}); nothing changed."))
            self._print_logins(password=None)
            return

        started = time.monotonic()
        seeder = _Seeder(rng=random.Random(options["seed"]), password=options["password"], out=self.stdout)
        # One transaction for the whole run (a failure leaves nothing half-seeded, so the
        # "already exists" check stays honest), and a savepoint per lead inside it.
        with transaction.atomic():
            seeder.setup()
            seeder.seed_leads(options["leads"])
        # The reports read precomputed rollups (leads.rollups): build them for the demo clients
        # now, so the report pages have numbers before the beat task's first run.
        for client in Client.objects.filter(slug__in=[s.slug for s in CLIENTS]):
            rollups_refresh(client=client)
        seeder.publish_demo_proof()
        elapsed = time.monotonic() - started

        self._print_logins(password=options["password"])
        c = seeder.counts
        clients = Client.objects.filter(slug__in=[s.slug for s in CLIENTS])
        flagged = Lead.objects.filter(client__in=clients, has_data_quality_issues=True).count()
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {clients.count()} clients, {c['leads_created']} leads created, "
                f"{c['merged']} merged signals, {flagged} flagged leads "
                f"in {elapsed:.1f}s."
            )
        )
        statuses = Counter(Lead.objects.filter(client__in=clients).values_list("status", flat=True))
        self.stdout.write("  statuses: " + ", ".join(f"{s} {statuses.get(s, 0)}" for s in Lead.Status.values))
        self.stdout.write(
            f"  activities {Activity.objects.filter(client__in=clients).count()}, "
            f"SMS opt-outs {c['opt_outs']}, owners assigned {c['owned']}"
        )

    def _print_logins(self, *, password: str | None) -> None:
        User = get_user_model()
        rows = []
        for username, *_ in STAFF_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                continue
            role = "engineer (superuser)" if user.is_superuser else "data ops (staff)"
            rows.append((role, username, ADMIN_URL))
        links = ClientUser.objects.filter(client__slug__in=[s.slug for s in CLIENTS])
        for link in links.select_related("user", "client").order_by("client__name"):
            rows.append((f"client: {link.client.name}", link.user.get_username(), PORTAL_URL))
        if not rows:
            return
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        pw = password or "as set when seeded (default demo-pass-2026)"
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"Demo logins — password: {pw}"))
        header = ("role", "username", "sign in at")
        width = [max(w, len(h)) for w, h in zip(width, header, strict=True)]
        for row in (header, tuple("-" * w for w in width), *rows):
            cells = (v.ljust(w) for v, w in zip(row, width, strict=True))
            self.stdout.write(("  " + "  ".join(cells)).rstrip())


class _Seeder:
    def __init__(self, *, rng: random.Random, password: str, out):
        self.rng = rng
        self.password = password
        self.out = out
        self.now = timezone.now()
        self.counts: Counter[str] = Counter()
        self.clients: dict[str, Client] = {}
        self.staff: dict[str, object] = {}
        self.used_emails: set[str] = set()
        self.phone_pools: dict[str, list[str]] = {}

    # --- clients and logins -----------------------------------------------------------------

    def setup(self) -> None:
        today = timezone.localdate()
        for spec in CLIENTS:
            client = Client(
                name=spec.name,
                slug=spec.slug,
                status=spec.status,
                time_zone=spec.time_zone,
                phone_region="US",
                quiet_hours_start=spec.quiet_start,
                quiet_hours_end=spec.quiet_end,
                markets=list(spec.markets),
                service_catalog=list(spec.service_catalog),
                joined_on=today - dt.timedelta(days=spec.joined_days_ago),
            )
            self.clients[spec.slug] = client_save(client=client, changed_fields=[], actor=ACTOR, created=True)

        User = get_user_model()
        try:
            group = Group.objects.get(name=DATA_OPS_GROUP)
        except Group.DoesNotExist:  # migrate normally creates it; be safe on odd databases
            roles_sync()
            group = Group.objects.get(name=DATA_OPS_GROUP)
        for username, first, last, is_super in STAFF_USERS:
            user = User.objects.filter(username=username).first()
            if user is not None:
                self.out.write(f"User {username} already exists; left as it is.")
            elif is_super:
                user = User.objects.create_superuser(
                    username=username,
                    email=f"{username}@zartsalgo.example",
                    password=self.password,
                    first_name=first,
                    last_name=last,
                )
            else:
                user = User.objects.create_user(
                    username=username,
                    email=f"{username}@zartsalgo.example",
                    password=self.password,
                    first_name=first,
                    last_name=last,
                    is_staff=True,
                )
                user.groups.add(group)
            self.staff[username] = user

        for spec in CLIENTS:
            email = f"owner@{spec.slug}.example"
            if User.objects.filter(username=email).exists():
                self.out.write(f"Login {email} already exists; not linked again.")
                continue
            client_user_create(
                client=self.clients[spec.slug],
                email=email,
                password=self.password,
                actor=ACTOR,
                name=spec.portal_owner,
                role=ClientUser.Role.OWNER,
            )

    # --- people -----------------------------------------------------------------------------

    def _split_counts(self, total: int) -> list[int]:
        weights = [s.weight for s in CLIENTS]
        raw = [total * w / sum(weights) for w in weights]
        counts = [int(x) for x in raw]
        by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
        for i in by_remainder[: total - sum(counts)]:
            counts[i] += 1
        if total >= len(CLIENTS):  # every client gets at least one lead
            for i, n in enumerate(counts):
                if n == 0:
                    donor = counts.index(max(counts))
                    counts[donor] -= 1
                    counts[i] = 1
        return counts

    def _phone_pool(self, spec: ClientSpec) -> list[str]:
        if spec.slug not in self.phone_pools:
            pool = [
                f"{area}555{n:04d}"
                for area in spec.area_codes
                for n in range(100, 200)
                if f"{area}555{n:04d}" not in spec.tracking_numbers
            ]
            self.rng.shuffle(pool)
            self.phone_pools[spec.slug] = pool
        return self.phone_pools[spec.slug]

    def _email_for(self, first: str, last: str) -> str:
        rng = self.rng
        simple_last = "".join(ch for ch in last.lower() if ch.isalpha())
        simple_first = first.lower().replace("á", "a")
        patterns = (
            f"{simple_first}.{simple_last}",
            f"{simple_first[0]}{simple_last}",
            f"{simple_first}{simple_last[:1]}",
            f"{simple_first}{rng.randint(70, 99)}",
            f"{simple_last}.{simple_first}",
        )
        for _ in range(20):
            local = rng.choice(patterns)
            address = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
            if address not in self.used_emails:
                self.used_emails.add(address)
                return address
            patterns = (f"{simple_first}.{simple_last}{rng.randint(1, 999)}",)
        raise AssertionError("could not find an unused demo email address")

    def _capture_time(self, spec: ClientSpec) -> dt.datetime:
        rng, tz = self.rng, spec.tz
        span = max(1, min(120, spec.joined_days_ago - 1))
        today = self.now.astimezone(tz).date()
        for _ in range(20):
            if rng.random() < PRE_JOIN_SHARE:
                # The client's history from before it joined (as a CSV import brings it in):
                # the baseline every report and metric card compares against.
                day = today - dt.timedelta(days=spec.joined_days_ago + rng.randint(1, 90))
            else:
                # Slightly more leads recently: the agency's campaigns ramp up.
                day = today - dt.timedelta(days=int(span * rng.random() ** 1.15))
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            local = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=tz)
            when = local.astimezone(UTC)
            if when < self.now - dt.timedelta(minutes=10):
                return when
        return self.now - dt.timedelta(hours=2)

    def _make_person(self, spec: ClientSpec, index: int) -> Person:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        source = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
        pool = self._phone_pool(spec)

        phone = bad_phone = ""
        roll = rng.random()
        if source in PHONE_ONLY_SOURCES or roll < 0.90 or index == 0:
            if pool:
                phone = pool.pop()
            else:  # out of fictional numbers: this person only gave an email
                source = LeadSource.WEB_FORM if source in PHONE_ONLY_SOURCES else source
        elif roll < 0.95 or index == 3:
            bad_phone = rng.choice(BAD_PHONES)
        if index == 3 and source not in PHONE_ONLY_SOURCES:
            # Every client has at least one unreadable phone, so the data-quality view has work.
            if phone:
                pool.append(phone)
            phone, bad_phone = "", rng.choice(BAD_PHONES)

        email = bad_email = ""
        roll = rng.random()
        if index == 5 or roll < 0.04:
            bad_email = rng.choice(BAD_EMAILS)
        elif roll < 0.70 or not phone:
            email = self._email_for(first, last)

        if rng.random() < 0.07:
            city, postal = rng.choice(spec.out_of_area)
            market, in_area = city, False
        else:
            market_name = rng.choices(list(spec.markets), weights=[5, 3, 2, 2][: len(spec.markets)])[0]
            city, postal = market_name, rng.choice(spec.markets[market_name])
            market = rng.choice([market_name] * 5 + [market_name.lower(), market_name.upper(), f" {market_name} ", ""])
            in_area = True

        roll = rng.random()
        if roll < 0.82:
            service, offered = rng.choice(spec.service_spellings), True
        elif roll < 0.93:
            service, offered = rng.choice(spec.service_near_misses), True
        else:
            service, offered = rng.choice(spec.service_off_catalog), False

        urgency = rng.choice(spec.urgency_words if rng.random() < 0.08 else URGENCY_WORDS)
        contact_method = rng.choice(CONTACT_METHODS)

        outcome = rng.choices(["new", "contacted", "quoted", "booked", "lost"], weights=[11, 25, 18, 30, 16])[0]
        lost_reason = ""
        if not in_area and rng.random() < 0.7:
            outcome, lost_reason = "lost", Lead.LostReason.OUT_OF_AREA
        elif not offered and rng.random() < 0.6:
            outcome, lost_reason = "lost", Lead.LostReason.SERVICE_NOT_OFFERED
        elif not (phone or email):
            outcome = rng.choice(["new", "lost"])
            lost_reason = Lead.LostReason.SPAM
        elif outcome == "lost":
            lost_reason = rng.choices(list(LOST_REASONS), weights=list(LOST_REASONS.values()))[0]

        return Person(
            spec=spec,
            first=first,
            last=last,
            phone=phone,
            bad_phone=bad_phone,
            email=email,
            bad_email=bad_email,
            city=city,
            postal_code=postal,
            market=market,
            service=service,
            urgency=urgency,
            contact_method=contact_method,
            source=source,
            captured_at=self._capture_time(spec),
            outcome=outcome,
            lost_reason=lost_reason,
            phone_format=rng.randrange(len(PHONE_FORMATS)),
        )

    def _plan_people(self, total: int) -> list[Person]:
        rng = self.rng
        people: list[Person] = []
        for spec, count in zip(CLIENTS, self._split_counts(total), strict=True):
            people += [self._make_person(spec, i) for i in range(count)]

        # About 10% come back through a second source: same phone written differently, or the
        # same email in another case. The first signal must carry a key the second can match.
        reachable = [p for p in people if p.phone or p.email]
        n_repeat = min(len(reachable), max(1, round(total * 0.10))) if total else 0
        for p in rng.sample(reachable, n_repeat):
            choices = [s for s in SOURCE_WEIGHTS if s != p.source and s != LeadSource.CSV_IMPORT]
            if not p.phone:
                choices = [s for s in choices if s not in PHONE_ONLY_SOURCES]
            p.repeat_source = rng.choice(choices)
            p.repeat_at = p.captured_at + dt.timedelta(minutes=rng.randint(20, 60 * 24 * 6))
            if p.repeat_at >= self.now:
                p.repeat_at = p.captured_at + (self.now - p.captured_at) / 2

        # A couple of people text STOP after the first reply.
        texters = [p for p in people if p.phone and p.outcome in ("contacted", "quoted", "booked", "lost")]
        for p in rng.sample(texters, min(len(texters), 2 if total >= 20 else 1)):
            p.opt_out = True
            p.outcome, p.lost_reason = "lost", Lead.LostReason.NOT_READY
        # Chronological order, so lead ids and created_at follow capture time.
        people.sort(key=lambda p: p.captured_at)
        return people

    # --- signals ----------------------------------------------------------------------------

    def _phone_text(self, p: Person, fmt: int) -> str:
        if not p.phone:
            return p.bad_phone
        a, b, c = p.phone[:3], p.phone[3:6], p.phone[6:]
        return PHONE_FORMATS[fmt % len(PHONE_FORMATS)](a, b, c)

    def _email_text(self, p: Person, *, variant: int | None = None) -> str:
        if not p.email:
            return p.bad_email
        local, _, domain = p.email.partition("@")
        pretty = ".".join(part.capitalize() for part in local.split("."))
        variants = (
            p.email,
            f"{pretty}@{domain.capitalize()[:-3]}{domain[-3:].upper()}",
            f"  {p.email} ",
            p.email.upper(),
            f"{p.first} {p.last} <{p.email}>",
            f"{pretty}@{domain}",
        )
        if variant is None:
            variant = 0 if self.rng.random() < 0.6 else self.rng.randrange(1, len(variants))
        return variants[variant % len(variants)]

    def _source_text(self, source: str) -> str:
        if self.rng.random() < 0.75:
            return source
        return self.rng.choice(SOURCE_SPELLINGS[source])

    def _name_fields(self, p: Person, source: str) -> dict[str, str]:
        rng = self.rng
        if source in PHONE_ONLY_SOURCES:
            return {}
        style = rng.random()
        if source == LeadSource.CSV_IMPORT:
            full = f"{p.last}, {p.first}"
            return {"full_name": full.upper() if style < 0.4 else full}
        if source in (LeadSource.THUMBTACK, LeadSource.ANGI, LeadSource.REFERRAL):
            full = f"{p.first} {p.last}"
            return {"full_name": full.lower() if style < 0.25 else full}
        if style < 0.15:
            return {"first_name": p.first.upper(), "last_name": p.last.upper()}
        if style < 0.30:
            return {"first_name": p.first.lower(), "last_name": p.last.lower()}
        if style < 0.38:
            return {"first_name": f" {p.first}  ", "last_name": p.last}
        return {"first_name": p.first, "last_name": p.last}

    def _attribution(self, p: Person, source: str) -> dict[str, str]:
        rng, spec = self.rng, p.spec
        service_slug = "-".join(p.service.lower().replace("/", "").split()) or "services"
        if source == LeadSource.MISSED_CALL:
            a = rng.choice(spec.tracking_numbers)
            tracking = rng.choice([f"+1{a}", f"({a[:3]}) {a[3:6]}-{a[6:]}"])
            return {
                "tracking_number": tracking,
                "utm_source": rng.choice(["google", "gbp", "yard-sign"]),
            }
        if source not in (LeadSource.WEB_FORM, LeadSource.QUOTE_REQUEST):
            return {}
        page = f"https://{spec.website}/{service_slug}/"
        roll = rng.random()
        if roll < 0.5:
            campaign = f"{p.city.lower().replace(' ', '-')}-{service_slug}"
            attribution = {
                "utm_source": "google",
                "utm_medium": "cpc",
                "utm_campaign": campaign,
                "utm_term": f"{p.service.lower()} near me",
                "gclid": "Cj0KCQ" + "".join(rng.choices(string.ascii_letters + string.digits, k=58)),
                "referrer": "https://www.google.com/",
            }
            page += f"?utm_source=google&utm_medium=cpc&utm_campaign={campaign}"
        elif roll < 0.65:
            attribution = {
                "utm_source": "facebook",
                "utm_medium": "paid_social",
                "utm_campaign": f"{spec.slug}-spring-promo",
                "utm_content": rng.choice(["video-a", "carousel-b"]),
                "fbclid": "IwAR" + "".join(rng.choices(string.ascii_letters + string.digits, k=56)),
                "referrer": "https://m.facebook.com/",
            }
        elif roll < 0.70:
            attribution = {
                "utm_source": "bing",
                "utm_medium": "cpc",
                "msclkid": f"{rng.getrandbits(128):032x}",
                "referrer": "https://www.bing.com/",
            }
        elif roll < 0.90:
            attribution = {"referrer": "https://www.google.com/"}
        else:
            attribution = {}
        # A few forms post the page without a scheme: kept out of the lead and flagged.
        attribution["landing_page"] = f"www.{spec.website}/quote" if rng.random() < 0.05 else page
        return attribution

    def _signal(self, p: Person, source: str, when: dt.datetime, *, repeat: bool) -> LeadSignal:
        rng, spec = self.rng, p.spec
        if repeat:
            # Same person, another way of writing the same contact point.
            fmt = (p.phone_format + rng.randint(1, len(PHONE_FORMATS) - 1)) % len(PHONE_FORMATS)
        else:
            fmt = p.phone_format
        if source in PHONE_ONLY_SOURCES:
            phone = f"+1{p.phone}"  # what Twilio / CallRail post
            email = ""
        else:
            # Both signals of a person who comes back carry every contact point they have, so
            # the second matches the first whichever source each came through.
            complete = repeat or bool(p.repeat_source)
            phone = self._phone_text(p, fmt) if complete or rng.random() < 0.95 or not p.email else ""
            email = ""
            if p.email or p.bad_email:
                if repeat:
                    email = self._email_text(p, variant=rng.randrange(1, 6))
                elif complete or rng.random() < 0.9 or not phone:
                    email = self._email_text(p)
        if repeat and not p.phone and p.email:
            email = self._email_text(p, variant=rng.randrange(1, 6))

        detail = {
            LeadSource.WEB_FORM: rng.choice(["Contact form (/contact)", "Quote form (/quote)"]),
            LeadSource.QUOTE_REQUEST: "Free estimate form (/estimate)",
            LeadSource.MISSED_CALL: "Call to tracking line, no answer",
            LeadSource.SMS: "Text to business line",
            LeadSource.THUMBTACK: f"Thumbtack lead TT-{rng.randint(100000000, 999999999)}",
            LeadSource.ANGI: f"Angi lead {rng.randint(1000000000, 9999999999)}",
            LeadSource.CSV_IMPORT: "Home & Garden show sign-up sheet.csv",
            LeadSource.REFERRAL: f"Referred by {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        }[source]

        signal = LeadSignal(
            source=self._source_text(source),
            phone=phone,
            email=email,
            source_detail=detail,
            occurred_at=when,
            attribution=self._attribution(p, source),
            **self._name_fields(p, source),
        )
        if source not in PHONE_ONLY_SOURCES:
            signal.service_type = p.service if not repeat else rng.choice(spec.service_spellings)
            signal.market = p.market
            signal.city = p.city if rng.random() < 0.8 else p.city.upper()
            signal.postal_code = p.postal_code
            signal.state_region = spec.state
            signal.urgency = p.urgency
            signal.contact_method = p.contact_method
        if source in (LeadSource.WEB_FORM, LeadSource.QUOTE_REQUEST):
            form = "/quote" if source == LeadSource.WEB_FORM else "/estimate"
            if phone:
                signal.consent = {"sms": (True, f"TCPA checkbox on {form} form")}
            if email and p.email and rng.random() < 0.5:
                signal.consent["email"] = (True, f"Email opt-in checkbox on {form} form")
        if source == LeadSource.SMS:
            signal.summary = "Lead captured from an inbound text"
        return signal

    # --- the timeline -----------------------------------------------------------------------

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(128):032x}"

    def _sendgrid_id(self) -> str:
        alphabet = string.ascii_letters + string.digits + "-_"
        return "".join(self.rng.choices(alphabet, k=22))

    def _send_time(self, spec: ClientSpec, when: dt.datetime) -> dt.datetime:
        """The first moment at or after `when` outside the client's quiet hours."""
        local = when.astimezone(spec.tz)
        t, start, end = local.time(), spec.quiet_start, spec.quiet_end
        quiet = (t >= start or t < end) if start > end else (start <= t < end)
        if not quiet:
            return when
        day = local.date() if t < end else local.date() + dt.timedelta(days=1)
        resume = dt.datetime.combine(day, end, tzinfo=spec.tz)
        return (resume + dt.timedelta(minutes=self.rng.randint(2, 55))).astimezone(UTC)

    def _first_response_delay(self, p: Person) -> dt.timedelta:
        rng = self.rng
        joined = self.now - dt.timedelta(days=p.spec.joined_days_ago)
        if p.captured_at < joined:
            # Before the agency: no text-back, answers when someone got to it.
            return dt.timedelta(seconds=rng.randint(20 * 60, 26 * 3600))
        if p.source == LeadSource.MISSED_CALL:
            return dt.timedelta(seconds=rng.randint(15, 90))  # automatic missed-call text-back
        low, high = rng.choices(
            [(60, 300), (300, 1800), (1800, 4 * 3600), (4 * 3600, 30 * 3600)],
            weights=[30, 32, 25, 13],
        )[0]
        return dt.timedelta(seconds=int(rng.randint(low, high) * p.spec.response_factor))

    def _record(self, lead: Lead, kind: str, when: dt.datetime, summary: str, **kwargs) -> Activity:
        activity, _ = activity_record(
            lead=lead, kind=kind, summary=summary, occurred_at=when, **{"actor": ACTOR, **kwargs}
        )
        return activity

    def _sms_in(self, lead: Lead, when: dt.datetime, body: str) -> Activity:
        return self._record(
            lead,
            Activity.Kind.SMS_INBOUND,
            when,
            f"Text from {lead.phone_e164}: {body}"[:300],
            body=body,
            provider="twilio",
            provider_id=self._sid("SM"),
            delivery_status="received",
        )

    def _outbound(self, lead: Lead, channel: str, when: dt.datetime, body: str, *, actor=ACTOR, subject=""):
        if channel == "sms":
            self._record(
                lead,
                Activity.Kind.SMS_OUTBOUND,
                when,
                f"Text to {lead.phone_e164}: {body}"[:300],
                body=body,
                provider="twilio",
                provider_id=self._sid("SM"),
                delivery_status="delivered",
                actor=actor,
            )
        elif channel == "email":
            self._record(
                lead,
                Activity.Kind.EMAIL_OUTBOUND,
                when,
                subject or "Thanks for reaching out",
                body=body,
                provider="sendgrid",
                provider_id=self._sendgrid_id(),
                delivery_status="delivered",
                actor=actor,
                data={"to": lead.email_normalized},
            )
        else:
            seconds = self.rng.randint(40, 600)
            self._record(
                lead,
                Activity.Kind.CALL_OUTBOUND,
                when,
                f"Call to {lead.phone_e164} ({seconds // 60}m {seconds % 60:02d}s)",
                body=body,
                provider="twilio",
                provider_id=self._sid("CA"),
                delivery_status="completed",
                actor=actor,
                data={"duration_seconds": seconds},
            )

    def _note(self, lead: Lead, when: dt.datetime, body: str, *, actor) -> None:
        # note_add stamps "now"; notes that belong to the past go through activity_record.
        self._record(lead, Activity.Kind.NOTE, when, body, body=body, actor=actor)

    def _set_status(self, lead: Lead, status: str, *, actor=ACTOR, lost_reason="", reason=""):
        # activity_record moves new → contacted on its own copy of the row: re-read first.
        lead.refresh_from_db()
        if status == lead.status or status not in STATUS_TRANSITIONS[lead.status]:
            return
        lead_set_status(lead=lead, status=status, actor=actor, lost_reason=lost_reason, reason=reason)

    def _reply_channel(self, lead: Lead, p: Person) -> str | None:
        wants = (p.contact_method or "").lower()
        if lead.phone_e164 and "mail" not in wants:
            if "call" in wants and "text" not in wants:
                return "call"
            return "sms"
        if lead.email_normalized:
            return "email"
        return "call" if lead.phone_e164 else None

    def _timeline(self, lead: Lead, p: Person) -> None:
        rng, spec = self.rng, p.spec
        when = p.captured_at
        if p.source == LeadSource.SMS:
            self._sms_in(lead, when, rng.choice(spec.sms_openers))
        elif p.source == LeadSource.MISSED_CALL:
            self._record(
                lead,
                Activity.Kind.CALL_MISSED,
                when,
                f"Missed call from {lead.phone_e164}",
                provider="twilio",
                provider_id=self._sid("CA"),
                delivery_status="no-answer",
                data={"ring_seconds": rng.randint(12, 35), "tracking_number": lead.tracking_number},
            )

        channel = self._reply_channel(lead, p)
        if p.opt_out and lead.phone_e164:
            channel = "sms"  # people text STOP to a text
        if p.outcome == "new" or channel is None:
            if p.lost_reason == Lead.LostReason.SPAM and p.outcome == "lost":
                self._set_status(lead, Lead.Status.LOST, lost_reason=p.lost_reason, reason="No usable contact")
            return

        owner = rng.choices([self.staff.get("dataops"), self.staff.get("dataops2"), None], weights=[45, 35, 20])[0]
        agent = owner or self.staff.get("dataops") or ACTOR
        first = lead.first_name or "there"
        service = lead.service_type.lower() or "your project"

        # First response: automatic text-back for missed calls, otherwise a person, later.
        when = self._send_time(spec, when + self._first_response_delay(p))
        if when >= self.now:
            return
        if p.source == LeadSource.MISSED_CALL and lead.phone_e164:
            channel = "sms"
            body = f"Sorry we missed your call! This is {spec.short}. Reply here and we'll get right back to you."
            self._outbound(lead, channel, when, body)
        else:
            body = (
                f"Hi {first}, this is {spec.short} - thanks for reaching out about {service}! "
                "When's a good time for a quick call?"
            )
            self._outbound(lead, channel, when, body, actor=agent, subject=f"Your {spec.short} request")

        if p.opt_out and lead.phone_e164:
            when += dt.timedelta(minutes=rng.randint(1, 90))
            if when < self.now:
                stop = self._sms_in(lead, when, rng.choice(["STOP", "Stop", "stop texting me"]))
                consent_set(
                    lead=lead,
                    channel="sms",
                    state=Consent.State.REVOKED,
                    evidence=f"SMS STOP from {lead.phone_e164}",
                    actor="system:twilio",
                    occurred_at=when,
                    source_activity=stop,
                )
                self.counts["opt_outs"] += 1
                self._set_status(lead, Lead.Status.LOST, lost_reason=p.lost_reason, reason="Texted STOP")
            return

        # A short back-and-forth (people lost for "no response" never wrote back).
        exchanges = rng.choice([0, 1, 1, 2, 3])
        declined = p.lost_reason in (Lead.LostReason.OUT_OF_AREA, Lead.LostReason.SERVICE_NOT_OFFERED)
        if declined:
            exchanges = 0
            decline_at = self._send_time(spec, when + dt.timedelta(minutes=rng.randint(20, 600)))
            if decline_at < self.now:
                if p.lost_reason == Lead.LostReason.OUT_OF_AREA:
                    why = f"we don't cover {lead.city or 'your area'} yet"
                else:
                    why = f"{service} isn't something we offer"
                body = f"Sorry {first}, {why}. We'd recommend asking a neighbor or checking local reviews."
                self._outbound(lead, channel, decline_at, body, actor=agent)
        elif p.lost_reason == Lead.LostReason.NO_RESPONSE:
            exchanges = 0
            nudge_at = self._send_time(spec, when + dt.timedelta(days=rng.randint(2, 5)))
            if nudge_at < self.now:
                self._outbound(lead, channel, nudge_at, NUDGE.format(service=service), actor=agent)
        for _ in range(exchanges):
            reply_at = when + dt.timedelta(minutes=rng.randint(2, 300))
            answer_at = self._send_time(spec, reply_at + dt.timedelta(minutes=rng.randint(1, 90)))
            if answer_at >= self.now:
                break
            if channel == "sms":
                self._sms_in(lead, reply_at, rng.choice(INBOUND_REPLIES))
            elif channel == "email":
                self._record(
                    lead,
                    Activity.Kind.EMAIL_INBOUND,
                    reply_at,
                    f"Re: Your {spec.short} request",
                    body=rng.choice(INBOUND_REPLIES),
                    provider="sendgrid",
                    provider_id=self._sendgrid_id(),
                )
            follow_up = rng.choice(OUTBOUND_FOLLOW_UPS).format(service=service)
            self._outbound(lead, channel, answer_at, follow_up, actor=agent)
            when = answer_at

        quote_at = self._send_time(spec, when + dt.timedelta(hours=rng.randint(2, 48)))
        amount = rng.randint(*spec.quote_range)
        quoted = (
            quote_at < self.now
            and not declined
            and (
                p.outcome == "quoted"
                or (p.outcome == "booked" and rng.random() < 0.6)
                or (p.lost_reason in (Lead.LostReason.PRICE, Lead.LostReason.HIRED_OTHER))
            )
        )
        if quoted and lead.email_normalized:
            self._outbound(
                lead,
                "email",
                quote_at,
                f"Hi {first}, attached is your estimate for {service}: ${amount:,}.",
                actor=agent,
                subject=f"Your estimate from {spec.name}",
            )
        elif quoted and lead.phone_e164:
            self._outbound(lead, "call", quote_at, f"Walked through the estimate: ${amount:,}", actor=agent)
        if quoted:
            self._note(lead, quote_at, f"Quoted ${amount:,} for {service}.", actor=agent)
            when = quote_at
            self._set_status(lead, Lead.Status.QUOTED, actor=agent, reason=f"Estimate ${amount:,}")

        if p.outcome == "booked":
            day = rng.choice(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"])
            book_at = when + dt.timedelta(minutes=rng.randint(10, 60 * 30))
            if book_at < self.now:
                self._note(lead, book_at, f"Booked {day} 8-10am window.", actor=agent)
                self._outbound(lead, channel, book_at, BOOKED.format(day=day), actor=agent)
            self._set_status(lead, Lead.Status.BOOKED, actor=agent, reason="Job scheduled")
            if rng.random() < 0.06:  # a booked job that cancels becomes lost
                self._set_status(
                    lead,
                    Lead.Status.LOST,
                    actor=agent,
                    lost_reason=Lead.LostReason.OTHER,
                    reason="Customer cancelled the appointment",
                )
        elif p.outcome == "lost":
            self._set_status(lead, Lead.Status.LOST, actor=agent, lost_reason=p.lost_reason)
            if rng.random() < 0.06:  # and a lost lead that writes back is reopened
                self._set_status(lead, Lead.Status.CONTACTED, actor=agent, reason="Customer wrote back")

        if rng.random() < 0.25:
            note_add(lead=lead, body=rng.choice(NOTES), actor=agent)

        lead.refresh_from_db()
        changes: dict[str, object] = {}
        if owner is not None:
            changes["owner"] = owner
        if lead.status in (Lead.Status.CONTACTED, Lead.Status.QUOTED):
            changes["next_action"] = (
                "Follow up on the estimate" if lead.status == Lead.Status.QUOTED else "Call to book a visit"
            )
            changes["next_action_due"] = self.now + dt.timedelta(hours=rng.randint(-48, 120))
        if changes:
            lead_update(lead=lead, data=changes, actor=ACTOR)
            self.counts["owned"] += owner is not None

    def _repeat(self, client: Client, lead: Lead, p: Person) -> None:
        assert p.repeat_at is not None
        signal = self._signal(p, p.repeat_source, p.repeat_at, repeat=True)
        result = lead_upsert(client=client, signal=signal, actor=ACTOR)
        self.counts["leads_created" if result.created else "merged"] += 1
        if result.lead.pk != lead.pk:
            self.out.write(f"  note: repeat signal for lead #{lead.pk} made lead #{result.lead.pk}")
        if p.repeat_source == LeadSource.SMS:
            self._sms_in(result.lead, p.repeat_at, "Hi, following up on my request - any update?")
        elif p.repeat_source == LeadSource.MISSED_CALL:
            self._record(
                result.lead,
                Activity.Kind.CALL_MISSED,
                p.repeat_at,
                f"Missed call from {result.lead.phone_e164}",
                provider="twilio",
                provider_id=self._sid("CA"),
                delivery_status="no-answer",
            )

    def publish_demo_proof(self) -> None:
        """The first client's last 30 days as the portal shows them: a summary and metric cards,
        drafted, checked, approved and published by a data ops user through the same services
        staff use. Demo leads are messy on purpose (spam, duplicates, missing fields), so a check
        may fail; publishing then carries the written override reason the product asks for."""
        client = self.clients[CLIENTS[0].slug]
        staff = self.staff.get("dataops")
        if staff is None:
            return
        end = self.now.astimezone(client.tz).date() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=29)
        items = [portal_services.summary_draft(client=client, period_start=start, period_end=end, actor=staff)]
        items += portal_services.metric_cards_compute(client=client, period_start=start, period_end=end, actor=staff)
        for item in items:
            run = portal_services.proof_check(item=item, actor=staff)
            portal_services.proof_approve(item=item, actor=staff)
            reason = "" if run.status != "fail" else "Demo data: its spam and duplicates are there on purpose."
            portal_services.proof_publish(item=item, actor=staff, override_reason=reason)
            self.counts["proof_published"] += 1

    def seed_leads(self, total: int) -> None:
        for p in self._plan_people(total):
            client = self.clients[p.spec.slug]
            with transaction.atomic():
                signal = self._signal(p, p.source, p.captured_at, repeat=False)
                result = lead_upsert(client=client, signal=signal, actor=ACTOR)
                self.counts["leads_created" if result.created else "merged"] += 1
                self._timeline(result.lead, p)
                if p.repeat_source:
                    self._repeat(client, result.lead, p)
        if total >= 20:
            with transaction.atomic():
                self._household()

    def _household(self) -> None:
        """One form with one lead's phone and another lead's email (a couple, a landlord…).

        The signal merges into the phone's lead and is flagged as a possible duplicate of the
        email's lead, for staff to judge.
        """
        client = self.clients[CLIENTS[0].slug]
        candidates = list(
            Lead.objects.filter(client=client, phone_e164__isnull=False, email_normalized__isnull=False).order_by("id")
        )
        if len(candidates) < 2:
            return
        a, b = self.rng.sample(candidates, 2)
        when = max(a.captured_at, b.captured_at) + dt.timedelta(hours=self.rng.randint(1, 48))
        when = min(when, self.now - dt.timedelta(minutes=5))
        digits = a.phone_e164[2:]
        signal = LeadSignal(
            source=LeadSource.WEB_FORM,
            phone=f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
            email=b.email_normalized.upper(),
            first_name=a.first_name,
            last_name=a.last_name,
            source_detail="Quote form (/quote)",
            service_type=a.service_type,
            occurred_at=when,
            summary="Form with this lead's phone and another lead's email",
        )
        result = lead_upsert(client=client, signal=signal, actor=ACTOR)
        self.counts["leads_created" if result.created else "merged"] += 1
