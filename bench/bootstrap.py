"""Point Django at the benchmark database and set it up. Imported first by run.py and generate.py.

The benchmark never touches the development or CI databases: it uses its own MariaDB database,
`zartsalgo_bench`, unless DATABASE_URL says otherwise. SQLite is refused, because the figures
are about MariaDB/InnoDB behaviour (COUNT(*), index range reads), which SQLite does not share.
"""

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "mysql://root:@127.0.0.1:3306/zartsalgo_bench"


def _database_config() -> dict:
    import environ

    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.mysql":
        sys.exit(
            f"bench: refusing to run on {config['ENGINE'].rsplit('.', 1)[-1]} ({url}). The benchmark measures "
            "MariaDB/InnoDB behaviour; set DATABASE_URL=mysql://user:pass@host:3306/zartsalgo_bench "
            "or unset it to use the default (root on 127.0.0.1)."
        )
    os.environ["DATABASE_URL"] = url
    return config


def _create_database(config: dict) -> None:
    """CREATE DATABASE IF NOT EXISTS, utf8mb4, connecting to the server without selecting a database."""
    import MySQLdb

    name = config["NAME"]
    if not name or "`" in name:
        sys.exit(f"bench: bad database name {name!r} in DATABASE_URL")
    conn = MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
        charset="utf8mb4",
    )
    try:
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    finally:
        conn.close()


def _drop_database(config: dict) -> None:
    import MySQLdb

    name = config["NAME"]
    if "bench" not in name:
        sys.exit(f"bench: refusing to drop {name!r}: only a database whose name contains 'bench' is rebuilt")
    conn = MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
        charset="utf8mb4",
    )
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


HASH_TABLE = "bench_migration_hashes"


def _migration_hashes() -> dict[str, str]:
    """sha256 of every migration file on disk, keyed "app.name"."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    hashes = {}
    for (app, name), migration in loader.disk_migrations.items():
        source = Path(sys.modules[type(migration).__module__].__file__)
        hashes[f"{app}.{name}"] = hashlib.sha256(source.read_bytes()).hexdigest()
    return hashes


def _stale_reason(current: dict[str, str]) -> str | None:
    """Why the existing schema cannot be trusted, or None.

    `migrate` only applies migrations it has not recorded; a migration edited in place after
    this database was built (common while a schema is young) would leave stale tables and
    indexes behind, and the benchmark would measure the wrong schema. So the file hash of
    every applied migration is kept next to the data and checked on every run.
    """
    from django.db import connection

    tables = set(connection.introspection.table_names())
    if "django_migrations" not in tables:
        return None  # empty database
    if HASH_TABLE not in tables:
        return "it has no record of the migration files it was built from"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT migration, sha FROM {HASH_TABLE}")  # noqa: S608 - constant name
        recorded = dict(cursor.fetchall())
    changed = sorted(m for m, sha in recorded.items() if current.get(m) != sha)
    if changed:
        return f"migration files changed since it was built: {', '.join(changed)}"
    return None


def _record_hashes(current: dict[str, str]) -> None:
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    applied = {f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations()}
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {HASH_TABLE} (migration VARCHAR(255) PRIMARY KEY, sha CHAR(64) NOT NULL)"
        )
        cursor.executemany(
            f"REPLACE INTO {HASH_TABLE} (migration, sha) VALUES (%s, %s)",  # noqa: S608 - constant name
            [(m, sha) for m, sha in current.items() if m in applied],
        )


def setup(*, migrate: bool = True, fresh: bool = False, verbose: bool = True) -> None:
    """Environment, database, django.setup() and migrate. Idempotent.

    The database is dropped and rebuilt (data included) when `fresh` is set or when a migration
    it was built from has changed on disk; only a database whose name contains "bench" is ever
    dropped.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "zartsalgo.settings"
    # Persistent connections as in production (settings default them to 60 s there): with 0 the
    # test Client would reconnect to MariaDB on every request and time the TCP handshake too.
    os.environ.setdefault("CONN_MAX_AGE", "60")
    config = _database_config()
    if fresh:
        _drop_database(config)
    _create_database(config)

    import django

    django.setup()

    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    if verbose:
        print(f"bench: database {db['NAME']} on {db.get('HOST') or 'localhost'}:{db.get('PORT') or 3306}", flush=True)
    if not migrate:
        return
    current = _migration_hashes()
    reason = _stale_reason(current)
    if reason:
        print(f"bench: rebuilding {db['NAME']} from scratch: {reason}", flush=True)
        connection.close()
        _drop_database(config)
        _create_database(config)
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    _record_hashes(current)
