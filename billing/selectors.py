"""Reads for billing: prices as the engine wants them."""

from billing.models import ModelPrice
from swarms.engine import Price


def price_map() -> dict[str, Price]:
    """Every known model's price, keyed by model name (one query)."""
    return {
        row.model: Price(row.input_per_million, row.output_per_million)
        for row in ModelPrice.objects.all()
    }


def model_providers() -> dict[str, str]:
    """Model name -> provider name, as the admin configured it."""
    return dict(ModelPrice.objects.values_list("model", "provider"))
