import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from leads.models import Lead
from tests import factories

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ENVIRONMENT", "ALLOWED_HOSTS"}}
    # The deploy check is about settings; a throwaway SQLite file keeps it independent of which
    # databases exist (model checks open a connection).
    base["DATABASE_URL"] = "sqlite:////tmp/zartsalgo-deploy-check.sqlite3"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_production_configuration_passes_check_deploy():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENVIRONMENT="production",
        SECRET_KEY="x7!" + "k" * 30 + "Q9#mZ2$vP8&wR4^tY6*uI0(oL3)eA5",
        ALLOWED_HOSTS="ops.zartsalgo.example",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_development_key():
    result = _manage(
        "check", ENVIRONMENT="production", ALLOWED_HOSTS="ops.zartsalgo.example", REDIS_URL="redis://127.0.0.1:6379/0"
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_fall_back_to_embedded_backends():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            **env,
            "ENVIRONMENT": "production",
            "SECRET_KEY": "k" * 60,
            "ALLOWED_HOSTS": "x.example",
            "DATABASE_URL": "sqlite:////tmp/x.sqlite3",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "REDIS_URL" in result.stderr


EMBEDDED_PROBE = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zartsalgo.settings")
django.setup()
from django.conf import settings as s
print(s.DATABASES["default"]["ENGINE"], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)
"""


def test_embedded_default_is_sqlite_and_in_process_tasks():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", EMBEDDED_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True", "memory://localhost/"], result.stderr


def test_storage_is_utc():
    assert settings.USE_TZ is True and settings.TIME_ZONE == "UTC"


@pytest.mark.django_db
def test_mysql_connection_is_utf8mb4_and_strict():
    if connection.vendor != "mysql":
        pytest.skip("MariaDB/MySQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode, @@character_set_connection, @@SESSION.time_zone")
        sql_mode, charset, _ = cursor.fetchone()
    assert "STRICT_TRANS_TABLES" in sql_mode
    assert charset == "utf8mb4"
    # Four-byte characters survive the round trip.
    lead = factories.LeadFactory(first_name="José 🔧")
    assert Lead.objects.get(pk=lead.pk).first_name == "José 🔧"
