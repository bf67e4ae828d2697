"""App config: prices are seeded into an empty price table after every `migrate`."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def seed_default_prices(sender, using, **kwargs) -> None:
    from billing.prices import prices_seed_defaults

    prices_seed_defaults(using=using)


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        post_migrate.connect(seed_default_prices, sender=self, dispatch_uid="billing.seed_prices")
