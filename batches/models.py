"""Batches: one swarm (a pinned version of it) or one template run over many inputs, each item a
run of its own, under one total budget; and the batch's numbered events, which its stream sends."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.tenancy import ScopedQuerySet
from sverm.api.ids import PrefixedIdField
from swarms.models import Run, Swarm, SwarmVersion


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # no item started yet
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"  # every item ended (the counts say how)
    CANCELLED = "cancelled", "Cancelled"  # cancelled: nothing more starts
    FAILED = "failed", "Failed"  # its swarm or template could not run any more


# Statuses in which items still start.
DISPATCHING_STATUSES = (BatchStatus.QUEUED, BatchStatus.RUNNING)


class BudgetMode(models.TextChoices):
    # Each item's run gets total / N, rounded down to the micro-dollar: the sum never passes it.
    SPLIT = "split", "Split"
    # Each item's run gets the per-item cap; an item starts only while what the batch spent,
    # plus the caps of its running items, plus this one's cap fit the total.
    PER_ITEM = "per_item", "Per item"


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"  # never started: the batch was cancelled, failed or out of money


ENDED_ITEM_STATUSES = (
    ItemStatus.COMPLETED, ItemStatus.FAILED, ItemStatus.CANCELLED, ItemStatus.SKIPPED,
)  # fmt: skip
# The item status a run's end gives its item.
ITEM_STATUS_OF_RUN = {
    "completed": ItemStatus.COMPLETED,
    "failed": ItemStatus.FAILED,
    "cancelled": ItemStatus.CANCELLED,
}


class Batch(models.Model):
    """Many inputs through one swarm version or template. The item counts and `spent_usd` (what
    its ended items cost) are kept with every item change, in the same transaction, so lists
    read them without counting; `last_seq` numbers its events."""

    id = PrefixedIdField(prefix="bat")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="batches")
    # Purging a swarm removes its runs, and with them its batches.
    swarm = models.ForeignKey(
        Swarm, null=True, blank=True, on_delete=models.CASCADE, related_name="batches"
    )
    version = models.ForeignKey(
        SwarmVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version every item runs: the one asked for, else the swarm's default "
        "when the batch was created.",
    )  # fmt: skip
    template_id = models.CharField(
        max_length=100, blank=True, default="", help_text="The template every item runs."
    )
    status = models.CharField(
        max_length=10, choices=BatchStatus.choices, default=BatchStatus.QUEUED, db_index=True
    )
    budget_mode = models.CharField(max_length=10, choices=BudgetMode.choices)
    total_budget_usd = models.DecimalField(max_digits=12, decimal_places=6)
    item_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=6,
        help_text="Each item's run budget: the total's share (split) or the per-item cap.",
    )  # fmt: skip
    concurrency = models.PositiveIntegerField(help_text="Items running at once, at most.")
    items_total = models.PositiveIntegerField(default=0)
    items_pending = models.PositiveIntegerField(default=0)
    items_running = models.PositiveIntegerField(default=0)
    items_completed = models.PositiveIntegerField(default=0)
    items_failed = models.PositiveIntegerField(default=0)
    items_cancelled = models.PositiveIntegerField(default=0)
    items_skipped = models.PositiveIntegerField(default=0)
    spent_usd = models.DecimalField(
        max_digits=20, decimal_places=10, default=0, help_text="What its ended items cost."
    )
    # The same, as shown: the sum of each ended item's cost rounded down to 6 places (its run's
    # displayed cost), so the batch's `costUsd` is the sum of its items'. `spent_usd` (exact)
    # is what the budget is checked against.
    shown_spent_usd = models.DecimalField(
        max_digits=20, decimal_places=6, default=0,
        help_text="What its ended items cost, as shown (each rounded down to 6 places).",
    )  # fmt: skip
    error_code = models.CharField(max_length=50, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    blocked_reason = models.TextField(
        blank=True, default="",
        help_text="Why its pending items are waiting (the workspace's run quotas), else empty.",
    )  # fmt: skip
    last_seq = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its last item ended (its terminal event)."
    )

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="batch_ws_created"),
            # The dispatcher's pass: batches that have not ended.
            models.Index(
                fields=["created_at"], condition=Q(completed_at__isnull=True), name="batch_open"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(swarm__isnull=False) & Q(template_id=""))
                | (Q(swarm__isnull=True) & ~Q(template_id="")),
                name="batch_swarm_xor_template",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def items_ended(self) -> int:
        return self.items_completed + self.items_failed + self.items_cancelled + self.items_skipped

    @property
    def progress(self) -> float:
        """The share of its items that ended."""
        return self.items_ended / self.items_total if self.items_total else 1.0

    @property
    def source(self) -> str:
        return self.swarm_id or self.template_id


class BatchItem(models.Model):
    """One input of a batch: its task, and the run that executes it once started."""

    id = PrefixedIdField(prefix="bti")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField(help_text="Its place among the inputs, from 0.")
    custom_id = models.CharField(
        max_length=100, blank=True, default="", help_text="The caller's id for it, if given."
    )
    task = models.TextField()
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_items"
    )
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    error_code = models.CharField(max_length=50, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "batch__workspace"

    class Meta:
        ordering = ["batch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="batch_item_index_unique")
        ]
        indexes = [
            # The next pending items to start, the running ones to reconcile.
            models.Index(fields=["batch", "status", "index"], name="batch_item_status"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}[{self.index}] ({self.status})"


class BatchEventType(models.TextChoices):
    ITEM_STARTED = "item.started"
    ITEM_COMPLETED = "item.completed"
    ITEM_FAILED = "item.failed"
    ITEM_CANCELLED = "item.cancelled"
    BATCH_PROGRESS = "batch.progress"
    BATCH_COMPLETED = "batch.completed"
    BATCH_CANCELLED = "batch.cancelled"
    BATCH_FAILED = "batch.failed"


BATCH_TERMINAL_EVENTS = frozenset(
    {BatchEventType.BATCH_COMPLETED, BatchEventType.BATCH_CANCELLED, BatchEventType.BATCH_FAILED}
)
# The event a batch's end writes, by its final status.
TERMINAL_EVENT_OF = {
    BatchStatus.COMPLETED: BatchEventType.BATCH_COMPLETED,
    BatchStatus.CANCELLED: BatchEventType.BATCH_CANCELLED,
    BatchStatus.FAILED: BatchEventType.BATCH_FAILED,
}
# The event an item's end writes, by its status.
ITEM_EVENT_OF = {
    ItemStatus.COMPLETED: BatchEventType.ITEM_COMPLETED,
    ItemStatus.FAILED: BatchEventType.ITEM_FAILED,
    ItemStatus.CANCELLED: BatchEventType.ITEM_CANCELLED,
}


class BatchEvent(models.Model):
    """One change of a batch, numbered 1, 2, 3… per batch, written in the transaction that made
    the change: stored, then streamed."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=20, choices=BatchEventType.choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "batch__workspace"

    class Meta:
        ordering = ["batch", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "seq"], name="batch_event_seq_unique")
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} #{self.seq} {self.type}"
