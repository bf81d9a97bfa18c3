"""Workflow engine throughput and scheduler claim cost on MariaDB (see "Workflows" in bench/README.md).

    make bench-workflows
    .venv/bin/python bench/workflows.py --due 100000 --window 60 --claim-sizes 10000,1000000

One run, which starts and stops everything it needs:

1. Step runs per second. A fresh database `zartsalgo_bench_workflows`, migrated; one client with
   no quiet hours; a published workflow "send SMS (console channel) → delay 1 day"; --due leads,
   each with an enrollment due now (bulk-inserted with SQL). Real `celery worker` processes
   (prefork, -c 2, queue workflows) run what the scheduler (engine.enrollments_dispatch_due,
   called here in a loop as beat would) claims; step runs written per second over --window s.
2. Celery no-op tasks per second in the same run, same broker, same worker shape: --noop
   messages published first, then drained by the same kind of worker. The ratio step runs/s ÷
   no-op tasks/s says whether the engine spends less than a task per step (goal ≥ 1).
3. Claim time: the scheduler's claim (SELECT … FOR UPDATE SKIP LOCKED of 500 due rows + the lease
   UPDATE, rolled back) with 10k and with 1M enrollments in the table (500 due, the rest waiting
   days ahead, completed or exited), median of --claim-repeats; EXPLAIN of the claim query.

Nothing in the project is changed. Logs and the JSON result go to var/bench/workflows/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.webhooks import PROCS, CpuMeter, ensure_redis, log  # noqa: E402

OUT_DIR = ROOT / "var" / "bench" / "workflows"
DATABASE_URL = os.environ.get("BENCH_WORKFLOWS_DATABASE_URL", "mysql://root:@127.0.0.1:3306/zartsalgo_bench_workflows")
REDIS_URL = "redis://127.0.0.1:6379/10"
KEY_PREFIX = "bench_workflows:"
VENV_BIN = Path(sys.executable).parent


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zartsalgo.settings",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "CELERY_KEY_PREFIX": KEY_PREFIX,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CONN_MAX_AGE": "60",
            "DEBUG": "0",
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "WORKFLOWS_CONSOLE_CHANNEL": "1",
            "WORKFLOWS_CONSOLE_CHANNEL_PATH": str(OUT_DIR / "outbox.jsonl"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        }
    )
    return env


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def redis_clear() -> None:
    client = redis_client()
    for key in client.scan_iter(match=f"{KEY_PREFIX}*"):
        client.delete(key)


def queue_length(queue: str = "workflows") -> int:
    return redis_client().llen(f"{KEY_PREFIX}{queue}")


def start_workers(env: dict[str, str], tag: str, concurrency: int = 2) -> subprocess.Popen:
    cmd = [
        str(VENV_BIN / "celery"),
        "-A",
        "zartsalgo",
        "worker",
        "-Q",
        "workflows",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "-I",
        "bench.workflow_tasks",
        "-n",
        f"bench-{tag}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    return PROCS.start(f"celery-{tag}", cmd, env=env, log_path=OUT_DIR / f"celery-{tag}.log")


def recreate_database() -> None:
    from bench.webhooks import _mysql_connect, database_config

    os.environ["BENCH_WEBHOOKS_DATABASE_URL"] = DATABASE_URL  # database_config reads this name
    config = database_config()
    conn = _mysql_connect({**config, "NAME": ""})
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{config['NAME']}`")
        cursor.execute(f"CREATE DATABASE `{config['NAME']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def seed_workflow():
    from leads.models import Client
    from workflows import services

    client = Client.objects.create(
        name="Bench Heating & Air",
        slug="bench-hvac",
        status="active",
        quiet_hours_start=datetime.time(0, 0),
        quiet_hours_end=datetime.time(0, 0),
    )
    workflow = services.workflow_create(client=client, name="Bench follow-up", actor="system:bench")
    services.step_add(
        workflow=workflow, kind="send_sms", config={"body": "Hi {{ lead.first_name }}"}, key="hi", actor="system:bench"
    )
    services.step_add(
        workflow=workflow,
        kind="delay",
        config={"duration": {"amount": 1, "unit": "days"}},
        key="later",
        actor="system:bench",
    )
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Day 1"}, key="day1", actor="system:bench")
    services.workflow_publish(workflow=workflow, actor="system:bench")
    workflow.refresh_from_db()
    return client, workflow


def bulk_enroll(client, workflow, *, count: int, due: int, first_id: int) -> None:
    """`count` leads and enrollments with SQL (MariaDB's seq_ tables): `due` of them due now, the
    rest waiting a day or more ahead, completed or exited, as a table with history looks."""
    from django.db import connection

    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO leads_lead (id, client_id, first_name, last_name, full_name, phone_raw, phone_e164,
                email_raw, postal_code, city, state_region, source, source_detail, service_type, contact_method,
                market, urgency, utm_source, utm_medium, utm_campaign, utm_term, utm_content, gclid, fbclid, msclkid,
                tracking_number, landing_page, referrer, status, lost_reason, status_changed_at, next_action,
                captured_at, data_quality_flags, has_data_quality_issues, tags, created_at, updated_at)
            SELECT {first_id} + seq, %s, CONCAT('Lead', seq), 'Bench', CONCAT('Lead', seq, ' Bench'), '',
                CONCAT('+1512', LPAD(seq, 7, '0')), '', '', '', '', 'web_form', '', '', 'any', '', 'normal',
                '', '', '', '', '', '', '', '', '', '', '', 'new', '', %s, '', %s, '[]', 0, '[]', %s, %s
            FROM seq_1_to_{count}""",  # noqa: S608 - integers and bench constants only
            [client.pk, now, now, now, now],
        )
        # seq mod 10: 0-6 waiting a day+ ahead (active), 7 completed, 8 exited, 9 waiting for an event;
        # the first `due` rows are due now.
        cursor.execute(
            f"""INSERT INTO workflows_enrollment (workflow_id, version_id, client_id, lead_id, state, step_key,
                visit, next_run_at, waiting_for, hold_reason, hold_kind, exit_reason, exit_detail, enrolled_by_label,
                live_lead_id, finished_at, created_at, updated_at)
            SELECT %s, %s, %s, {first_id} + seq,
                CASE WHEN seq <= {due} THEN 'active' WHEN seq %% 10 = 7 THEN 'completed'
                     WHEN seq %% 10 = 8 THEN 'exited' WHEN seq %% 10 = 9 THEN 'waiting' ELSE 'active' END,
                'hi', 0,
                CASE WHEN seq <= {due} THEN %s WHEN seq %% 10 IN (7, 8) THEN NULL
                     ELSE %s + INTERVAL (1 + seq %% 30) DAY END,
                CASE WHEN seq > {due} AND seq %% 10 = 9 THEN 'sms.replied' ELSE '' END, '', '',
                CASE WHEN seq > {due} AND seq %% 10 = 8 THEN 'unsubscribed' ELSE '' END, '', 'system:bench',
                CASE WHEN seq > {due} AND seq %% 10 IN (7, 8) THEN NULL ELSE {first_id} + seq END,
                CASE WHEN seq > {due} AND seq %% 10 IN (7, 8) THEN %s ELSE NULL END, %s, %s
            FROM seq_1_to_{count}""",  # noqa: S608
            [
                workflow.pk,
                workflow.published_version_id,
                client.pk,
                now - datetime.timedelta(seconds=5),
                now,
                now,
                now,
                now,
            ],
        )
        cursor.execute("ANALYZE TABLE workflows_enrollment")
        cursor.fetchall()


