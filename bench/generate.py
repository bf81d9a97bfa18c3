"""Fill the benchmark database with K clients, a few staff users and N leads.

    .venv/bin/python bench/generate.py --leads 1000000 --clients 8

Importable too: `generate(leads=..., clients=...)` after `bench.bootstrap.setup()`.

This is a data generator, not an ingest path: rows go in with raw multi-row INSERTs
(`cursor.executemany`, batches of --batch rows, one transaction each) and bypass
leads.services.lead_upsert (dedupe, timeline, consent) on purpose. Everything the services would
derive is set explicitly and consistently instead: full_name (Lead.save() is skipped),
phone_e164/email_normalized (unique per client by construction), the data-quality flags, and
created_at (raw SQL because bulk_create would overwrite the auto_now_add column with "now").
Rows are inserted in created_at order, so ids follow created_at as they do in production.

Idempotent: when the table already holds >= N leads nothing is generated, so reruns are quick;
with fewer, only the missing ones are added (after an interrupted run, --fresh gives evener data).
"""

import argparse
import bisect
import datetime
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SEED = 20_251_121
DAYS = 730  # two years of history

FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret "
    "Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa "
    "George Deborah Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob "
    "Amy Gary Kathleen Nicholas Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin Nicole Scott "
    "Anna Brandon Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Patrick Carolyn Frank "
    "Janet Raymond Maria Jack Olivia Dennis Heather Jerry Helen Tyler Catherine Aaron Diane Jose Julie Adam "
    "Victoria Nathan Joyce Henry Lauren Zachary Kelly Douglas Christina Peter Ruth Kyle Joan Noah Virginia Ethan "
    "Judith Jeremy Evelyn Christian Hannah Walter Andrea Keith Megan Austin Cheryl Roger Jacqueline Terry Madison "
    "Sean Teresa Gerald Abigail Carl Sophia Dylan Martha Harold Sara Jordan Gloria Jesse Janice Bryan Kathryn "
    "Lawrence Ann Arthur Isabella Gabriel Judy Bruce Charlotte Logan Julia Billy Grace Joe Amber Alan Alice Juan "
    "Jean Elijah Denise Willie Frances Albert Danielle Wayne Marilyn Randy Natalie Mason Beverly Vincent Diana Liam "
    "Brittany Roy Theresa Bobby Kayla Caleb Alexis Bradley Doris Russell Lori Lucas Tiffany Luis Carmen Miguel Rosa "
    "Carlos Ana Jorge Lucia Diego Sofia Mateo Valentina Wei Mei Hiroshi Yuki Arjun Priya Mohammed Fatima"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim "
    "Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler "
    "Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds "
    "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford "
    "Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman "
    "Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon "
    "Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
    "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer "
    "Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong "
    "Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Contreras Willis Carpenter Lawrence Sandoval O'Brien Ng Okafor Kowalski Novak Yamamoto Singh Khan Ali Cohen"
)
EMAIL_DOMAINS = ("gmail.com",) * 9 + ("yahoo.com",) * 3 + ("outlook.com", "hotmail.com", "icloud.com", "aol.com")

# (name, markets, services); sizes are weighted in make_rows: a few big clients and a long tail.
CLIENTS = (
    ("Lone Star Plumbing", ["Austin", "Round Rock", "Cedar Park"], ["Drain cleaning", "Water heater", "Leak repair"]),
    ("Hill Country HVAC", ["Austin", "San Marcos"], ["AC repair", "Furnace repair", "Duct cleaning"]),
    ("Bayou City Roofing", ["Houston", "Katy", "Sugar Land"], ["Roof repair", "Roof replacement", "Gutters"]),
    ("Metroplex Electric", ["Dallas", "Plano", "Frisco"], ["Panel upgrade", "Wiring", "EV charger"]),
    ("Alamo Garage Doors", ["San Antonio", "New Braunfels"], ["Spring repair", "Opener install"]),
    ("Gulf Coast Pest", ["Corpus Christi"], ["Termites", "Rodents", "General pest"]),
    ("Panhandle Solar", ["Amarillo", "Lubbock"], ["Solar install", "Battery backup"]),
    ("Big Bend Landscaping", ["El Paso"], ["Lawn care", "Irrigation", "Tree trimming"]),
)
TIME_ZONES = ("America/Chicago", "America/Chicago", "America/Chicago", "America/Chicago", "America/Denver")

