"""Swarms (a workspace's named, versioned agent team) and their immutable versions."""

import json

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, User, Workspace
from accounts.tenancy import ScopedQuerySet
from sverm.api.ids import PrefixedIdField
from sverm.softdelete import SoftDeleteModel, SoftDeleteQuerySet
from swarms.engine import events


class RetentionTier(models.TextChoices):
    EPHEMERAL = "ephemeral", "Ephemeral"
    STANDARD = "standard", "Standard"
    EXTENDED = "extended", "Extended"


class SwarmQuerySet(ScopedQuerySet, SoftDeleteQuerySet):
    pass


class Swarm(SoftDeleteModel):
    id = PrefixedIdField(prefix="swm")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="swarms")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    default_version = models.ForeignKey(
        "SwarmVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_swarms"
    )
    runtime_user = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runtime_swarms",
        help_text="The member whose identity runs execute as, when set.",
    )
    retention_tier = models.CharField(
        max_length=10, choices=RetentionTier.choices, default=RetentionTier.STANDARD
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SwarmQuerySet.as_manager()
    workspace_lookup = "workspace"
    integration_visible = True

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The default list: one workspace, newest first, living rows.
            models.Index(fields=["workspace", "-created_at", "-id"], name="swarm_ws_created"),
            # orderBy name then createdAt (either way round): each part of the split keyset
            # (sverm/api/keyset.py seek_parts) is one range of it, ties in name included.
            models.Index(
                fields=["workspace", "name", "-created_at", "-id"], name="swarm_ws_name_created"
            ),
            models.Index(fields=["workspace", "updated_at"], name="swarm_ws_updated"),
            # The exact `total` of a list (living rows of a workspace) from the index alone.
            models.Index(
                fields=["workspace"], condition=Q(deleted_at__isnull=True), name="swarm_ws_alive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class SwarmVersion(models.Model):
    """An immutable snapshot of a swarm's definition; saved once, never updated."""

    id = PrefixedIdField(prefix="swv")
    swarm = models.ForeignKey(Swarm, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    instructions = models.TextField(blank=True, default="")
    model_names = models.JSONField(default=list, help_text="Models its agents use.")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "swarm__workspace"
    integration_visible = True

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["swarm", "number"], name="swarm_version_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.swarm_id} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Swarm versions are immutable; create a new version instead.")
        super().save(*args, **kwargs)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    # Paused with nothing in flight until operators decide on its tool calls (`Approval`); no
    # worker holds it. `/v1` says `running` (seed 002's statuses) with the pending call.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    # Paused because its next call could not fit its budget (it opted in: `pause_on_budget`)
    # until an operator raises `max_budget_usd`, or fails `budget_exceeded` at its deadline.
    AWAITING_BUDGET = "awaiting_budget", "Awaiting budget"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
# Waiting for operators, held by no worker.
PAUSED_STATUSES = (RunStatus.AWAITING_APPROVAL, RunStatus.AWAITING_BUDGET)
# Seed 002's status values, all `/v1` ever says; the statuses it reports as `running`.
V1_STATUSES = (RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
V1_RUNNING_STATUSES = (RunStatus.QUEUED, *PAUSED_STATUSES)


class Run(models.Model):
    """One execution of a definition (a swarm version's, a template's or an inline one)."""

    id = PrefixedIdField(prefix="run")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs")
    # Purging a swarm removes its runs; the usage ledger keeps its own copy of what was spent.
    swarm = models.ForeignKey(
        Swarm, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    version = models.ForeignKey(
        SwarmVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    template_id = models.CharField(max_length=100, blank=True, default="")
    swarm_type = models.CharField(
        max_length=100, help_text="Template id, or `custom` for swarm and inline definitions."
    )
    definition = models.JSONField(help_text="The definition as it was when the run started.")
    task = models.TextField()
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    max_budget_usd = models.DecimalField(max_digits=12, decimal_places=6)
    estimated_cost_usd = models.DecimalField(max_digits=20, decimal_places=10)
    current_cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    agents_active = models.PositiveIntegerField(default=0)
    agents_total = models.PositiveIntegerField(default=0)
    simulated = models.BooleanField(default=False)
    output = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=50, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The API key that started it; empty when a user (or a schedule) did.",
    )  # fmt: skip
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries",
        help_text="The failed or cancelled run an operator retried as this one.",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker executing it."
    )
    resume_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reaper last asked a worker to resume it."
    )
    attempt = models.PositiveIntegerField(
        default=0,
        help_text="Lease number of the attempt executing it (1 once claimed, +1 per resume); "
        "writes from any other attempt are refused.",
    )
    pause_on_budget = models.BooleanField(
        default=False,
        help_text="When its next call cannot fit the budget: pause for a bigger one (true) or "
        "fail `budget_exceeded` (false).",
    )
    budget_needed_usd = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True,
        help_text="Paused for budget: how much more the next call needs, at least.",
    )  # fmt: skip
    pause_deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="Paused for budget: when it fails if not raised."
    )
    pauses = models.PositiveIntegerField(
        default=0,
        help_text="Times it paused for approvals: attempts that ended so are not counted against "
        "the attempts a lost worker's run is allowed.",
    )

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="run_ws_created"),
            models.Index(fields=["workspace", "status"], name="run_ws_status"),
            models.Index(fields=["swarm", "-created_at"], name="run_swarm_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def v1_status(self) -> str:
        """The status on `/v1`, within seed 002's four (`V1_STATUSES`): a run waiting for a
        worker or paused (for approvals or budget) is `running`; `/api` keeps the precise one."""
        return RunStatus.RUNNING if self.status in V1_RUNNING_STATUSES else self.status

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunEventType(models.TextChoices):
    RUN_STARTED = events.RUN_STARTED
    AGENT_STARTED = events.AGENT_STARTED
    AGENT_DELEGATED = events.AGENT_DELEGATED
    AGENT_MESSAGE = events.AGENT_MESSAGE
    AGENT_COMPLETED = events.AGENT_COMPLETED
    TOOL_CALLED = events.TOOL_CALLED
    TOOL_RESULT = events.TOOL_RESULT
    APPROVAL_REQUESTED = events.APPROVAL_REQUESTED
    APPROVAL_DECIDED = events.APPROVAL_DECIDED
    RUN_PAUSED = events.RUN_PAUSED
    RUN_BUDGET_RAISED = events.RUN_BUDGET_RAISED
    RUN_PROGRESS = events.RUN_PROGRESS
    RUN_COMPLETED = events.RUN_COMPLETED
    RUN_FAILED = events.RUN_FAILED
    RUN_CANCELLED = events.RUN_CANCELLED


class RunEvent(models.Model):
    """One step of a run, numbered 1, 2, 3… per run: stored, then streamed."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=20, choices=RunEventType.choices)
    agent_id = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "run__workspace"

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_event_seq_unique")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.seq} {self.type}"


class RunStepStatus(models.TextChoices):
    RESERVED = "reserved"
    SETTLED = "settled"
    RELEASED = "released"
    INTERRUPTED = "interrupted"


class RunStep(models.Model):
    """The checkpoint of one LLM call of a run: on record (reserved) before the call starts,
    settled with its text and cost in the same transaction as its ledger row. A resumed run
    replays settled steps instead of paying for them again, and holds what interrupted ones
    reserved against its budget."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64, help_text="What was asked: agent, model, messages.")
    attempt = models.PositiveIntegerField()
    agent_id = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    provider = models.CharField(max_length=50, blank=True, default="")
    status = models.CharField(max_length=12, choices=RunStepStatus.choices)
    reserved_usd = models.DecimalField(max_digits=20, decimal_places=10)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    output = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "attempt", "key"], name="run_step_attempt_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.agent_id} ({self.status})"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"  # no decision before its deadline: denied


