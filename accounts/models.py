"""Users (email login), workspaces (the tenant), memberships with roles, API keys, and the limits
of each plan."""

import re
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import models
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.roles import Role
from accounts.tenancy import ScopedQuerySet
from sverm.api.ids import PrefixedIdField


class Plan(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    TEAM = "team", "Team"


# Seed 002's tiers: requests/minute, concurrent runs, runs/day (None: unlimited). The rows of
# PlanLimits start from these and are the truth; these only stand in for a missing row.
PLAN_DEFAULTS: dict[str, tuple[int, int, int | None]] = {
    Plan.FREE: (10, 2, 50),
    Plan.PRO: (60, 10, 500),
    Plan.TEAM: (300, 50, None),
}
# Batches a workspace may create per hour (seed 000: `POST /batch/*` 5/hour on the free tier),
# and the days its audit trail is kept.
PLAN_BATCHES_PER_HOUR = {Plan.FREE: 5, Plan.PRO: 30, Plan.TEAM: 120}
PLAN_AUDIT_RETENTION_DAYS = {Plan.FREE: 30, Plan.PRO: 180, Plan.TEAM: 365}


class PlanLimits(models.Model):
    """What a plan allows, editable by operators in the admin (one row per plan)."""

    plan = models.CharField(max_length=10, choices=Plan.choices, primary_key=True)
    requests_per_minute = models.PositiveIntegerField(
        help_text="API requests per minute, per API key or per user token."
    )
    concurrent_runs = models.PositiveIntegerField(
        help_text="Runs of a workspace that may be queued or running at once."
    )
    runs_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs a workspace may start per UTC day; empty: unlimited."
    )
    batches_per_hour = models.PositiveIntegerField(
        default=PLAN_BATCHES_PER_HOUR[Plan.FREE],
        help_text="Batches a workspace may create per hour.",
    )
    audit_retention_days = models.PositiveIntegerField(
        default=PLAN_AUDIT_RETENTION_DAYS[Plan.FREE],
        help_text="Days a workspace's audit events are kept.",
    )

    class Meta:
        ordering = ["requests_per_minute", "plan"]
        verbose_name = "plan limits"
        verbose_name_plural = "plan limits"

    def __str__(self) -> str:
        return f"{self.get_plan_display()} plan limits"

    @classmethod
    def default_for(cls, plan: str) -> "PlanLimits":
        """Seed 002's limits for `plan` (the free plan's for an unknown one), unsaved."""
        requests, concurrent, daily = PLAN_DEFAULTS.get(plan, PLAN_DEFAULTS[Plan.FREE])
        known = plan if plan in PLAN_DEFAULTS else Plan.FREE
        return cls(
            plan=plan, requests_per_minute=requests, concurrent_runs=concurrent, runs_per_day=daily,
            batches_per_hour=PLAN_BATCHES_PER_HOUR[known],
            audit_retention_days=PLAN_AUDIT_RETENTION_DAYS[known],
        )  # fmt: skip


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


# `admin@local` is the embedded default admin: accept the `local` and `localhost` domains.
validate_login_email = EmailValidator(allowlist=["localhost", "local"])


class LoginEmailField(models.EmailField):
    default_validators = [validate_login_email]


class User(AbstractBaseUser, PermissionsMixin):
    id = PrefixedIdField(prefix="usr")
    email = LoginEmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="Platform operators: may use the admin and see every workspace."
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")
        ]

    def __str__(self) -> str:
        return self.email


# A tool name (swarms.engine.schema.TOOL_NAME) where * may stand for any run of characters.
TOOL_PATTERN = re.compile(r"[A-Za-z*][A-Za-z0-9_*-]{0,63}")


def default_allowed_tools() -> list[str]:
    """New workspaces may use the built-in tools; tools of MCP servers are allowed one by one."""
    return ["http_fetch"]


def tool_patterns_validator(value) -> None:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and TOOL_PATTERN.fullmatch(item) for item in value
    ):
        raise ValidationError(
            "Must be a list of tool names or patterns: letters, digits, '_', '-' and '*'.",
            code="invalid_tool_patterns",
        )


class Workspace(models.Model):
    id = PrefixedIdField(prefix="wsp")
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=10, choices=Plan.choices, default=Plan.FREE)
    allowed_tools = models.JSONField(
        default=default_allowed_tools,
        blank=True,
        validators=[tool_patterns_validator],
        help_text=(
            "The workspace allowlist: tools its agents may call, by name, or by pattern with * "
            '(e.g. "search__*" for every tool of an MCP server). An empty list allows none.'
        ),
    )
    members = models.ManyToManyField(User, through="Membership", related_name="workspaces")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "id"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Membership(models.Model):
    id = PrefixedIdField(prefix="mem")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="accounts_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.workspace.name}"


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


def api_key_expired(expires_at: datetime | None, at: datetime | None = None) -> bool:
    """Whether a key with this expiry is refused at `at` (now by default): from `expires_at` on."""
    return expires_at is not None and expires_at <= (at or timezone.now())


class ApiKeyQuerySet(ScopedQuerySet):
    """API keys. Which keys authenticate is one rule, stated here for SQL (`usable`,
    `with_status`) and beside it for a loaded key (`ApiKey.status_at`, `api_key_expired`):
    revoked first, then expired from `expires_at` on, else active."""

    def usable(self, at: datetime | None = None):
        """Keys that authenticate at `at` (now by default)."""
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )

    def with_status(self, at: datetime | None = None):
        """Annotated with `status` (an ApiKeyStatus value) at `at`, for filtering lists."""
        at = at or timezone.now()
        return self.annotate(
            status=Case(
                When(revoked_at__isnull=False, then=Value(ApiKeyStatus.REVOKED.value)),
                When(expires_at__lte=at, then=Value(ApiKeyStatus.EXPIRED.value)),
                default=Value(ApiKeyStatus.ACTIVE.value),
                output_field=models.CharField(),
            )
        )


class ApiKey(models.Model):
    """A workspace's secret `sk-sverm-…`: only its SHA-256 is stored, its prefix kept for lookup."""

    id = PrefixedIdField(prefix="key")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.OPERATOR)
    prefix = models.CharField(max_length=24, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    # The key acts as its creator (createdBy on what it makes), with the key's own role.
    created_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Refused from this time on; empty: never expires."
    )
    replaces = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced_by",
        help_text="The key this one was rotated from (valid until its own expiry).",
    )  # fmt: skip

    objects = ApiKeyQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status_at(self, at: datetime | None = None) -> str:
        """This key's ApiKeyStatus at `at` (now by default): ApiKeyQuerySet's rule."""
        if self.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if api_key_expired(self.expires_at, at):
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE

    @property
    def is_active(self) -> bool:
        """Whether the key authenticates now (neither revoked nor expired)."""
        return self.status_at() == ApiKeyStatus.ACTIVE


class Integration(models.Model):
    """An installed integration: the installer workspace may read (and run) the swarms of the
    publisher workspace. Installing needs an admin of both."""

    id = PrefixedIdField(prefix="int")
    installer = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="installed_integrations"
    )
    publisher = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="published_integrations"
    )
    installed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "installer"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["installer", "publisher"], name="accounts_integration_unique"
            ),
            models.CheckConstraint(
                condition=~models.Q(installer=models.F("publisher")),
                name="accounts_integration_not_self",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.installer.name} sees {self.publisher.name}"
