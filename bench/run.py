"""Benchmark the staff lead list (/admin/leads/lead/) at scale on MariaDB, against stock Django.

    .venv/bin/python bench/run.py                      # 1,000,000 leads, 30 requests per scenario
    .venv/bin/python bench/run.py --leads 100000 --repeats 10 --scenarios list,phone

Steps: create/migrate the `zartsalgo_bench` database (DATABASE_URL overrides), generate the
data if missing (bench/generate.py), then request each scenario through Django's test Client as
a logged-in superuser, against the real admin ("ours", /admin/) and against a stock-Django
configuration of the same LeadAdmin ("baseline", /baseline-admin/, see bench/urls.py).
Prints p50/p95/max latency, SQL queries per request and rows found, and the baseline/ours ratio.
"""

import argparse
import datetime
import json
import logging
import math
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bootstrap

SCENARIOS = {
    # key: (letter, description)
    "list": ("a", "unfiltered list"),
    "client": ("b", "filter: client (the largest)"),
    "status_urgency": ("c", "filter: status=new + urgency=emergency"),
    "phone": ("d", "search: phone '(512) 555-0143' style"),
    "email": ("e", "search: email"),
    "year": ("f", "date hierarchy: one year"),  # on LeadAdmin.date_hierarchy (captured_at)
    "page50": ("g", "unfiltered, page 50"),
}
SLOW_MS = 300.0
_ROWS = re.compile(r'class="paginator".*?(?:More than ([\d,]+) |(\d[\d,]*) leads?\b)', re.DOTALL)


