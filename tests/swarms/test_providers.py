"""Which provider serves which model: configured providers are built by their kind, and a model
whose provider cannot be built is refused when a run is created."""

from decimal import Decimal

import pytest

from billing.models import ModelPrice
from sverm.api.errors import InvalidRequest
from swarms.engine.providers import OpenAIProvider, SimulatedProvider
from swarms.providers import check_models_routable, model_routes, router_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(settings):
    settings.LLM_PROVIDERS = {
        "openai": {"api_key": "sk-test", "base_url": "http://127.0.0.1:9/v1", "timeout": 5.0},
        "local": {"kind": "simulated", "api_key": "-", "latency_seconds": 0.25},
        "odd": {"kind": "grpc", "api_key": "-"},
    }
    for model, provider in (("m-openai", "openai"), ("m-local", "local"), ("m-odd", "odd")):
        ModelPrice.objects.create(
            model=model, provider=provider, input_per_million=Decimal(1),
            output_per_million=Decimal(2),
        )  # fmt: skip
    return settings


def test_each_model_routes_to_a_provider_of_its_providers_kind(configured):
    router = router_for({"m-openai", "m-local", "gpt-unpriced"}, model_routes())
    openai, local = router.for_model("m-openai"), router.for_model("m-local")
    assert isinstance(openai, OpenAIProvider) and openai.name == "openai"
    assert isinstance(local, SimulatedProvider) and local.latency_seconds == 0.25
    assert router.for_model("gpt-unpriced") is router.default
    assert router.simulated is False


def test_a_model_whose_provider_is_of_an_unknown_kind_is_refused(configured):
    check_models_routable({"m-openai", "m-local"})
    with pytest.raises(
        InvalidRequest, match=r"No configured provider serves: m-odd \(provider odd\)"
    ):
        check_models_routable({"m-openai", "m-odd"})
