"""Bad input is a 400 naming the problem and changes nothing, never a 500: a NUL character in a
URL (which PostgreSQL cannot compare with any text column) on every route that takes an id and
in query parameters, and a number where the body wants text (stored as "123" before)."""

import importlib

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework import serializers

from accounts.models import Workspace
from sverm.api.serializers import NOT_A_STRING, InputSerializer
from swarms.models import Run, Swarm
from tests.conftest import assert_problem, assert_v1_error

pytestmark = pytest.mark.django_db

NUL_ID = "run_\x00abc"  # reverse() sends it as run_%00abc


def routes_with_ids(resolver: URLResolver | None = None):
    """(name, kwargs) of every named route with a path parameter (the admin's are namespaced)."""
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            if not pattern.namespace:
                yield from routes_with_ids(pattern)
        elif isinstance(pattern, URLPattern) and pattern.name and pattern.pattern.regex.groupindex:
            converters = getattr(pattern.pattern, "converters", {})
            yield (
                pattern.name,
                {
                    name: 1 if type(converters.get(name)).__name__ == "IntConverter" else NUL_ID
                    for name in pattern.pattern.regex.groupindex
                },
            )


def api_routes_with_ids() -> list[tuple[str, dict]]:
    routes = sorted(
        (name, kwargs)
        for name, kwargs in routes_with_ids()
        if reverse(name, kwargs=kwargs).startswith(("/api/", "/v1/"))
    )
    assert len(routes) >= 15, routes  # swarms, versions, runs, events, members, templates...
    return routes


@pytest.mark.parametrize(("name", "kwargs"), api_routes_with_ids())
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_a_nul_in_a_path_id_is_400_on_every_route(api_client, workspace, name, kwargs, method):
    path = reverse(name, kwargs=kwargs)
    assert "%00" in path
    response = getattr(api_client, method)(path, {}, format="json")
    if path.startswith("/v1/"):
        error = assert_v1_error(response, 400, "invalid_request")
        assert "NUL" in error["message"] and "path" in error["message"]
    else:
        body = assert_problem(response, 400, "invalid_request")
        assert "NUL" in body["detail"] and "path" in body["detail"]


def test_the_seed_002_path_with_a_nul_is_400_not_500(api_client, workspace):
    error = assert_v1_error(api_client.get("/v1/swarms/run_%00abc"), 400, "invalid_request")
    assert error["message"] == ("The URL must not contain NUL characters (%00), found in the path.")


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/swarms?workspace_id=%00", "workspace_id"),
        ("/api/swarms?name=a%00b", "name"),
        ("/api/runs?swarm_id=swm_%00", "swarm_id"),
        ("/api/swarms?ids=swm_1,swm_%00", "ids"),
        ("/api/swarms?filter=%7B%22name%22%3A%7B%22eq%22%3A%22%00%22%7D%7D", "filter"),
        ("/api/swarms?after=%00", "after"),
        ("/api/usage?workspace_id=%00", "workspace_id"),
        ("/v1/usage?month=2026-0%00", "month"),
        ("/v1/swarms?limit=1&x%00=1", "x%00"),
    ],
)
def test_a_nul_in_a_query_parameter_is_400_naming_it(api_client, workspace, url, parameter):
    response = api_client.get(url)
    if url.startswith("/v1/"):
        message = assert_v1_error(response, 400, "invalid_request")["message"]
    else:
        message = assert_problem(response, 400, "invalid_request")["detail"]
    assert f"query parameter {parameter!r}" in message


def test_a_nul_in_an_admin_url_is_a_plain_400(client, make_user):
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.get("/admin/swarms/run/run_%00abc/change/")
    assert response.status_code == 400
    assert "json" not in response["Content-Type"]


@pytest.mark.parametrize(
    "secret", ["sk-sverm-abcd\x00efgh0123456789", "sk-sverm-\x00", "sk-sverm-"]
)
def test_an_api_key_with_a_stray_character_is_401(anon_client, workspace, secret):
    response = anon_client.get("/v1/swarms", HTTP_AUTHORIZATION=f"Bearer {secret}")
    error = assert_v1_error(response, 401, "unauthorized")
    assert error["message"] == "Invalid API key."


