"""Portal dashboard, report pages and the staff lead list at one million leads (issue #7, scale).

    make bench-scale                                         # generate if needed, then measure
    .venv/bin/python bench/portal_scale.py                   # measure only (database already filled)
    .venv/bin/python bench/portal_scale.py --requests 50 --pages baseline,admin_list --explain

Against the database bench/gen_leads.py filled (`zartsalgo_scale` by default):

1. gunicorn (--workers 2, sync, DEBUG off, persistent connections as in production) serves the
   project with bench.scale_settings: the project's URLs plus a baseline view that does one
   SELECT of one lead by primary key.
2. One client, one request at a time over a keep-alive connection, logged in through a real
   session cookie (the big client's portal owner for portal pages, a superuser for the admin),
   runs --requests rounds; each round requests every page once, in a shuffled order, so every
   page and the baseline share the same machine conditions (other tenants of the host). After
   --warmups unmeasured rounds. p50/p95/p99/max per page, from the client's clock.
3. Queries per page: the same request in-process through Django's test Client under
   CaptureQueriesContext (after one warm-up), with the slowest statements; --explain prints
   their EXPLAIN for every page over the budget.

A page whose URL the project does not have yet (the report pages are being built) is reported
"not available" and skipped. Figures are printed as a table, the ratio is page p95 / baseline p95
of the same run, and the JSON goes to var/bench/scale/ (gitignored, as the other benchmarks').
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import statistics
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(ROOT))

from bench.gen_leads import ADMIN_USERNAME, DEFAULT_DATABASE_URL, PORTAL_USERNAME  # noqa: E402
from bench.webhooks import Processes, free_port  # noqa: E402 - the same process handling

OUT_DIR = ROOT / "var" / "bench" / "scale"
VENV_BIN = Path(sys.executable).parent
BUDGET_MS = 300.0
PROCS = Processes()


def log(message: str) -> None:
    print(f"bench-scale: {message}", flush=True)


@dataclass
class Page:
    key: str
    label: str
    path: str  # with its query string
    user: str  # "portal", "staff" or "" (the baseline)
    group: str
    status: str = "ok"  # ok | not available | error
    note: str = ""
    times_ms: list[float] = field(default_factory=list)
    errors: int = 0
    queries: int | None = None
    bytes: int = 0
    slowest_sql: list[dict] = field(default_factory=list)

    def pct(self, q: float) -> float | None:
        if not self.times_ms:
            return None
        data = sorted(self.times_ms)
        k = (len(data) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)


# --- setup -------------------------------------------------------------------------------------------


def environment(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.scale_settings",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "60",
            "DEBUG": "0",
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        }
    )
    # The embedded default: no Redis (sessions in the database, local-memory cache per process,
    # tasks in-process). The pages measured are reads; nothing is enqueued.
    for name in ("REDIS_URL", "CELERY_KEY_PREFIX"):
        env.pop(name, None)
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    for name in ("REDIS_URL", "CELERY_KEY_PREFIX"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    # New migrations since generation (the rollup table, indexes) are applied; data is kept.
    call_command("migrate", interactive=False, verbosity=0)


def session_cookie(username: str) -> tuple[str, str]:
    """A real session for `username` in the session store gunicorn reads (the database)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    return settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value


