"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis, in
process over WSGI) as a workspace admin: whatever the input, never a 5xx, and never a byte of
another workspace's data.

Path parameters point at real objects (each operation is its own test, so destructive calls only
affect later examples of the same operation). Besides no 5xx, every response must conform to the
schema: its status code is documented, and its content type, headers and body match. A stateful
pass then chains operations along the links schemathesis infers from the schema (create a swarm,
read it, version it, run it...), with the same checks.
"""

from decimal import Decimal

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Membership
from accounts.roles import Role
from accounts.services import api_key_create, integration_install, workspace_create
from audit.models import AuditEvent
from schedules.services import schedule_create
from swarms.models import Approval, Run
from swarms.services import swarm_create, swarm_soft_delete
from templates_app.services import template_create
from tests.batches.factories import make_batch
from tests.security.test_authorization_matrix import TEMPLATE_YAML
from tools.models import McpServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def keep_db_connection():
    """The WSGI handler closes the connection after each request, which would end the test's
    transaction on PostgreSQL; Django's test client disconnects the same signals."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, keep_db_connection):
    from sverm.wsgi import application

    return schemathesis.openapi.from_wsgi("/openapi.json", application)


@pytest.fixture
def fuzz_world(make_user, user, workspace):
    publisher = workspace_create(name="Publisher", owner=user)
    swarm = swarm_create(workspace=workspace, name="Scout", created_by=user)
    deleted = swarm_soft_delete(
        swarm=swarm_create(workspace=workspace, name="Gone", created_by=user)
    )
    run = Run.objects.create(
        workspace=workspace, swarm=swarm, version=swarm.default_version, swarm_type="custom",
        definition=swarm.default_version.definition, task="Look around",
        max_budget_usd=Decimal("5"), estimated_cost_usd=Decimal("0.01"), created_by=user,
    )  # fmt: skip
    # `wait` on a finished run answers at once, whatever timeout the fuzzer picks.
    finished = Run.objects.create(
        workspace=workspace, swarm=swarm, version=swarm.default_version, swarm_type="custom",
        definition=swarm.default_version.definition, task="Done", status="completed",
        max_budget_usd=Decimal("5"), estimated_cost_usd=Decimal("0.01"), created_by=user,
    )  # fmt: skip
    template = template_create(
        workspace=workspace, template_id="fuzz-team", source=TEMPLATE_YAML, name="Fuzz team",
        created_by=user,
    )  # fmt: skip
    target_key, _ = api_key_create(workspace=workspace, name="t", role=Role.VIEWER, created_by=user)
    member = make_user()
    Membership.objects.create(workspace=workspace, user=member, role=Role.VIEWER)
    integration = integration_install(installer=workspace, publisher=publisher, installed_by=user)
    _key, raw = api_key_create(workspace=workspace, name="fuzz", role=Role.ADMIN, created_by=user)
    # Another workspace the caller is not in: none of its ids may ever show up in a response.
    stranger = make_user()
    foreign = workspace_create(name="Foreign", owner=stranger)
    foreign_swarm = swarm_create(workspace=foreign, name="Secret", created_by=stranger)
    foreign_run = Run.objects.create(
        workspace=foreign, swarm=foreign_swarm, version=foreign_swarm.default_version,
        swarm_type="custom", definition=foreign_swarm.default_version.definition,
        task="Private", max_budget_usd=Decimal("5"), estimated_cost_usd=Decimal("0.01"),
    )  # fmt: skip
    foreign_key, _ = api_key_create(
        workspace=foreign, name="theirs", role=Role.ADMIN, created_by=stranger
    )
    mcp = McpServer.objects.create(
        workspace=workspace, name="docs", url="http://169.254.169.254/mcp",
        tools=[{"name": "echo", "description": "Echo.", "input_schema": {"type": "object"}}],
    )  # fmt: skip
    approval = Approval.objects.create(
        run=run, key="k-t", agent_id="reader", tool="docs__echo", arguments="{}",
        deadline_at=run.created_at,
    )  # fmt: skip
    schedule = schedule_create(workspace=workspace, name="Nightly", task="Report", cron="@daily",
                               zone="UTC", created_by=user, swarm=swarm)  # fmt: skip
    foreign_schedule = schedule_create(workspace=foreign, name="Theirs", task="Secret",
                                       cron="@daily", zone="UTC", created_by=stranger,
                                       swarm=foreign_swarm)  # fmt: skip
    batch = make_batch(swarm, tasks=3, user=user)
    foreign_batch = make_batch(foreign_swarm, tasks=1, user=stranger)
    foreign_ids = [foreign_batch.pk, foreign.pk, foreign_swarm.pk,
                   foreign_swarm.default_version_id,
                   foreign_run.pk, foreign_key.pk, stranger.pk,
                   foreign_schedule.pk]  # fmt: skip
    ids = {
        "workspace_id": workspace.pk,
        "swarm_id": swarm.pk,
        "version_id": swarm.default_version_id,
        "run_id": run.pk,
        "batch_id": batch.pk,
        "user_id": member.pk,
        "schedule_id": schedule.pk,
    }
    # `{id}` by path prefix.
    by_path = {
        "/api/batches/": batch.pk,
        "/api/api-keys/": target_key.pk,
        "/api/audit-events/": AuditEvent.objects.filter(workspace_id=workspace.pk).first().pk,
        "/api/runs/{run_id}/approvals/": approval.pk,
        "/api/runs/{id}/wait": finished.pk,
        "/api/runs/": run.pk,
        "/api/workspaces/{workspace_id}/mcp-servers/": mcp.pk,
        "/api/swarms/{id}/purge": deleted.pk,
        "/api/swarms/{id}/restore": deleted.pk,
        "/api/schedules/": schedule.pk,
        "/api/swarms/": swarm.pk,
        "/api/templates/": template.pk,
        "/api/workspaces/{id}": workspace.pk,
        "/api/workspaces/{workspace_id}/integrations/": integration.pk,
        "/v1/swarms/": run.pk,
        "/v1/templates/": template.pk,
    }
    return {
        "ids": ids,
        "by_path": by_path,
        "auth": f"Bearer {raw}",
        "checks": [*CHECKS, no_foreign_data(foreign_ids)],
    }


