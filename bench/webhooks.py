"""Webhook ingest, processing and CSV import throughput on MariaDB (see "Webhooks" in bench/README.md).

    make bench-webhooks                                 # everything, ~12 minutes on 2 cores
    .venv/bin/python bench/webhooks.py --duration 10 --skip-csv
    .venv/bin/python bench/webhooks.py --skip-processing   # ingest only, ~2.5 minutes

One run, which starts and stops everything it needs:

1. Ingest. A fresh database `zartsalgo_bench_webhooks` (BENCH_WEBHOOKS_DATABASE_URL overrides),
   migrated; gunicorn serving the project's WSGI app with bench.webhooks_settings (project URLs +
   a baseline view) on 127.0.0.1 only; Redis db 9 with key prefix "bench_webhooks:" and NO Celery
   worker, so every delivery's processing queues up instead of running. wrk (Lua script
   bench/webhooks_wrk.lua) sends PRE-SIGNED requests, each at most once, at concurrency 32:
   the baseline (one INSERT, 200), signed Twilio inbound SMS, signed SendGrid batches of 3 events.
   Then row counts prove nothing was lost or doubled.
2. Processing. Real `celery -A zartsalgo worker` processes drain the queued raw events (prefork
   -c 2 on the ingest backlog, then on fresh batches: the per-event mode
   INTEGRATIONS_PROCESS_BATCH_SIZE=1, prefork -c 4, threads -c 8); the inline baseline calls
   services.raw_event_process() in a loop, one event per transaction vs 50; queries per event and
   cProfiles of processing and of one delivery say where the time goes.
3. CSV import (integrations/imports.py): a generated CSV of --csv-rows rows, dry run, and a real
   import of the first --csv-import-rows rows, each in a child process for a clean peak RSS.

Each phase is capped so the whole run stays within --budget (870 s); a CSV job that would overrun
is stopped and reported with its partial rate. CPU use by other processes is sampled during every
measurement and printed next to it: on a shared machine every figure is lower.

Nothing in the project is changed. Logs and the JSON result go to var/bench/webhooks/.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(ROOT))

VENV_BIN = Path(sys.executable).parent
OUT_DIR = ROOT / "var" / "bench" / "webhooks"
DEFAULT_DATABASE_URL = "mysql://root:@127.0.0.1:3306/zartsalgo_bench_webhooks"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 9
KEY_PREFIX = "bench_webhooks:"
BASELINE_TABLE = "bench_webhooks_baseline"
TWILIO_TOKEN_ENV = "BENCH_WEBHOOKS_TWILIO_AUTH_TOKEN"  # noqa: S105 - a variable's name, not a secret
SENDGRID_KEY_ENV = "BENCH_WEBHOOKS_SENDGRID_PUBLIC_KEY"
LUA_SCRIPT = Path(__file__).resolve().parent / "webhooks_wrk.lua"
EVENTS_PER_SENDGRID_POST = 3
# No Django view answers faster than this on 2 cores; pools are sized from it before the
# baseline has been measured, and from the measured baseline rate afterwards.
MAX_PLAUSIBLE_RPS = 5000


def log(message: str) -> None:
    print(f"bench-webhooks: {message}", flush=True)


# --- child processes --------------------------------------------------------------------------------


class Processes:
    """Every process this run starts, stopped by its own process group id, never by name."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []
        self.stop_commands: list[list[str]] = []

    def start(self, name: str, cmd: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
        handle = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        self.running.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, *, timeout: float = 30) -> None:
        if proc.poll() is None:
            # SIGTERM to the leader only: gunicorn's master and celery's main process then stop
            # their own children gracefully (warm shutdown: what they hold is finished).
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        # Whatever is left in the process group this run created (a stuck child) is killed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self.running)):
            self.stop(proc, timeout=15)
        for cmd in self.stop_commands:
            subprocess.run(cmd, check=False, capture_output=True)


PROCS = Processes()


def _on_signal(signum, frame):  # Ctrl-C / kill: unwind through the finally that stops everything
    raise KeyboardInterrupt(f"signal {signum}")


# --- machine noise ------------------------------------------------------------------------------------


