"""`manage.py bootstrap`: idempotent first-run setup of the admin, a workspace and a key."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Plan, validate_login_email
from accounts.services import platform_bootstrap


class Command(BaseCommand):
    help = (
        "Create (or keep) the platform admin, a workspace it administers and an API key. "
        "Safe to run on every start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--password", default="", help="Set this password; generated and printed when unset."
        )
        parser.add_argument("--workspace", default="Default", help="Workspace name.")
        parser.add_argument("--plan", choices=Plan.values, default=None)
        parser.add_argument(
            "--rotate-key", action="store_true", help="Revoke the bootstrap key and make a new one."
        )

    def handle(self, *args, email, password, workspace, plan, rotate_key, **options):
        try:
            validate_login_email(email)
        except ValidationError:
            raise CommandError(f"--email {email!r} is not a valid email address.") from None
        if not workspace.strip():
            raise CommandError("--workspace must not be empty.")
        result = platform_bootstrap(
            email=email,
            password=password or None,
            workspace_name=workspace.strip(),
            plan=plan,
            rotate_key=rotate_key,
        )
        write = self.stdout.write
        write(f"Admin: {result.user.email} ({'created' if result.user_created else 'exists'})")
        if result.generated_password:
            write(f"Admin password: {result.generated_password}")
        workspace = result.workspace
        write(f"Workspace: {workspace.name} {workspace.id} (plan {workspace.plan})")
        if result.raw_api_key:
            write(f"API key: {result.raw_api_key}")
        else:
            write(
                f"API key: unchanged ({result.api_key.prefix}…, shown only when made; "
                "--rotate-key makes a new one)"
            )
