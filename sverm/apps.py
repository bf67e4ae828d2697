"""App config of the project package: database behaviour every app relies on."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class SvermConfig(AppConfig):
    name = "sverm"
    verbose_name = "sverm"

    def ready(self) -> None:
        from sverm.text_match import lookups_register, sqlite_functions_install

        lookups_register()
        connection_created.connect(sqlite_functions_install, dispatch_uid="sverm.sqlite_upper")
