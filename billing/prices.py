"""The model prices sverm ships with (USD per million tokens), editable in the admin."""

from decimal import Decimal

from django.db import connections

DEFAULT_PRICES = [
    # model, provider, input, output
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("gpt-4.1", "openai", "2.00", "8.00"),
    ("gpt-4.1-mini", "openai", "0.40", "1.60"),
    ("gpt-4.1-nano", "openai", "0.10", "0.40"),
    ("o4-mini", "openai", "1.10", "4.40"),
    ("deepseek-chat", "deepseek", "0.27", "1.10"),
    ("deepseek-v3", "deepseek", "0.27", "1.10"),
    ("deepseek-reasoner", "deepseek", "0.55", "2.19"),
    ("llama-3.1-8b-instruct", "local", "0", "0"),
]


def prices_seed_defaults(*, using: str = "default") -> int:
    """Install the shipped prices into an empty price table (a new or flushed database);
    a table with any price in it is the operator's and is left alone. Returns rows added."""
    from billing.models import ModelPrice

    if ModelPrice._meta.db_table not in connections[using].introspection.table_names():
        return 0
    prices = ModelPrice.objects.using(using)
    if prices.exists():
        return 0
    prices.bulk_create(
        ModelPrice(
            model=model,
            provider=provider,
            input_per_million=Decimal(price_in),
            output_per_million=Decimal(price_out),
        )
        for model, provider, price_in, price_out in DEFAULT_PRICES
    )
    return len(DEFAULT_PRICES)