def _proc_snapshot() -> tuple[int, int, dict[int, tuple[int, int, int]]]:
    """(busy jiffies, total jiffies) of the machine and {pid: (ppid, cpu jiffies, starttime)}."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    procs: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))
    return sum(values) - idle, sum(values), procs


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:70]
    except OSError:
        return f"pid {pid}"


class CpuMeter:
    """Who used the 2 cores during a phase: this run (and its children), MariaDB, and anything
    else on the machine. A shared machine makes every figure lower; this says by how much."""

    def __init__(self) -> None:
        self.start = _proc_snapshot()

    def stop(self) -> dict[str, Any]:
        busy0, total0, procs0 = self.start
        busy1, total1, procs1 = _proc_snapshot()
        cores = os.cpu_count() or 1
        window = max(1, total1 - total0) / cores  # jiffies of one core over the phase
        ours = {os.getpid()}
        changed = True
        while changed:  # descendants of this process, alive at the end
            changed = False
            for pid, (ppid, _, _) in procs1.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        mariadb = foreign = 0
        others: Counter = Counter()
        for pid, (_, ticks, start) in procs1.items():
            before = procs0.get(pid)
            used = ticks - before[1] if before and before[2] == start else ticks
            if pid in ours or used <= 0:
                continue
            name = _command(pid)
            if "mariadbd" in name or "mysqld" in name:
                mariadb += used
            elif "redis-server" not in name:
                foreign += used
                others[name] += used
        return {
            "machine_busy_pct": round(100 * (busy1 - busy0) / window, 0),  # of one core; 200 = both cores
            "mariadb_pct": round(100 * mariadb / window, 0),
            "foreign_pct": round(100 * foreign / window, 0),
            "foreign_top": [f"{name} ({100 * used / window:.0f}%)" for name, used in others.most_common(3)],
        }


# --- services: MariaDB, Redis, wrk ---------------------------------------------------------------------


def database_config() -> dict:
    import environ

    url = os.environ.get("BENCH_WEBHOOKS_DATABASE_URL") or DEFAULT_DATABASE_URL
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.mysql" or "bench" not in (config["NAME"] or ""):
        sys.exit(f"bench-webhooks: needs a MariaDB database whose name contains 'bench', not {url}")
    config["URL"] = url
    return config


def _mysql_connect(config: dict):
    import MySQLdb

    return MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
        charset="utf8mb4",
    )


def ensure_mariadb(config: dict) -> dict[str, str]:
    """Reachable MariaDB (started with the system service if it was down); returns its settings."""
    import MySQLdb

    try:
        conn = _mysql_connect(config)
    except MySQLdb.OperationalError:
        log("MariaDB is not answering; starting it (service mariadb start)")
        subprocess.run(["service", "mariadb", "start"], check=False, capture_output=True)
        PROCS.stop_commands.append(["service", "mariadb", "stop"])
        for _ in range(30):
            time.sleep(1)
            with contextlib.suppress(MySQLdb.OperationalError):
                conn = _mysql_connect(config)
                break
        else:
            sys.exit("bench-webhooks: MariaDB did not start; start it and run again")
    cursor = conn.cursor()
    cursor.execute(
        "SHOW VARIABLES WHERE Variable_name IN ('version', 'innodb_flush_log_at_trx_commit', "
        "'innodb_buffer_pool_size', 'sync_binlog', 'log_bin', 'max_connections')"
    )
    variables = dict(cursor.fetchall())
    name = config["NAME"]
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    return variables


def ensure_redis() -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.ping()
        return
    except redis.ConnectionError:
        pass
    server = shutil.which("redis-server")
    if not server:
        sys.exit("bench-webhooks: Redis is not running on 127.0.0.1:6379 and redis-server is not installed")
    log("Redis is not answering; starting redis-server on 127.0.0.1:6379 for this run")
    PROCS.start(
        "redis",
        [server, "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
        env=dict(os.environ),
        log_path=OUT_DIR / "redis.log",
    )
    for _ in range(50):
        time.sleep(0.1)
        with contextlib.suppress(redis.ConnectionError):
            client.ping()
            return
    sys.exit("bench-webhooks: redis-server did not start")


def redis_clear() -> int:
    """Delete this benchmark's keys only (its prefix, in its db): nothing else in Redis is touched."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def redis_queue_length(queue: str = "ingest") -> int:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    # kombu keeps one list per priority step: "ingest", "ingest\x06\x163", ...
    return sum(
        client.llen(key) for key in client.scan_iter(match=f"{KEY_PREFIX}{queue}*") if client.type(key) == b"list"
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk (Debian package)")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench-webhooks: wrk is required (apt-get install wrk)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Django -----------------------------------------------------------------------------------------


def bench_environment(config: dict) -> dict[str, str]:
    """The environment of this process, gunicorn and the workers: one configuration for all."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.webhooks_settings",
            "DATABASE_URL": config["URL"],
            "REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "CELERY_KEY_PREFIX": KEY_PREFIX,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            # Persistent connections as production runs them (settings default to 0 outside production).
            "CONN_MAX_AGE": "60",
            "DEBUG": "0",
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        }
    )
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {BASELINE_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, received_at DATETIME(6) NOT NULL, "
            "body_sha256 CHAR(64) NOT NULL, body_size INT NOT NULL) ENGINE=InnoDB"
        )


# --- data --------------------------------------------------------------------------------------------

AREA_CODES = ("512", "737", "210", "254", "469", "214")
FIRST = ("Maria", "James", "Linda", "Robert", "Ana", "Michael", "Patricia", "David", "Jennifer", "Luis", "Karen", "Tom")
LAST = ("Garcia", "Smith", "Johnson", "Nguyen", "Martinez", "Brown", "Lopez", "Davis", "Wilson", "Hernandez", "Lee")
SMS_BODIES = (
    "Hi, is anyone available today? The water heater is leaking",
    "Yes tomorrow morning works for us",
    "How much for a drain cleaning? Kitchen sink is backed up",
    "Can you come after 5pm? Nobody is home before that",
    "Thanks! See you then",
    "The tech just left, all good now. What do I owe?",
    "Do you service Round Rock?",
    "Running 10 min late, gate code is 4471",
    "Can I get a quote for replacing a 50 gallon gas water heater",
    "ok",
)
SENDGRID_SEQUENCES = (
    ("processed", "delivered", "open"),
    ("delivered", "open", "click"),
    ("processed", "deferred", "delivered"),
    ("open", "open", "click"),
    ("processed", "delivered", "bounce"),
)


@dataclass
class World:
    """What the generated traffic refers to: the client, its two connections, seeded leads."""

    client_id: int
    twilio_connection_id: int
    twilio_token: str
    twilio_auth_token: str
    sendgrid_connection_id: int
    sendgrid_token: str
    sendgrid_private_key: Any
    phones: list[str] = field(default_factory=list)
    emails: list[tuple[str, str, int]] = field(default_factory=list)  # (email, X-Message-Id, lead id)


def random_phone(rng: random.Random) -> str:
    return f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"


def seed(rng: random.Random, leads: int) -> World:
    """One client, a Twilio and a SendGrid connection (secrets in env vars), `leads` leads that
    each got an outbound email through SendGrid: the events refer to real rows, as in production."""
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from integrations.services import connection_create
    from leads.models import Client
    from leads.services import LeadSignal, activity_record, lead_upsert

    auth_token = secrets.token_hex(16)
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    os.environ[TWILIO_TOKEN_ENV] = auth_token
    os.environ[SENDGRID_KEY_ENV] = base64.b64encode(public_der).decode()
    client = Client.objects.create(
        name="Bench Plumbing & Air",
        slug="bench-plumbing",
        status=Client.Status.ACTIVE,
        markets=["Austin", "Round Rock"],
        service_catalog=["Drain cleaning", "Water heater"],
    )
    twilio = connection_create(
        client=client,
        provider="twilio",
        reason="bench",
        actor="system:bench",
        credentials={"auth_token": f"env:{TWILIO_TOKEN_ENV}"},
    )
    sendgrid = connection_create(
        client=client,
        provider="sendgrid",
        reason="bench",
        actor="system:bench",
        credentials={"public_key": f"env:{SENDGRID_KEY_ENV}"},
    )
    world = World(
        client_id=client.pk,
        twilio_connection_id=twilio.pk,
        twilio_token=twilio.webhook_token,
        twilio_auth_token=auth_token,
        sendgrid_connection_id=sendgrid.pk,
        sendgrid_token=sendgrid.webhook_token,
        sendgrid_private_key=private_key,
    )
    for index in range(leads):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        phone = random_phone(rng)
        email = f"{first}.{last}.{index}@example.com".lower()
        lead = lead_upsert(
            client=client,
            signal=LeadSignal(source="webform", phone=phone, email=email, first_name=first, last_name=last),
            actor="system:bench",
        ).lead
        x_message_id = base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("=")
        activity_record(
            lead=lead,
            kind="email_outbound",
            summary="Estimate follow-up",
            actor="system:bench",
            provider="sendgrid",
            provider_id=x_message_id,
            delivery_status="queued",
        )
        world.phones.append(lead.phone_e164 or phone)
        world.emails.append((email, x_message_id, lead.pk))
    return world


class Traffic:
    """Realistic deliveries, every one unique (fresh MessageSid / sg_event_id)."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.serial = 0

    def twilio_form(self) -> dict[str, str]:
        rng = self.rng
        self.serial += 1
        sid = "SM" + rng.randbytes(16).hex()
        # Half the texts come from people we know (a reply on an existing lead), half from new numbers.
        phone = rng.choice(self.world.phones) if rng.random() < 0.5 else random_phone(rng)
        body = "STOP" if rng.random() < 0.01 else rng.choice(SMS_BODIES)
        return {
            "ToCountry": "US",
            "ToState": "TX",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "AUSTIN",
            "FromZip": "78701",
            "SmsSid": sid,
            "FromState": "TX",
            "SmsStatus": "received",
            "FromCity": "AUSTIN",
            "Body": body,
            "FromCountry": "US",
            "To": "+15125550100",
            "MessagingServiceSid": "MG" + "a1b2c3d4" * 4,
            "ToZip": "78701",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": "AC" + "0f1e2d3c" * 4,
            "From": phone,
            "ApiVersion": "2010-04-01",
        }

    def sendgrid_events(self) -> list[dict[str, Any]]:
        rng = self.rng
        known = rng.random() < 0.9  # one in ten is about mail another system sent: no activity, maybe no lead
        if known:
            email, x_message_id, lead_id = rng.choice(self.world.emails)
        else:
            email, x_message_id, lead_id = (
                f"someone{rng.randint(1, 10**6)}@example.net",
                "unknown" + str(rng.random()),
                0,
            )
        now = int(time.time())
        events = []
        for kind in rng.choice(SENDGRID_SEQUENCES):
            self.serial += 1
            event: dict[str, Any] = {
                "email": email,
                "timestamp": now - rng.randint(1, 120),
                "smtp-id": f"<{x_message_id}@ismtpd0104p1mdw1.sendgrid.net>",
                "event": kind,
                "category": ["estimate-follow-up"],
                "sg_event_id": base64.urlsafe_b64encode(f"{kind}-{self.serial}-".encode() + rng.randbytes(12))
                .decode()
                .rstrip("="),
                "sg_message_id": f"{x_message_id}.filterdrecv-p3las1-5bf99c48d-7xr5f-18-5BF5A1E6-11.0",
            }
            if known and rng.random() < 0.7:
                event["zid_lead"] = str(lead_id)
            if kind == "delivered":
                event.update({"response": "250 2.0.0 OK", "ip": "149.72.154.232", "tls": 1})
            elif kind == "open":
                event.update(
                    {"useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)", "ip": "66.249.84.1"}
                )
            elif kind == "click":
                event.update({"url": "https://acme.example/book?utm_source=email", "ip": "66.249.84.1"})
            elif kind == "deferred":
                event.update({"response": "421 4.7.0 Try again later", "attempt": "1"})
            elif kind == "bounce":
                event.update(
                    {"reason": "550 5.1.1 The email account does not exist", "status": "5.1.1", "type": "bounce"}
                )
            events.append(event)
        return events

    def sendgrid_body(self) -> bytes:
        return json.dumps(self.sendgrid_events(), separators=(",", ":")).encode()


def sign_sendgrid(private_key, body: bytes, timestamp: int) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def write_pool(kind: str, traffic: Traffic, count: int, base_url: str, path: Path) -> int:
    """`count` requests for the wrk script, signed now. Returns how many events each one carries."""
    from twilio.request_validator import RequestValidator

    world = traffic.world
    twilio_path = f"/api/webhooks/twilio/{world.twilio_token}/"
    sendgrid_path = f"/api/webhooks/sendgrid/{world.sendgrid_token}/"
    validator = RequestValidator(world.twilio_auth_token)
    form_type = "application/x-www-form-urlencoded"
    timestamp = int(time.time())  # SendGrid signatures are refused after 300 s: pools are made per run
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(count):
            if kind == "baseline":
                # Same bytes on the wire as a Twilio delivery, no signature, one INSERT.
                fields = ["/bench/baseline/", "Content-Type", form_type, urllib.parse.urlencode(traffic.twilio_form())]
            elif kind == "twilio":
                params = traffic.twilio_form()
                signature = validator.compute_signature(base_url + twilio_path, params)
                fields = [
                    twilio_path,
                    "Content-Type",
                    form_type,
                    "X-Twilio-Signature",
                    signature,
                    urllib.parse.urlencode(params),
                ]
            else:
                body = traffic.sendgrid_body()
                fields = [
                    sendgrid_path,
                    "Content-Type",
                    "application/json",
                    "X-Twilio-Email-Event-Webhook-Signature",
                    sign_sendgrid(world.sendgrid_private_key, body, timestamp),
                    "X-Twilio-Email-Event-Webhook-Timestamp",
                    str(timestamp),
                    body.decode(),
                ]
            line = "\t".join(fields)
            assert "\n" not in line and line.count("\t") == len(fields) - 1, "a field holds a tab or newline"
            out.write(line + "\n")
    return EVENTS_PER_SENDGRID_POST if kind == "sendgrid" else 1


# --- phase 1: ingest -------------------------------------------------------------------------------------


def table_counts() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT provider, outcome, http_status, COUNT(*) FROM event_webhook_events GROUP BY 1, 2, 3")
        receipts = [(p, o, s, n) for p, o, s, n in cursor.fetchall()]
        cursor.execute("SELECT provider, status, COUNT(*) FROM integration_raw_events GROUP BY 1, 2")
        raw = [(p, s, n) for p, s, n in cursor.fetchall()]
        cursor.execute(f"SELECT COUNT(*) FROM {BASELINE_TABLE}")  # noqa: S608 - constant name
        baseline = cursor.fetchone()[0]
    return {"receipts": receipts, "raw": raw, "baseline": baseline}


def counts_for(snapshot: dict[str, Any], provider: str) -> dict[str, int]:
    out: Counter = Counter()
    for p, outcome, status, n in snapshot["receipts"]:
        if p == provider:
            out["receipts"] += n
            out[f"receipt_{outcome}"] += n
            if status >= 500:
                out["receipt_5xx"] += n
    for p, status, n in snapshot["raw"]:
        if p == provider:
            out["raw"] += n
            out[f"raw_{status}"] += n
    return dict(out)


def settle() -> dict[str, Any]:
    """Counts once gunicorn has finished what was in flight when wrk stopped (two equal polls)."""
    previous = table_counts()
    for _ in range(40):
        time.sleep(0.5)
        current = table_counts()
        if current == previous:
            return current
        previous = current
    return previous


def run_wrk(wrk: str, base_url: str, pool: Path, *, duration: float, concurrency: int, threads: int, tag: str) -> dict:
    result = OUT_DIR / f"wrk-{tag}.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update({"BENCH_WRK_REQUESTS": str(pool), "BENCH_WRK_RESULT": str(result), "BENCH_WRK_THREADS": str(threads)})
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
    ]
    with open(OUT_DIR / f"wrk-{tag}.log", "w") as out:
        subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=duration + 120)
    return json.loads(result.read_text())