STATUS_RECENT = (("new", 60), ("contacted", 30), ("quoted", 10))
STATUS_OLDER = (("new", 5), ("contacted", 18), ("quoted", 20), ("booked", 30), ("lost", 27))
LOST_REASONS = (
    ("no_response", 35),
    ("price", 20),
    ("hired_other", 15),
    ("out_of_area", 6),
    ("service_not_offered", 5),
    ("not_ready", 10),
    ("spam", 5),
    ("duplicate", 2),
    ("other", 2),
)
SOURCES = (
    ("web_form", 30),
    ("quote_request", 10),
    ("missed_call", 12),
    ("phone_call", 15),
    ("sms", 5),
    ("thumbtack", 8),
    ("angi", 8),
    ("csv_import", 5),
    ("referral", 4),
    ("manual", 2),
    ("other", 1),
)
URGENCIES = (("emergency", 4), ("high", 16), ("normal", 65), ("low", 15))
SOURCE_DETAILS = {"web_form": "Contact form /contact", "quote_request": "Quote form /quote"}
CONTACT_METHODS = (("any", 55), ("sms", 20), ("call", 20), ("email", 5))
# Hour-of-day (UTC) weights: US business hours are ~14:00-02:00 UTC.
HOUR_WEIGHTS = (3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 7, 6, 5, 4)


class Weighted:
    """Fast weighted choice from a precomputed cumulative table."""

    def __init__(self, pairs):
        self.values = [v for v, _ in pairs]
        self.cum = list(itertools.accumulate(w for _, w in pairs))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random):
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.total)]


def phone_for(index: int) -> tuple[str, str, str]:
    """A valid US number unique to this lead index: (area, exchange, line) of +1 AAA EEE LLLL."""
    area = ("512", "737", "214", "469", "713", "832")[index // 8_000_000]
    local = 2_000_000 + index % 8_000_000  # exchanges 200-999: valid NANP numbers
    return area, f"{local // 10_000:03d}", f"{local % 10_000:04d}"


def phone_raw_for(area: str, exchange: str, line: str, style: int) -> str:
    return (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"+1{area}{exchange}{line}",
        f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}",
    )[style]


