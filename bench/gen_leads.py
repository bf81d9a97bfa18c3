"""Fill a MariaDB database with clients, a million leads and their events (issue #7, scale).

    .venv/bin/python bench/gen_leads.py --leads 1000000 --clients 50
    .venv/bin/python bench/gen_leads.py --leads 1000000 --reset            # drop and rebuild first
    .venv/bin/python bench/gen_leads.py --database-url mysql://root:@127.0.0.1:3306/zartsalgo_scale

Default database: `zartsalgo_scale` on 127.0.0.1 as root, created (utf8mb4) and migrated here.
Only a database whose name contains "scale" or "bench" is ever dropped (--reset).

What it writes (bench/README.md, "Scale"):

- K clients, skewed: the first holds ~25 % of the leads, the rest a Zipf-like tail. Each client
  joined between ~20 and ~4 months ago, and the leads cover the last two years, so every client
  has leads before joined_on (the report baseline) and after. After joining, responses are faster
  and more leads are booked (what the agency sells), and volume grows.
- one connection per client and provider (webform, callrail, twilio, thumbtack, angi, csv_import);
- N leads (Python, multi-row INSERTs of --batch rows, ids in created_at order as in production),
  with sources, services, markets, statuses, lost reasons, first-response times and UTM/click-id
  attribution; phone/email unique per index, as lead_upsert would leave them;
- per lead, server-side (INSERT ... SELECT over lead id ranges, no Python per row): one
  integration_raw_events row (status normalized), one integration_normalized_events row traced to
  it, one timeline Activity "lead captured" and, for leads that were answered, one outbound
  response Activity at first_response_at;
- a superuser `scale-admin`, staff owners, a portal owner `scale-portal` for the biggest client
  (password `scale-pass-2026`), and published, approved metric cards and summaries (portal models
  written directly: this is a generator, not the approval flow);
- then, when leads/rollups.py exists, the full rollup refresh, timed.

Re-runnable: leads are topped up to N (never deleted), events resume after the last lead that has
them (each chunk of events commits its three tables together), users/cards are get_or_create.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(ROOT))

from bench.generate import (  # noqa: E402 - after the sys.path line above
    CLIENTS,
    CONTACT_METHODS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    HOUR_WEIGHTS,
    LAST_NAMES,
    LOST_REASONS,
    SOURCES,
    TIME_ZONES,
    URGENCIES,
    Weighted,
    lead_row,
    phone_for,
    phone_raw_for,
)

DEFAULT_DATABASE_URL = "mysql://root:@127.0.0.1:3306/zartsalgo_scale"
SEED = 20_261_207
DAYS = 730
PASSWORD = "scale-pass-2026"  # noqa: S105 - a throwaway benchmark login, printed on purpose
ADMIN_USERNAME, PORTAL_USERNAME = "scale-admin", "scale-portal"
STAFF = ("scale-alice", "scale-bruno", "scale-chen", "scale-dana", "scale-eli")

# Which provider a lead's first signal came through, and what the adapter called it.
PROVIDER_OF_SOURCE = {
    "web_form": ("webform", "form.submitted", "lead.captured"),
    "quote_request": ("webform", "quote.submitted", "quote.requested"),
    "missed_call": ("callrail", "call.missed", "call.missed"),
    "phone_call": ("callrail", "call.completed", "call.completed"),
    "sms": ("twilio", "sms.inbound", "sms.received"),
    "thumbtack": ("thumbtack", "lead.created", "lead.captured"),
    "angi": ("angi", "lead.created", "lead.captured"),
    "csv_import": ("csv_import", "row", "lead.captured"),
}
DEFAULT_PROVIDER = ("webform", "form.submitted", "lead.captured")  # referral, manual, other
PROVIDERS = ("webform", "callrail", "twilio", "thumbtack", "angi", "csv_import")


def say(message: str) -> None:
    print(f"gen-leads: {message}", flush=True)


# --- database ------------------------------------------------------------------------------------------


def _server_connect(config: dict):
    import MySQLdb

    return MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
        charset="utf8mb4",
    )


def setup(database_url: str, *, reset: bool = False, migrate: bool = True) -> None:
    """Environment, CREATE DATABASE, django.setup(), migrate. Never drops unless `reset`.

    Unlike bench/bootstrap.py this never rebuilds on its own when a migration file changed: a
    million leads take minutes to make, and other engineers add migrations while it is in use.
    """
    import environ

    config = environ.Env.db_url_config(database_url)
    if config["ENGINE"] != "django.db.backends.mysql":
        sys.exit(f"gen-leads: needs MariaDB/MySQL, not {database_url}")
    name = config["NAME"]
    if not name or "`" in name:
        sys.exit(f"gen-leads: bad database name {name!r}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "zartsalgo.settings",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "60",
            "DEBUG": "0",
        }
    )
    os.environ.setdefault("ENVIRONMENT", "development")
    conn = _server_connect(config)
    try:
        cursor = conn.cursor()
        if reset:
            if "scale" not in name and "bench" not in name:
                sys.exit(f"gen-leads: refusing to drop {name!r} (only names containing 'scale' or 'bench')")
            say(f"dropping database {name}")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        say(f"database {name}: migrated ({time.perf_counter() - started:.1f} s)")


# --- clients, users, connections -------------------------------------------------------------------


def client_weights(n: int) -> list[float]:
    """The first client ~25 % of all leads, the rest a Zipf-like tail (1/rank^0.8)."""
    if n == 1:
        return [1.0]
    tail = [1 / (rank**0.8) for rank in range(1, n)]
    scale = 0.75 / sum(tail)
    return [0.25, *(w * scale for w in tail)]


def ensure_clients(n: int, today: datetime.date):
    from leads.models import Client

    rng = random.Random(SEED)
    clients = []
    for j in range(n):
        name, markets, services = CLIENTS[j % len(CLIENTS)]
        if j >= len(CLIENTS):
            name = f"{name} {j // len(CLIENTS) + 1}"
        # Joined 4-20 months ago: leads exist before (the baseline) and after.
        joined = today - datetime.timedelta(days=120 + rng.randrange(480))
        client, _ = Client.objects.get_or_create(
            slug=f"scale-client-{j + 1}",
            defaults={
                "name": name,
                "status": Client.Status.ACTIVE,
                "time_zone": TIME_ZONES[j % len(TIME_ZONES)],
                "markets": markets,
                "service_catalog": services,
                "joined_on": joined,
            },
        )
        clients.append(client)
    return clients


def ensure_users(big_client):
    from django.contrib.auth import get_user_model

    from portal.models import ClientUser

    User = get_user_model()
    admin, created = User.objects.get_or_create(
        username=ADMIN_USERNAME,
        defaults={"is_staff": True, "is_superuser": True, "email": "scale-admin@ops.example.com"},
    )
    if created:
        admin.set_password(PASSWORD)
        admin.save(update_fields=["password"])
    staff = []
    for k, username in enumerate(STAFF):
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "email": f"{username}@ops.example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        staff.append((user, (30, 25, 20, 15, 10)[k]))
    portal_user, created = User.objects.get_or_create(
        username=PORTAL_USERNAME, defaults={"email": "owner@scale-client-1.example.com"}
    )
    if created:
        portal_user.set_password(PASSWORD)
        portal_user.save(update_fields=["password"])
    ClientUser.objects.get_or_create(user=portal_user, defaults={"client": big_client, "role": "owner"})
    return admin, staff, portal_user


def ensure_connections(clients, admin) -> None:
    from integrations.models import Connection

    existing = set(Connection.objects.filter(client__in=clients).values_list("client_id", "provider"))
    now = datetime.datetime.now(datetime.UTC)
    Connection.objects.bulk_create(
        [
            Connection(
                client=c,
                provider=p,
                name=f"{p} (generated)",
                status=Connection.Status.CONNECTED,
                owner=admin,
                reason="Generated for the scale benchmark",
                last_event_at=now,
            )
            for c in clients
            for p in PROVIDERS
            if (c.pk, p) not in existing
        ]
    )


# --- leads ----------------------------------------------------------------------------------------------


def lead_columns() -> list[str]:
    from leads.models import Lead

    return [f.column for f in Lead._meta.concrete_fields if not f.primary_key]


def make_rows(start, stop, total, end, clients, joined, staff) -> list[tuple]:
    """Rows for lead indexes [start, stop) of `total`, in lead_columns() order, sorted by created_at.

    captured_at: a stratified sample over two years whose density grows linearly, so lead index
    order is time order (and a top-up continues the same curve). Leads after their client's
    joined_on are answered faster and booked more often.
    """
    rng = random.Random(SEED + start)
    client_pick = Weighted(list(zip(clients, client_weights(len(clients)), strict=True)))
    owner_pick = Weighted([(None, 35), *((u.pk, w) for u, w in staff)])
    lost_pick, source_pick = Weighted(LOST_REASONS), Weighted(SOURCES)
    urgency_pick, contact_pick = Weighted(URGENCIES), Weighted(CONTACT_METHODS)
    hour_pick = Weighted(list(enumerate(HOUR_WEIGHTS)))
    recent = Weighted((("new", 60), ("contacted", 30), ("quoted", 10)))
    before = Weighted((("new", 6), ("contacted", 20), ("quoted", 22), ("booked", 24), ("lost", 28)))
    after = Weighted((("new", 4), ("contacted", 16), ("quoted", 20), ("booked", 36), ("lost", 24)))
    span = datetime.timedelta(days=DAYS)
    origin = end - span
    columns = lead_columns()
    rows = []
    for i in range(start, stop):
        frac = math.sqrt((i + rng.random()) / total)
        day = origin + span * frac
        captured = min(day.replace(hour=hour_pick.pick(rng), minute=rng.randrange(60), second=rng.randrange(60)), end)
        source = source_pick.pick(rng)
        if source == "csv_import":
            created = captured + datetime.timedelta(days=rng.randrange(60), seconds=rng.randrange(86_400))
        else:
            created = captured + datetime.timedelta(seconds=rng.randrange(1, 30))
        created = min(created, end)
        client = client_pick.pick(rng)
        is_after = captured.date() >= joined[client.pk]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if rng.random() < 0.03:
            first = last = ""
        area, exchange, line = phone_for(i)
        flags = []
        roll = rng.random()
        if roll < 0.04:
            phone_raw, phone_e164 = "", None
        elif roll < 0.055:
            phone_raw, phone_e164 = f"{exchange}-{line[:2]}", None
            flags.append(
                {"field": "phone", "code": "phone_invalid", "reason": "Not a valid number", "value": phone_raw}
            )
        else:
            phone_raw, phone_e164 = phone_raw_for(area, exchange, line, rng.randrange(5)), f"+1{area}{exchange}{line}"
        if rng.random() < 0.25 and phone_e164:
            email_raw, email_norm = "", None
        else:
            local = f"{first}.{last}{i}" if first else f"lead{i}"
            email_raw = f"{local}@{rng.choice(EMAIL_DOMAINS)}".replace("'", "")
            if rng.random() < 0.5:
                email_raw = email_raw.lower()
            email_norm = email_raw.casefold()
        age_days = (end - captured).days
        status = (recent if age_days < 7 else after if is_after else before).pick(rng)
        markets, services = client.markets, client.service_catalog
        market = rng.choice(markets) if markets and rng.random() > 0.03 else ""
        if status == "new":
            first_response = response_s = None
            status_changed = last_activity = created
        else:
            # median ~25 min before the agency, ~4 min after
            response_s = int(rng.lognormvariate(5.5 if is_after else 7.3, 1.1))
            first_response = created + datetime.timedelta(seconds=response_s)
            status_changed = first_response + datetime.timedelta(hours=rng.randrange(1, 24 * 21))
            last_activity = status_changed + datetime.timedelta(hours=rng.randrange(0, 72))
        status_changed, last_activity = min(status_changed, end), min(last_activity, end)
        if first_response is not None and first_response > end:
            first_response, response_s = None, None
            status = "new"
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
            service_share=0.85,
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


def _tsv_value(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "1" if value else "0"
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return text


def _load_connection(config: dict):
    """A connection of its own that may LOAD DATA LOCAL INFILE (Django's does not ask for it)."""
    import MySQLdb

    conn = MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
        database=config["NAME"],
        charset="utf8mb4",
        local_infile=1,
    )
    conn.autocommit(False)
    return conn


