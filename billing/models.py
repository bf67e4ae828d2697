"""Model prices, the append-only usage ledger (one row per LLM call) and its monthly rollup."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Workspace
from accounts.tenancy import ScopedQuerySet

USD = {"max_digits": 20, "decimal_places": 10}


class ModelPrice(models.Model):
    """USD per million tokens for one model name, as agents name it in definitions."""

    model = models.CharField(max_length=100, unique=True)
    provider = models.CharField(
        max_length=50, default="openai", help_text="Which configured provider serves it."
    )
    input_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )
    output_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"{self.model}: ${self.input_per_million}/${self.output_per_million} per M"


class UsageRecord(models.Model):
    """One LLM call. Append-only, and it outlives the run and swarm it belongs to (ids are
    copied, not foreign keys), so purging a swarm never erases what was spent."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+")
    run_id = models.CharField(max_length=32, db_index=True)
    swarm_id = models.CharField(max_length=32, blank=True, default="", db_index=True)
    swarm_type = models.CharField(
        max_length=100, help_text="Template id, or `custom` for inline and swarm definitions."
    )
    agent_id = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    provider = models.CharField(max_length=50)
    tokens_in = models.PositiveIntegerField()
    tokens_out = models.PositiveIntegerField()
    cost_usd = models.DecimalField(**USD)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who started the run, copied from it when the call is recorded (ids, like run_id, so they
    # outlive the user and the key). Reports group them within the (workspace, created_at)
    # range they read, so they need no index of their own. Empty on calls recorded before the
    # ledger kept them. Defaults in the database too: a worker still on the previous version
    # during a rolling deploy inserts its calls without these columns.
    user_id = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="The run's creator: the user who started it, or who created the API key that "
        "did (a key acts as its creator); a schedule's or batch's creator for their runs.",
    )  # fmt: skip
    api_key_id = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="The API key that started the run; empty when a signed-in user, a schedule or "
        "a batch did.",
    )  # fmt: skip

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "created_at"], name="usage_ws_created")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.agent_id} ${self.cost_usd}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Usage records are append-only.")
        super().save(*args, **kwargs)


class MonthlyUsage(models.Model):
    """Per workspace, month and swarm type: runs, tokens and cost (exact, and as shown), updated
    in the same transaction as the ledger so reading usage never scans the ledger."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="First day of the month (UTC).")
    swarm_type = models.CharField(max_length=100)
    runs = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(default=Decimal(0), **USD)
    shown_cost_usd = models.DecimalField(
        max_digits=20, decimal_places=6, default=Decimal(0), db_default=Decimal(0),
        help_text="What `/v1/usage` reports: the sum of its runs' costs in the month as shown, "
        "each rounded down to 6 places (sverm/money.py), so it equals what a client adds up "
        "from the runs.",
    )  # fmt: skip

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-month", "swarm_type"]
        verbose_name = verbose_name_plural = "monthly usage"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "month", "swarm_type"], name="monthly_usage_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id} {self.month:%Y-%m} {self.swarm_type}"
