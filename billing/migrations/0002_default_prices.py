"""Default model prices (USD per million tokens), editable in the admin afterwards."""

from decimal import Decimal

from django.db import migrations

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


def add_prices(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    for model, provider, price_in, price_out in DEFAULT_PRICES:
        ModelPrice.objects.get_or_create(
            model=model,
            defaults={
                "provider": provider,
                "input_per_million": Decimal(price_in),
                "output_per_million": Decimal(price_out),
            },
        )


def remove_prices(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.filter(model__in=[row[0] for row in DEFAULT_PRICES]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(add_prices, remove_prices)]