def generate_leads(*, total: int, clients, staff, batch: int) -> dict:
    """Tops the table up to `total` leads: rows made in a thread, loaded with LOAD DATA LOCAL INFILE.

    Making a row in Python and escaping it for a multi-row INSERT cost about as much as MariaDB's
    insert (2,000 rows/s in all here); a tab-separated file is cheap to write and LOAD DATA is the
    server's fastest path. One thread makes the next batch while the server loads this one (the
    client library releases the GIL while it waits). Secondary indexes stay on, as in production.
    """
    import queue
    import tempfile
    import threading

    from django.conf import settings

    from leads.models import Lead

    existing = Lead.objects.filter(client__in=clients).count()
    if existing >= total:
        say(f"leads: {existing:,} present (>= {total:,}); nothing to add")
        return {"created": 0, "seconds": 0.0, "rows_per_s": None}
    missing = total - existing
    say(f"leads: {existing:,} present, loading {missing:,} over {len(clients)} clients (batches of {batch:,})")
    joined = {c.pk: c.joined_on for c in clients}
    columns = lead_columns()
    end = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)  # naive UTC, as Django stores
    tmpdir = Path(tempfile.mkdtemp(prefix="gen-leads-"))
    ready: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for lo in range(existing, total, batch):
                hi = min(lo + batch, total)
                path = tmpdir / f"leads-{lo}.tsv"
                rows = make_rows(lo, hi, total, end, clients, joined, staff)
                with path.open("w", encoding="utf-8", newline="") as handle:
                    handle.writelines("\t".join(map(_tsv_value, row)) + "\n" for row in rows)
                ready.put((lo, hi, path))
        except BaseException as exc:  # surfaced in the main thread
            failure.append(exc)
        finally:
            ready.put(None)

    conn = _load_connection(settings.DATABASES["default"])
    cursor = conn.cursor()
    # Consistent by construction (unique phone/email per index, existing client/owner ids):
    # skip the per-row FK and unique probes for this session only.
    cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
    column_list = ", ".join(f"`{c}`" for c in columns)
    load_sql = (
        "LOAD DATA LOCAL INFILE %s INTO TABLE leads_lead CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({column_list})"
    )
    producer = threading.Thread(target=produce, daemon=True)
    started = last = time.perf_counter()
    producer.start()
    done = 0
    try:
        while (item := ready.get()) is not None:
            lo, hi, path = item
            loaded = cursor.execute(load_sql, [str(path)])
            conn.commit()
            path.unlink()
            if loaded != hi - lo:
                raise RuntimeError(f"LOAD DATA took {loaded} of {hi - lo} rows of {path.name}")
            done += hi - lo
            now = time.perf_counter()
            if now - last > 20 or hi == total:
                last = now
                say(f"leads: {existing + done:>10,}  {done / (now - started):>7,.0f} rows/s")
        if failure:
            raise failure[0]
    finally:
        conn.close()
        for leftover in tmpdir.glob("*.tsv"):
            leftover.unlink()
        tmpdir.rmdir()
    seconds = time.perf_counter() - started
    return {"created": done, "seconds": round(seconds, 1), "rows_per_s": round(done / seconds)}