def world() -> dict:
    from django.db import connection

    from leads.models import Client, Lead

    big = Client.objects.get(slug="scale-client-1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id), MAX(id) FROM leads_lead")
        lo, hi = cursor.fetchone()
        cursor.execute(
            "SELECT TABLE_NAME, TABLE_ROWS, ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576) "
            "FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('leads_lead', 'leads_activity', "
            "'integration_raw_events', 'integration_normalized_events') OR (TABLE_SCHEMA = DATABASE() AND "
            "TABLE_NAME LIKE '%%rollup%%')"
        )
        tables = {name: {"rows_estimate": rows, "mb": int(mb or 0)} for name, rows, mb in cursor.fetchall()}
        cursor.execute("SELECT @@innodb_buffer_pool_size, @@version")
        pool, version = cursor.fetchone()
    leads = Lead.objects.count()
    # Existing ids spread over the table (ids have gaps), for the baseline to read a different row each time.
    candidates = random.Random(3).sample(range(lo, hi + 1), min(5000, hi - lo + 1))
    sample_ids = list(Lead.objects.filter(pk__in=candidates).values_list("pk", flat=True))
    sample = Lead.objects.filter(client=big, phone_e164__isnull=False).order_by("-captured_at").first()
    return {
        "big_client": big,
        "lead_ids": sample_ids,
        "leads": leads,
        "big_client_leads": Lead.objects.filter(client=big).count(),
        "tables": tables,
        "buffer_pool_mb": int(pool) // 1048576,
        "mariadb": version,
        "sample_phone": sample.phone_raw if sample else "",
        "sample_last_name": sample.last_name if sample else "Garcia",
    }


def portal_report_paths() -> list[tuple[str, str]]:
    """(label, path) of every argument-free portal URL other than the dashboard and the login pages."""
    from django.urls import NoReverseMatch, get_resolver, reverse

    found = []
    resolver = get_resolver()
    portal = resolver.namespace_dict.get("portal")
    if not portal:
        return found
    for name in sorted({n for n in portal[1].reverse_dict if isinstance(n, str)}):
        if name in ("dashboard", "login", "logout") or "password" in name:
            continue
        try:
            found.append((name, reverse(f"portal:{name}")))
        except NoReverseMatch:
            continue  # needs arguments
    return found


def pages(w: dict, args) -> list[Page]:
    from django.urls import NoReverseMatch, reverse

    big = w["big_client"]
    lo = w["lead_ids"][0]
    prefix = (w["sample_last_name"] or "Garcia")[:4]
    out = [
        Page("baseline", "baseline: 1 SELECT by primary key", f"/bench/scale-baseline/?id={lo}", "", "-"),
        Page("portal_dashboard", "portal dashboard", "/portal/", "portal", "portal"),
    ]
    reports = portal_report_paths()
    for name, path in reports:
        out.append(Page(f"portal_{name}", f"portal: {name} ({path})", path, "portal", "portal"))
    if not any(path.startswith("/portal/reports") for _, path in reports):
        out.append(Page("portal_reports", "portal reports", "/portal/reports/", "portal", "portal"))
    if not any(path.startswith("/portal/export") for _, path in reports):
        out.append(Page("portal_export", "portal export CSV", "/portal/export.csv", "portal", "portal"))
    # One period's report: the newest month with published proof (what the reports index links
    # to), and a 12-month one (the longest a client would ask for).
    month_end = datetime.date.today().replace(day=1) - datetime.timedelta(days=1)
    month = f"{month_end.replace(day=1):%Y-%m-%d}--{month_end:%Y-%m-%d}"
    year_start = (month_end.replace(day=1) - datetime.timedelta(days=335)).replace(day=1)
    year = f"{year_start:%Y-%m-%d}--{month_end:%Y-%m-%d}"
    # And the admin's 24 months (the data covers 730 days: the whole history of the big client).
    two_years_start = (month_end.replace(day=1) - datetime.timedelta(days=700)).replace(day=1)
    out += [
        Page("portal_report_month", f"portal report {month}", f"/portal/reports/{month}/", "portal", "portal"),
        Page("portal_report_year", f"portal report {year}", f"/portal/reports/{year}/", "portal", "portal"),
        Page(
            "portal_report_csv", f"portal report CSV {month}", f"/portal/reports/{month}/export.csv", "portal", "portal"
        ),
    ]
    try:
        report = reverse("admin:leads_client_report", args=[big.pk])
    except NoReverseMatch:
        report = f"/admin/leads/client/{big.pk}/report/"
    out += [
        Page("admin_client_report", "admin client report (big, default)", report, "staff", "admin"),
        Page(
            "admin_client_report_year",
            "admin client report (big, 12 months)",
            f"{report}?start={year_start:%Y-%m-%d}&end={month_end:%Y-%m-%d}",
            "staff",
            "admin",
        ),
        Page(
            "admin_client_report_2y",
            "admin client report (big, 24 months)",
            f"{report}?start={two_years_start:%Y-%m-%d}&end={month_end:%Y-%m-%d}",
            "staff",
            "admin",
        ),
    ]
    phone = w["sample_phone"] or "(512) 250-0000"
    out += [
        Page("admin_list", "admin leads: page 1", "/admin/leads/lead/", "staff", "admin"),
        Page(
            "admin_list_client",
            "admin leads: big client + status=new",
            f"/admin/leads/lead/?client__id__exact={big.pk}&status__exact=new",
            "staff",
            "admin",
        ),
        Page(
            "admin_list_filter2",
            "admin leads: emergency, source=web form",
            "/admin/leads/lead/?urgency__exact=emergency&source__exact=web_form",
            "staff",
            "admin",
        ),
        Page(
            "admin_search_name",
            f"admin leads: search name '{prefix}'",
            f"/admin/leads/lead/?q={urllib.parse.quote(prefix)}",
            "staff",
            "admin",
        ),
        Page(
            "admin_search_phone",
            "admin leads: search phone",
            f"/admin/leads/lead/?q={urllib.parse.quote(phone)}",
            "staff",
            "admin",
        ),
        Page("admin_list_deep", "admin leads: page 200 (deepest)", "/admin/leads/lead/?p=200", "staff", "admin"),
    ]
    if args.pages:
        wanted = set(args.pages.split(","))
        out = [p for p in out if p.key in wanted or p.key == "baseline"]
    return out


