"""Swarms (a workspace's named, versioned agent team) and their immutable versions."""

from django.db import models
from django.utils import timezone

from accounts.models import User, Workspace
from sverm.api.ids import PrefixedIdField
from sverm.api.scoping import ScopedQuerySet
from sverm.softdelete import SoftDeleteModel, SoftDeleteQuerySet


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
            models.Index(fields=["workspace", "name"], name="swarm_ws_name"),
            models.Index(fields=["workspace", "updated_at"], name="swarm_ws_updated"),
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