# --- strict strings -----------------------------------------------------------------------------
SERIALIZER_MODULES = [
    "accounts.serializers",
    "swarms.serializers",
    "swarms.serializers_webhooks",
    "templates_app.serializers",
    "billing.serializers",
]


def input_serializers() -> list[type[InputSerializer]]:
    for module in SERIALIZER_MODULES:
        importlib.import_module(module)
    found, todo = [], [InputSerializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__ in SERIALIZER_MODULES:
                found.append(sub)
    return sorted(found, key=lambda cls: cls.__qualname__)


def text_fields() -> list[tuple[type[InputSerializer], str, bool]]:
    """(serializer, field name, whether the text is the items of a list) for every field of
    every input serializer that holds text."""
    found = []
    for cls in input_serializers():
        for name, field in cls._declared_fields.items():
            child = getattr(field, "child", None)
            for candidate, in_list in ((field, False), (child, True)):
                if isinstance(candidate, serializers.CharField | serializers.ChoiceField):
                    found.append((cls, name, in_list))
    assert len(found) >= 25, found
    return found


@pytest.mark.parametrize(
    ("cls", "name", "in_list"),
    [pytest.param(*case, id=f"{case[0].__name__}.{case[1]}") for case in text_fields()],
)
@pytest.mark.parametrize("value", [123, 7.5, True])
def test_every_text_field_of_every_input_serializer_refuses_a_non_string(cls, name, in_list, value):
    data = cls(data={name: [value] if in_list else value})
    assert not data.is_valid()
    errors = data.errors[name]
    if in_list:
        errors = errors[0]
    assert [str(e) for e in errors] == [NOT_A_STRING]
    assert errors[0].code == "invalid"


def test_v1_task_as_a_number_is_400_naming_it_and_starts_nothing(api_client, workspace):
    response = api_client.post(
        "/v1/swarms", {"template": "research-swarm-v1", "task": 123}, format="json"
    )
    error = assert_v1_error(response, 400, "invalid_request")
    assert error["details"]["fields"] == {"task": [NOT_A_STRING]}
    assert not Run.objects.exists()


def test_api_run_task_as_a_number_is_400(api_client, workspace, user):
    swarm = api_client.post(
        "/api/swarms", {"workspaceId": workspace.pk, "name": "Scout"}, format="json"
    ).json()
    response = api_client.post(f"/api/swarms/{swarm['id']}/runs", {"task": 123}, format="json")
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"] == [
        {"field": "task", "pointer": "#/task", "detail": NOT_A_STRING, "code": "invalid"}
    ]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/workspaces", {"name": 7}, "name"),
        ("/api/workspaces", {"name": "Lab", "plan": 1}, "plan"),
        ("/api/swarms", {"workspaceId": "{wsp}", "name": 7}, "name"),
        ("/api/swarms", {"workspaceId": "{wsp}", "name": "S", "models": [1]}, "models.0"),
        ("/api/auth/login", {"email": 1, "password": "x"}, "email"),
    ],
)
def test_a_number_for_a_text_field_is_400_and_stores_nothing(
    api_client, workspace, path, body, field
):
    body = {k: v.format(wsp=workspace.pk) if isinstance(v, str) else v for k, v in body.items()}
    workspaces, swarms = Workspace.objects.count(), Swarm.objects.count()
    problem = assert_problem(api_client.post(path, body, format="json"), 400, "invalid_request")
    assert [(e["field"], e["detail"]) for e in problem["errors"]] == [(field, NOT_A_STRING)]
    assert (Workspace.objects.count(), Swarm.objects.count()) == (workspaces, swarms)


def test_strings_are_still_accepted(api_client, workspace):
    response = api_client.post(
        "/api/swarms",
        {"workspaceId": workspace.pk, "name": "123", "models": ["gpt-4o-mini"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "123"