# --- events: server-side INSERT ... SELECT per lead id range ---------------------------------------
#
# STRAIGHT_JOIN: leads first (the id range), then the connection, then the raw event by its unique
# key. The event tables' statistics say "empty" while they fill, and the optimizer then starts from
# the raw events and probes the leads for each of them: 97 s for the first chunk instead of ~1 s.


def _case(mapping: dict[str, str], default: str, column: str = "l.source") -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE '{default}' END"


PROVIDER_SQL = _case({k: v[0] for k, v in PROVIDER_OF_SOURCE.items()}, DEFAULT_PROVIDER[0])
KIND_SQL = _case({k: v[1] for k, v in PROVIDER_OF_SOURCE.items()}, DEFAULT_PROVIDER[1])
EVENT_TYPE_SQL = _case({k: v[2] for k, v in PROVIDER_OF_SOURCE.items()}, DEFAULT_PROVIDER[2])

RAW_SQL = f"""
INSERT INTO integration_raw_events
  (connection_id, client_id, provider, receipt_id, idempotency_key, kind, payload, summary, occurred_at,
   received_at, status, attempts, next_attempt_at, last_error, processed_at)
SELECT STRAIGHT_JOIN c.id, l.client_id, c.provider, NULL, CONCAT('gen-lead-', l.id), {KIND_SQL},
  JSON_OBJECT('name', l.full_name, 'phone', l.phone_raw, 'email', l.email_raw, 'service', l.service_type,
              'source', l.source, 'utm_source', l.utm_source, 'utm_campaign', l.utm_campaign,
              'landing_page', l.landing_page),
  CONCAT({KIND_SQL}, ' from ', IF(l.phone_e164 IS NULL, 'unknown', CONCAT(LEFT(l.phone_e164, 5), '…'))),
  l.captured_at, l.created_at, 'normalized', 1, NULL, '', l.created_at + INTERVAL 2 SECOND
FROM leads_lead l
JOIN integration_connections c ON c.client_id = l.client_id AND c.provider = {PROVIDER_SQL}
WHERE l.id BETWEEN %s AND %s
ORDER BY l.id
"""  # noqa: S608 - constants only; the range is a parameter