class Approval(models.Model):
    """A tool call of a run that waits for an operator: approved (maybe with edited
    arguments), denied with a reason, or denied when its deadline passes. `key` names the call
    in every attempt of the run; the attempt after the decisions reads them by it."""

    id = PrefixedIdField(prefix="apr")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    key = models.CharField(max_length=64)
    agent_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    call_id = models.CharField(max_length=200, blank=True, default="")
    arguments = models.TextField(help_text="As the model wrote them (JSON).")
    status = models.CharField(
        max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    edited_arguments = models.TextField(
        blank=True, default="", help_text="What the operator approved instead (JSON), if edited."
    )
    reason = models.TextField(blank=True, default="")
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "run__workspace"

    class Meta:
        ordering = ["run", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="approval_key_unique")]
        indexes = [models.Index(fields=["status", "deadline_at"], name="approval_due")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.tool} ({self.status})"

    @property
    def arguments_value(self):
        """The model's arguments as JSON values (the text as is when it was not JSON)."""
        return _json_or_text(self.arguments)

    @property
    def edited_value(self):
        return _json_or_text(self.edited_arguments) if self.edited_arguments else None


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------
# Webhooks (services in swarms/webhooks/)
# ---------------------------------------------------------------------------------------------
class WebhookSecret(models.Model):
    """A workspace's Standard Webhooks signing secret (`whsec_…`), Fernet-encrypted with a key
    derived from SECRET_KEY. While `previous` has not expired (a rotation's grace period), both
    secrets sign every delivery, so receivers can switch without downtime."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="webhook_secret"
    )
    current_encrypted = models.TextField()
    previous_encrypted = models.TextField(blank=True, default="")
    previous_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    def __str__(self) -> str:
        return f"Webhook secret of {self.workspace_id}"


class WebhookEndpoint(models.Model):
    """Delivery state of one webhook URL in a workspace: a 410 Gone disables it."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    url_hash = models.CharField(max_length=64, help_text="SHA-256 of the URL, for uniqueness.")
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "url_hash"], name="webhook_endpoint_url")
        ]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One attempt to deliver a run's webhook message (every attempt, retries included)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="webhook_deliveries")
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    message_id = models.CharField(max_length=40, db_index=True)
    attempt = models.PositiveIntegerField()
    manual = models.BooleanField(default=False, help_text="A manual redelivery.")
    url = models.URLField(max_length=2000)
    event_type = models.CharField(max_length=30)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    success = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["run", "created_at"], name="webhook_delivery_run")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.message_id} #{self.attempt} ({self.status_code or self.error[:30]})"
