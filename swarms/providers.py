"""Which provider serves which model and at what price, from settings and the price table.

A model's `ModelPrice.provider` names a provider in `settings.LLM_PROVIDERS`, whose `kind`
(default "openai-compatible", see `swarms.engine.providers.PROVIDER_KINDS`) says how it is built.
With no provider configured at all, every model routes to the simulated provider and runs say
`simulated: true`.
"""

from collections.abc import Mapping

from django.conf import settings

from billing.selectors import model_prices, model_providers
from sverm.api.errors import InvalidRequest
from swarms.engine import Price
from swarms.engine.providers import (
    DEFAULT_KIND,
    PROVIDER_KINDS,
    Provider,
    ProviderRouter,
    SimulatedProvider,
    provider_from_config,
)
from swarms.metrics import metered


def simulated_mode() -> bool:
    return not settings.LLM_PROVIDERS


def check_models_routable(models: set[str]) -> None:
    """400 when a provider is configured but not the one a model needs (or not of a kind the
    engine can build)."""
    if simulated_mode():
        return
    providers = model_providers()
    missing = sorted(
        f"{model} (provider {providers.get(model, '?')})"
        for model in models
        if not _buildable(providers.get(model))
    )
    if missing:
        raise InvalidRequest(
            f"No configured provider serves: {', '.join(missing)}. Configure it or pick "
            "another model."
        )


def price_map() -> dict[str, Price]:
    """Every priced model's price as the engine takes it, keyed by model name (one query)."""
    return {model: Price(*per_million) for model, per_million in model_prices().items()}


def _buildable(name: str | None) -> bool:
    config = settings.LLM_PROVIDERS.get(name)
    return config is not None and config.get("kind", DEFAULT_KIND) in PROVIDER_KINDS


def model_routes() -> dict[str, str]:
    """Model -> provider name, read from the price table (a query: call it off the run's event
    loop, and pass the result to `router_for`)."""
    return {} if simulated_mode() else model_providers()


def router_for(models: set[str], providers: Mapping[str, str]) -> ProviderRouter:
    """A fresh router for one run, built on the event loop that will use it (SDK clients belong
    to that loop); `providers` is `model_routes()`. Touches no database."""
    # Each provider's calls timed and counted for /metrics (swarms/metrics.py).
    simulated = metered(SimulatedProvider(latency_seconds=settings.SVERM_SIMULATED_LATENCY))
    if simulated_mode():
        return ProviderRouter(routes={}, default=simulated)
    clients: dict[str, Provider] = {}
    routes = {}
    for model in models:
        name = providers.get(model)
        config = settings.LLM_PROVIDERS.get(name)
        if config is None:
            continue
        if name not in clients:
            clients[name] = metered(provider_from_config(name, config))
        routes[model] = clients[name]
    return ProviderRouter(routes=routes, default=simulated)
