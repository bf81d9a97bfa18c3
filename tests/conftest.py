import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests import factories
from tests.fakes.provider_server import fake_provider  # noqa: F401 - a fixture for every test module

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _services_missing() -> str | None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.mysql":
        return "needs DATABASE_URL pointing at MariaDB/MySQL"
    if not settings.REDIS_URL:
        return "needs REDIS_URL"
    return None


@pytest.fixture(autouse=True)
def _services_gate(request):
    """Tests marked `services` need MariaDB + Redis. Skipped without them locally; CI sets
    REQUIRE_SERVICES=1 so a missing service is a failure there, never a silent skip."""
    if request.node.get_closest_marker("services") is None:
        return
    missing = _services_missing()
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {missing}")
        pytest.skip(missing)


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test starts without connections or doorbell state cached by an earlier one."""
    from integrations.services import DRAIN_PENDING_FLAG, connections_forget_cached
    from workflows.engine import steps_forget_cached
    from zartsalgo.flags import flag_clear

    connections_forget_cached()
    steps_forget_cached()
    flag_clear(DRAIN_PENDING_FLAG)
    yield
    connections_forget_cached()
    steps_forget_cached()


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    """Sign-in and reset attempt counts (portal/throttle.py) live in the cache for a window of
    minutes: each test counts under its own prefix, so one test's failed sign-ins never lock
    another test's user out (and no cache flush touches the broker's Redis database)."""
    settings.PORTAL_THROTTLE_PREFIX = f"portal-throttle-{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def _celery_in_process(request):
    """Run tasks in-process unless a test asks for the real worker.

    With REDIS_URL set the settings send tasks to the broker; ordinary tests still want the
    task to have run when the transaction commits, exactly as in the embedded mode.
    """
    from zartsalgo.celery import app

    eager = "celery_worker" not in request.fixturenames
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


def start_celery_worker(log_dir, **extra_env) -> tuple[subprocess.Popen, object]:
    """A real Celery worker process on the real broker, reading the test database."""
    db = connection.settings_dict
    database_url = (
        f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"
    )
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL, **extra_env}
    env["CELERY_KEY_PREFIX"] = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    log = open(log_dir / f"{name}.log", "w+")  # noqa: SIM115 - closed by stop_celery_worker
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "zartsalgo",
            "worker",
            "-Q",
            "ingest,workflows,outbound,default",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from zartsalgo.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if app.control.ping(destination=[f"{name}@{os.uname().nodename}"], timeout=1):
            break
    else:
        proc.kill()
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail(f"Celery worker did not start:\n{log.read()[-3000:]}")
    return proc, log


def stop_celery_worker(proc, log) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    proc, log = start_celery_worker(tmp_path)
    yield proc
    stop_celery_worker(proc, log)


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.2):
    """Poll until predicate() is truthy (for effects produced by another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture
def data_ops_user(db):
    return factories.DataOpsUserFactory()


@pytest.fixture
def engineer(db):
    return factories.EngineerFactory()


@pytest.fixture
def acme(db):
    return factories.ClientFactory(name="Acme Plumbing", slug="acme", time_zone="America/Chicago")


@pytest.fixture
def other_client(db):
    return factories.ClientFactory(name="Zenith Roofing", slug="zenith", time_zone="America/Denver")