# --- serving and measuring ---------------------------------------------------------------------------


def start_gunicorn(env: dict[str, str], port: int, workers: int):
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "zartsalgo.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "120",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "10",
    ]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    proc = PROCS.start("gunicorn", cmd, env=env, log_path=OUT_DIR / "gunicorn.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench-scale: gunicorn exited ({proc.returncode}); see {OUT_DIR / 'gunicorn.log'}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit("bench-scale: gunicorn did not answer /healthz within 60 s")


class HttpSession:
    """One keep-alive connection per user, a real session cookie, reconnect on a dropped socket."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port, self.cookie = port, cookie
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, int, float]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            started = time.perf_counter()
            try:
                self.conn.request("GET", path, headers={"Cookie": self.cookie} if self.cookie else {})
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            return response.status, len(body), (time.perf_counter() - started) * 1000
        raise RuntimeError("unreachable")


def probe(pages_: list[Page], sessions: dict[str, HttpSession]) -> list[Page]:
    """Drop pages the project does not serve (yet); a 5xx is kept as an error line."""
    live = []
    for page in pages_:
        status, size, ms = sessions[page.user].get(page.path)
        if status in (404, 405):
            page.status, page.note = "not available", f"HTTP {status}"
            log(f"{page.label}: not available ({page.path} answered {status})")
        elif status in (301, 302):
            page.status, page.note = "error", f"HTTP {status} (redirect: login or URL?)"
            log(f"{page.label}: {page.note}")
        elif status >= 400:
            page.status, page.note = "error", f"HTTP {status}"
            log(f"{page.label}: ERROR {status} on {page.path}; see {OUT_DIR / 'gunicorn.log'}")
        else:
            page.bytes = size
            live.append(page)
            log(f"{page.label}: {status}, {size:,} bytes, first request {ms:,.0f} ms")
    return live


def measure(live: list[Page], sessions: dict[str, HttpSession], *, rounds: int, warmups: int, lead_ids) -> None:
    rng = random.Random(11)
    started = last = time.perf_counter()
    for round_no in range(warmups + rounds):
        order = live[:]
        rng.shuffle(order)
        for page in order:
            path = page.path
            if page.key == "baseline":  # a different row each time, as the pages read different rows
                path = f"/bench/scale-baseline/?id={rng.choice(lead_ids)}"
            status, _size, ms = sessions[page.user].get(path)
            if round_no < warmups:
                continue
            if status != 200:
                page.errors += 1
            page.times_ms.append(ms)
        now = time.perf_counter()
        if now - last > 30:
            last = now
            log(f"round {round_no + 1 - warmups}/{rounds} ({now - started:,.0f} s)")


def count_queries(live: list[Page], *, explain: bool, slow_ms: float) -> None:
    """Queries per page, in-process (test Client, same settings and database), after one warm-up."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    User = get_user_model()
    clients = {"": Client()}
    for key, username in (("portal", PORTAL_USERNAME), ("staff", ADMIN_USERNAME)):
        clients[key] = Client()
        clients[key].force_login(User.objects.get(username=username))
    for page in live:
        client = clients[page.user]
        client.get(page.path)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(page.path)
        if response.status_code != 200:
            page.note = (page.note + f" in-process HTTP {response.status_code}").strip()
        page.queries = len(ctx)
        ranked = sorted(ctx.captured_queries, key=lambda q: float(q["time"]), reverse=True)[:3]
        page.slowest_sql = [{"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"]} for q in ranked]
        over = (page.pct(0.95) or 0) > BUDGET_MS
        if explain and (over or explain == "all"):
            with connection.cursor() as cursor:
                for q in page.slowest_sql:
                    if q["ms"] < slow_ms or not q["sql"].lstrip().upper().startswith("SELECT"):
                        continue
                    try:
                        cursor.execute("EXPLAIN " + q["sql"].replace("%", "%%"))
                    except Exception as exc:  # a statement EXPLAIN cannot take: keep the figures
                        q["explain"] = [{"error": str(exc)[:200]}]
                        continue
                    cols = [c[0] for c in cursor.description]
                    q["explain"] = [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]
    del settings  # only imported to make sure settings are configured before the Client


