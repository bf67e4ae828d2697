"""`manage.py prune`: one retention pass now (what Celery beat or the embedded timer runs
hourly): prune expired runs' events and output, purge swarms expired in the trash."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from swarms.services.retention import (
    DEFAULT_BATCH_SIZE,
    retention_enforce,
    retention_windows,
    trash_window,
)


class Command(BaseCommand):
    help = (
        "Prune the events, output and webhook log of finished runs older than their retention "
        "tier's window (SVERM_RETENTION_DAYS) and purge swarms soft-deleted more than "
        "SVERM_TRASH_DAYS ago. Billing records are never touched. Prints what it did."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go without changing anything."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per delete statement (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}.")
        try:
            windows = retention_windows()
            trash = trash_window()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        shown = ", ".join(f"{tier} {window.days} d" for tier, window in windows.items())
        self.stdout.write(f"windows: {shown}; trash {trash.days} d")
        report = retention_enforce(batch_size=batch_size, dry_run=dry_run)
        prune, purge = report.prune, report.purge
        self.stdout.write(
            f"runs pruned: {prune.runs} (events deleted: {prune.events_deleted}, "
            f"outputs cleared: {prune.outputs_cleared}, "
            f"webhook deliveries deleted: {prune.webhook_deliveries_deleted})"
        )
        self.stdout.write(
            f"swarms purged: {purge.swarms} (runs deleted: {purge.runs_deleted}, "
            f"events deleted: {purge.events_deleted})"
        )
        for swarm_id in purge.skipped:
            self.stdout.write(f"skipped {swarm_id}: a run is still running")
        if dry_run:
            self.stdout.write("dry run, nothing changed.")
        else:
            self.stdout.write(self.style.SUCCESS("done."))
