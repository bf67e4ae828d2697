"""Which provider serves which model and at what price, from settings and the price table.

A model's `ModelPrice.provider` names a provider in `settings.LLM_PROVIDERS`. With no provider
configured at all, every model routes to the simulated provider and runs say `simulated: true`.
"""

from collections.abc import Mapping

from django.conf import settings

from billing.selectors import model_prices, model_providers
from sverm.api.errors import InvalidRequest
from swarms.engine import OpenAIProvider, Price, ProviderRouter, SimulatedProvider


def simulated_mode() -> bool:
    return not settings.LLM_PROVIDERS


def check_models_routable(models: set[str]) -> None:
    """400 when a provider is configured but not the one a model needs."""
    if simulated_mode():
        return
    providers = model_providers()
    missing = sorted(
        f"{model} (provider {providers.get(model, '?')})"
        for model in models
        if providers.get(model) not in settings.LLM_PROVIDERS
    )
    if missing:
        raise InvalidRequest(
            f"No configured provider serves: {', '.join(missing)}. Configure it or pick "
            "another model."
        )


def price_map() -> dict[str, Price]:
    """Every priced model's price as the engine takes it, keyed by model name (one query)."""
    return {model: Price(*per_million) for model, per_million in model_prices().items()}


def model_routes() -> dict[str, str]:
    """Model -> provider name, read from the price table (a query: call it off the run's event
    loop, and pass the result to `router_for`)."""
    return {} if simulated_mode() else model_providers()


def router_for(models: set[str], providers: Mapping[str, str]) -> ProviderRouter:
    """A fresh router for one run, built on the event loop that will use it (SDK clients belong
    to that loop); `providers` is `model_routes()`. Touches no database."""
    simulated = SimulatedProvider(latency_seconds=settings.SVERM_SIMULATED_LATENCY)
    if simulated_mode():
        return ProviderRouter(routes={}, default=simulated)
    clients: dict[str, OpenAIProvider] = {}
    routes = {}
    for model in models:
        name = providers.get(model)
        config = settings.LLM_PROVIDERS.get(name)
        if config is None:
            continue
        if name not in clients:
            clients[name] = OpenAIProvider(
                name=name,
                base_url=config.get("base_url") or None,
                api_key=config["api_key"],
                timeout=float(config.get("timeout", 60)),
            )
        routes[model] = clients[name]
    return ProviderRouter(routes=routes, default=simulated)