def ensure_clients_and_staff(n_clients: int):
    from django.contrib.auth import get_user_model

    from leads.models import Client

    clients = []
    for j in range(n_clients):
        name, markets, services = CLIENTS[j % len(CLIENTS)]
        if j >= len(CLIENTS):
            name = f"{name} {j // len(CLIENTS) + 1}"
        client, _ = Client.objects.get_or_create(
            slug=f"bench-client-{j + 1}",
            defaults={
                "name": name,
                "status": Client.Status.ACTIVE,
                "time_zone": TIME_ZONES[j % len(TIME_ZONES)],
                "markets": markets,
                "service_catalog": services,
                "joined_on": datetime.date.today() - datetime.timedelta(days=DAYS + 30),
            },
        )
        clients.append(client)
    User = get_user_model()
    staff = []
    for k, username in enumerate(("alice", "bruno", "chen", "dana", "eli")):
        user, created = User.objects.get_or_create(
            username=f"bench-{username}", defaults={"is_staff": True, "email": f"{username}@ops.example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        staff.append((user, (30, 25, 20, 15, 10)[k]))
    return clients, staff


def lead_columns():
    from leads.models import Lead

    return [f.column for f in Lead._meta.concrete_fields if not f.primary_key]


def lead_row(
    rng,
    i: int,
    *,
    client,
    created,
    captured,
    source: str,
    first: str,
    last: str,
    phone_raw: str,
    phone_e164,
    email_raw: str,
    email_norm,
    flags: list,
    market: str,
    services: list,
    service_share: float,
    status: str,
    status_changed,
    first_response,
    response_s,
    last_activity,
    contact_pick,
    urgency_pick,
    owner_pick,
    lost_pick,
) -> dict:
    """One lead's column values (every concrete column of leads_lead but the id), shared by both
    generators so a new Lead column is filled in one place. The rng draws come in a fixed order:
    the same arguments give the same row."""
    web = source in ("web_form", "quote_request")
    paid = web and rng.random() < 0.6
    return {
        "created_at": created,
        "updated_at": max(created, last_activity),
        "client_id": client.pk,
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "phone_raw": phone_raw,
        "phone_e164": phone_e164,
        "email_raw": email_raw,
        "email_normalized": email_norm,
        "postal_code": f"7{rng.randrange(5000, 9999):04d}" if rng.random() < 0.7 else "",
        "city": market,
        "state_region": "TX" if market else "",
        "source": source,
        "source_detail": SOURCE_DETAILS.get(source, ""),
        "service_type": rng.choice(services) if services and rng.random() < service_share else "",
        "contact_method": contact_pick.pick(rng),
        "market": market,
        "urgency": urgency_pick.pick(rng),
        "owner_id": owner_pick.pick(rng),
        "utm_source": ("google", "facebook", "bing")[i % 3] if paid else "",
        "utm_medium": "cpc" if paid else "",
        "utm_campaign": f"{client.slug}-{rng.choice(services or ['services']).lower().replace(' ', '-')}"
        if paid
        else "",
        "utm_term": "",
        "utm_content": "",
        "gclid": f"Cj0KCQiA{i:012d}" if paid and i % 3 == 0 else "",
        "fbclid": f"IwAR{i:014d}" if paid and i % 3 == 1 else "",
        "msclkid": f"{i:032x}" if paid and i % 3 == 2 else "",
        "tracking_number": "+15125550100" if source in ("phone_call", "missed_call") else "",
        "landing_page": f"https://{client.slug}.example.com/quote" if web else "",
        "referrer": "https://www.google.com/" if paid else "",
        "status": status,
        "lost_reason": lost_pick.pick(rng) if status == "lost" else "",
        "status_changed_at": status_changed,
        "next_action": "Call back" if status in ("new", "contacted") else "",
        "next_action_due": created + datetime.timedelta(days=1) if status in ("new", "contacted") else None,
        "captured_at": captured,
        "first_response_at": first_response,
        "first_response_seconds": response_s,
        "last_activity_at": last_activity,
        "tags": "[]",
        "data_quality_flags": json.dumps(flags),
        "has_data_quality_issues": bool(flags),
    }


def make_rows(start: int, stop: int, total_new: int, first_new: int, end: datetime.datetime, clients, staff):
    """Rows for lead indexes [start, stop) as tuples in lead_columns() order, sorted by created_at.

    captured_at (when the lead came in, the admin's sort and date hierarchy) is a stratified
    sample over two years whose density grows linearly (a business that grows), so any number of
    leads - and any top-up - has the same shape. created_at follows seconds later, except for CSV
    imports, which arrive up to 60 days after the captured_at they are backdated to.
    """
    rng = random.Random(SEED + start)
    client_pick = Weighted([(c, (30, 22, 15, 10, 8, 6, 5, 4)[j % 8]) for j, c in enumerate(clients)])
    owner_pick = Weighted([(None, 35), *((u.pk, w) for u, w in staff)])
    status_recent, status_older = Weighted(STATUS_RECENT), Weighted(STATUS_OLDER)
    lost_pick, source_pick = Weighted(LOST_REASONS), Weighted(SOURCES)
    urgency_pick, contact_pick = Weighted(URGENCIES), Weighted(CONTACT_METHODS)
    hour_pick = Weighted(list(enumerate(HOUR_WEIGHTS)))
    span = datetime.timedelta(days=DAYS)
    origin = end - span
    columns = lead_columns()
    rows = []
    for i in range(start, stop):
        # Position in time: sqrt of a uniform stratum = linearly growing lead volume.
        frac = math.sqrt((i - first_new + rng.random()) / total_new)
        day = origin + span * frac
        captured = day.replace(hour=hour_pick.pick(rng), minute=rng.randrange(60), second=rng.randrange(60))
        captured = min(captured, end)
        age_days = (end - captured).days
        source = source_pick.pick(rng)
        if source == "csv_import":
            created = captured + datetime.timedelta(days=rng.randrange(60), seconds=rng.randrange(86_400))
        else:
            created = captured + datetime.timedelta(seconds=rng.randrange(1, 30))
        created = min(created, end)
        client = client_pick.pick(rng)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if rng.random() < 0.03:  # callers who never gave a name
            first = last = ""
        area, exchange, line = phone_for(i)
        flags = []
        roll = rng.random()
        if roll < 0.04:  # email-only lead
            phone_raw, phone_e164 = "", None
        elif roll < 0.055:  # unreadable phone: kept raw, flagged
            phone_raw, phone_e164 = f"{exchange}-{line[:2]}", None
            flags.append(
                {"field": "phone", "code": "phone_invalid", "reason": "Not a valid number", "value": phone_raw}
            )
        else:
            phone_raw, phone_e164 = phone_raw_for(area, exchange, line, rng.randrange(5)), f"+1{area}{exchange}{line}"
        if rng.random() < 0.25 and phone_e164:  # phone-only lead (missed calls, SMS)
            email_raw, email_norm = "", None
        else:
            local = f"{first}.{last}{i}" if first else f"lead{i}"
            email_raw = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
            if rng.random() < 0.5:
                email_raw = email_raw.lower()
            email_norm = email_raw.casefold().replace("'", "")
            email_raw = email_raw.replace("'", "")
        status = (status_recent if age_days < 7 else status_older).pick(rng)
        markets, services = client.markets, client.service_catalog
        market = rng.choice(markets) if markets and rng.random() > 0.03 else ""
        if status == "new":
            first_response = response_s = None
            status_changed = created
            last_activity = created
        else:
            response_s = int(rng.lognormvariate(6.4, 1.2))  # median ~10 minutes
            first_response = created + datetime.timedelta(seconds=response_s)
            status_changed = first_response + datetime.timedelta(hours=rng.randrange(1, 24 * 21))
            last_activity = status_changed + datetime.timedelta(hours=rng.randrange(0, 72))
        status_changed, last_activity = min(status_changed, end), min(last_activity, end)
        row = lead_row(
            rng,
            i,
            client=client,
            created=created,
            captured=captured,
            source=source,
            first=first,
            last=last,
            phone_raw=phone_raw,
            phone_e164=phone_e164,
            email_raw=email_raw,
            email_norm=email_norm,
            flags=flags,
            market=market,
            services=services,
            service_share=0.8,
            status=status,
            status_changed=status_changed,
            first_response=first_response,
            response_s=response_s,
            last_activity=last_activity,
            contact_pick=contact_pick,
            urgency_pick=urgency_pick,
            owner_pick=owner_pick,
            lost_pick=lost_pick,
        )
        rows.append(tuple(row[c] for c in columns))
    created_pos = columns.index("created_at")
    rows.sort(key=lambda r: r[created_pos])
    return rows


def generate(*, leads: int = 1_000_000, clients: int = 8, batch: int = 5_000, verbose: bool = True) -> dict:
    """Make sure the database holds at least `leads` leads. Returns {"existing", "created", "seconds"}."""
    from django.db import connection, transaction

    from leads.models import Lead

    def say(msg):
        if verbose:
            print(msg, flush=True)

    client_objs, staff = ensure_clients_and_staff(clients)
    existing = Lead.objects.count()
    if existing >= leads:
        say(f"generate: {existing:,} leads already present (>= {leads:,}); nothing to do")
        return {"existing": existing, "created": 0, "seconds": 0.0}
    missing = leads - existing
    say(f"generate: {existing:,} leads present, creating {missing:,} over {len(client_objs)} clients ...")
    columns = lead_columns()
    qn = connection.ops.quote_name
    # Names come from the model's own metadata, values are parameters.
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        qn(Lead._meta.db_table), ", ".join(qn(c) for c in columns), ", ".join(["%s"] * len(columns))
    )
    end = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)  # naive UTC, as Django stores
    started = last_report = time.perf_counter()
    done = 0
    with connection.cursor() as cursor:
        # Rows are consistent by construction (unique phone/email per index, existing client and
        # owner ids), so skip the per-row FK and unique probes for this session only.
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        try:
            for lo in range(existing, leads, batch):
                hi = min(lo + batch, leads)
                rows = make_rows(lo, hi, missing, existing, end, client_objs, staff)
                with transaction.atomic():
                    cursor.executemany(sql, rows)
                done += hi - lo
                now = time.perf_counter()
                if now - last_report > 15 or hi == leads:
                    last_report = now
                    say(f"generate: {existing + done:>10,} leads  {done / (now - started):>8,.0f} rows/s")
        finally:
            cursor.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {qn(Lead._meta.db_table)}")
        cursor.fetchall()
    say(f"generate: created {done:,} leads in {seconds:,.1f} s ({done / seconds:,.0f} rows/s)")
    return {"existing": existing, "created": done, "seconds": seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="total leads wanted (default 1,000,000)")
    parser.add_argument("--clients", type=int, default=8, help="number of clients (default 8)")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per INSERT transaction (default 5,000)")
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the benchmark database first")
    args = parser.parse_args(argv)
    if args.leads > 48_000_000:
        parser.error("--leads: at most 48,000,000 (unique phone numbers run out)")

    from bench import bootstrap

    bootstrap.setup(fresh=args.fresh)
    generate(leads=args.leads, clients=args.clients, batch=args.batch)


if __name__ == "__main__":
    main()
