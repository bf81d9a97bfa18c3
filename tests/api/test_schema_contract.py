"""API contract: schemathesis sends generated requests for every operation in the OpenAPI schema
(served by the app itself at /api/schema/) as a staff user, and every answer must be a non-5xx
response that matches the schema. Bounded: a few examples per operation, derandomized so a run
is repeatable; the whole module takes well under a minute on SQLite."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests import factories
from tests.api.conftest import token_client
from workflows import rules, services, templates
from zartsalgo.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# Valid requests only: the contract under test is "no 5xx, answers match the schema". Invalid
# input is covered by the validation tests, which check that errors name the field.
schema.config.generation.update(modes=[GenerationMode.POSITIVE], deterministic=True)

EXAMPLES_PER_OPERATION = 8
ACTOR = "system:contract"


@pytest.fixture
def wsgi_in_test_transaction():
    """The raw WSGI app closes the database connection at each request's end (Django's
    close_old_connections); inside the test's transaction that would break it. Django's own test
    client disconnects the same handlers for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def rows(db, wsgi_in_test_transaction):
    """A staff token and one row of each kind. Generated ids and foreign keys are pointed at
    these rows, so the examples reach the code behind a found row, not only the 404 path."""
    engineer = factories.EngineerFactory()
    client = factories.ClientFactory()
    lead = factories.LeadFactory(client=client)
    workflow = services.workflow_create(client=client, name="Contract", actor=ACTOR)
    services.step_add(workflow=workflow, kind="create_task", key="call", config={"title": "Call"}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR, run_now=False)
    run = enrollment.step_runs.create(
        client=client, step_key="call", step_kind="create_task", visit=0, state="succeeded"
    )
    connection = factories.ConnectionFactory(client=client, credentials={"auth_token": "env:NOPE"})
    event = factories.NormalizedEventFactory(raw_event__connection=connection, lead=lead, event_type="lead.captured")
    rule = rules.rule_create(
        client=client, actor=ACTOR, name="Contract rule", event_type="lead.captured", workflow=workflow
    )
    template = templates.template_create(
        key="contract",
        name="Contract",
        actor=ACTOR,
        steps=[{"key": "ask", "kind": "send_sms", "config": {"body": "Hi"}}],
    )
    # Published proof (the portal endpoints read published items only).
    summary = factories.SummaryFactory(
        client=client, status="published", approved_by=engineer, published_by=engineer, published_at=lead.created_at
    )
    card = factories.MetricCardFactory(
        client=client, status="published", approved_by=engineer, published_by=engineer, published_at=lead.created_at
    )
    return {
        "token": token_client(engineer)._credentials["HTTP_AUTHORIZATION"],
        "ids": {
            "workflows": workflow.pk,
            "enrollments": enrollment.pk,
            "step-runs": run.pk,
            "rules": rule.pk,
            "leads": lead.pk,
            "connections": connection.pk,
            "normalized-events": event.pk,
            "summaries": summary.pk,
            "metric-cards": card.pk,
        },
        "keys": {"workflows": "call", "templates": template.key},
        "body": {"client": client.pk, "workflow": workflow.pk, "lead": lead.pk, "event": event.pk},
    }


def point_at_rows(case, rows) -> None:
    resource = case.path.removeprefix("/api/v1/").split("/")[0]
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = rows["ids"][resource]
    if "key" in (case.path_parameters or {}):
        case.path_parameters["key"] = rows["keys"][resource]
    if isinstance(case.body, dict):
        for name, value in rows["body"].items():
            if name in case.body and isinstance(case.body[name], int):
                case.body[name] = value


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_contract(case, rows):
    point_at_rows(case, rows)
    case.call_and_validate(
        headers={"Authorization": rows["token"]},
        checks=[not_a_server_error, response_schema_conformance],
    )
