"""Default model prices (USD per million tokens), editable in the admin afterwards."""

from decimal import Decimal

from django.db import migrations

from billing.prices import DEFAULT_PRICES


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