NORMALIZED_SQL = f"""
INSERT INTO integration_normalized_events
  (client_id, lead_id, raw_event_id, event_type, occurred_at, data, idempotency_key, applied_consumers,
   applied_at, created_at)
SELECT STRAIGHT_JOIN l.client_id, l.id, r.id, {EVENT_TYPE_SQL}, l.captured_at,
  JSON_OBJECT('source', l.source, 'service_type', l.service_type, 'market', l.market, 'urgency', l.urgency,
              'utm_source', l.utm_source, 'phone', l.phone_e164, 'email', l.email_normalized),
  CONCAT(c.provider, ':gen-lead-', l.id), '["leads"]', l.created_at + INTERVAL 2 SECOND,
  l.created_at + INTERVAL 2 SECOND
FROM leads_lead l
JOIN integration_connections c ON c.client_id = l.client_id AND c.provider = {PROVIDER_SQL}
JOIN integration_raw_events r ON r.connection_id = c.id AND r.idempotency_key = CONCAT('gen-lead-', l.id)
WHERE l.id BETWEEN %s AND %s
ORDER BY l.id
"""  # noqa: S608

ACTIVITY_CAPTURED_SQL = f"""
INSERT INTO leads_activity
  (client_id, lead_id, kind, occurred_at, summary, body, is_internal, provider, provider_id, delivery_status,
   actor_user_id, actor_label, data, created_at)
SELECT l.client_id, l.id, 'lead_captured', l.captured_at,
  CONCAT('Lead captured (', l.source, IF(l.service_type = '', '', CONCAT(', ', l.service_type)), ')'),
  '', 0, {PROVIDER_SQL}, NULL, '', NULL, 'system:generator', JSON_OBJECT('source', l.source), l.created_at
FROM leads_lead l
WHERE l.id BETWEEN %s AND %s
ORDER BY l.id
"""  # noqa: S608