# --- report ------------------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(all_pages: list[Page], baseline_p95: float | None) -> str:
    head = (
        f"{'page':<44} {'n':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'queries':>7} {'x base':>7} {'< 300':>6}"
    )
    lines = [head, "-" * len(head)]
    for p in all_pages:
        if p.status != "ok":
            lines.append(f"{p.label:<44} {p.status}{' (' + p.note + ')' if p.note else ''}")
            continue
        p95 = p.pct(0.95)
        ratio = f"{p95 / baseline_p95:,.1f}" if p95 and baseline_p95 else "-"
        ok = "-" if p.key == "baseline" else ("yes" if p95 is not None and p95 < BUDGET_MS else "NO")
        err = f"  {p.errors} non-200" if p.errors else ""
        lines.append(
            f"{p.label:<44} {len(p.times_ms):>4} {fmt(p.pct(0.5)):>7} {fmt(p95):>7} {fmt(p.pct(0.99)):>7} "
            f"{fmt(max(p.times_ms) if p.times_ms else None):>7} {p.queries if p.queries is not None else '-':>7} "
            f"{ratio:>7} {ok:>6}{err}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("SCALE_DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page (default 200)")
    parser.add_argument("--warmups", type=int, default=3, help="unmeasured rounds first (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--pages", default="", help="comma-separated page keys (the baseline always runs)")
    parser.add_argument("--explain", nargs="?", const="over", default="", help="EXPLAIN slow statements ('all')")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="statements at least this slow get EXPLAINed")
    parser.add_argument("--skip-http", action="store_true", help="query counts only (in-process)")
    args = parser.parse_args(argv)

    env = environment(args.database_url)
    django_setup(env)
    w = world()
    if w["leads"] < 1000:
        sys.exit(f"bench-scale: only {w['leads']} leads; run bench/gen_leads.py first (make bench-scale does)")
    log(
        f"{w['leads']:,} leads ({w['big_client_leads']:,} of the big client), MariaDB {w['mariadb']}, "
        f"buffer pool {w['buffer_pool_mb']} MB; tables {w['tables']}"
    )
    all_pages = pages(w, args)
    started_at = datetime.datetime.now(datetime.UTC)
    wall = time.perf_counter()
    load_before = os.getloadavg()
    try:
        if not args.skip_http:
            port = free_port()
            start_gunicorn(env, port, args.workers)
            sessions = {
                "": HttpSession(port, ""),
                "portal": HttpSession(port, "=".join(session_cookie(PORTAL_USERNAME))),
                "staff": HttpSession(port, "=".join(session_cookie(ADMIN_USERNAME))),
            }
            live = probe(all_pages, sessions)
            log(f"measuring {len(live)} pages x {args.requests} requests (+{args.warmups} warm-up rounds), c=1")
            measure(live, sessions, rounds=args.requests, warmups=args.warmups, lead_ids=w["lead_ids"])
        else:
            live = [p for p in all_pages]
    finally:
        PROCS.stop_all()
    load_after = os.getloadavg()
    count_queries([p for p in live if p.status == "ok"], explain=args.explain, slow_ms=args.slow_ms)
    base = next((p for p in all_pages if p.key == "baseline"), None)
    baseline_p95 = base.pct(0.95) if base else None
    text = table(all_pages, baseline_p95)
    print()
    print(
        f"Scale benchmark, {started_at:%Y-%m-%d %H:%M} UTC: {w['leads']:,} leads, "
        f"gunicorn {args.workers} sync workers, DEBUG off, one request at a time; ms from the client; "
        "queries in-process; x base = p95 / baseline p95"
    )
    print(text)
    print(f"load average (1 min): {load_before[0]:.2f} at start, {load_after[0]:.2f} at end, {os.cpu_count()} CPUs")
    for p in live:
        if p.status == "ok" and (p.pct(0.95) or 0) > BUDGET_MS:
            print(f"\nover budget: {p.label} (p95 {fmt(p.pct(0.95))} ms); slowest statements in-process:")
            for q in p.slowest_sql:
                print(f"  {q['ms']:>8,.1f} ms  {q['sql'][:300]}")
                for row in q.get("explain", []):
                    print(
                        f"             table={row.get('table')} type={row.get('type')} key={row.get('key')} "
                        f"rows={row.get('rows')} Extra={row.get('Extra')}"
                    )
    result = {
        "started_at": started_at.isoformat(),
        "seconds": round(time.perf_counter() - wall, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": [load_before, load_after]},
        "database": {k: v for k, v in w.items() if k not in ("big_client", "lead_ids")}
        | {"big_client": w["big_client"].slug},
        "gunicorn_workers": args.workers,
        "budget_ms": BUDGET_MS,
        "baseline_p95_ms": baseline_p95,
        "pages": [
            {
                **{k: v for k, v in asdict(p).items() if k != "times_ms"},
                "n": len(p.times_ms),
                "p50_ms": p.pct(0.5),
                "p95_ms": p.pct(0.95),
                "p99_ms": p.pct(0.99),
                "max_ms": max(p.times_ms) if p.times_ms else None,
                "mean_ms": statistics.fmean(p.times_ms) if p.times_ms else None,
                "ratio_p95": (p.pct(0.95) / baseline_p95) if p.times_ms and baseline_p95 else None,
            }
            for p in all_pages
        ],
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%S")
    for name in (f"portal_scale-{stamp}.json", "portal_scale-latest.json"):
        (OUT_DIR / name).write_text(json.dumps(result, indent=2, default=str))
    log(f"JSON: {OUT_DIR / f'portal_scale-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
