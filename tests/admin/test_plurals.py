"""The admin's index names every model in readable English: no "Webhook deliverys" or "Monthly
usages", which Django's add-an-s plural makes of names it does not know."""

from django.contrib import admin


def default_plural_is_wrong(singular: str) -> bool:
    """Whether Django's default plural (singular + "s") is not English for `singular`."""
    consonant_y = singular.endswith("y") and singular[-2:-1] not in "aeiou"
    return consonant_y or singular.endswith(("s", "x", "ch", "sh", "usage"))


def test_every_registered_model_has_a_proper_plural():
    wrong = [
        f"{model._meta.label}: {model._meta.verbose_name_plural}"
        for model in admin.site._registry
        if str(model._meta.verbose_name_plural) == f"{model._meta.verbose_name}s"
        and default_plural_is_wrong(str(model._meta.verbose_name))
    ]
    assert not wrong, wrong


def test_the_index_shows_the_fixed_names(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert "Monthly usage<" in index and "Monthly usages" not in index
    assert "Webhook deliveries" in index