ACTIVITY_RESPONSE_SQL = """
INSERT INTO leads_activity
  (client_id, lead_id, kind, occurred_at, summary, body, is_internal, provider, provider_id, delivery_status,
   actor_user_id, actor_label, data, created_at)
SELECT l.client_id, l.id, IF(l.contact_method = 'email', 'email_outbound', 'sms_outbound'), l.first_response_at,
  'First reply sent', 'Thanks for reaching out - when is a good time to call?', 0, '', NULL, 'delivered', NULL,
  'workflow:new-lead-follow-up', JSON_OBJECT('first_response', TRUE), l.first_response_at
FROM leads_lead l
WHERE l.id BETWEEN %s AND %s AND l.first_response_at IS NOT NULL
ORDER BY l.id
"""


def generate_events(*, clients, chunk: int) -> dict:
    """Events for every lead that has none yet, in chunks of `chunk` lead ids, one transaction each."""
    from django.db import connection, transaction

    client_ids = [c.pk for c in clients]
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id), MAX(id) FROM leads_lead")
        lo_id, hi_id = cursor.fetchone()
        # The three tables of a chunk commit together, so the newest lead with a normalized event
        # marks where an earlier run stopped.
        cursor.execute(
            "SELECT MAX(lead_id) FROM integration_normalized_events WHERE idempotency_key LIKE %s", ["%gen-lead-%"]
        )
        done_id = cursor.fetchone()[0]
    if lo_id is None:
        return {"rows": 0, "seconds": 0.0}
    start_id = (done_id + 1) if done_id else lo_id
    if start_id > hi_id:
        say("events: every lead already has its events; nothing to add")
        return {"rows": 0, "seconds": 0.0, "rows_per_s": None}
    say(f"events: lead ids {start_id:,}..{hi_id:,} (chunks of {chunk:,} leads), clients {len(client_ids)}")
    counts = {"raw": 0, "normalized": 0, "activity": 0}
    started = last = time.perf_counter()
    with connection.cursor() as cursor:
        # Rows reference existing ids and keys unique by construction (see generate_leads).
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        try:
            for lo in range(start_id, hi_id + 1, chunk):
                hi = min(lo + chunk - 1, hi_id)
                with transaction.atomic():
                    counts["raw"] += cursor.execute(RAW_SQL, [lo, hi])
                    counts["normalized"] += cursor.execute(NORMALIZED_SQL, [lo, hi])
                    counts["activity"] += cursor.execute(ACTIVITY_CAPTURED_SQL, [lo, hi])
                    counts["activity"] += cursor.execute(ACTIVITY_RESPONSE_SQL, [lo, hi])
                now = time.perf_counter()
                if now - last > 20 or hi == hi_id:
                    last = now
                    rows = sum(counts.values())
                    say(
                        f"events: up to lead {hi:>10,}  raw {counts['raw']:,}  normalized {counts['normalized']:,}  "
                        f"activities {counts['activity']:,}  {rows / (now - started):>7,.0f} rows/s"
                    )
        finally:
            cursor.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
    seconds = time.perf_counter() - started
    rows = sum(counts.values())
    return {**counts, "rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds)}


# --- portal proof: published cards and summaries ----------------------------------------------------


def ensure_proof(clients, admin, *, months_big: int = 12, months_other: int = 3) -> int:
    """Monthly metric cards (3 per month) and a summary per month, published and approved."""
    from django.utils import timezone

    from portal.models import MetricCard, ProofStatus, Summary

    now = timezone.now()
    made = 0
    for index, client in enumerate(clients):
        if MetricCard.objects.filter(client=client, drafted_by_label="system:generator").exists():
            continue
        months = months_big if index == 0 else months_other
        month_end = now.date().replace(day=1) - datetime.timedelta(days=1)
        cards, summaries = [], []
        for _ in range(months):
            start = month_end.replace(day=1)
            common = {
                "client": client,
                "period_start": start,
                "period_end": month_end,
                "status": ProofStatus.PUBLISHED,
                "drafted_by_label": "system:generator",
                "checked_at": now,
                "approved_by": admin,
                "approved_at": now,
                "published_by": admin,
                "published_at": now,
            }
            for key, label, unit, base, cur in (
                ("leads", "Leads", MetricCard.Unit.LEADS, 410, 520),
                ("first_response_minutes", "Median first response", MetricCard.Unit.MINUTES, 24, 4),
                ("booked_rate", "Booked rate", MetricCard.Unit.PERCENT, 24, 36),
            ):
                cards.append(
                    MetricCard(
                        **common,
                        source_label="Leads (all sources)",
                        metric_key=key,
                        metric_label=label,
                        unit=unit,
                        baseline_value=base,
                        current_value=cur,
                        health=MetricCard.Health.ON_TRACK,
                        next_action="Keep the follow-up workflow on",
                        meaning=f"{label} for {start:%B %Y}, against the same length before joining.",
                    )
                )
            summaries.append(
                Summary(
                    **common,
                    title=f"{start:%B %Y} results",
                    body="More leads, answered faster, and more of them booked than before you joined.",
                    summarizer="generator",
                )
            )
            month_end = start - datetime.timedelta(days=1)
        MetricCard.objects.bulk_create(cards)
        Summary.objects.bulk_create(summaries)
        made += len(cards) + len(summaries)
    return made


# --- rollups ---------------------------------------------------------------------------------------------


def run_rollups(*, wait: float) -> dict:
    """The full rollup refresh (leads/rollups.py, another engineer's), timed. Waits up to `wait` s for it."""
    path = ROOT / "leads" / "rollups.py"
    deadline = time.monotonic() + wait
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(15)
    if not path.exists():
        say("rollups: leads/rollups.py does not exist yet; skipped (later: manage.py refresh_rollups --full)")
        return {"available": False}
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)  # the rollup table's migration
    from leads import rollups

    say("rollups: full refresh (rollups_refresh()) ...")
    started = time.perf_counter()
    result = rollups.rollups_refresh()
    seconds = time.perf_counter() - started
    tables = [t for t in connection.introspection.table_names() if "rollup" in t]
    rows = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows[table] = cursor.fetchone()[0]
            cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(table)}")
            cursor.fetchall()
        cursor.execute("SELECT COUNT(*) FROM leads_lead")
        leads = cursor.fetchone()[0]
    say(
        f"rollups: {seconds:,.1f} s for {leads:,} leads ({leads / seconds:,.0f} leads/s); rows {rows}; "
        f"returned {result!r}"[:400]
    )
    return {
        "available": True,
        "seconds": round(seconds, 1),
        "leads_per_s": round(leads / seconds),
        "rows": rows,
        "result": repr(result)[:300],
    }