def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "zartsalgo.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "10",
    ]
    if threads > 1:
        cmd += ["--worker-class", "gthread", "--threads", str(threads)]
    proc = PROCS.start("gunicorn", cmd, env=env, log_path=OUT_DIR / "gunicorn.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench-webhooks: gunicorn exited ({proc.returncode}); see {OUT_DIR / 'gunicorn.log'}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response,
        ):
            if response.status == 200:
                return proc
        time.sleep(0.3)
    sys.exit("bench-webhooks: gunicorn did not answer /healthz within 60 s")


@dataclass
class Scenario:
    name: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    completed: int = 0
    issued: int = 0
    exhausted: int = 0
    non_2xx: int = 0
    s5xx: int = 0
    socket_errors: int = 0
    duration_s: float = 0.0
    events_per_request: int = 1
    cpu: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    round_rps: list[float] = field(default_factory=list)  # one per round, in order


def merge_rounds(parts: list[Scenario]) -> Scenario:
    """One scenario's rounds as one figure: counts and time summed (req/s = all completed / all
    seconds), latency percentiles the median of the rounds', CPU the mean."""
    if len(parts) == 1:
        parts[0].round_rps = [parts[0].rps]
        return parts[0]
    total = Scenario(name=parts[0].name, events_per_request=parts[0].events_per_request)
    for name in ("completed", "issued", "exhausted", "non_2xx", "s5xx", "socket_errors"):
        setattr(total, name, sum(getattr(p, name) for p in parts))
    total.duration_s = sum(p.duration_s for p in parts)
    total.rps = total.completed / total.duration_s
    for name in ("p50_ms", "p90_ms", "p99_ms"):
        setattr(total, name, statistics.median(getattr(p, name) for p in parts))
    total.max_ms = max(p.max_ms for p in parts)
    total.cpu = {
        key: round(statistics.mean(p.cpu[key] for p in parts), 0)
        for key in ("machine_busy_pct", "mariadb_pct", "foreign_pct")
    } | {"foreign_top": parts[-1].cpu.get("foreign_top", [])}
    total.rows = dict(sum((Counter(p.rows) for p in parts), Counter()))
    total.checks = {k: all(p.checks.get(k, False) for p in parts) for k in parts[0].checks}
    total.round_rps = [p.rps for p in parts]
    return total


def gunicorn_shape(args) -> str:
    kind = f"gthread x{args.gunicorn_threads}" if args.gunicorn_threads > 1 else "sync"
    return f"{args.gunicorn_workers} {kind} workers"


def ingest(args, env: dict[str, str], world: World, traffic: Traffic, wrk: str) -> dict[str, Scenario]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log(
        f"gunicorn: {gunicorn_shape(args)} "
        f"workers on {base_url}; REDIS_URL db {REDIS_DB}, no Celery worker (processing queues up)"
    )
    gunicorn = start_gunicorn(env, port, args.gunicorn_workers, args.gunicorn_threads)
    parts: dict[str, list[Scenario]] = {"baseline": [], "twilio": [], "sendgrid": []}
    baseline_rps = MAX_PLAUSIBLE_RPS
    # The scenarios take turns, `rounds` times, each for duration / rounds seconds: drift in the
    # machine's speed over the run (other tenants of the host) then hits baseline and pipeline
    # alike, instead of whichever ran in a slow minute.
    seconds = args.duration / args.rounds
    try:
        for round_no, name in ((r, n) for r in range(args.rounds) for n in parts):
            pool = OUT_DIR / f"pool-{name}.tsv"
            if round_no == 0:
                warm = max(2.0, min(5.0, args.duration / 5))
                # Warm-up (not counted): imports, connections, caches, InnoDB pages.
                write_pool(name, traffic, int(warm * baseline_rps * 1.5) + 500, base_url, pool)
                run_wrk(
                    wrk,
                    base_url,
                    pool,
                    duration=warm,
                    concurrency=args.concurrency,
                    threads=args.wrk_threads,
                    tag=f"{name}-warmup",
                )
            before = settle()
            size = int(seconds * baseline_rps * 1.5) + 2000  # the baseline may be faster than in the round before
            t0 = time.monotonic()
            per_request = write_pool(name, traffic, size, base_url, pool)
            log(
                f"{name} (round {round_no + 1}/{args.rounds}): {size:,} pre-signed requests written in "
                f"{time.monotonic() - t0:.1f} s; running {seconds:g} s"
            )
            meter = CpuMeter()
            out = run_wrk(
                wrk,
                base_url,
                pool,
                duration=seconds,
                concurrency=args.concurrency,
                threads=args.wrk_threads,
                tag=name,
            )
            after = settle()
            pool.unlink(missing_ok=True)
            errors = out["errors"]
            s = Scenario(
                name=name,
                completed=out["completed"],
                duration_s=out["duration_us"] / 1e6,
                rps=out["completed"] / (out["duration_us"] / 1e6),
                p50_ms=out["latency_us"]["p50"] / 1000,
                p90_ms=out["latency_us"]["p90"] / 1000,
                p99_ms=out["latency_us"]["p99"] / 1000,
                max_ms=out["latency_us"]["max"] / 1000,
                issued=out["issued"],
                exhausted=out["exhausted"],
                non_2xx=out["s3xx"] + out["s4xx"] + out["s5xx"],
                s5xx=out["s5xx"],
                socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
                events_per_request=per_request,
                cpu=meter.stop(),
            )
            if name == "baseline":
                s.rows = {"rows": after["baseline"] - before["baseline"]}
                s.checks = {"rows = requests issued": s.rows["rows"] == s.issued}
                baseline_rps = max(200.0, s.rps) if round_no == 0 else baseline_rps
            else:
                b, a = counts_for(before, name), counts_for(after, name)
                s.rows = {k: a.get(k, 0) - b.get(k, 0) for k in sorted(set(a) | set(b))}
                unique_events = s.issued * per_request
                s.checks = {
                    "receipts = requests issued": s.rows.get("receipts", 0) == s.issued,
                    "all receipts accepted": s.rows.get("receipt_accepted", 0) == s.issued,
                    "no duplicate receipt": s.rows.get("receipt_duplicate", 0) == 0,
                    "raw events = unique events sent": s.rows.get("raw", 0) == unique_events,
                    "all raw events queued (received)": s.rows.get("raw_received", 0) == unique_events,
                }
            s.checks["zero 5xx"] = s.s5xx == 0 and s.rows.get("receipt_5xx", 0) == 0
            s.checks["pool not exhausted"] = s.exhausted == 0
            parts[name].append(s)
            log(
                f"{name}: {s.rps:,.0f} req/s, p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms; completed {s.completed:,}, "
                f"issued {s.issued:,}, non-2xx {s.non_2xx}, rows {s.rows}"
            )
    finally:
        PROCS.stop(gunicorn)
    return {name: merge_rounds(runs) for name, runs in parts.items() if runs}


