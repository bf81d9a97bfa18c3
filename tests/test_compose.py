"""Keep the container files in step with settings.py, by reading them (no Docker needed).

settings.py, .env.example, docker-compose.yml and the Dockerfile each name the same
environment variables, services and queues; these tests fail when one of them changes
without the others.
"""

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PY = ROOT / "zartsalgo" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("migrate", "web", "worker", "beat")
SERVICES = ("db", "redis", *APP_SERVICES)
HEALTHCHECKED = ("db", "redis", "web", "worker")
LONG_RUNNING_APP_SERVICES = ("web", "worker", "beat")

# env("NAME", env.str("NAME", env.db("NAME", env.list("NAME", ... and, should settings ever
# use them, os.environ["NAME"], os.environ.get("NAME" and os.getenv("NAME".
_SETTINGS_ENV_RE = re.compile(
    r"""\benv(?:\.\w+)?\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|\bos\.environ(?:\.get\(|\.setdefault\(|\[)\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|\bos\.getenv\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)
# NAME=value, or "# NAME=value" for an optional variable left at its default.
_ENV_LINE_RE = re.compile(r"^\s*(?:#\s*)?(?:export\s+)?([A-Z][A-Z0-9_]*)=")
# ${NAME}, ${NAME:-default}, ${NAME:?error}, $NAME -- but not $$NAME (a literal $ in Compose).
_INTERPOLATION_RE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def settings_env_vars() -> set[str]:
    source = SETTINGS_PY.read_text()
    return {next(name for name in match if name) for match in _SETTINGS_ENV_RE.findall(source)}


def env_example_vars() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE_RE.match(line)
        if match:
            names.add(match.group(1))
    return names


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _strings(node):
    """Every string in the loaded YAML, keys and values (comments are already gone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def compose_interpolated_vars(compose: dict) -> set[str]:
    names = set()
    for text in _strings(compose):
        for braced, bare in _INTERPOLATION_RE.findall(text):
            names.add(braced or bare)
    return names


def service_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def command_args(command) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(arg) for arg in command]


def _without_interpolation(value: str) -> str:
    # ${MARIADB_PASSWORD:?...} may contain anything; stand a plain word in for it.
    return re.sub(r"\$\{[^}]*\}", "interpolated", value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


# --- (1) and (2): environment variables ------------------------------------------------------


def test_settings_env_parser_finds_the_variables():
    # Guards the tests below against passing vacuously because the regex stopped matching.
    found = settings_env_vars()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"} <= found, (
        f"the env-var regex no longer finds the core variables in settings.py (found {sorted(found)})"
    )


def test_every_settings_variable_is_in_env_example():
    missing = settings_env_vars() - env_example_vars()
    assert not missing, (
        f"zartsalgo/settings.py reads {sorted(missing)} but .env.example does not list them; "
        "add each with a one-line comment (commented out if the default is right)"
    )


def test_every_env_example_variable_is_used(compose):
    used = settings_env_vars() | compose_interpolated_vars(compose)
    for name in SERVICES:
        used |= set(service_environment(compose["services"].get(name) or {}))
    unused = env_example_vars() - used
    assert not unused, (
        f".env.example lists {sorted(unused)}, which neither zartsalgo/settings.py reads nor "
        "docker-compose.yml uses; remove them or wire them up"
    )


def test_every_compose_interpolation_is_in_env_example(compose):
    undocumented = compose_interpolated_vars(compose) - env_example_vars()
    assert not undocumented, (
        f"docker-compose.yml interpolates {sorted(undocumented)} from .env but .env.example does not list them"
    )


# --- (3): services, healthchecks, start order ------------------------------------------------


def test_compose_has_every_service(compose):
    missing = set(SERVICES) - set(compose.get("services") or {})
    assert not missing, f"docker-compose.yml lacks the services {sorted(missing)}"
    assert "version" not in compose, "docker-compose.yml has a `version:` key, which the Compose spec dropped"


@pytest.mark.parametrize("name", HEALTHCHECKED)
def test_service_has_a_healthcheck(compose, name):
    healthcheck = compose["services"][name].get("healthcheck") or {}
    assert healthcheck.get("test") and not healthcheck.get("disable"), (
        f"docker-compose.yml service {name!r} has no healthcheck; others wait on it with condition: service_healthy"
    )


@pytest.mark.parametrize("name", LONG_RUNNING_APP_SERVICES)
def test_app_service_waits_for_healthy_backends(compose, name):
    depends_on = compose["services"][name].get("depends_on") or {}
    assert isinstance(depends_on, dict), (
        f"docker-compose.yml service {name!r} uses the short depends_on list, which waits only "
        "for containers to start; use the long form with condition: service_healthy"
    )
    for backend in ("db", "redis"):
        condition = (depends_on.get(backend) or {}).get("condition")
        assert condition == "service_healthy", (
            f"docker-compose.yml service {name!r} must depend on {backend!r} with "
            f"condition: service_healthy, not {condition!r}"
        )


def test_web_waits_for_migrations(compose):
    depends_on = compose["services"]["web"].get("depends_on") or {}
    condition = (depends_on.get("migrate") or {}).get("condition")
    assert condition == "service_completed_successfully", (
        "docker-compose.yml service 'web' must depend on 'migrate' with "
        f"condition: service_completed_successfully, not {condition!r}"
    )


# --- (4): Celery queues ----------------------------------------------------------------------


def test_worker_consumes_exactly_the_settings_queues(compose):
    args = command_args(compose["services"]["worker"].get("command"))
    queues = None
    for index, arg in enumerate(args):
        if arg in ("-Q", "--queues") and index + 1 < len(args):
            queues = args[index + 1]
        elif arg.startswith(("-Q=", "--queues=")):
            queues = arg.split("=", 1)[1]
    assert queues is not None, f"the compose worker command has no -Q queue list: {args}"
    compose_queues = [queue.strip() for queue in queues.split(",") if queue.strip()]
    settings_queues = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    missing = sorted(set(settings_queues) - set(compose_queues))
    extra = sorted(set(compose_queues) - set(settings_queues))
    assert not missing and not extra and len(compose_queues) == len(set(compose_queues)), (
        f"the compose worker's -Q {queues} is out of step with settings.CELERY_TASK_QUEUES "
        f"{settings_queues}: not consumed {missing}, unknown to settings {extra}"
    )


# --- (5): backing-service URLs ---------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_urls_point_at_the_compose_backends(compose, name):
    services = compose["services"]
    environment = service_environment(services[name])
    expected = (("DATABASE_URL", "mysql", "db"), ("REDIS_URL", "redis", "redis"))
    for variable, scheme, backend in expected:
        assert variable in environment, f"docker-compose.yml service {name!r} does not set {variable}"
        url = urlsplit(_without_interpolation(environment[variable]))
        assert url.scheme == scheme, (
            f"docker-compose.yml service {name!r} has {variable} with scheme {url.scheme!r}; "
            f"settings.py expects {scheme}://"
        )
        assert url.hostname == backend, (
            f"docker-compose.yml service {name!r} has {variable} pointing at host "
            f"{url.hostname!r}, not the compose service {backend!r}"
        )

    database = urlsplit(_without_interpolation(environment["DATABASE_URL"]))
    db_environment = service_environment(services["db"])
    assert database.path.lstrip("/") == db_environment.get("MARIADB_DATABASE"), (
        f"DATABASE_URL names database {database.path.lstrip('/')!r} but the db service "
        f"creates {db_environment.get('MARIADB_DATABASE')!r}"
    )
    assert database.username == db_environment.get("MARIADB_USER"), (
        f"DATABASE_URL connects as {database.username!r} but the db service creates the user "
        f"{db_environment.get('MARIADB_USER')!r}"
    )


# --- (6): the image serves the WSGI application -------------------------------------------------


def test_dockerfile_cmd_runs_the_wsgi_application(compose):
    cmds = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    cmd = cmds[-1]  # the last CMD is the one the final image keeps
    args = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    assert args[0] == "gunicorn" and "zartsalgo.wsgi:application" in args, (
        f"the Dockerfile CMD {args} does not run gunicorn zartsalgo.wsgi:application"
    )
    web_command = command_args(compose["services"]["web"].get("command"))
    assert not web_command or "zartsalgo.wsgi:application" in web_command, (
        f"docker-compose.yml overrides web's command with {web_command}, which does not serve "
        "zartsalgo.wsgi:application"
    )