@dataclass
class Result:
    times_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    sql_ms: list[float] = field(default_factory=list)
    queries: int = 0
    rows: str = "?"
    # (ms, sql, params) of each statement of the latest request, including one that timed out.
    statements: list[tuple[float, str, tuple]] = field(default_factory=list)

    def pct(self, p: float) -> float:
        ordered = sorted(self.times_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")

    @property
    def p95(self) -> float:
        return self.pct(95)

    @property
    def max(self) -> float:
        return max(self.times_ms) if self.times_ms else float("nan")


def scenario_params(name: str) -> dict:
    """Query-string parameters for a scenario, chosen from the data that is actually there."""
    from django.db.models import Max

    from bench.generate import phone_for
    from leads.admin import LeadAdmin
    from leads.models import Client, Lead

    if name == "list":
        return {}
    if name == "client":
        return {"client__id__exact": Client.objects.get(slug="bench-client-1").pk}  # the biggest by design
    if name == "status_urgency":
        return {"status__exact": "new", "urgency__exact": "emergency"}
    if name == "phone":
        count = Lead.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for index in range(count // 2, count):
            area, exchange, line = phone_for(index)
            if Lead.objects.filter(phone_e164=f"+1{area}{exchange}{line}").exists():
                return {"q": f"({area}) {exchange}-{line}"}
        raise SystemExit("bench: no lead with a phone number to search for")
    if name == "email":
        last = Lead.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        email = (
            Lead.objects.filter(pk__gte=last // 3, email_normalized__isnull=False)
            .order_by("pk")
            .values_list("email_raw", flat=True)
            .first()
        )
        return {"q": email}
    if name == "year":
        # Drill the admin's own date hierarchy (created_at when this bench was first written,
        # captured_at now), to the last complete year of the two years of data.
        field_name = LeadAdmin.date_hierarchy
        newest = Lead.objects.aggregate(newest=Max(field_name))["newest"]
        return {f"{field_name}__year": newest.year - 1}
    if name == "page50":
        return {"p": 50}
    raise ValueError(name)


def measure(client, url: str, params: dict, *, repeats: int, warmups: int, budget_s: float) -> Result:
    """`warmups` unmeasured then `repeats` measured GETs, within a time budget.

    A page slower than budget/3 gets a single warm-up, and measured requests stop once the
    budget is spent (at least one is always measured): a page that takes 30 s cannot be asked
    for 33 times in a 10-minute run, and its p95 is not the interesting figure anyway.
    """
    from django.db import OperationalError, connection
    from django.test.utils import CaptureQueriesContext

    result = Result()

    statements: list[tuple[float, str, tuple]] = []

    def timer(execute, sql, sql_params, many, context):
        # Times every statement, including one killed by max_statement_time (which the
        # debug cursor cannot render back to SQL), so the slow ones can be EXPLAINed afterwards.
        t0 = time.perf_counter()
        try:
            return execute(sql, sql_params, many, context)
        finally:
            statements.append(((time.perf_counter() - t0) * 1000, sql, tuple(sql_params or ())))

    started = time.perf_counter()
    for i in range(warmups + repeats):
        t0 = time.perf_counter()
        statements.clear()
        try:
            with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(timer):
                response = client.get(url, params)
        except OperationalError as exc:
            if not (exc.args and exc.args[0] == 1969):  # 1969: max_statement_time exceeded
                raise
            # The debug cursor logged the interrupted query too: keep it for the EXPLAIN.
            result.timeouts += 1
            result.rows = "timeout"
            result.statements = list(statements)
            result.queries = max(result.queries, len(ctx.captured_queries))
            break  # it will not get faster; the next request would only time out again
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise SystemExit(f"bench: GET {url} {params} answered {response.status_code}")
        if i == 0:
            match = _ROWS.search(response.content.decode())
            result.rows = (f"{match.group(1)}+" if match.group(1) else match.group(2)) if match else "?"
            result.queries = len(ctx.captured_queries)
        if i < warmups:
            if elapsed_ms > budget_s * 1000 / 3:  # a very slow page: one warm-up is enough
                warmups = i + 1
            continue
        result.times_ms.append(elapsed_ms)
        result.sql_ms.append(sum(ms for ms, _, _ in statements))
        result.statements = list(statements)
        if time.perf_counter() - started > budget_s:
            break  # time budget for this scenario spent; report what we have (n is printed)
    return result


def set_statement_timeout(seconds: float) -> None:
    """Every connection of this process kills a SELECT running longer than `seconds` (MariaDB)."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    def _apply(sender, connection, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION max_statement_time = %s", [seconds])

    connection_created.connect(_apply, weak=False)
    if connection.connection is not None:
        _apply(None, connection)


_SELECT_LIST = re.compile(r"^SELECT (.{100,}?) FROM ", re.DOTALL)


def short_sql(sql: str) -> str:
    """The statement with a long column list elided."""
    return _SELECT_LIST.sub(lambda m: f"SELECT <{m.group(1).count(',') + 1} columns> FROM ", sql, count=1)  # noqa: S608


def render_sql(sql: str, params: tuple) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        return cursor.mogrify(sql, params or None) if params else sql


def explain(sql: str, params: tuple) -> str:
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params or None)
            cols = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
    except DatabaseError as exc:
        return f"      (EXPLAIN failed: {exc})"
    keep = ("table", "type", "key", "key_len", "ref", "rows", "Extra")
    lines = []
    for row in rows:
        item = dict(zip(cols, row, strict=True))
        lines.append("      " + "  ".join(f"{k}={item.get(k)}" for k in keep if k in item))
    return "\n".join(lines)


def diagnose(res: Result, min_ms: float = 50.0) -> str:
    """Each statement of the latest request that took >= min_ms, with its EXPLAIN."""
    lines, seen = [], set()
    for ms, sql, params in res.statements:
        if ms < min_ms:
            continue
        text = short_sql(render_sql(sql, params))
        lines.append(f"  {ms:>9,.0f} ms  {text}")
        if (sql, params) not in seen:
            seen.add((sql, params))
            lines.append(explain(sql, params))
    return "\n".join(lines) or f"  (no statement over {min_ms:.0f} ms: the time is spent in Python)"


def environment() -> dict:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), @@innodb_buffer_pool_size")
        version, pool = cursor.fetchone()
    from leads.models import Lead

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "mariadb": version,
        "innodb_buffer_pool_mb": int(pool) // 2**20,
        "leads": Lead.objects.count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def cell(res: Result, attr: str, args) -> str:
    if res.times_ms:
        return fmt(getattr(res, attr))
    return f">{args.statement_timeout * 1000:,.0f}" if res.timeouts else "-"


def table(results: dict, wanted: list[str], env: dict, args) -> str:
    """The summary: one line per scenario, ours and baseline side by side."""
    cols = ("ours p50", "ours p95", "ours max", "base p50", "base p95", "base max", "base/ours", "queries", "n")
    lines = [
        f"Lead admin changelist, {env['leads']:,} leads; {args.repeats} requests after {args.warmups} warm-ups "
        f"(fewer when a page is slower than the {args.budget:.0f} s budget, see n)",
        f"{'scenario':<46}" + "".join(f"{c:>10}" for c in cols) + f"{'rows ours / base':>22}",
    ]
    lines.append("-" * len(lines[-1]))
    for name in wanted:
        letter, label = SCENARIOS[name]
        ours = results["ours", name]
        base = results.get(("baseline", name)) or Result()
        if ours.times_ms and base.times_ms:
            ratio = f"{base.p95 / ours.p95:.1f}x"
        elif ours.times_ms and base.timeouts:
            ratio = f">{args.statement_timeout * 1000 / ours.p95:.0f}x"
        else:
            ratio = "-"
        has_base = bool(base.times_ms or base.timeouts)
        values = (
            cell(ours, "p50", args),
            cell(ours, "p95", args),
            cell(ours, "max", args),
            cell(base, "p50", args),
            cell(base, "p95", args),
            cell(base, "max", args),
            ratio,
            f"{ours.queries}/{base.queries if has_base else '-'}",
            f"{len(ours.times_ms)}/{len(base.times_ms) if has_base else '-'}",
        )
        rows = f"{ours.rows} / {base.rows if has_base else '-'}"
        lines.append(f"({letter}) {label:<42}" + "".join(f"{v:>10}" for v in values) + f"{rows:>22}")
    lines.append(
        "ms; base/ours = baseline p95 / ours p95; queries = SQL per request; n = measured requests; "
        "rows = what the page says it found"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads in the database (default 1,000,000)")
    parser.add_argument("--clients", type=int, default=8, help="clients when generating (default 8)")
    parser.add_argument("--repeats", type=int, default=30, help="measured requests per scenario (default 30)")
    parser.add_argument("--warmups", type=int, default=3, help="unmeasured requests first (default 3)")
    parser.add_argument(
        "--scenarios",
        default="all",
        help=f"comma-separated names or letters, default all: {', '.join(f'{v[0]}={k}' for k, v in SCENARIOS.items())}",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds per scenario and side: a slower page gets fewer requests, at least one (default 30)",
    )
    parser.add_argument(
        "--statement-timeout",
        type=float,
        default=120.0,
        help="MariaDB max_statement_time per query, seconds; a page that hits it is reported as 'timeout' (120)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="measure only our admin")
    parser.add_argument(
        "--explain",
        action="store_true",
        help=f"EXPLAIN the slow statements of every scenario of ours (default: of those over {SLOW_MS:.0f} ms)",
    )
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the benchmark database first")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    by_letter = {v[0]: k for k, v in SCENARIOS.items()}
    chosen = set()
    for item in filter(None, (t.strip() for t in args.scenarios.split(","))):
        if item == "all":
            chosen |= set(SCENARIOS)
            continue
        name = by_letter.get(item, item)
        if name not in SCENARIOS:
            parser.error(f"--scenarios: unknown {item!r}")
        chosen.add(name)
    wanted = [name for name in SCENARIOS if name in chosen]

    bootstrap.setup(fresh=args.fresh)
    # A view that fails raises in the test Client anyway; don't also print Django's error log.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    from django.conf import settings

    settings.ROOT_URLCONF = "bench.urls"
    from django.contrib.auth import get_user_model
    from django.test import Client as TestClient

    from bench.generate import generate

    gen = generate(leads=args.leads, clients=args.clients)
    set_statement_timeout(args.statement_timeout)
    env = environment()
    print(
        f"bench: {env['leads']:,} leads, {env['date']}, {env['cpus']} CPUs, Python {env['python']}, "
        f"Django {env['django']}, MariaDB {env['mariadb']} (buffer pool {env['innodb_buffer_pool_mb']} MB), "
        f"load average {env['loadavg_1m']}",
        flush=True,
    )

    user, created = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    client = TestClient()
    client.force_login(user)

    params = {name: scenario_params(name) for name in wanted}
    sides = [("ours", "/admin/leads/lead/")]
    if not args.no_baseline:
        sides.append(("baseline", "/baseline-admin/leads/lead/"))
    results: dict[tuple[str, str], Result] = {}
    # All of ours first, then all of the baseline: the baseline's full scans would otherwise
    # evict ours' pages from the buffer pool between requests.
    for side, url in sides:
        for name in wanted:
            letter, label = SCENARIOS[name]
            t0 = time.perf_counter()
            res = measure(client, url, params[name], repeats=args.repeats, warmups=args.warmups, budget_s=args.budget)
            results[side, name] = res
            print(
                f"  {side:<8} ({letter}) {label:<42} p50 {cell(res, 'p50', args):>7} ms  "
                f"p95 {cell(res, 'p95', args):>7} ms  max {cell(res, 'max', args):>7} ms  n={len(res.times_ms):<3} "
                f"{res.queries} queries  rows {res.rows}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

    env["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    print()
    print(table(results, wanted, env, args))
    # Other work on the machine inflates every figure; the load average says whether there was any.
    print(f"load average (1 min): {env['loadavg_1m']} at start, {env['loadavg_1m_end']} at end, {env['cpus']} CPUs")
    if gen["created"]:
        rate = gen["created"] / gen["seconds"]
        print(f"generation: {gen['created']:,} leads in {gen['seconds']:,.0f} s ({rate:,.0f} rows/s)")

    # Why a page of ours is slow: its statements over 50 ms, each with the plan MariaDB chose.
    for name in wanted:
        ours = results["ours", name]
        if args.explain or ours.timeouts or ours.p95 > SLOW_MS:
            letter, label = SCENARIOS[name]
            sql_ms = sum(ms for ms, _, _ in ours.statements)
            query = f" {params[name]}" if params[name] else ""
            print(
                f"\n({letter}) {label}{query}: ours p95 {cell(ours, 'p95', args)} ms, "
                f"of which SQL {sql_ms:,.0f} ms in the last request:"
            )
            print(diagnose(ours))

    if args.json:
        payload = {
            "environment": env,
            "generation": gen,
            "args": {k: str(v) for k, v in vars(args).items()},
            "scenarios": {
                name: {
                    "params": params[name],
                    **{
                        side: {
                            "p50_ms": r.p50,
                            "p95_ms": r.p95,
                            "max_ms": r.max,
                            "n": len(r.times_ms),
                            "queries": r.queries,
                            "timeouts": r.timeouts,
                            "rows": r.rows,
                            "sql_ms_p50": statistics.median(r.sql_ms) if r.sql_ms else None,
                            "statements": [(round(ms, 1), short_sql(render_sql(q, p))) for ms, q, p in r.statements],
                        }
                        for (side, n), r in results.items()
                        if n == name
                    },
                }
                for name in wanted
            },
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
