"""The template's `estimated_cost_range`, a run's `estimated_cost_usd` and the 422 budget check
all come from one estimate at today's prices."""

from decimal import Decimal

import pytest

from billing.models import ModelPrice
from templates_app.models import SwarmTemplate
from tests.conftest import assert_v1_error

pytestmark = pytest.mark.django_db

TASK = "Investigate the Norwegian hydrogen economy: " + "x" * 256  # a typical 300 characters


def dollars(text: str) -> Decimal:
    return Decimal(text.strip().lstrip("$"))


@pytest.mark.parametrize(
    "template_id",
    sorted(p.stem for p in __import__("pathlib").Path("templates_app/builtin").glob("*.yaml")),
)
def test_creation_estimate_lies_in_the_templates_range(key_client, workspace, template_id):
    client, _, _ = key_client(workspace)
    listed = {t["id"]: t for t in client.get("/v1/templates").json()["templates"]}
    low, high = map(dollars, listed[template_id]["estimated_cost_range"].split(" - "))
    created = client.post(
        "/v1/swarms", {"template": template_id, "task": TASK}, format="json"
    ).json()
    estimate = Decimal(str(created["estimated_cost_usd"]))
    assert low <= estimate <= high, (template_id, low, estimate, high)


def test_estimates_follow_price_changes_and_the_budget_check_uses_them(key_client, workspace):
    client, _, _ = key_client(workspace)
    template = SwarmTemplate.objects.get(pk="research-swarm-v1")
    models = {agent["model"] for agent in template.definition["agents"]}
    before = client.post(
        "/v1/swarms", {"template": template.pk, "task": TASK}, format="json"
    ).json()["estimated_cost_usd"]
    ModelPrice.objects.filter(model__in=models).update(
        input_per_million=Decimal("1000"), output_per_million=Decimal("1000")
    )
    after = client.post(
        "/v1/swarms", {"template": template.pk, "task": TASK, "max_budget_usd": 1000},
        format="json",
    ).json()["estimated_cost_usd"]  # fmt: skip
    assert after > before * 100
    refused = client.post(
        "/v1/swarms", {"template": template.pk, "task": TASK, "max_budget_usd": after / 2},
        format="json",
    )  # fmt: skip
    error = assert_v1_error(refused, 422, "budget_exceeded")
    assert Decimal(str(error["details"]["estimated_cost"])) == Decimal(str(after))
