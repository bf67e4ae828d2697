"""Deprecation (seed 000: `Deprecation` and `Sunset` headers, at least six months' notice): an
operation marked with `@deprecated` says so on every response, errors included, and in the
OpenAPI schema; an operation not marked says nothing."""

from datetime import date
from email.utils import parsedate_to_datetime

import pytest

from sverm.api import schema as api_schema
from sverm.api.deprecation import deprecated
from tests.sverm.deprecation_urls import SUNSET

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.sverm.deprecation_urls")]


def test_every_response_of_a_deprecated_operation_carries_the_headers(api_client, anon_client):
    response = api_client.get("/api/old-things")
    assert response.status_code == 200
    assert response["Deprecation"] == "@1799020800"  # 2027-01-04T00:00:00Z, RFC 9745's form
    assert parsedate_to_datetime(response["Sunset"]).date() == SUNSET
    assert response["Sunset"].endswith(" GMT")  # an HTTP-date (RFC 8594)
    assert response["Link"] == '</api/things>; rel="successor-version", </docs>; rel="deprecation"'
    refused = anon_client.get("/api/old-things")  # an error of the same operation says it too
    assert refused.status_code == 401
    assert refused["Deprecation"] == "@1799020800" and "Sunset" in refused


def test_only_the_marked_action_of_a_viewset_is_deprecated(api_client):
    listed = api_client.get("/api/things")
    assert listed.status_code == 200 and "Deprecation" in listed and "Sunset" in listed
    one = api_client.get("/api/things/t1")
    assert one.status_code == 200
    assert "Deprecation" not in one and "Sunset" not in one
    missing = api_client.get("/api/things/missing")
    assert missing.status_code == 404 and "Deprecation" not in missing


def test_no_real_operation_is_deprecated_today(api_client):
    for url in ("/api/workspaces", "/v1/templates", "/openapi.json"):
        assert "Deprecation" not in api_client.get(url)


def test_the_schema_marks_it_and_declares_the_headers(monkeypatch):
    from drf_spectacular.generators import SchemaGenerator

    from tests.sverm import deprecation_urls

    names = {
        **api_schema.OPERATION_IDS,
        ("GET", "/api/old-things"): "api_list_old_things",
        ("GET", "/api/things"): "api_list_things",
        ("GET", "/api/things/{id}"): "api_get_thing",
    }
    monkeypatch.setattr(api_schema, "OPERATION_IDS", names)
    schema = SchemaGenerator(patterns=deprecation_urls.urlpatterns).get_schema(
        request=None, public=True
    )
    old = schema["paths"]["/api/old-things"]["get"]
    assert old["deprecated"] is True
    assert "Deprecated** since 2027-01-04" in old["description"]
    assert "Use `/api/things` instead" in old["description"]
    for response in old["responses"].values():
        assert response["headers"]["Deprecation"]["required"] is True
        assert response["headers"]["Sunset"]["required"] is True
    assert schema["paths"]["/api/things"]["get"]["deprecated"] is True
    current = schema["paths"]["/api/things/{id}"]["get"]
    assert not current.get("deprecated")
    assert "Sunset" not in current["responses"]["200"]["headers"]
    assert not any(
        operation.get("deprecated")
        for path, operations in schema["paths"].items()
        if "thing" not in path
        for operation in operations.values()
    )


def test_less_than_six_months_notice_is_refused():
    with pytest.raises(ValueError, match="less than 182 days"):
        deprecated(since=date(2027, 1, 4), sunset=date(2027, 5, 1))
