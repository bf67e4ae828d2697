"""Schedules: a swarm (its default or a pinned version) or a template run on a cron expression in
an IANA time zone, and the record of every firing they made."""

from django.db import models
from django.utils.timezone import now

from accounts.models import User, Workspace
from accounts.tenancy import ScopedQuerySet
from sverm.api.ids import PrefixedIdField
from swarms.models import Run, Swarm, SwarmVersion

# After downtime, missed slots no older than this fire once, coalesced (services.py).
DEFAULT_CATCH_UP_SECONDS = 3600


class OverlapPolicy(models.TextChoices):
    """What a firing does while a run the schedule made earlier is still active."""

    SKIP = "skip", "Skip the firing"
    QUEUE = "queue", "Queue it until the active run ends"
    CANCEL_PREVIOUS = "cancel_previous", "Cancel the active run, then start"


class Schedule(models.Model):
    """`next_run_at` is the next slot to fire (UTC), kept up to date on every change and after
    each firing; null while paused and once the schedule has ended (its end date passed, or it
    made its `max_runs`). The tick claims due rows (`next_run_at <= now`) in the database."""

    id = PrefixedIdField(prefix="sch")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200)
    # What it runs: a swarm (a pinned version, else its default at each firing) or a template.
    swarm = models.ForeignKey(
        Swarm, null=True, blank=True, on_delete=models.CASCADE, related_name="schedules"
    )
    version = models.ForeignKey(
        SwarmVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Pinned version; empty runs the swarm's default version at each firing.",
    )  # fmt: skip
    template_id = models.CharField(max_length=100, blank=True, default="")
    task = models.TextField()
    max_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=6, help_text="Each run's hard budget (USD)."
    )
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    starts_at = models.DateTimeField(null=True, blank=True, help_text="No firing before this.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="No firing after this.")
    max_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="It ends once it has started this many runs."
    )
    monthly_cap_usd = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="A firing whose run could take this UTC month's spend of the schedule's runs "
        "past this is skipped.",
    )  # fmt: skip
    overlap_policy = models.CharField(
        max_length=20, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    catch_up_seconds = models.PositiveIntegerField(
        default=DEFAULT_CATCH_UP_SECONDS,
        help_text="After downtime: missed slots fire once (coalesced) when the last one is at "
        "most this old; otherwise they are skipped.",
    )
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    runs_made = models.PositiveIntegerField(default=0)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The tick's claim: due, unpaused rows in slot order.
            models.Index(fields=["next_run_at"], name="schedule_next_run"),
            models.Index(fields=["workspace", "-created_at", "-id"], name="schedule_ws_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(swarm__isnull=False, template_id="")
                    | models.Q(swarm__isnull=True, version__isnull=True) & ~models.Q(template_id="")
                ),
                name="schedule_swarm_xor_template",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} {self.timezone})"

    @property
    def state(self) -> str:
        """`paused`, `ended` (nothing more to fire) or `active`."""
        if self.paused:
            return "paused"
        return "ended" if self.next_run_at is None else "active"


class FiringOutcome(models.TextChoices):
    STARTED = "started", "Started a run"
    QUEUED = "queued", "Queued behind the active run"
    SKIPPED_OVERLAP = "skipped_overlap", "Skipped: a run was still active"
    SKIPPED_CAP = "skipped_cap", "Skipped: monthly cap"
    SKIPPED_MISSED = "skipped_missed", "Skipped: missed during downtime"
    SKIPPED_PAUSED = "skipped_paused", "Skipped: paused while it waited"
    FAILED = "failed", "Failed to start a run"


class ScheduleFiring(models.Model):
    """One slot a schedule fired for, and what came of it. UNIQUE (schedule, slot): a slot is
    fired once, whichever process claimed it."""

    id = PrefixedIdField(prefix="fir")
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="firings")
    slot_at = models.DateTimeField(help_text="The cron slot (UTC) this firing is for.")
    outcome = models.CharField(max_length=20, choices=FiringOutcome.choices)
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_firings"
    )
    reason = models.TextField(blank=True, default="")
    missed = models.PositiveIntegerField(
        default=0, help_text="Earlier slots missed during downtime that this one stands for."
    )
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When its run was created (later for a queued one)."
    )

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "schedule__workspace"

    class Meta:
        ordering = ["-slot_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "slot_at"], name="schedule_firing_once")
        ]
        indexes = [
            # This month's spend of the schedule's runs (the cap).
            models.Index(fields=["schedule", "started_at"], name="firing_schedule_started"),
            models.Index(
                fields=["schedule", "outcome"],
                name="firing_queued",
                condition=models.Q(outcome="queued"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.slot_at:%Y-%m-%d %H:%M:%S} UTC: {self.outcome}"