def step_runs() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM workflows_steprun")
        return cursor.fetchone()[0]


def measure_step_runs(env, *, window: float) -> dict:
    from workflows import engine

    redis_clear()
    workers = start_workers(env, "engine")
    time.sleep(4)  # workers up
    start_runs = step_runs()
    meter = CpuMeter()
    t0 = time.monotonic()
    claimed = 0
    while time.monotonic() - t0 < window:
        # beat's job, at a steady pace: claim more only when the queue is nearly empty
        if queue_length() < 4:
            claimed += engine.enrollments_dispatch_due(limit=500)
        time.sleep(0.2)
    runs = step_runs() - start_runs
    seconds = time.monotonic() - t0
    cpu = meter.stop()
    PROCS.stop(workers, timeout=60)
    result = {
        "step_runs": runs,
        "seconds": round(seconds, 1),
        "per_s": round(runs / seconds, 1),
        "claimed": claimed,
        "cpu": cpu,
    }
    log(f"engine: {runs:,} step runs in {seconds:.0f} s = {runs / seconds:,.0f}/s (claimed {claimed:,})")
    return result


def measure_noop(env, *, count: int) -> dict:
    from bench.workflow_tasks import noop

    redis_clear()
    for _ in range(count):
        noop.apply_async(queue="workflows")
    assert queue_length() >= count * 0.99, queue_length()
    meter = CpuMeter()
    workers = start_workers(env, "noop")
    t0 = time.monotonic()
    first_drop = None
    while queue_length() > 0 and time.monotonic() - t0 < 600:
        if first_drop is None and queue_length() < count:
            first_drop = time.monotonic()
        time.sleep(0.1)
    seconds = time.monotonic() - (first_drop or t0)
    cpu = meter.stop()
    PROCS.stop(workers, timeout=60)
    result = {"tasks": count, "seconds": round(seconds, 1), "per_s": round(count / seconds, 1), "cpu": cpu}
    log(f"no-op tasks: {count:,} in {seconds:.1f} s = {count / seconds:,.0f}/s")
    return result


