"""Settings for ZartsAlgo Ops, read from the environment through django-environ.

Three shapes, one module:
- embedded (no env set): SQLite file under ./var, Celery tasks run in-process, local-memory cache;
- CI / compose: DATABASE_URL=mysql://..., REDIS_URL=redis://...;
- production: ENVIRONMENT=production, which turns on every `check --deploy` hardening and
  refuses to start without a real SECRET_KEY.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A developer's .env is convenience only; real deployments pass the environment.
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

ENVIRONMENT = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"ENVIRONMENT must be development, test or production, not {ENVIRONMENT!r}")
IS_PRODUCTION = ENVIRONMENT == "production"

DEBUG = env.bool("DEBUG", default=False)
_INSECURE_KEY = "django-insecure-zartsalgo-local-development-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_INSECURE_KEY)
if IS_PRODUCTION and (SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("ENVIRONMENT=production needs a SECRET_KEY of at least 50 characters")
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when ENVIRONMENT=production")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    # Start-up wiring for the API (removes DRF's token admin page, which shows keys in clear).
    "zartsalgo.apps.ApiConfig",
    "django_filters",
    "drf_spectacular",
    # Swagger UI / Redoc assets served from our static files, not a CDN.
    "drf_spectacular_sidecar",
    # Ours, in layer order: a lower layer never imports a higher one.
    "adminops",
    "leads",
    "integrations",
    "workflows",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "zartsalgo.urls"
WSGI_APPLICATION = "zartsalgo.wsgi.application"
ASGI_APPLICATION = "zartsalgo.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Production never falls back to the embedded defaults: a missing URL is a startup error, not a
# silent SQLite file or in-process task execution.
if IS_PRODUCTION:
    for _required in ("DATABASE_URL", "REDIS_URL"):
        if not env.str(_required, default=""):
            raise ImproperlyConfigured(f"ENVIRONMENT=production needs {_required}")


def _mysql_client_flags() -> int:
    from MySQLdb.constants.CLIENT import FOUND_ROWS, MULTI_STATEMENTS

    return FOUND_ROWS | MULTI_STATEMENTS


DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'zartsalgo.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # utf8mb4: names, SMS bodies and emoji from real customers need 4-byte characters.
            "charset": "utf8mb4",
            # Strict mode makes MySQL/MariaDB reject truncated or invalid values instead of
            # silently mangling them (Django's mysql.W002 check).
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
            # READ COMMITTED: the scheduler's SKIP LOCKED claims and upsert retries behave
            # predictably, and it is Django's documented default for MySQL.
            "isolation_level": "read committed",
            # FOUND_ROWS is Django's own default. MULTI_STATEMENTS lets a webhook delivery write
            # its receipt and raw events in one round trip (zartsalgo.db.insert_with_dependents).
            # Every statement this project sends passes values as parameters, escaped by the
            # driver, so it opens no door for stacked-query injection.
            "client_flag": _mysql_client_flags(),
        }
    )
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60 if IS_PRODUCTION else 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache & Celery --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None  # results live in MySQL rows, not in the broker
CELERY_TASK_IGNORE_RESULT = True
# Without Redis the embedded run executes tasks in-process (still after commit, through
# enqueue_on_commit), so `make run` needs nothing but Python.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# Work that must not be lost: acknowledge only after the task ran, and put the message back
# if the worker process dies mid-task. Tasks are written to be idempotent for that reason.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the slowest task: with acks_late a message unacked past this is redelivered.
    "visibility_timeout": 3600,
    "global_keyprefix": env.str("CELERY_KEY_PREFIX", default=""),
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name), routing_key=name) for name in ("ingest", "workflows", "outbound", "default")
)
# Queues are named for their work so each can be scaled (and drained) on its own.
CELERY_TASK_ROUTES = {
    # An import runs for minutes to hours: keep it off the webhook ingest workers.
    "integrations.tasks.run_import_job": {"queue": "default"},
    # A CRM handoff is an outbound provider call, like an SMS: scaled with the other sends.
    "integrations.tasks.send_crm_handoff": {"queue": "outbound"},
    # Search Console pulls page through Google's API for seconds to minutes: not on ingest.
    "integrations.tasks.pull_search_console*": {"queue": "default"},
    "integrations.tasks.*": {"queue": "ingest"},
    "workflows.tasks.send_*": {"queue": "outbound"},
    "workflows.tasks.*": {"queue": "workflows"},
    "adminops.tasks.*": {"queue": "default"},
}
# The beat schedule lives in code (django-celery-beat does not support this Django).
CELERY_BEAT_SCHEDULE = {
    # Writes the "beat" Heartbeat row; the ops status page flags it older than 3x this interval.
    "beat-heartbeat": {"task": "adminops.tasks.beat_heartbeat", "schedule": 30.0},
    "sweep-raw-events": {"task": "integrations.tasks.sweep_raw_events", "schedule": 30.0},
    # CRM handoffs whose retry is due, and those a lost message or a dead worker left behind.
    "sweep-crm-handoffs": {"task": "integrations.tasks.sweep_crm_handoffs", "schedule": 30.0},
    # Claims due enrollments; its cost follows the due rows (index on state, next_run_at).
    "workflows-dispatch-due": {"task": "workflows.tasks.dispatch_due", "schedule": 15.0},
    "flag-stale-connections": {"task": "integrations.tasks.flag_stale_connections", "schedule": crontab(minute="*/10")},
    "sweep-stale-intended-actions": {
        "task": "adminops.tasks.sweep_stale_intended_actions",
        "schedule": crontab(minute="*/5"),
    },
    # Pulls each Search Console connection whose pull is due (every SEARCH_CONSOLE_PULL_EVERY_HOURS,
    # or its retry time after a failure); a plain number so run_scheduler keeps the same cadence.
    "pull-search-console": {"task": "integrations.tasks.pull_search_console_due", "schedule": 900.0},
    # Report rollups: recomputes the days whose leads changed since the last run (leads.rollups).
    "refresh-lead-rollups": {"task": "leads.tasks.refresh_rollups", "schedule": 60.0},
    # …and every day in full at 09:20 UTC (night across US time zones), so a deleted lead cannot
    # stay counted (leads.tasks.rebuild_rollups).
    "rebuild-lead-rollups": {"task": "leads.tasks.rebuild_rollups", "schedule": crontab(hour=9, minute=20)},
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:login"
# Portal sign-in and password-reset limits (portal/throttle.py): failed sign-ins per username and
# per client IP in a window, then 429; reset emails per address and per IP in a window, then the
# same answer without an email.
PORTAL_THROTTLE_PREFIX = "portal-throttle"
PORTAL_LOGIN_WINDOW_SECONDS = env.int("PORTAL_LOGIN_WINDOW_SECONDS", default=15 * 60)
PORTAL_LOGIN_FAILURES_PER_USER = env.int("PORTAL_LOGIN_FAILURES_PER_USER", default=10)
PORTAL_LOGIN_FAILURES_PER_IP = env.int("PORTAL_LOGIN_FAILURES_PER_IP", default=50)
PORTAL_RESET_WINDOW_SECONDS = env.int("PORTAL_RESET_WINDOW_SECONDS", default=60 * 60)
PORTAL_RESETS_PER_EMAIL = env.int("PORTAL_RESETS_PER_EMAIL", default=3)
PORTAL_RESETS_PER_IP = env.int("PORTAL_RESETS_PER_IP", default=20)

# --- Email (portal password reset; workflow email goes through SendGrid, not here) --------------
# Django 6.1's MAILERS; tests swap it for locmem. Outside production the console backend prints
# the reset link, so a fresh `make run` needs no mail server.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ZartsAlgo <no-reply@zartsalgo.example>")
_MAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if IS_PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
MAILERS = {"default": {"BACKEND": _MAIL_BACKEND}}
if _MAIL_BACKEND.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env.str("EMAIL_HOST", default="localhost"),
        "port": env.int("EMAIL_PORT", default=25),
        "username": env.str("EMAIL_HOST_USER", default=""),
        "password": env.str("EMAIL_HOST_PASSWORD", default=""),
        "use_tls": env.bool("EMAIL_USE_TLS", default=False),
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # storage and server time; each client has its own display time zone
USE_I18N = True
USE_TZ = True

# Uploaded CSV imports (client personal data): kept under var/, never served (no MEDIA_URL route).
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside production whitenoise serves straight from the app/static dirs (no collectstatic).
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = not IS_PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST framework ----------------------------------------------------------------------------
# The API under /api/v1/ (docs/api.md): token auth for scripts, the session for the browsable
# docs. Who sees which client's rows is decided per view by zartsalgo.api.ClientScope.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Cursor pages: an index range read per page, never OFFSET or COUNT(*) on big tables.
    "DEFAULT_PAGINATION_CLASS": "zartsalgo.api.IdCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "zartsalgo.errors.drf_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ZartsAlgo Ops API",
    "DESCRIPTION": "Workflows, enrollments, templates, execution history, leads, connections, normalized events "
    "and automation rules. Token auth: `Authorization: Token <key>`. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Only the /api/v1/ API: provider webhooks authenticate by signature and are documented apart.
    "PREPROCESSING_HOOKS": ["zartsalgo.api.schema_only_api_v1"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models call their choices "status"/"state": one clear name each in the schema.
    "ENUM_NAME_OVERRIDES": {
        "LeadStatusEnum": "leads.models.Lead.Status",
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
        "ConnectionStatusEnum": "integrations.models.Connection.Status",
        "EnrollmentStateEnum": "workflows.models.Enrollment.State",
        "StepRunStateEnum": "workflows.models.StepRun.State",
        "StepKindEnum": "workflows.models.Step.Kind",
    },
}

# --- Product settings ----------------------------------------------------------------------------
# Region used to read phone numbers typed without a country code, when no client is known
# (admin search). Each client has its own region for its leads.
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")
# An action still `intended` after this long had its process die between logging and acting:
# the sweeper marks it `unknown` for review and nothing re-runs it automatically.
ADMIN_ACTION_UNKNOWN_AFTER_SECONDS = env.int("ADMIN_ACTION_UNKNOWN_AFTER_SECONDS", default=15 * 60)
# Admin list pages count at most this many rows; past it they say "N+" (no full COUNT(*)).
ADMIN_COUNT_CAP = env.int("ADMIN_COUNT_CAP", default=10_000)
# Called in order when an incident holds or releases sends (adminops/incident_holds.py). Named
# here because adminops sits below workflows, which owns the client and workflow send switches.
ADMINOPS_INCIDENT_HOLD_HOOKS = ["adminops.incident_holds.workflow_send_holds"]
# Ops status (/ops/status/, docs/operations.md): past these the overall status is "degraded".
# Scheduler lag: age of the oldest due enrollment; the dispatcher runs every 15 s.
OPS_SCHEDULER_LAG_WARN_SECONDS = env.int("OPS_SCHEDULER_LAG_WARN_SECONDS", default=120)
# Age of the oldest raw event still waiting (received) to be processed.
OPS_RAW_BACKLOG_WARN_SECONDS = env.int("OPS_RAW_BACKLOG_WARN_SECONDS", default=300)

# --- Portal proof (docs/proof.md) ----------------------------------------------------------------
# Drafts summaries; any class with `key` and `summarize(client, start, end) -> SummaryDraft`.
PORTAL_SUMMARIZER = env.str("PORTAL_SUMMARIZER", default="portal.summarizers.DeterministicSummarizer")
# Data-quality checks run before publishing, in this order (portal/checks.py).
PORTAL_CHECKS = [
    "portal.checks.DuplicateLeadsCheck",
    "portal.checks.SpamCheck",
    "portal.checks.ProviderFreshnessCheck",
    "portal.checks.FieldCompletenessCheck",
]
# A check run older than this no longer vouches for a publish: run the checks again.
PORTAL_CHECK_MAX_AGE_HOURS = env.int("PORTAL_CHECK_MAX_AGE_HOURS", default=24)
# Lead/event ids kept per check result (the count is always complete).
PORTAL_CHECK_DETAIL_CAP = env.int("PORTAL_CHECK_DETAIL_CAP", default=50)
# Spam heuristics: a body with this many links or more is link-stuffed; a word this long (letters)
# with a vowel share below the ratio, a consonant run this long, or one character repeated this
# many times in a row reads as gibberish.
PORTAL_SPAM_MAX_LINKS = env.int("PORTAL_SPAM_MAX_LINKS", default=3)
PORTAL_SPAM_GIBBERISH_MIN_WORD = env.int("PORTAL_SPAM_GIBBERISH_MIN_WORD", default=8)
PORTAL_SPAM_GIBBERISH_VOWEL_RATIO = env.float("PORTAL_SPAM_GIBBERISH_VOWEL_RATIO", default=0.1)
PORTAL_SPAM_GIBBERISH_CONSONANT_RUN = env.int("PORTAL_SPAM_GIBBERISH_CONSONANT_RUN", default=7)
PORTAL_SPAM_GIBBERISH_REPEAT_RUN = env.int("PORTAL_SPAM_GIBBERISH_REPEAT_RUN", default=4)
PORTAL_DISPOSABLE_EMAIL_DOMAINS = env.list(
    "PORTAL_DISPOSABLE_EMAIL_DOMAINS",
    default=[
        "mailinator.com",
        "guerrillamail.com",
        "sharklasers.com",
        "10minutemail.com",
        "temp-mail.org",
        "tempmail.com",
        "yopmail.com",
        "trashmail.com",
        "getnada.com",
        "maildrop.cc",
        "dispostable.com",
        "throwawaymail.com",
    ],
)
# Field completeness (source, service type, attribution): below WARN the check warns, below FAIL it fails.
PORTAL_COMPLETENESS_WARN_BELOW = env.float("PORTAL_COMPLETENESS_WARN_BELOW", default=0.9)
PORTAL_COMPLETENESS_FAIL_BELOW = env.float("PORTAL_COMPLETENESS_FAIL_BELOW", default=0.6)
# Outbound-only providers: their silence says nothing about the freshness of the proof.
PORTAL_FRESHNESS_IGNORE_PROVIDERS = env.list(
    "PORTAL_FRESHNESS_IGNORE_PROVIDERS", default=["crm_webhook", "hubspot", "sendgrid"]
)

# --- Integrations ------------------------------------------------------------------------------
# Who reacts to a normalized event, in this order. Explicit on purpose (no signals): leads first
# (it upserts the lead the later consumers act on); the workflow engine appends itself here.
INTEGRATIONS_EVENT_CONSUMERS = [
    "leads.consumers.apply_event",
    "workflows.consumers.apply_event",
]
# Seconds before retry 1, 2, … of a failed raw event (±20% jitter); after the last, it is dead.
INTEGRATIONS_RETRY_SCHEDULE = env.list("INTEGRATIONS_RETRY_SCHEDULE", cast=int, default=[30, 120, 600, 3600, 21600])
# A raw event still `received` after this long lost its Celery message: the sweeper re-enqueues it.
INTEGRATIONS_STUCK_AFTER_SECONDS = env.int("INTEGRATIONS_STUCK_AFTER_SECONDS", default=60)
# How many waiting raw events one processing task takes in one transaction (1 = one each).
# Batches are applied set-wise (a few statements per batch), so bigger is cheaper per event.
INTEGRATIONS_PROCESS_BATCH_SIZE = env.int("INTEGRATIONS_PROCESS_BATCH_SIZE", default=200)
# A drain task works through waiting raw events for at most this long, then hands over to a
# fresh task (so a backlog never pins one task past the broker's visibility timeout).
INTEGRATIONS_DRAIN_MAX_SECONDS = env.int("INTEGRATIONS_DRAIN_MAX_SECONDS", default=60)
# A web process rings the drain at most once per this many ms, from one doorbell thread (the
# first ring of a quiet spell at once, the last of a burst at the end of the window): one Redis
# round trip per burst and no Redis work in the request. Bounds how long a row waits for its
# drain. 0 rings on every delivery, in the request: the default where tasks run in-process or
# tests count messages.
INTEGRATIONS_RING_DEBOUNCE_MS = env.int(
    "INTEGRATIONS_RING_DEBOUNCE_MS", default=0 if CELERY_TASK_ALWAYS_EAGER or ENVIRONMENT == "test" else 200
)
# Lifetime of the "drain pending" hint in Redis; only matters if a drain task is lost.
INTEGRATIONS_DRAIN_PENDING_SECONDS = 30
# How long a web process reuses a connection it looked up by webhook token.
INTEGRATIONS_CONNECTION_CACHE_SECONDS = env.int("INTEGRATIONS_CONNECTION_CACHE_SECONDS", default=5)
# CRM handoff (docs/crm.md). Seconds one CRM call may take before it counts as failed (and is
# retried: both CRM adapters make a repeat a no-op on the CRM's side).
INTEGRATIONS_CRM_TIMEOUT_SECONDS = env.int("INTEGRATIONS_CRM_TIMEOUT_SECONDS", default=10)
# A handoff still pending or sending after this long lost its queue message or its worker: the
# sweeper sends it again. Must be longer than the timeout above, or a slow call is sent twice.
INTEGRATIONS_CRM_STUCK_AFTER_SECONDS = env.int("INTEGRATIONS_CRM_STUCK_AFTER_SECONDS", default=300)
# Called in order with handoff=… when a handoff becomes a dead letter (after it is recorded in
# failure review). Explicit on purpose, like the event consumers: the workflows layer opens a
# staff task with the prepared payload for handoffs that must reach the client.
INTEGRATIONS_CRM_DEAD_HANDLERS = ["workflows.handoffs.crm_handoff_dead_create_task"]
# Search Console metric pulls (docs/search_console.md). Each pull reads the last PULL_DAYS days
# ending LAG_DAYS ago (Google's data settles 2-3 days late), every PULL_EVERY_HOURS per connection.
SEARCH_CONSOLE_PULL_DAYS = env.int("SEARCH_CONSOLE_PULL_DAYS", default=7)
SEARCH_CONSOLE_LAG_DAYS = env.int("SEARCH_CONSOLE_LAG_DAYS", default=3)
SEARCH_CONSOLE_PULL_EVERY_HOURS = env.int("SEARCH_CONSOLE_PULL_EVERY_HOURS", default=12)
# Rows per searchAnalytics.query request (Google's maximum is 25000) and seconds per request.
SEARCH_CONSOLE_ROW_LIMIT = env.int("SEARCH_CONSOLE_ROW_LIMIT", default=25000)
SEARCH_CONSOLE_TIMEOUT_SECONDS = env.int("SEARCH_CONSOLE_TIMEOUT_SECONDS", default=30)
# Workflow sends for a client without a Twilio/SendGrid connection go to a console channel
# (one JSON line per message in this file, or the log) instead of being held: the embedded demo.
WORKFLOWS_CONSOLE_CHANNEL = env.bool("WORKFLOWS_CONSOLE_CHANNEL", default=not IS_PRODUCTION)
WORKFLOWS_CONSOLE_CHANNEL_PATH = env.str("WORKFLOWS_CONSOLE_CHANNEL_PATH", default=str(VAR_DIR / "outbox.jsonl"))
# Enrollments one scheduler tick claims at most.
WORKFLOWS_DISPATCH_BATCH = env.int("WORKFLOWS_DISPATCH_BATCH", default=500)
# Enrollments one task runs (the scheduler's claim is split into tasks of this size).
WORKFLOWS_RUN_BATCH = env.int("WORKFLOWS_RUN_BATCH", default=50)
# How long a claimed enrollment (or one whose send is in flight) is left alone before the
# scheduler may hand it out again: longer than a provider call, short enough to recover.
WORKFLOWS_LEASE_SECONDS = env.int("WORKFLOWS_LEASE_SECONDS", default=300)
# A rule with re-enrollment "always" restarts a live enrollment only if it is older than this:
# the same person arriving by a second source minutes later (a form, then a missed call) stays
# one enrollment.
WORKFLOWS_RULE_RESTART_COOLDOWN_SECONDS = env.int("WORKFLOWS_RULE_RESTART_COOLDOWN_SECONDS", default=1800)
# Largest webhook body accepted (413 above it).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# Absolute base URL providers call (for Twilio's signature and the URLs shown to staff);
# empty means "as the request arrived".
WEBHOOK_PUBLIC_BASE_URL = env.str("WEBHOOK_PUBLIC_BASE_URL", default="")

# --- Security: everything `check --deploy` asks for, on in production ----------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancer probes arrive over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