def duplicate_keys() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM (SELECT connection_id, idempotency_key FROM integration_raw_events "
            "GROUP BY connection_id, idempotency_key HAVING COUNT(*) > 1) d"
        )
        return cursor.fetchone()[0]


# Celery pool shapes tried on fresh batches after the ingest backlog (prefork -c 2) is drained,
# with environment overrides: INTEGRATIONS_PROCESS_BATCH_SIZE=1 is the project's per-event mode.
WORKER_SHAPES: tuple[tuple[str, list[tuple[str, int]], dict[str, str]], ...] = (
    ("celery prefork -c 2, batch size 1", [("prefork", 2)], {"INTEGRATIONS_PROCESS_BATCH_SIZE": "1"}),
    ("celery prefork -c 4", [("prefork", 4)], {}),
    ("celery threads -c 8", [("threads", 8)], {}),
)


# --- phase 2: processing -------------------------------------------------------------------------------


def make_raw_events(traffic: Traffic, count: int, *, enqueue: bool) -> list[int]:
    """`count` raw events (about the ingest's Twilio/SendGrid mix) stored through the pipeline's own
    parse + raw_events_store, as webhook_receive does, minus HTTP and signatures. enqueue=False
    stores them held then releases them with an UPDATE, so no Celery message exists for them."""
    from django.db import transaction

    from integrations.models import Connection, RawEvent
    from integrations.providers import get_adapter
    from integrations.providers.base import InboundRequest
    from integrations.services import raw_events_store

    twilio = Connection.objects.get(pk=traffic.world.twilio_connection_id)
    sendgrid = Connection.objects.get(pk=traffic.world.sendgrid_connection_id)
    ids: list[int] = []
    while len(ids) < count:
        with transaction.atomic():
            for _ in range(min(50, count - len(ids))):
                if traffic.rng.random() < 0.25:  # one Twilio SMS per SendGrid batch of 3 events: the ingest mix
                    form = traffic.twilio_form()
                    request = InboundRequest(
                        location="http://127.0.0.1/",
                        method="POST",
                        headers={},
                        body=urllib.parse.urlencode(form).encode(),
                        content_type="application/x-www-form-urlencoded",
                        form=form,
                    )
                    connection = twilio
                else:
                    request = InboundRequest(
                        location="http://127.0.0.1/",
                        method="POST",
                        headers={},
                        body=json.dumps(traffic.sendgrid_events()[:1]).encode(),
                        content_type="application/json",
                    )
                    connection = sendgrid
                parsed = get_adapter(connection.provider).parse(request, connection)
                created, _ = raw_events_store(connection=connection, receipt=None, events=parsed, hold=not enqueue)
                ids += [raw.pk for raw in created]
    if not enqueue:
        RawEvent.objects.filter(pk__in=ids).update(status=RawEvent.Status.RECEIVED)
    return ids


def status_counts(lo: int, hi: int) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, COUNT(*) FROM integration_raw_events WHERE id BETWEEN %s AND %s GROUP BY status", [lo, hi]
        )
        return dict(cursor.fetchall())


def processed_span(lo: int, hi: int) -> tuple[int, float]:
    """(events processed, seconds from the first to the last processed_at) in the id range."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, MIN(processed_at), MAX(processed_at)) "
            "FROM integration_raw_events WHERE id BETWEEN %s AND %s AND processed_at IS NOT NULL",
            [lo, hi],
        )
        n, span_us = cursor.fetchone()
    return n or 0, (span_us or 0) / 1e6


@dataclass
class Drain:
    label: str
    events: int
    processed: int = 0
    seconds: float = 0.0  # first → last processed_at
    wall: float = 0.0  # worker start → all processed (includes the worker's boot)
    rate: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    note: str = ""
    cpu: dict[str, Any] = field(default_factory=dict)
    normalized_events: int = -1  # rows in integration_normalized_events from these raw events
    task_errors: dict[str, int] = field(default_factory=dict)  # failed Celery tasks by exception, from the logs


def task_errors(logs: list[Path]) -> dict[str, int]:
    """Tasks that raised, by exception class (the worker logs "Task … raised unexpected: Name(…)")."""
    import re

    found: Counter = Counter()
    for path in logs:
        with contextlib.suppress(OSError), open(path, errors="replace") as handle:
            for line in handle:
                match = re.search(r"raised unexpected: (\w+)", line)
                if match:
                    found[match.group(1)] += 1
    return dict(found)


def normalized_count(lo: int, hi: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM integration_normalized_events WHERE raw_event_id BETWEEN %s AND %s", [lo, hi]
        )
        return cursor.fetchone()[0]


def drain_with_celery(env, label: str, workers: list[tuple[str, int]], lo: int, hi: int, timeout: float) -> Drain:
    """Start Celery worker processes ((pool, concurrency) each) on the ingest queue, wait until
    no raw event of [lo, hi] is still `received`, stop them."""
    total = sum(status_counts(lo, hi).values())
    procs = []
    logs: list[Path] = []
    meter = CpuMeter()
    t0 = time.monotonic()
    for index, (pool, concurrency) in enumerate(workers):
        cmd = [
            str(VENV_BIN / "celery"),
            "-A",
            "zartsalgo",
            "worker",
            "-Q",
            "ingest",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench{index}-{pool}{concurrency}@%h",
        ]
        slug = "".join(ch if ch.isalnum() else "_" for ch in label)
        log_path = OUT_DIR / f"celery-{slug}-{index}.log"
        log_path.unlink(missing_ok=True)  # one run per file: its ERROR lines are counted below
        logs.append(log_path)
        procs.append(PROCS.start(f"celery-{index}", cmd, env=env, log_path=log_path))
    result = Drain(label=label, events=total)
    last_report = t0
    try:
        while True:
            time.sleep(0.5)
            counts = status_counts(lo, hi)
            pending = counts.get("received", 0)
            now = time.monotonic()
            if now - last_report > 15:
                log(f"  {label}: {total - pending:,}/{total:,} processed after {now - t0:.0f} s")
                last_report = now
            if pending == 0:
                break
            if any(p.poll() is not None for p in procs):
                result.note = "a worker exited early (see its log)"
                break
            if now - t0 > timeout:
                result.timed_out = True
                break
        result.wall = time.monotonic() - t0
        result.cpu = meter.stop()
    finally:
        for proc in procs:
            PROCS.stop(proc, timeout=60)
    result.statuses = status_counts(lo, hi)
    result.normalized_events = normalized_count(lo, hi)
    result.task_errors = task_errors(logs)
    result.processed, result.seconds = processed_span(lo, hi)
    result.rate = (result.processed - 1) / result.seconds if result.seconds > 0 else 0.0
    log(
        f"{label}: {result.processed:,} events, {result.rate:,.0f} events/s (first→last), wall {result.wall:.1f} s, "
        f"statuses {result.statuses}"
    )
    return result


def drain_inline(traffic: Traffic, count: int, *, per_transaction: int = 1) -> Drain:
    """The processing services in a loop in this process, no Celery. per_transaction 1: the
    careful path, raw_event_process() one event per transaction (what a retry of one event
    runs). More: raw_events_process_batch(), the fast batch a drain task runs (one COMMIT, no
    savepoint per event, the status updates made once per batch)."""
    from integrations.services import raw_event_process, raw_events_process_batch

    ids = make_raw_events(traffic, count, enqueue=False)
    statuses: Counter = Counter()
    meter = CpuMeter()
    t0 = time.perf_counter()
    if per_transaction == 1:
        for pk in ids:
            statuses[str(raw_event_process(raw_event_id=pk))] += 1
    else:
        while counts := raw_events_process_batch(raw_event_id=None, batch_size=per_transaction):
            statuses.update(counts)
    seconds = time.perf_counter() - t0
    cpu = meter.stop()
    label = (
        "inline, 1 proc, careful path, 1 event/txn"
        if per_transaction == 1
        else f"inline, 1 proc, fast batches of {per_transaction}"
    )
    processed = sum(statuses.values())
    result = Drain(
        label=label,
        events=len(ids),
        processed=processed,
        seconds=seconds,
        wall=seconds,
        rate=processed / seconds,
        statuses=dict(statuses),
        cpu=cpu,
    )
    log(f"{result.label}: {result.processed:,} events, {result.rate:,.0f} events/s, statuses {result.statuses}")
    return result


def inline_ab(traffic: Traffic, count: int, *, batch: int = 50, rounds: int = 3) -> list[Drain]:
    """The inline loop one event per transaction vs `batch` per transaction, alternated over
    `rounds` rounds so drift (table growth, other load) hits both sides alike."""
    merged: dict[int, Drain] = {}
    cpu: dict[int, list[dict[str, Any]]] = {1: [], batch: []}
    for _ in range(rounds):
        for per in (1, batch):
            run = drain_inline(traffic, max(batch, count // rounds), per_transaction=per)
            cpu[per].append(run.cpu)
            if per not in merged:
                merged[per] = run
                continue
            total = merged[per]
            total.events += run.events
            total.processed += run.processed
            total.seconds += run.seconds
            total.wall += run.wall
            total.statuses = dict(Counter(total.statuses) + Counter(run.statuses))
    for per, total in merged.items():
        total.rate = total.processed / total.seconds
        total.label += f", {rounds} rounds"
        total.cpu = {
            key: round(sum(c[key] for c in cpu[per]) / len(cpu[per]), 0)
            for key in ("machine_busy_pct", "mariadb_pct", "foreign_pct")
        } | {"foreign_top": cpu[per][-1]["foreign_top"]}
    return [merged[1], merged[batch]]


def query_profile(traffic: Traffic, per_kind: int = 5) -> dict[str, Any]:
    """Queries per event, by provider and by statement kind, over a handful of fresh events."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.models import RawEvent
    from integrations.services import raw_event_process

    found: dict[str, list[int]] = {"twilio": [], "sendgrid": []}
    while min(len(v) for v in found.values()) < per_kind:
        for pk in make_raw_events(traffic, 20, enqueue=False):
            provider = RawEvent.objects.values_list("provider", flat=True).get(pk=pk)
            if len(found[provider]) < per_kind:
                found[provider].append(pk)
            else:  # not needed for the count: process it so it leaves no `received` row behind
                raw_event_process(raw_event_id=pk)
    out: dict[str, Any] = {}
    for provider, ids in found.items():
        per_event = []
        kinds: Counter = Counter()
        sample: list[str] = []
        for pk in ids:
            with CaptureQueriesContext(connection) as ctx:
                raw_event_process(raw_event_id=pk)
            per_event.append(len(ctx.captured_queries))
            for query in ctx.captured_queries:
                sql = query["sql"].lstrip()
                verb = sql.split(None, 1)[0].upper()
                if verb == "SELECT" and "FOR UPDATE" in sql.upper():
                    verb = "SELECT … FOR UPDATE"
                kinds[verb] += 1
            if not sample:
                sample = [sql_outline(q["sql"]) for q in ctx.captured_queries]
        out[provider] = {
            "per_event": per_event,
            "mean": sum(per_event) / len(per_event),
            "by_kind_per_event": {k: round(v / len(ids), 1) for k, v in kinds.most_common()},
            "sample_event_sql": sample,
        }
    # The drain's fast batch over the ingest mix: queries per event, all kinds together.
    from integrations.services import raw_events_process_batch

    ids = make_raw_events(traffic, 50, enqueue=False)
    with CaptureQueriesContext(connection) as ctx:
        done = sum(raw_events_process_batch(raw_event_id=None, batch_size=50).values())
    kinds = Counter()
    for query in ctx.captured_queries:
        sql = query["sql"].lstrip()
        verb = sql.split(None, 1)[0].upper()
        if verb == "SELECT" and "FOR UPDATE" in sql.upper():
            verb = "SELECT … FOR UPDATE"
        kinds[verb] += 1
    out["fast_batch_of_50"] = {
        "events": done,
        "queries": len(ctx.captured_queries),
        "mean": len(ctx.captured_queries) / max(done, 1),
        "by_kind_per_event": {k: round(v / max(done, 1), 2) for k, v in kinds.most_common()},
        "sample_event_sql": [],
        "per_event": [],
    }
    return out


