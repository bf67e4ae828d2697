"""App config: installs and refreshes the built-in templates after every `migrate`."""

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def sync_builtin_templates(sender, using, **kwargs) -> None:
    """post_migrate: upsert the built-ins (`make run`, CI and docker's migrate service all
    migrate, so every deployment gets the shipped versions)."""
    from templates_app.models import SwarmTemplate
    from templates_app.services import templates_sync_builtins

    # Migrating this app backwards (or not yet) leaves no table to fill.
    if SwarmTemplate._meta.db_table not in connections[using].introspection.table_names():
        return
    templates_sync_builtins(using=using)


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Swarm templates"

    def ready(self) -> None:
        post_migrate.connect(
            sync_builtin_templates, sender=self, dispatch_uid="templates_app.sync_builtins"
        )
