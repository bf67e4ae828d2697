from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # The embedded timer prunes the audit trail without importing Celery (sverm/periodic.py).
        from accounts.auditing import audit_trail_prune
        from sverm import periodic

        periodic.register_local("accounts.prune_audit_trail", audit_trail_prune)