def _where(key) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    path = filename.replace(str(ROOT) + "/", "")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{line}({func})"


class _Profile:
    """cumulative-time lookups over a cProfile run (pstats' raw table)."""

    def __init__(self, profiler) -> None:
        import pstats

        self.entries = pstats.Stats(profiler).stats  # key -> (cc, nc, tt, ct, callers)

    def cum(self, match_file: str, func: str, *, caller: str = "") -> float:
        total = 0.0
        for (filename, _, name), (_, _, _, ct, callers) in self.entries.items():
            if name != func or match_file not in filename:
                continue
            if caller:  # only the time spent under calls made by `caller`
                total += sum(c[3] for key, c in callers.items() if key[2] == caller)
            else:
                total += ct
        return total

    def builtin(self, fragment: str) -> float:
        return sum(v[3] for k, v in self.entries.items() if k[0] == "~" and fragment in k[2])

    def top(self, n: int = 15) -> list[dict[str, Any]]:
        ranked = sorted(self.entries.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
        return [
            {"function": _where(k), "calls": v[1], "tottime_s": round(v[2], 3), "cumtime_s": round(v[3], 3)}
            for k, v in ranked
        ]


def cprofile(traffic: Traffic, count: int) -> dict[str, Any]:
    """cProfile of the drain's fast batches (50) over `count` fresh events: where time goes."""
    import cProfile

    from integrations.services import raw_events_process_batch

    ids = make_raw_events(traffic, count, enqueue=False)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    while raw_events_process_batch(raw_event_id=None, batch_size=50):
        pass
    profiler.disable()
    wall = time.perf_counter() - t0
    p = _Profile(profiler)
    # Where the time goes, as cumulative time of the functions that own each part (they nest:
    # the first line contains the others).
    buckets = {
        "raw_events_process_batch (all)": p.cum("integrations/services.py", "raw_events_process_batch"),
        "adapter.normalize": p.cum("integrations/providers/", "normalize"),
        "consumer leads.apply_event": p.cum("leads/consumers.py", "apply_event"),
        "  lead_upsert": p.cum("leads/services.py", "lead_upsert"),
        "  activity_record": p.cum("leads/services.py", "activity_record"),
        "  _advance_delivery (SendGrid)": p.cum("leads/consumers.py", "_advance_delivery"),
        "  _find_lead": p.cum("leads/consumers.py", "_find_lead"),
        "INSERTs unless duplicate (normalized events)": p.cum("zartsalgo/db.py", "insert_unless_duplicate"),
        "end-of-batch updates (_flush)": p.cum("integrations/services.py", "_flush"),
        "SQL round trips (MySQLdb execute)": p.cum("MySQLdb/cursors.py", "execute"),
        "COMMIT (incl. fsync wait)": p.builtin("commit"),
        "SQL compile (ORM as_sql)": p.cum("django/db/models/sql/compiler.py", "as_sql"),
        "model instances (Model.__init__/from_db)": p.cum("django/db/models/base.py", "from_db")
        + p.cum("django/db/models/base.py", "__init__"),
        "transaction.atomic enter/exit": p.cum("django/db/transaction.py", "__enter__")
        + p.cum("django/db/transaction.py", "__exit__"),
    }
    return {
        "events": len(ids),
        "wall_s": round(wall, 3),
        "profiled_events_per_s": round(len(ids) / wall, 1),
        "buckets_ms_per_event": {k: round(v / len(ids) * 1000, 3) for k, v in buckets.items()},
        "top_tottime": p.top(),
    }


def sql_outline(sql: str) -> str:
    """ "SELECT integration_connections", "INSERT event_webhook_events", "SAVEPOINT": a query's shape."""
    import re

    verb = sql.lstrip().split(None, 1)[0].upper()
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"):
        return verb
    match = re.search(r"(?:FROM|INTO|UPDATE)\s+`?(\w+)`?", sql, re.IGNORECASE)
    lock = " FOR UPDATE" if verb == "SELECT" and "FOR UPDATE" in sql.upper() else ""
    return f"{verb} {match.group(1) if match else '?'}{lock}"


def ingest_profile(traffic: Traffic, count: int) -> dict[str, Any]:
    """One delivery's cost, in this process through Django's test Client (same middleware, view and
    services as under gunicorn, minus the HTTP server): queries per request, ms per request without
    and with cProfile, and where the profiled time goes. Requests are signed before timing. Their
    raw events are enqueued like any others and left to the end-of-run cleanup."""
    import cProfile

    from django.db import connection
    from django.test import Client as TestClient
    from django.test.utils import CaptureQueriesContext
    from twilio.request_validator import RequestValidator

    world = traffic.world
    http = TestClient()
    validator = RequestValidator(world.twilio_auth_token)

    def prepare(provider: str) -> tuple[str, bytes, str, dict[str, str]]:
        if provider == "twilio":
            path = f"/api/webhooks/twilio/{world.twilio_token}/"
            params = traffic.twilio_form()
            signature = validator.compute_signature("http://testserver" + path, params)
            body = urllib.parse.urlencode(params).encode()
            return path, body, "application/x-www-form-urlencoded", {"HTTP_X_TWILIO_SIGNATURE": signature}
        path = f"/api/webhooks/sendgrid/{world.sendgrid_token}/"
        body, timestamp = traffic.sendgrid_body(), int(time.time())
        headers = {
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": sign_sendgrid(world.sendgrid_private_key, body, timestamp),
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": str(timestamp),
        }
        return path, body, "application/json", headers

    def send(request) -> None:
        path, body, content_type, headers = request
        response = http.post(path, data=body, content_type=content_type, **headers)
        assert response.status_code == 200, response.content[:300]

    out: dict[str, Any] = {}
    for provider in ("twilio", "sendgrid"):
        requests = [prepare(provider) for _ in range(2 * count + 11)]
        for request in requests[:10]:  # warm-up
            send(request)
        # Django's request_started signal empties queries_log, which CaptureQueriesContext indexes
        # into: start from an empty log so its slice is the request's queries.
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as ctx:
            send(requests[10])
        captured = list(ctx.captured_queries)  # now: the next request's request_started empties the log
        plain, profiled = requests[11 : 11 + count], requests[11 + count :]
        t0 = time.perf_counter()
        for request in plain:
            send(request)
        plain_ms = (time.perf_counter() - t0) / count * 1000
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        for request in profiled:
            send(request)
        profiler.disable()
        profiled_ms = (time.perf_counter() - t0) / count * 1000
        p = _Profile(profiler)
        buckets = {
            "request through Django (middleware, DRF, view)": p.cum("django/core/handlers/base.py", "get_response"),
            "webhook_receive": p.cum("integrations/services.py", "webhook_receive"),
            "  Connection lookup by token (SELECT … JOIN client)": p.cum(
                "django/db/models/query.py", "first", caller="webhook_receive"
            ),
            "  adapter.verify (signature)": p.cum("integrations/providers/", "verify"),
            "  adapter.parse": p.cum("integrations/providers/", "parse"),
            "  _store_delivery (receipt + raw events, one transaction)": p.cum(
                "integrations/services.py", "_store_delivery"
            ),
            "    raw_events_store (savepoint + INSERT per event)": p.cum(
                "integrations/services.py", "raw_events_store"
            ),
            "    on-commit enqueue (Celery apply_async → Redis)": p.cum("celery/app/task.py", "apply_async"),
            "    COMMIT (incl. fsync wait)": p.builtin("commit"),
            "  _connection_touch (UPDATE, outside the transaction)": p.cum(
                "integrations/services.py", "_connection_touch"
            ),
            # The test Client skips close_old_connections, so gunicorn's per-request health-check
            # ping (CONN_HEALTH_CHECKS) is one round trip more than counted here, for the baseline too.
            "SQL round trips (MySQLdb execute)": p.cum("MySQLdb/cursors.py", "execute"),
        }
        out[provider] = {
            "requests": count,
            "queries_per_request": len(captured),
            "queries": [sql_outline(q["sql"]) for q in captured],
            "ms_per_request": round(plain_ms, 2),
            "ms_per_request_profiled": round(profiled_ms, 2),
            "buckets_ms_per_request": {k: round(v / count * 1000, 3) for k, v in buckets.items()},
            "top_tottime": p.top(10),
        }
        log(f"ingest profile {provider}: {plain_ms:.1f} ms/request in-process, {len(captured)} queries")
    return out


# --- phase 3: CSV import -----------------------------------------------------------------------------------

CSV_HEADER = [
    "Customer Name",
    "Phone",
    "Email",
    "Service Requested",
    "City",
    "Zip",
    "State",
    "Lead Source",
    "Date Created",
    "Notes",
    "Landing Page",
    "GCLID",
]
CSV_CITIES = (
    ("Austin", "787"),
    ("Round Rock", "786"),
    ("Cedar Park", "786"),
    ("Pflugerville", "786"),
    ("Georgetown", "786"),
)
CSV_SERVICES = ("Drain cleaning", "Water heater", "Leak repair", "Sewer line", "Garbage disposal", "AC repair")
CSV_SOURCES = ("Google Ads", "Facebook", "Yelp", "Referral", "Website", "Angi", "Thumbtack")


def csv_phone(rng: random.Random, digits: str) -> str:
    """The shapes phones take in exported spreadsheets, including the odd broken one."""
    roll = rng.random()
    if roll < 0.35:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    if roll < 0.6:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    if roll < 0.8:
        return f"+1{digits}"
    if roll < 0.9:
        return f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"
    if roll < 0.97:
        return digits
    if roll < 0.985:
        return f"{digits[0]}.{digits[1:3]}E+09"  # rounded by Excel
    return ""


def csv_generate(path: Path, rows: int, slice_path: Path, slice_rows: int, seed_value: int) -> float:
    """A realistic export: mixed phone formats, some missing emails, dates in two shapes, a few
    in-file repeats and broken rows. Writes the first `slice_rows` rows to `slice_path` too."""
    rng = random.Random(seed_value)
    t0 = time.perf_counter()
    start = datetime.datetime(2025, 1, 1)
    recent: list[tuple[str, str]] = []
    with (
        open(path, "w", newline="", encoding="utf-8") as full,
        open(slice_path, "w", newline="", encoding="utf-8") as part,
    ):
        writers = [csv.writer(full), csv.writer(part)]
        for writer in writers:
            writer.writerow(CSV_HEADER)
        for index in range(rows):
            if recent and rng.random() < 0.02:  # the same person twice in one export
                digits, email = rng.choice(recent)
            else:
                digits = f"{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
                first, last = rng.choice(FIRST), rng.choice(LAST)
                email = f"{first}.{last}{index}@example.com".lower() if rng.random() < 0.75 else ""
                recent = [*recent, (digits, email)][-100:]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            city, zip_prefix = rng.choice(CSV_CITIES)
            when = start + datetime.timedelta(minutes=rng.randint(0, 60 * 24 * 600))
            date = when.strftime("%m/%d/%Y %I:%M %p") if rng.random() < 0.6 else when.isoformat(timespec="seconds")
            gclid = "Cj0KCQiA" + rng.randbytes(9).hex() if rng.random() < 0.3 else ""
            row = [
                f"{first} {last}" if rng.random() < 0.95 else f"{last.upper()}, {first.upper()}",
                csv_phone(rng, digits),
                email,
                rng.choice(CSV_SERVICES),
                city,
                f"{zip_prefix}{rng.randint(0, 99):02d}",
                "TX",
                rng.choice(CSV_SOURCES),
                date,
                "Customer asked for a callback after 5pm; gate code 4471" if rng.random() < 0.1 else "",
                "https://acme.example/quote?utm_source=google" if gclid else "",
                gclid,
            ]
            if rng.random() < 0.001:
                row = row[:3]  # a truncated line: the row fails, the import goes on
            writers[0].writerow(row)
            if index < slice_rows:
                writers[1].writerow(row)
    return time.perf_counter() - t0


def csv_child(args) -> None:
    """Run in a child process: one import job, timed, with the child's own peak RSS."""
    config = database_config()
    django_setup(bench_environment(config))
    from django.core.files import File

    from integrations.imports import import_job_create, import_job_run
    from leads.models import Client

    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a child forked
    # from this ~100 MB orchestrator would report the orchestrator's size, not its own.
    rss_start_mb = _vm_hwm_mb(os.getpid())
    client = Client.objects.get(slug="bench-plumbing")
    dry = args.csv_child == "dry"
    t0 = time.perf_counter()
    with open(args.csv_path, "rb") as handle:
        job = import_job_create(
            client=client, uploaded_file=File(handle, name=Path(args.csv_path).name), actor="system:bench", dry_run=dry
        )
    created_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    job = import_job_run(job_id=job.pk)
    run_s = time.perf_counter() - t1
    peak_mb = _vm_hwm_mb(os.getpid())
    result = {
        "mode": args.csv_child,
        "status": job.status,
        "error": job.error[:500],
        "counts": job.counts,
        "rows_per_s": round(job.rows_total / run_s, 1) if run_s else 0,
        "upload_s": round(created_s, 2),
        "run_s": round(run_s, 2),
        "rss_after_setup_mb": round(rss_start_mb, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "size_mb": round(job.size / 1e6, 1),
    }
    Path(args.csv_result).write_text(json.dumps(result))


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a live process so far (VmHWM), in MB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def csv_job(mode: str, path: Path, env: dict[str, str], budget: float) -> dict[str, Any]:
    """One import job in a child process. Polled from here (progress rows, peak RSS) so a job
    that would overrun the run's time budget is stopped and reported as a partial rate."""
    from django.db.models import Max

    from integrations.models_imports import ImportJob

    last_pk = ImportJob.objects.aggregate(m=Max("pk"))["m"] or 0
    result_path = OUT_DIR / f"csv-{mode}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--csv-child", mode, "--csv-path", str(path)]
    cmd += ["--csv-result", str(result_path)]
    proc = PROCS.start(f"csv-{mode}", cmd, env=env, log_path=OUT_DIR / f"csv-{mode}.log")
    t0 = time.monotonic()
    peak_mb = 0.0
    while proc.poll() is None and time.monotonic() - t0 < budget:
        peak_mb = max(peak_mb, _vm_hwm_mb(proc.pid))
        time.sleep(0.5)
    finished = proc.poll() is not None
    PROCS.stop(proc)
    if finished and result_path.exists():
        out = json.loads(result_path.read_text())
    else:
        job = ImportJob.objects.filter(pk__gt=last_pk).order_by("-pk").first()
        if job is None or not job.started_at or not job.progress_rows:
            return {"error": f"no progress within {budget:.0f} s (exit {proc.returncode}); see csv-{mode}.log"}
        seconds = (job.updated_at - job.started_at).total_seconds()
        out = {
            "mode": mode,
            "status": f"stopped after {seconds:.0f} s (time budget)",
            "error": "",
            "counts": {**job.counts, "rows_total": job.progress_rows},
            "rows_per_s": round(job.progress_rows / seconds, 1) if seconds > 0 else 0,
            "upload_s": 0.0,
            "run_s": round(seconds, 2),
            "rss_after_setup_mb": 0.0,
            "peak_rss_mb": round(peak_mb, 1),
            "size_mb": round(job.size / 1e6, 1),
            "partial": True,
        }
    for job in ImportJob.objects.filter(pk__gt=last_pk):
        with contextlib.suppress(Exception):
            job.file.delete(save=False)  # the copy under var/media: not worth keeping
    log(f"CSV {mode}: {out}")
    return out


def csv_phase(args, env: dict[str, str], deadline: float) -> dict[str, Any]:
    try:
        from integrations import imports
    except ImportError as exc:
        return {"skipped": f"integrations.imports does not import ({exc})"}
    if not (hasattr(imports, "import_job_create") and hasattr(imports, "import_job_run")):
        return {"skipped": "integrations/imports.py has no import_job_create / import_job_run"}
    full, part = OUT_DIR / f"leads-{args.csv_rows}.csv", OUT_DIR / f"leads-first-{args.csv_import_rows}.csv"
    seconds = csv_generate(full, args.csv_rows, part, args.csv_import_rows, args.seed)
    log(f"CSV: {args.csv_rows:,} rows ({full.stat().st_size / 1e6:.0f} MB) generated in {seconds:.1f} s")
    out: dict[str, Any] = {"rows": args.csv_rows, "size_mb": round(full.stat().st_size / 1e6, 1)}
    try:
        # The dry run may use what the import does not need of the time left, the import at least half.
        left = deadline - time.monotonic()
        dry_budget = min(args.csv_dry_timeout, left - min(args.csv_import_timeout, left / 2))
        out["dry"] = csv_job("dry", full, env, max(30.0, dry_budget))
        left = deadline - time.monotonic()
        out["full"] = csv_job("full", part, env, max(30.0, min(args.csv_import_timeout, left - 10)))
    finally:
        full.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return out


# --- report ------------------------------------------------------------------------------------------------


def ok(flag: bool) -> str:
    return "ok" if flag else "FAIL"


def cpu_lines(items) -> str:
    """CPU use during each run, % of one core (200% = both cores): the machine may be shared."""
    lines = ["CPU during each run (% of one core, 200 = both): machine busy / MariaDB / other processes"]
    for name, entry in items:
        cpu = entry.get("cpu") or {}
        if cpu:
            top = f"  [{'; '.join(cpu['foreign_top'])}]" if cpu["foreign_pct"] >= 10 else ""
            lines.append(
                f"  {name:<48} {cpu['machine_busy_pct']:>4.0f} / {cpu['mariadb_pct']:>4.0f} / "
                f"{cpu['foreign_pct']:>4.0f}{top}"
            )
    return "\n".join(lines)


def report(summary: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = summary["machine"]
    add("")
    add(
        f"=== Webhook benchmark, {summary['date']} — {m['cpus']} cores, Python {m['python']}, "
        f"MariaDB {m['mariadb']['version']} ==="
    )
    add(
        f"MariaDB: innodb_flush_log_at_trx_commit={m['mariadb'].get('innodb_flush_log_at_trx_commit')}, "
        f"buffer pool {int(m['mariadb'].get('innodb_buffer_pool_size', 0)) // 2**20} MiB, "
        f"binlog {m['mariadb'].get('log_bin')}"
    )
    noise = m.get("noise_before") or {}
    if noise:
        add(
            f"Before the run (3 s idle sample): machine busy {noise['machine_busy_pct']:.0f}%, other processes "
            f"{noise['foreign_pct']:.0f}%, MariaDB {noise['mariadb_pct']:.0f}% of one core"
            + (f" [{'; '.join(noise['foreign_top'])}]" if noise["foreign_pct"] >= 10 else "")
        )
    ing = summary["ingest"]
    add("")
    add(
        f"1. Ingest — gunicorn {ing['gunicorn']}, wrk -t{ing['wrk_threads']} -c{ing['concurrency']} "
        f"-d{ing['duration']:g}s (pre-signed, each sent once), web enqueues to Redis, no worker"
    )
    add(
        f"{'scenario':<10} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'completed':>10} {'issued':>8} {'non-2xx':>8} {'5xx':>5} {'vs base':>8}"
    )
    base = ing["scenarios"].get("baseline", {}).get("rps") or 0
    base_rounds = ing["scenarios"].get("baseline", {}).get("round_rps") or []
    for name, s in ing["scenarios"].items():
        ratio = f"{s['rps'] / base:.2f}" if base else "-"
        add(
            f"{name:<10} {s['rps']:>8,.0f} {s['p50_ms']:>8.1f} {s['p90_ms']:>8.1f} {s['p99_ms']:>8.1f} "
            f"{s['max_ms']:>8.0f} "
            f"{s['completed']:>10,} {s['issued']:>8,} {s['non_2xx']:>8} {s['s5xx']:>5} {ratio:>8}"
        )
    if len(base_rounds) > 1:
        add(f"Rounds (req/s; the ratio to the baseline of the same round), {len(base_rounds)} turns each:")
        for name, s in ing["scenarios"].items():
            turns = ", ".join(
                f"{rps:,.0f}" + (f" ({rps / b:.2f})" if name != "baseline" and b else "")
                for rps, b in zip(s.get("round_rps") or [], base_rounds, strict=False)
            )
            add(f"  {name:<10} {turns}")
    add(cpu_lines(ing["scenarios"].items()))
    add("Integrity (rows written during each timed run):")
    for name, s in ing["scenarios"].items():
        rows = ", ".join(f"{k} {v:,}" for k, v in s["rows"].items())
        checks = "; ".join(f"{k}: {ok(v)}" for k, v in s["checks"].items())
        add(f"  {name}: {rows}")
        add(f"    {checks}")
    add(
        f"  duplicate (connection, idempotency_key) pairs in integration_raw_events: {ing['duplicate_keys']} "
        f"({ok(ing['duplicate_keys'] == 0)})"
    )
    add(
        f"  Celery messages waiting in Redis after ingest: {ing['queued_messages']:,} drain task(s) for "
        f"{ing['raw_received']:,} received raw events (the doorbell: one per burst; "
        f"{ok(ing['raw_received'] == 0 or ing['queued_messages'] >= 1)})"
    )
    proc = summary["processing"]
    add("")
    add("2. Normalize + apply (raw_event_process: lock, normalize, NormalizedEvent, leads consumer)")
    add(f"{'how':<48} {'events':>8} {'events/s':>9} {'first→last s':>13} {'wall s':>8}  statuses")
    for d in proc["runs"]:
        flag = " TIMED OUT" if d["timed_out"] else ""
        add(
            f"{d['label']:<48} {d['processed']:>8,} {d['rate']:>9,.0f} {d['seconds']:>13.1f} {d['wall']:>8.1f}  "
            f"{d['statuses']}{flag}{(' ' + d['note']) if d['note'] else ''}"
        )
    for d in proc["runs"]:
        if d.get("normalized_events", -1) >= 0:
            done = sum(n for status, n in d["statuses"].items() if status in ("normalized", "ignored"))
            errors = d.get("task_errors") or {}
            add(
                f"  {d['label']}: {d['events']:,} raw events → {done:,} normalized/ignored "
                f"({ok(done == d['events'])}), {d['normalized_events']:,} normalized events written; "
                + (
                    "tasks that raised: "
                    + ", ".join(f"{n} {name}" for name, n in errors.items())
                    + " (their events were rolled back and done again by later tasks)"
                    if errors
                    else "no task raised"
                )
            )
    add(cpu_lines((d["label"], d) for d in proc["runs"]))
    qp = proc.get("queries")
    if qp:
        add("Queries per event (CaptureQueriesContext, inline; twilio/sendgrid: careful path, one event each):")
        for provider, q in qp.items():
            if provider == "fast_batch_of_50":
                add(
                    f"  fast batch of {q['events']} (the drain's path, ingest mix): {q['queries']} queries, "
                    f"mean {q['mean']:.2f} per event; by kind per event {q['by_kind_per_event']}"
                )
                continue
            add(f"  {provider}: mean {q['mean']:.1f} {q['per_event']}; by kind per event {q['by_kind_per_event']}")
            add(f"    one event: {', '.join(q['sample_event_sql'])}")
    prof = proc.get("profile")
    if prof:
        add(
            f"cProfile of {prof['events']} events inline, fast batches of 50 "
            f"({prof['profiled_events_per_s']:.0f} events/s under "
            "the profiler), ms per event:"
        )
        for k, v in prof["buckets_ms_per_event"].items():
            add(f"  {k:<44} {v:>8.3f}")
        add("  top by own time:")
        for entry in prof["top_tottime"][:12]:
            add(
                f"    {entry['tottime_s']:>7.3f} s own {entry['cumtime_s']:>7.3f} s cum {entry['calls']:>8,}  "
                f"{entry['function']}"
            )
    ip = proc.get("ingest_profile")
    if ip:
        add("")
        add("Ingest, one delivery in-process (Django test Client, same view and services; signed before timing):")
        for provider, q in ip.items():
            add(
                f"  {provider}: {q['ms_per_request']:.1f} ms/request ({q['ms_per_request_profiled']:.1f} under "
                f"cProfile), {q['queries_per_request']} queries; profiled ms per request:"
            )
            for k, v in q["buckets_ms_per_request"].items():
                add(f"    {k:<58} {v:>8.3f}")
            add(f"    queries: {', '.join(q['queries'])}")
    add("")
    csv_result = summary.get("csv", {})
    add("3. CSV import (integrations/imports.py)")
    if "skipped" in csv_result:
        add(f"  skipped: {csv_result['skipped']}")
    else:
        for mode in ("dry", "full"):
            r = csv_result.get(mode, {})
            if "error" in r and "rows_per_s" not in r:
                add(f"  {mode}: {r['error']}")
                continue
            add(
                f"  {'dry run' if mode == 'dry' else 'import':<8} {r['counts']['rows_total']:>9,} rows  "
                f"{r['rows_per_s']:>8,.0f} rows/s  "
                f"run {r['run_s']:.1f} s"
                + ("" if r.get("partial") else f" (+ upload {r['upload_s']:.1f} s)")
                + f"  peak RSS {r['peak_rss_mb']:.0f} MB"
                + ("" if r.get("partial") else f" (after setup {r['rss_after_setup_mb']:.0f} MB)")
                + f"  {r['status']}  {r['counts']}"
            )
    add("")
    add(f"Total time {summary['elapsed_s']:.0f} s. JSON: {summary['json']}")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per ingest scenario (default 20)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="ingest scenarios take turns this many times (default 3)")
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (default 1: leave the cores to gunicorn)"
    )
    parser.add_argument("--gunicorn-workers", type=int, default=5, help="default 5 = 2 x cores + 1")
    parser.add_argument("--gunicorn-threads", type=int, default=1, help="> 1 uses the gthread worker class")
    parser.add_argument("--seed-leads", type=int, default=500, help="leads with an outbound email (default 500)")
    parser.add_argument("--batch-events", type=int, default=2000, help="events per extra worker-shape run")
    parser.add_argument("--shape-timeout", type=float, default=75, help="max seconds per extra worker-shape run")
    parser.add_argument("--inline-events", type=int, default=1000)
    parser.add_argument("--profile-events", type=int, default=300)
    parser.add_argument("--profile-requests", type=int, default=200, help="per provider, in-process ingest profile")
    parser.add_argument("--drain-timeout", type=float, default=240, help="max seconds to drain the ingest backlog")
    parser.add_argument("--budget", type=float, default=870, help="whole run, seconds: phases shrink to fit")
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--skip-processing", action="store_true", help="ingest only (and no CSV)")
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--csv-import-rows", type=int, default=20_000)
    parser.add_argument("--csv-dry-timeout", type=float, default=300, help="max seconds for the dry run")
    parser.add_argument("--csv-import-timeout", type=float, default=150, help="max seconds for the import")
    parser.add_argument("--seed", type=int, default=20261120)
    # Internal: the CSV child process.
    parser.add_argument("--csv-child", choices=("dry", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--csv-path", help=argparse.SUPPRESS)
    parser.add_argument("--csv-result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class _SkipRest(Exception):
    """--skip-processing: end the run after the ingest phase."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.csv_child:
        csv_child(args)
        return 0
    started = time.monotonic()
    deadline = started + args.budget
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    wrk = ensure_wrk()
    config = database_config()
    summary: dict[str, Any] = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    meter = CpuMeter()
    time.sleep(3)
    noise = meter.stop()
    if noise["foreign_pct"] + noise["mariadb_pct"] > 25:
        log(
            f"WARNING: the machine is not idle ({noise['foreign_pct']:.0f}% CPU in other processes, MariaDB "
            f"{noise['mariadb_pct']:.0f}%: {'; '.join(noise['foreign_top'])}); every figure will be lower"
        )
    try:
        mariadb = ensure_mariadb(config)
        ensure_redis()
        cleared = redis_clear()
        env = bench_environment(config)
        django_setup(env)
        log(f"database {config['NAME']} created; migrating (Redis keys cleared: {cleared})")
        migrate()
        rng = random.Random(args.seed)
        t0 = time.monotonic()
        world = seed(rng, args.seed_leads)
        env.update({TWILIO_TOKEN_ENV: os.environ[TWILIO_TOKEN_ENV], SENDGRID_KEY_ENV: os.environ[SENDGRID_KEY_ENV]})
        log(
            f"seeded 1 client, 2 connections, {args.seed_leads:,} leads with an outbound email "
            f"in {time.monotonic() - t0:.1f} s"
        )
        traffic = Traffic(world, rng)
        summary["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "mariadb": mariadb,
            "noise_before": noise,
        }

        # 1. Ingest
        scenarios = ingest(args, env, world, traffic, wrk)
        counts = status_counts(0, 2**62)
        summary["ingest"] = {
            "gunicorn": gunicorn_shape(args),
            "wrk_threads": args.wrk_threads,
            "concurrency": args.concurrency,
            "duration": args.duration,
            "scenarios": {name: s.__dict__ for name, s in scenarios.items()},
            "duplicate_keys": duplicate_keys(),
            "queued_messages": redis_queue_length(),
            "raw_received": counts.get("received", 0),
        }

        # 2. Processing
        if args.skip_processing:
            raise _SkipRest
        from django.db.models import Max

        from integrations.models import RawEvent

        runs: list[Drain] = []
        hi = RawEvent.objects.aggregate(m=Max("pk"))["m"] or 0
        log(
            f"processing: draining the ingest backlog ({counts.get('received', 0):,} raw events) "
            "with celery prefork -c 2"
        )
        # The backlog comes first (it is the main figure and proves nothing was lost); later phases
        # keep their minimum: the shapes, inline + profiles (~60 s), CSV generation and two short jobs.
        reserve = len(WORKER_SHAPES) * args.shape_timeout + 60 + (0 if args.skip_csv else 150)
        backlog_timeout = max(60.0, min(args.drain_timeout, deadline - time.monotonic() - reserve))
        from django.conf import settings

        batch_size = getattr(settings, "INTEGRATIONS_PROCESS_BATCH_SIZE", None)
        label = "celery prefork -c 2, ingest backlog" + (f", batch {batch_size}" if batch_size else "")
        backlog = drain_with_celery(env, label, [("prefork", 2)], 1, hi, backlog_timeout)
        runs.append(backlog)
        if backlog.timed_out:  # what is left stays `received`; its messages must not slow the next runs
            log(f"backlog not drained within {backlog_timeout:.0f} s; dropping its remaining Celery messages")
            redis_clear()
        for label, workers, overrides in WORKER_SHAPES:
            ids = make_raw_events(traffic, args.batch_events, enqueue=True)
            shape_env = {**env, **overrides}
            runs.append(drain_with_celery(shape_env, label, workers, min(ids), max(ids), args.shape_timeout))
            if runs[-1].timed_out:
                redis_clear()
        runs += inline_ab(traffic, args.inline_events)
        summary["processing"] = {
            "runs": [d.__dict__ for d in runs],
            "queries": query_profile(traffic),
            "profile": cprofile(traffic, args.profile_events),
            "ingest_profile": ingest_profile(traffic, args.profile_requests),
        }

        # 3. CSV
        summary["csv"] = {"skipped": "--skip-csv"} if args.skip_csv else csv_phase(args, env, deadline)
    except _SkipRest:
        summary["processing"] = {"runs": [], "skipped": "--skip-processing"}
        summary["csv"] = {"skipped": "--skip-processing"}
    finally:
        PROCS.stop_all()
        with contextlib.suppress(Exception):
            redis_clear()
    summary["elapsed_s"] = time.monotonic() - started
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    summary["json"] = str((OUT_DIR / f"result-{stamp}.json").relative_to(ROOT))
    (ROOT / summary["json"]).write_text(json.dumps(summary, indent=2, default=str))
    print(report(summary), flush=True)
    failed = [
        f"{name}: {check}"
        for name, s in summary["ingest"]["scenarios"].items()
        for check, passed in s["checks"].items()
        if not passed
    ]
    if summary["ingest"]["duplicate_keys"]:
        failed.append("duplicate raw event keys")
    for run in summary.get("processing", {}).get("runs", []):
        done = sum(n for status, n in run["statuses"].items() if status in ("normalized", "ignored"))
        if done != run["events"]:
            failed.append(f"{run['label']}: {run['events'] - done} raw events not processed ({run['statuses']})")
    if failed:
        print("bench-webhooks: integrity checks FAILED: " + "; ".join(failed), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
