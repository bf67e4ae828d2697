"""OpenAPI: both usage endpoints documented with their parameters, bodies and errors, and the
schema still validates without warnings with billing's routes mounted."""

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator(urlconf="tests.billing.urls").get_schema(request=None, public=True)


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--urlconf",
                 "tests.billing.urls", "--file", str(target))  # fmt: skip
    text = target.read_text()
    assert "/v1/usage:" in text and "/api/usage:" in text


def test_v1_usage_is_documented_as_the_seed_plus_month(schema):
    operation = schema["paths"]["/v1/usage"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["month"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    body = components[ref.rsplit("/", 1)[-1]]
    assert set(body["properties"]) == {"current_month", "month"}
    assert set(components["V1UsageMonth"]["properties"]) == {
        "total_usd", "total_swarms", "total_tokens", "by_swarm_type"
    }  # fmt: skip
    assert set(components["V1UsageSwarmType"]["properties"]) == {"count", "total_usd"}
    assert components["V1UsageSwarmType"]["properties"]["total_usd"]["type"] == "number"
    assert set(operation["responses"]["400"]["content"]) == {"application/json"}
    assert {"400", "401", "404", "500"} <= set(operation["responses"])


def test_api_usage_is_documented_with_its_parameters_and_groups(schema):
    operation = schema["paths"]["/api/usage"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"workspace_id", "from", "to", "group_by"}
    assert parameters["group_by"]["schema"]["enum"] == [
        "day", "model", "swarm", "template", "api_key", "user"
    ]  # fmt: skip
    assert parameters["from"]["schema"]["format"] == "date"
    components = schema["components"]["schemas"]
    assert set(components["Usage"]["properties"]) == {"data", "totals"}
    row = components["UsageGroup"]
    assert set(row["properties"]) == {
        "key", "name", "prefix", "email", "runs", "costUsd", "tokensIn", "tokensOut", "calls"
    }  # fmt: skip
    assert not {"runs", "name", "prefix", "email"} & set(row["required"])
    # JSON only here, so that generated clients keep a typed body; CSV is its own operation
    assert set(operation["responses"]["200"]["content"]) == {"application/json"}
    assert "text/csv" in operation["description"]


def test_the_csv_report_is_its_own_operation_declaring_text_csv(schema):
    operation = schema["paths"]["/api/usage.csv"]["get"]
    assert operation["operationId"] == "api_get_usage_report_csv"
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"workspace_id", "from", "to", "group_by"}
    assert "api_key" in parameters["group_by"]["schema"]["enum"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"text/csv"}
    assert content["text/csv"]["schema"]["type"] == "string"
    assert "attachment" in operation["responses"]["200"]["description"]
    assert set(operation["responses"]["400"]["content"]) == {"application/problem+json"}
    assert {"400", "401", "403", "404"} <= set(operation["responses"])
    assert set(operation["responses"]["400"]["content"]) == {"application/problem+json"}