def _rollups_filled() -> bool:
    try:
        from leads.models_rollups import LeadDailyRollup
    except ImportError:
        return False
    return LeadDailyRollup.objects.exists()


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("leads_lead", "leads_activity", "integration_raw_events", "integration_normalized_events"):
            cursor.execute(f"ANALYZE TABLE {table}")
            cursor.fetchall()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("SCALE_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--reset", action="store_true", help="drop and rebuild the database first")
    parser.add_argument("--batch", type=int, default=5_000, help="leads per INSERT transaction")
    parser.add_argument("--event-chunk", type=int, default=20_000, help="lead ids per events transaction")
    parser.add_argument("--skip-events", action="store_true")
    parser.add_argument("--skip-rollups", action="store_true")
    parser.add_argument("--refresh-rollups", action="store_true", help="time the full refresh even if nothing changed")
    parser.add_argument("--rollups-wait", type=float, default=0, help="seconds to wait for leads/rollups.py")
    args = parser.parse_args(argv)
    if args.leads > 48_000_000:
        parser.error("--leads: at most 48,000,000 (unique phone numbers run out)")

    wall = time.perf_counter()
    setup(args.database_url, reset=args.reset)
    today = datetime.date.today()
    clients = ensure_clients(args.clients, today)
    admin, staff, _portal = ensure_users(clients[0])
    ensure_connections(clients, admin)
    summary = {"leads": generate_leads(total=args.leads, clients=clients, staff=staff, batch=args.batch)}
    if not args.skip_events:
        summary["events"] = generate_events(clients=clients, chunk=args.event_chunk)
    started = time.perf_counter()
    analyze()
    say(f"ANALYZE TABLE: {time.perf_counter() - started:.1f} s")
    summary["proof_rows"] = ensure_proof(clients, admin)
    created = summary["leads"]["created"] + summary.get("events", {}).get("rows", 0)
    if args.skip_rollups:
        pass
    elif created or args.refresh_rollups or not _rollups_filled():
        summary["rollups"] = run_rollups(wait=args.rollups_wait)
    else:
        say("rollups: nothing generated and the rollup table is filled; not refreshed (--refresh-rollups to force)")
    summary["wall_s"] = round(time.perf_counter() - wall, 1)
    say(f"done in {summary['wall_s']:,.1f} s: {json.dumps(summary, default=str)}")
    say(f"logins (password {PASSWORD}): staff {ADMIN_USERNAME}, portal {PORTAL_USERNAME} ({clients[0].name})")
    out = ROOT / "var" / "bench" / "scale"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gen_leads.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
