"""Who may call what: every `/api` and `/v1` operation against no credential, bad credentials,
each role (API key and JWT membership) and a member of another workspace.

DESIGN.md: a bad or missing credential is 401, a member lacking the role 403, a resource in a
workspace the caller is not a member of 404. `test_the_table_covers_every_operation` keeps the
table in step with the OpenAPI schema.
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Membership
from accounts.roles import Role
from accounts.services import api_key_create, integration_install, workspace_create
from audit.models import AuditEvent
from schedules.services import schedule_create
from swarms.models import Approval, Run, WebhookEndpoint
from swarms.services import swarm_create, swarm_soft_delete
from templates_app.services import template_create
from tests.batches.factories import make_batch
from tests.conftest import PASSWORD, assert_problem, assert_v1_error
from tools.models import McpServer

TEMPLATE_YAML = """\
topology: sequential
agents:
  - id: first
    role: worker
    model: gpt-4o-mini
    max_tokens: 128
  - id: second
    role: writer
    model: gpt-4o-mini
    max_tokens: 128
"""

# Minimum roles. `user` = any authenticated user (no workspace role involved).
VIEWER, OPERATOR, ADMIN, USER = Role.VIEWER, Role.OPERATOR, Role.ADMIN, "user"
RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # `{name}` placeholders are filled from the world's ids
    role: str  # the minimum role
    scoped: bool  # workspace-owned: a member of another workspace gets 404
    ok: int  # the status at or above the minimum role
    body: dict[str, Any] = field(default_factory=dict)
    key_ok: int | None = None  # the status for an API key at or above the role, when different

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


E = Endpoint
# fmt: off
ENDPOINTS = [
    # method, path template, minimum role, workspace-scoped, success status, body
    E("GET", "/api/workspaces?workspace_id={ws}", VIEWER, True, 200),
    E("POST", "/api/workspaces", USER, False, 201, {"name": "New"}, key_ok=403),
    E("GET", "/api/workspaces/{ws}", VIEWER, True, 200),
    E("PATCH", "/api/workspaces/{ws}", ADMIN, True, 200, {"name": "Renamed"}),
    E("GET", "/api/workspaces/{ws}/members", VIEWER, True, 200),
    E("POST", "/api/workspaces/{ws}/members", ADMIN, True, 201,
      {"email": "{outsider_email}", "role": "viewer"}),
    E("GET", "/api/workspaces/{ws}/members/{member}", VIEWER, True, 200),
    E("PATCH", "/api/workspaces/{ws}/members/{member}", ADMIN, True, 200, {"role": "operator"}),
    E("DELETE", "/api/workspaces/{ws}/members/{member}", ADMIN, True, 200),
    E("GET", "/api/workspaces/{ws}/integrations", VIEWER, True, 200),
    # Installing needs admin in the publisher too, which an API key (one workspace) never has.
    E("POST", "/api/workspaces/{ws}/integrations", ADMIN, True, 201,
      {"publisherWorkspaceId": "{publisher2}"}, key_ok=404),
    E("GET", "/api/workspaces/{ws}/integrations/{integration}", VIEWER, True, 200),
    E("DELETE", "/api/workspaces/{ws}/integrations/{integration}", ADMIN, True, 200),
    E("GET", "/api/api-keys?workspace_id={ws}", ADMIN, True, 200),
    E("POST", "/api/api-keys", ADMIN, True, 201,
      {"workspaceId": "{ws}", "name": "ci", "role": "viewer"}),
    E("GET", "/api/api-keys/{key}", ADMIN, True, 200),
    E("DELETE", "/api/api-keys/{key}", ADMIN, True, 200),
    E("POST", "/api/api-keys/{key}/rotate", ADMIN, True, 201, {"overlapSeconds": 60}),
    E("GET", "/api/audit-events?workspace_id={ws}", ADMIN, True, 200),
    E("GET", "/api/audit-events/{audit_event}", ADMIN, True, 200),
    E("GET", "/api/schedules?workspace_id={ws}", VIEWER, True, 200),
    E("POST", "/api/schedules", OPERATOR, True, 201,
      {"workspaceId": "{ws}", "name": "Made", "swarmId": "{swarm}", "task": "Go",
       "cron": "@hourly"}),
    E("GET", "/api/schedules/{schedule}", VIEWER, True, 200),
    E("PATCH", "/api/schedules/{schedule}", OPERATOR, True, 200, {"name": "Renamed"}),
    E("DELETE", "/api/schedules/{schedule}", OPERATOR, True, 200),
    E("POST", "/api/schedules/{schedule}/pause", OPERATOR, True, 200),
    E("POST", "/api/schedules/{schedule}/resume", OPERATOR, True, 200),
    E("GET", "/api/schedules/{schedule}/firings", VIEWER, True, 200),
    E("GET", "/api/batches?workspace_id={ws}", VIEWER, True, 200),
    E("POST", "/api/batches", OPERATOR, True, 201,
      {"workspaceId": "{ws}", "swarmId": "{swarm}", "inputs": ["Go"], "totalBudgetUsd": "1"}),
    E("GET", "/api/batches/{batch}", VIEWER, True, 200),
    E("POST", "/api/batches/{batch}/cancel", OPERATOR, True, 200),
    E("GET", "/api/batches/{batch}/items", VIEWER, True, 200),
    E("GET", "/api/batches/{batch}/results", VIEWER, True, 200),
    E("GET", "/api/swarms?workspace_id={ws}", VIEWER, True, 200),
    E("POST", "/api/swarms", OPERATOR, True, 201, {"workspaceId": "{ws}", "name": "Made"}),
    E("GET", "/api/swarms/{swarm}", VIEWER, True, 200),
    E("PATCH", "/api/swarms/{swarm}", OPERATOR, True, 200, {"description": "Changed"}),
    E("DELETE", "/api/swarms/{swarm}", OPERATOR, True, 200),
    E("DELETE", "/api/swarms/{deleted_swarm}/purge", ADMIN, True, 200),
    E("POST", "/api/swarms/{deleted_swarm}/restore", OPERATOR, True, 200),
    E("POST", "/api/swarms/{swarm}/runs", OPERATOR, True, 201, {"task": "Summarise"}),
    E("GET", "/api/swarms/{swarm}/versions", VIEWER, True, 200),
    E("POST", "/api/swarms/{swarm}/versions", OPERATOR, True, 201, {"instructions": "Be terse."}),
    E("GET", "/api/swarms/{swarm}/versions/{version}", VIEWER, True, 200),
    E("GET", "/api/runs?workspace_id={ws}", VIEWER, True, 200),
    E("GET", "/api/runs/{run}", VIEWER, True, 200),
    E("PATCH", "/api/runs/{run}", OPERATOR, True, 200, {"maxBudgetUsd": "9"}),
    E("POST", "/api/runs/{run}/cancel", OPERATOR, True, 200),
    E("GET", "/api/runs/{run}/result", VIEWER, True, 200),
    E("GET", "/api/runs/{hooked_run}/wait?timeout=0", VIEWER, True, 200),
    E("GET", "/api/runs/{run}/events", VIEWER, True, 200),
    E("GET", "/api/runs/{run}/webhook-deliveries", VIEWER, True, 200),
    # A finished run with a webhook URL; `db` tests never commit, so nothing is sent.
    E("POST", "/api/runs/{hooked_run}/webhook-deliveries", OPERATOR, True, 202),
    E("GET", "/api/workspaces/{ws}/webhook-secret", VIEWER, True, 200),
    E("POST", "/api/workspaces/{ws}/webhook-secret", ADMIN, True, 201),
    E("GET", "/api/workspaces/{ws}/webhook-endpoints", VIEWER, True, 200),
    E("POST", "/api/workspaces/{ws}/webhook-endpoints/{endpoint}/enable", ADMIN, True, 200),
    E("GET", "/api/templates?workspace_id={ws}", VIEWER, True, 200),
    E("POST", "/api/templates", ADMIN, True, 201,
      {"workspaceId": "{ws}", "id": "matrix-made", "name": "Made", "yaml": TEMPLATE_YAML}),
    E("GET", "/api/templates/{template}", VIEWER, True, 200),
    E("PATCH", "/api/templates/{template}", ADMIN, True, 200, {"name": "Renamed"}),
    E("DELETE", "/api/templates/{template}", ADMIN, True, 200),
    E("GET", "/api/usage?workspace_id={ws}", VIEWER, True, 200),
    E("GET", "/api/usage.csv?workspace_id={ws}&group_by=api_key", VIEWER, True, 200),
    E("GET", "/api/workspaces/{ws}/mcp-servers", VIEWER, True, 200),
    # Registering asks the server for its tools: this one is refused by the SSRF guard (400),
    # after the role was checked.
    E("POST", "/api/workspaces/{ws}/mcp-servers", ADMIN, True, 400,
      {"name": "meta", "url": "http://169.254.169.254/mcp"}),
    E("GET", "/api/workspaces/{ws}/mcp-servers/{mcp}", VIEWER, True, 200),
    E("PATCH", "/api/workspaces/{ws}/mcp-servers/{mcp}", ADMIN, True, 200, {"enabled": False}),
    E("DELETE", "/api/workspaces/{ws}/mcp-servers/{mcp}", ADMIN, True, 200),
    E("POST", "/api/workspaces/{ws}/mcp-servers/{mcp}/refresh", ADMIN, True, 200),
    E("GET", "/api/workspaces/{ws}/tools", VIEWER, True, 200),
    E("GET", "/api/runs/{paused_run}/approvals", VIEWER, True, 200),
    E("GET", "/api/runs/{paused_run}/approvals/{approval}", VIEWER, True, 200),
    E("POST", "/api/runs/{paused_run}/approvals/{approval}", OPERATOR, True, 200,
      {"decision": "deny", "reason": "matrix"}),
    # /v1 acts in the caller's own workspace: another workspace's lists are simply its own.
    E("GET", "/v1/swarms", VIEWER, False, 200),
    E("POST", "/v1/swarms", OPERATOR, True, 201, {"template": "{template}", "task": "Go"}),
    E("GET", "/v1/swarms/{run}", VIEWER, True, 200),
    E("GET", "/v1/swarms/{run}/result", VIEWER, True, 200),
    E("DELETE", "/v1/swarms/{run}", OPERATOR, True, 200),
    E("GET", "/v1/templates", VIEWER, False, 200),
    E("GET", "/v1/templates/{template}", VIEWER, True, 200),
    E("GET", "/v1/usage", VIEWER, False, 200),
]
# fmt: on
PUBLIC = [
    ("POST", "/api/auth/login", 400),  # empty body: a validation error, not 401
    ("POST", "/api/auth/refresh", 400),
    ("GET", "/healthz", 200),
    ("GET", "/readyz", 200),
    ("GET", "/docs", 200),
    ("GET", "/redoc", 200),
    ("GET", "/openapi.json", 200),
]


class World(dict):
    """Ids by placeholder name, plus the objects that tests need."""

    def fill(self, value):
        if isinstance(value, str):
            return value.format(**self)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


@pytest.fixture
def world(make_user, user, workspace, other_user, other_workspace) -> World:
    publisher = workspace_create(name="Publisher", owner=user)
    publisher2 = workspace_create(name="Publisher 2", owner=user)
    swarm = swarm_create(workspace=workspace, name="Scout", created_by=user)
    deleted = swarm_soft_delete(
        swarm=swarm_create(workspace=workspace, name="Gone", created_by=user)
    )
    run = Run.objects.create(
        workspace=workspace, swarm=swarm, version=swarm.default_version, swarm_type="custom",
        definition=swarm.default_version.definition, task="Look around",
        max_budget_usd=Decimal("5"), estimated_cost_usd=Decimal("0.01"), created_by=user,
    )  # fmt: skip
    template = template_create(
        workspace=workspace,
        template_id="matrix-team",
        source=TEMPLATE_YAML,
        name="Matrix team",
        created_by=user,
    )
    target_key, _raw = api_key_create(
        workspace=workspace, name="target", role=Role.VIEWER, created_by=user
    )
    member = make_user()
    Membership.objects.create(workspace=workspace, user=member, role=Role.VIEWER)
    integration = integration_install(installer=workspace, publisher=publisher, installed_by=user)
    hooked_run = Run.objects.create(
        workspace=workspace, swarm_type="custom", definition={}, task="Report back",
        status="completed", max_budget_usd=Decimal("5"), estimated_cost_usd=Decimal("0.01"),
        webhook_url="https://hooks.example.com/matrix",
    )  # fmt: skip
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url="https://gone.example.com/hook",
        url_hash=hashlib.sha256(b"https://gone.example.com/hook").hexdigest(),
        disabled_at=hooked_run.created_at, disabled_reason="Answered 410 Gone.",
    )  # fmt: skip
    mcp = McpServer.objects.create(
        workspace=workspace, name="docs", url="http://169.254.169.254/mcp",
        tools=[{"name": "echo", "description": "Echo.", "input_schema": {"type": "object"}}],
    )  # fmt: skip
    paused_run = Run.objects.create(
        workspace=workspace, swarm_type="custom", definition={}, task="Wait",
        status="awaiting_approval", max_budget_usd=Decimal("5"),
        estimated_cost_usd=Decimal("0.01"),
    )  # fmt: skip
    approval = Approval.objects.create(
        run=paused_run, key="k-t", agent_id="reader", tool="docs__echo", arguments="{}",
        deadline_at=paused_run.created_at + timedelta(days=1),
    )  # fmt: skip
    schedule = schedule_create(workspace=workspace, name="Nightly", task="Report", cron="@daily",
                               zone="UTC", created_by=user, swarm=swarm)  # fmt: skip
    batch = make_batch(swarm, tasks=2, user=user)
    world = World(
        batch=batch.pk,
        ws=workspace.pk, publisher2=publisher2.pk, swarm=swarm.pk, deleted_swarm=deleted.pk,
        version=swarm.default_version_id, run=run.pk, template=template.pk, key=target_key.pk,
        member=member.pk, integration=integration.pk, outsider_email=make_user().email,
        hooked_run=hooked_run.pk, endpoint=endpoint.pk, mcp=mcp.pk, paused_run=paused_run.pk,
        approval=approval.pk,
        schedule=schedule.pk,
        audit_event=AuditEvent.objects.get(action="workspace.create", target_id=workspace.pk).pk,
    )  # fmt: skip
    world.workspace, world.other_workspace, world.publisher2 = (
        workspace, other_workspace, publisher2,
    )  # fmt: skip
    world.user, world.other_user = user, other_user
    return world


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def key_for(world: World, workspace, role: str) -> APIClient:
    _key, raw = api_key_create(workspace=workspace, name="caller", role=role, created_by=world.user)
    return bearer(raw)


def jwt_for(make_user, world: World, role: str) -> APIClient:
    caller = make_user()
    Membership.objects.create(workspace=world.workspace, user=caller, role=role)
    if role == Role.ADMIN:  # lets an admin install publisher 2's integration
        Membership.objects.create(workspace=world.publisher2, user=caller, role=Role.ADMIN)
    return bearer(str(RefreshToken.for_user(caller).access_token))


def call(client: APIClient, world: World, endpoint: Endpoint):
    path = world.fill(endpoint.path)
    method = getattr(client, endpoint.method.lower())
    if endpoint.method in ("POST", "PATCH"):
        return method(path, world.fill(endpoint.body), format="json")
    return method(path)


def assert_error(response, status: int, code: str) -> None:
    if response.wsgi_request.path.startswith("/v1/"):
        assert_v1_error(response, status, code)
    else:
        assert_problem(response, status, code)


CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}


def expected_status(endpoint: Endpoint, role: str, via_key: bool) -> int:
    if endpoint.role != USER and RANK[role] < RANK[endpoint.role]:
        return 403
    if via_key and endpoint.key_ok is not None:
        return endpoint.key_ok
    return endpoint.ok


def check(response, status: int) -> None:
    if status >= 400:
        assert_error(response, status, CODES[status])
    else:
        assert response.status_code == status, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_no_credential_is_401(world, endpoint):
    assert_error(call(APIClient(), world, endpoint), 401, "unauthorized")


@pytest.mark.parametrize(
    "token",
    ["sk-sverm-" + "x" * 40, "sk-sverm-", "not.a.jwt", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"],
    ids=["unknown-key", "empty-key", "garbage", "forged-jwt"],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_bad_token_is_401(world, endpoint, token):
    assert_error(call(bearer(token), world, endpoint), 401, "unauthorized")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_revoked_key_is_401(world, endpoint):
    api_key, raw = api_key_create(
        workspace=world.workspace, name="old", role=Role.ADMIN, created_by=world.user
    )
    api_key.revoked_at = api_key.created_at
    api_key.save(update_fields=["revoked_at"])
    assert_error(call(bearer(raw), world, endpoint), 401, "unauthorized")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_expired_key_is_401(world, endpoint):
    api_key, raw = api_key_create(
        workspace=world.workspace, name="old", role=Role.ADMIN, created_by=world.user
    )
    api_key.expires_at = api_key.created_at
    api_key.save(update_fields=["expires_at"])
    assert_error(call(bearer(raw), world, endpoint), 401, "unauthorized")


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, ADMIN])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_api_key_roles(world, endpoint, role):
    response = call(key_for(world, world.workspace, role), world, endpoint)
    check(response, expected_status(endpoint, role, via_key=True))


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, ADMIN])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_member_roles(world, make_user, endpoint, role):
    response = call(jwt_for(make_user, world, role), world, endpoint)
    check(response, expected_status(endpoint, role, via_key=False))


@pytest.mark.parametrize("via", ["key", "jwt"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_admin_of_another_workspace_gets_404(world, endpoint, via):
    if via == "key":
        client = key_for(world, world.other_workspace, Role.ADMIN)
    else:
        client = bearer(str(RefreshToken.for_user(world.other_user).access_token))
    response = call(client, world, endpoint)
    if endpoint.scoped:
        assert_error(response, 404, "not_found")
    else:
        # Not workspace-owned: answered for the caller's own workspace, never with A's rows.
        check(response, endpoint.key_ok if via == "key" and endpoint.key_ok else endpoint.ok)
        for value in (world["ws"], world["run"], world["template"]):
            assert value.encode() not in response.content


@pytest.mark.parametrize(("method", "path", "status"), PUBLIC)
def test_public_endpoints_need_no_credential(db, method, path, status):
    response = getattr(APIClient(), method.lower())(path, {}, format="json")
    assert response.status_code == status, response.content


def test_login_with_a_wrong_password_is_401(user):
    response = APIClient().post(
        "/api/auth/login", {"email": user.email, "password": PASSWORD + "x"}, format="json"
    )
    assert_problem(response, 401, "unauthorized")


def test_the_table_covers_every_operation(db):
    schema = APIClient().get("/openapi.json").json()
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/", "/v1/")) and not path.startswith("/api/auth/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    listed = {(e.method, re.sub(r"\{[^}]+\}", "{}", e.path.split("?")[0])) for e in ENDPOINTS}
    assert listed == documented