CLAIM_SQL_NOTE = "engine.enrollments_dispatch_due's claim: SELECT id … FOR UPDATE SKIP LOCKED LIMIT 500 + UPDATE"


def measure_claim(client, workflow, *, size: int, due: int, repeats: int, first_id: int) -> dict:
    from django.db import connection, transaction

    from workflows.models import Enrollment

    with connection.cursor() as cursor:  # the bench database only: start the table afresh
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in (
            "workflows_steprun",
            "workflows_outboundmessage",
            "workflows_stafftask",
            "workflows_enrollment",
            "leads_activity",
            "leads_consent",
            "event_admin_actions",
        ):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("DELETE FROM leads_lead WHERE id > %s", [first_id])
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    t0 = time.monotonic()
    bulk_enroll(client, workflow, count=size, due=due, first_id=first_id)
    log(f"claim: {size:,} enrollments inserted in {time.monotonic() - t0:.0f} s")
    now = datetime.datetime.now(datetime.UTC)
    # The scheduler's first (and under load only) claim query: active rows due, in index order.
    qs = (
        Enrollment.objects.select_for_update(skip_locked=True)
        .filter(state="active", next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("pk", flat=True)[:500]
    )
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = qs.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        columns = [c[0] for c in cursor.description]
        explain = [dict(zip(columns, row, strict=False)) for row in cursor.fetchall()]
    timings, selects, updates = [], [], []
    # The first 5 claims warm the pages a running scheduler has warm (it claims every 15 s):
    # the whole claim, lease UPDATE included, not only its SELECT. Not counted.
    for attempt in range(repeats + 5):
        t = time.perf_counter()
        with transaction.atomic():
            ids = list(qs.all())  # a fresh query each time (a queryset caches its rows)
            t_select = time.perf_counter()
            Enrollment.objects.filter(pk__in=ids).update(next_run_at=now + datetime.timedelta(minutes=5))
            t_update = time.perf_counter()
            transaction.set_rollback(True)
        if attempt < 5:
            continue
        timings.append((t_update - t) * 1000)
        selects.append((t_select - t) * 1000)
        updates.append((t_update - t_select) * 1000)
    result = {
        "enrollments": size,
        "due": due,
        "claimed": len(ids),
        "median_ms": round(statistics.median(timings), 2),
        "p90_ms": round(sorted(timings)[int(len(timings) * 0.9) - 1], 2),
        "select_median_ms": round(statistics.median(selects), 2),
        "update_median_ms": round(statistics.median(updates), 2),
        "explain": explain,
    }
    log(
        f"claim at {size:,}: median {result['median_ms']} ms (SELECT … SKIP LOCKED {result['select_median_ms']} ms, "
        f"lease UPDATE {result['update_median_ms']} ms) for {len(ids)} rows; key {explain[0].get('key')}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of engine measurement")
    parser.add_argument("--noop", type=int, default=20_000)
    parser.add_argument("--claim-sizes", default="10000,1000000")
    parser.add_argument("--claim-repeats", type=int, default=30)
    parser.add_argument("--skip-engine", action="store_true", help="claim timings only")
    args = parser.parse_args()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    env = environment()
    ensure_redis()
    recreate_database()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    client, workflow = seed_workflow()
    first_id = 10_000_000
    t0 = time.monotonic()
    bulk_enroll(client, workflow, count=args.due, due=args.due, first_id=first_id)
    log(f"{args.due:,} due enrollments inserted in {time.monotonic() - t0:.0f} s")
    result: dict = {"when": datetime.datetime.now(datetime.UTC).isoformat(), "due": args.due}
    try:
        if not args.skip_engine:
            result["engine"] = measure_step_runs(env, window=args.window)
            result["noop"] = measure_noop(env, count=args.noop)
            result["ratio"] = round(result["engine"]["per_s"] / result["noop"]["per_s"], 2)
        result["claims"] = [
            measure_claim(client, workflow, size=int(n), due=500, repeats=args.claim_repeats, first_id=first_id)
            for n in args.claim_sizes.split(",")
        ]
        if len(result["claims"]) >= 2:
            first, last = result["claims"][0], result["claims"][-1]
            result["claim_ratio"] = round(last["median_ms"] / first["median_ms"], 2)
            result["claim_select_ratio"] = round(last["select_median_ms"] / first["select_median_ms"], 2)
    finally:
        PROCS.stop_all()
    report(result)
    path = OUT_DIR / f"result-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"JSON: {path.relative_to(ROOT)}")


def report(result: dict) -> None:
    print()
    print(f"=== Workflow benchmark, {result['when']} — {os.cpu_count()} cores ===")
    if "engine" in result:
        report_engine(result)
    for claim in result.get("claims", []):
        e = claim["explain"][0]
        print(
            f"claim with {claim['enrollments']:>9,} enrollments ({claim['due']} due): median {claim['median_ms']} ms "
            f"(SELECT {claim['select_median_ms']} + UPDATE {claim['update_median_ms']}), p90 {claim['p90_ms']} ms; "
            f"EXPLAIN type={e.get('type')} key={e.get('key')} rows={e.get('rows')} extra={e.get('Extra')}"
        )
    if "claim_ratio" in result:
        print(
            f"claim time ratio largest ÷ smallest: {result['claim_ratio']} (goal ≤ 1.2); "
            f"the SELECT alone: {result['claim_select_ratio']}"
        )


def report_engine(result: dict) -> None:
    engine, noop = result["engine"], result["noop"]
    print(f"{result['due']:,} due enrollments; workflow: send SMS (console channel) → delay 1 day → send SMS")
    print(
        f"engine, celery prefork -c 2: {engine['step_runs']:,} step runs in {engine['seconds']} s "
        f"= {engine['per_s']:,.0f}/s"
    )
    cpu = engine["cpu"]
    print(
        f"  CPU busy / MariaDB / other: {cpu.get('machine_busy_pct')} / {cpu.get('mariadb_pct')} / "
        f"{cpu.get('foreign_pct')} % of one core"
    )
    print(f"celery no-op tasks, same worker shape: {noop['tasks']:,} in {noop['seconds']} s = {noop['per_s']:,.0f}/s")
    print(f"ratio step runs/s ÷ no-op tasks/s: {result['ratio']} (goal ≥ 1)")


if __name__ == "__main__":
    main()