def no_foreign_data(foreign_ids: list[str]):
    """A schemathesis check: the response names no object of the other workspace."""

    def no_foreign_ids_in_the_response(ctx, response, case):
        leaked = [value for value in foreign_ids if value in response.text]
        assert not leaked, f"another workspace's ids in the response: {leaked}"

    return no_foreign_ids_in_the_response


def real_path_parameters(case, world) -> None:
    if not case.path_parameters:
        return
    path = case.operation.path
    for name in case.path_parameters:
        if name == "id":
            prefix = next(p for p in sorted(world["by_path"], key=len, reverse=True)
                          if path.startswith(p))  # fmt: skip
            case.path_parameters[name] = world["by_path"][prefix]
        elif name in world["ids"]:
            case.path_parameters[name] = world["ids"][name]


def operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, read without a request or the database."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


OPERATIONS = list(operations())
SETTINGS = settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# schemathesis' own pytest integration (`from_fixture`/`parametrize`) fails under pytest 9
# ("'Function' object has no attribute '_nodeid'"), so each operation drives Hypothesis itself.
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda v: str(v))
def test_no_server_errors(api_schema, fuzz_world, method, path):
    operation = api_schema[path][method]

    @SETTINGS
    @given(case=operation.as_strategy())
    def fuzz(case):
        real_path_parameters(case, fuzz_world)
        response = case.call(headers={"Authorization": fuzz_world["auth"]})
        case.validate_response(response, checks=fuzz_world["checks"])

    fuzz()


def test_chained_operations_along_the_schemas_links(api_schema, fuzz_world):
    base = api_schema.as_state_machine()
    assert base.bundles, "schemathesis inferred no links between operations"

    class Chains(base):
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": fuzz_world["auth"]}}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=fuzz_world["checks"])

    Chains.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_event_ids_must_be_sequence_numbers(api_client, fuzz_world):
    response = api_client.get(f"/api/runs/{fuzz_world['ids']['run_id']}/events?ids=swarm")
    assert response.status_code == 400
