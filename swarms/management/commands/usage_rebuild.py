"""`manage.py usage_rebuild`: recompute the monthly usage rollup from the ledger and the runs,
print every row that drifted, and fix it (unless --dry-run).

The rollup is billing's, but it counts runs, which are swarms': the command lives here, in the
app that knows both, and hands billing the runs (billing depends on nothing of swarms)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from billing.periods import month_parse
from billing.services import usage_rollup_rebuild
from swarms.models import Run


class Command(BaseCommand):
    help = (
        "Recompute MonthlyUsage from UsageRecord (tokens, cost) and Run (run counts), print each "
        "drifted row as `workspace month type: field stored -> actual` and fix it. Exits 0 "
        "whether or not it found drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspace", default=None, help="Only this workspace id.")
        parser.add_argument("--month", default=None, help="Only this UTC month, as YYYY-MM.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report drift without fixing it."
        )

    def handle(self, *args, workspace, month, dry_run, **options):
        if workspace is not None and not Workspace.objects.filter(pk=workspace).exists():
            raise CommandError(f"--workspace {workspace!r}: no such workspace.")
        try:
            month = month_parse(month) if month is not None else None
        except ValueError as exc:
            raise CommandError(f"--month {month!r}: {exc}") from None
        drifts = usage_rollup_rebuild(
            runs=Run.objects.all(), workspace_id=workspace, month=month, dry_run=dry_run
        )
        if not drifts:
            self.stdout.write("no drift")
            return
        for drift in drifts:
            self.stdout.write(str(drift))
        rows = f"{len(drifts)} drifted row{'s' if len(drifts) != 1 else ''}"
        if dry_run:
            self.stdout.write(f"{rows}; dry run, nothing changed.")
        else:
            self.stdout.write(self.style.SUCCESS(f"{rows} fixed."))
