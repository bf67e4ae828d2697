"""/openapi.json, /docs and /redoc: a valid schema, every endpoint with its errors, offline UIs."""

import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_validates_without_warnings(tmp_path):
    # --fail-on-warn turns any unresolved serializer or authenticator into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert (tmp_path / "s.yml").stat().st_size > 1000


def test_openapi_json_is_served(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body = response.json()
    assert body["openapi"].startswith("3.")
    assert "/api/workspaces" in body["paths"]


EXPECTED_PATHS = {
    "/api/auth/login": {"post"},
    "/api/auth/refresh": {"post"},
    "/api/workspaces": {"get", "post"},
    "/api/workspaces/{id}": {"get", "patch"},
    "/api/workspaces/{workspace_id}/members": {"get", "post"},
    "/api/workspaces/{workspace_id}/members/{user_id}": {"get", "patch", "delete"},
    "/api/api-keys": {"get", "post"},
    "/api/api-keys/{id}": {"get", "delete"},
    "/api/api-keys/{id}/rotate": {"post"},
    "/api/audit-events": {"get"},
    "/api/audit-events/{id}": {"get"},
    "/api/workspaces/{workspace_id}/integrations": {"get", "post"},
    "/api/workspaces/{workspace_id}/integrations/{id}": {"get", "delete"},
    "/api/schedules": {"get", "post"},
    "/api/schedules/{id}": {"get", "patch", "delete"},
    "/api/schedules/{id}/pause": {"post"},
    "/api/schedules/{id}/resume": {"post"},
    "/api/schedules/{schedule_id}/firings": {"get"},
    "/api/batches": {"get", "post"},
    "/api/batches/{id}": {"get"},
    "/api/batches/{id}/cancel": {"post"},
    "/api/batches/{id}/results": {"get"},
    "/api/batches/{batch_id}/items": {"get"},
    "/api/swarms": {"get", "post"},
    "/api/swarms/{id}": {"get", "patch", "delete"},
    "/api/swarms/{id}/purge": {"delete"},
    "/api/swarms/{id}/restore": {"post"},
    "/api/swarms/{swarm_id}/versions": {"get", "post"},
    "/api/swarms/{swarm_id}/versions/{version_id}": {"get"},
    "/api/swarms/{id}/runs": {"post"},
    "/api/runs": {"get"},
    "/api/runs/{id}": {"get", "patch"},
    "/api/runs/{run_id}/approvals": {"get"},
    "/api/runs/{run_id}/approvals/{id}": {"get", "post"},
    "/api/workspaces/{workspace_id}/mcp-servers": {"get", "post"},
    "/api/workspaces/{workspace_id}/mcp-servers/{id}": {"get", "patch", "delete"},
    "/api/workspaces/{workspace_id}/mcp-servers/{id}/refresh": {"post"},
    "/api/workspaces/{workspace_id}/tools": {"get"},
    "/api/runs/{id}/cancel": {"post"},
    "/api/runs/{id}/result": {"get"},
    "/api/runs/{id}/wait": {"get"},
    "/api/runs/{run_id}/events": {"get"},
    "/api/runs/{run_id}/webhook-deliveries": {"get", "post"},
    "/api/workspaces/{workspace_id}/webhook-secret": {"get", "post"},
    "/api/workspaces/{workspace_id}/webhook-endpoints": {"get"},
    "/api/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/enable": {"post"},
    "/api/templates": {"get", "post"},
    "/api/templates/{id}": {"get", "patch", "delete"},
    "/v1/swarms": {"get", "post"},
    "/v1/swarms/{id}": {"get", "delete"},
    "/v1/swarms/{id}/result": {"get"},
    "/v1/templates": {"get"},
    "/v1/usage": {"get"},
    "/api/usage": {"get"},
    "/api/usage.csv": {"get"},
    "/v1/templates/{id}": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}


def test_every_endpoint_is_documented(schema):
    documented = {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()}
    for path, methods in EXPECTED_PATHS.items():
        assert documented.get(path) == methods, path


def test_every_api_operation_documents_its_errors_as_problem_details(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "500"} <= set(responses), (method, path)
            if operation.get("security", [{}]) != [{}]:  # [{}] marks a public operation
                assert {"401", "403", "404"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert set(content) == {"application/problem+json"}, (method, path, status)


def test_every_operation_that_needs_the_database_documents_its_503(schema):
    """A request that gets no pooled database connection in time is a 503 with Retry-After:
    every operation but liveness (which reads nothing) says so, on /v1 and /api alike."""
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert ("503" in operation["responses"]) == (path != "/healthz"), (method, path)


def test_members_and_list_parameters_are_documented(schema):
    get_keys = schema["paths"]["/api/api-keys"]["get"]
    names = {p["name"] for p in get_keys["parameters"]}
    assert {"limit", "after", "before", "workspace_id"} <= names
    paginated = schema["components"]["schemas"]["PaginatedApiKeyList"]
    assert set(paginated["properties"]) == {"data", "pageInfo"}


def test_api_key_and_jwt_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer"
    assert schemes["jwt"]["bearerFormat"] == "JWT"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_ui_pages_load_their_assets_locally(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/static/"), f"{page} loads {source} from the network"
        asset = client.get(source)
        assert asset.status_code == 200, source
        body = b"".join(asset.streaming_content) if asset.streaming else asset.content
        assert len(body) > 1000, source


SEED_003_LIST_PARAMS = {
    "limit", "after", "before", "ids", "filter", "orderBy", "workspace_id", "include_deleted",
    "name", "source", "default_version_id", "created_by", "runtime_user_id", "retention_tier",
}  # fmt: skip
SEED_003_SWARM_FIELDS = {
    "id", "workspaceId", "name", "description", "defaultVersionId", "createdBy",
    "runtimeUserId", "deletedAt", "retentionTier", "createdAt", "updatedAt",
}  # fmt: skip


def test_swarm_list_documents_every_seed_parameter(schema):
    params = {p["name"] for p in schema["paths"]["/api/swarms"]["get"]["parameters"]}
    assert params == SEED_003_LIST_PARAMS


def test_swarm_schema_has_exactly_the_seed_fields(schema):
    swarm = schema["components"]["schemas"]["Swarm"]
    assert set(swarm["properties"]) == SEED_003_SWARM_FIELDS
    create = schema["components"]["schemas"]["SwarmCreateRequest"]
    assert {"workspaceId", "name", "description", "instructions", "models"} <= set(
        create["properties"]
    )
    assert set(create["required"]) == {"workspaceId", "name"}


def test_every_v1_operation_documents_its_errors_as_the_seed_envelope(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/V1Error"), (method, path, status)


def test_operation_ids_read_as_what_they_do(schema):
    """Generated clients name methods after operation ids: `/v1`'s are plain verbs on runs
    (seed 002's run API), `/api`'s start with `api_`, none is a generator's default."""
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert ids[("DELETE", "/v1/swarms/{id}")] == "cancel_run"
    assert ids[("POST", "/v1/swarms")] == "create_run"
    assert ids[("GET", "/v1/swarms/{id}")] == "get_run"
    assert ids[("POST", "/api/runs/{id}/cancel")] == "api_cancel_run"
    assert ids[("GET", "/api/runs/{id}/wait")] == "api_wait_for_run"
    assert len(set(ids.values())) == len(ids)
    for (method, path), name in ids.items():
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", name), name
        assert name.startswith("api_") == path.startswith("/api/"), (method, path, name)
        # drf-spectacular's defaults end in the DRF action: `_list`, `_create`, `_destroy`...
        assert not re.search(r"_(create|destroy|retrieve|partial_update)$", name), name


def test_an_operation_without_a_readable_id_stops_the_schema(monkeypatch):
    from drf_spectacular.generators import SchemaGenerator

    from sverm.api import schema as api_schema

    names = dict(api_schema.OPERATION_IDS)
    del names[("GET", "/api/runs/{id}/wait")]
    monkeypatch.setattr(api_schema, "OPERATION_IDS", names)
    with pytest.raises(ValueError, match=r"GET /api/runs/\{id\}/wait"):
        SchemaGenerator().get_schema(request=None, public=True)


def test_every_response_declares_the_headers_it_carries(schema):
    headers = schema["components"]["headers"]
    assert set(headers) >= {"X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                            "X-RateLimit-Reset", "Retry-After"}  # fmt: skip
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                declared = response.get("headers", {})
                where = f"{method.upper()} {path} {status}"
                assert declared["X-Request-ID"]["required"] is True, where
                if status == "401":
                    assert declared["WWW-Authenticate"]["required"] is True, where
                if status == "429":
                    assert declared["Retry-After"]["required"] is True, where
                if status == "503":
                    assert "Retry-After" in declared, where
                if "429" in operation["responses"]:
                    assert "X-RateLimit-Remaining" in declared, where
    created = schema["paths"]["/v1/swarms"]["post"]["responses"]["201"]["headers"]
    assert created["X-RateLimit-Limit"] == {"$ref": "#/components/headers/X-RateLimit-Limit"}


def test_the_declared_headers_are_the_ones_a_response_carries(key_client, workspace, settings):
    """What the schema declares for a rate-limited read, a real response has."""
    from accounts.roles import Role

    settings.SVERM_RATE_LIMITS = True
    client, _, _ = key_client(workspace, Role.VIEWER)
    response = client.get("/v1/templates")
    assert response.status_code == 200
    for header in ("X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset"):  # fmt: skip
        assert response.has_header(header), header
    assert int(response["X-RateLimit-Reset"]) > 1_700_000_000  # a Unix time, as declared


def test_every_error_code_is_in_the_readme_and_the_schema(schema):
    """Seed 002's table of codes, and every code sverm adds, listed for clients: the README's
    table and the schema's enum on both error shapes name exactly the codes the API can send."""
    from pathlib import Path

    from sverm.api.errors import ERROR_CLASSES
    from sverm.api.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReused

    classes = [*ERROR_CLASSES, IdempotencyKeyReused, IdempotencyKeyInFlight]
    raised = {error.code: error.status for error in classes}
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    rows = dict(re.findall(r"^\s*\| `([a-z_]+)` \| (\d{3}) \|", readme, re.M))
    assert {code: int(status) for code, status in rows.items()} == raised
    for seed_code in ("invalid_request", "unauthorized", "not_found", "budget_exceeded",
                      "rate_limited", "internal_error"):  # fmt: skip
        assert re.search(rf"`{seed_code}` \| \d+ \| .*\(seed 002\) \|", readme), seed_code
    components = schema["components"]["schemas"]
    v1_codes = components["V1ErrorBody"]["properties"]["code"]
    problem_codes = components["Problem"]["properties"]["code"]
    for declared in (v1_codes, problem_codes):
        assert declared["allOf"] == [{"$ref": "#/components/schemas/ErrorCodeEnum"}]
    assert set(components["ErrorCodeEnum"]["enum"]) == set(raised)
