"""The audit trail: one append-only row per state-changing action, naming who did what to which
object, with the changed fields' values before and after."""

from django.db import models
from django.utils import timezone

from sverm.api.ids import PrefixedIdField

# PostgreSQL refuses DELETE on the table unless this session setting is on (migration 0002); the
# retention pruner (audit.services.audit_retention_prune) alone sets it, for its transaction.
PRUNE_SETTING = "sverm.audit_prune"


class AuditAppendOnly(Exception):
    """An attempt to change or delete a recorded audit event."""


class ActorType(models.TextChoices):
    USER = "user", "User (JWT)"
    API_KEY = "api_key", "API key"
    SYSTEM = "system", "System"
    ADMIN = "admin", "Admin (Django admin)"


class AuditEventQuerySet(models.QuerySet):
    """Append-only: `update()` and `delete()` refuse; retention pruning goes through
    `audit.services.audit_retention_prune`.

    Also the scoping the workspace-scoped viewsets apply (accounts.tenancy.ScopedQuerySet's
    `for_caller`/`visible_in`/`in_workspace`, which this leaf app cannot import): an event is
    seen from its own workspace only."""

    def update(self, **kwargs):
        raise AuditAppendOnly("Audit events are append-only: they cannot be updated.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditAppendOnly("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise AuditAppendOnly(
            "Audit events are append-only: only retention pruning deletes them "
            "(audit.services.audit_retention_prune)."
        )

    delete.alters_data = True
    delete.queryset_only = True

    def _retention_delete(self) -> int:
        """The pruner's delete (audit.services.audit_retention_prune): nothing else calls it."""
        deleted, _ = models.QuerySet.delete(self)
        return deleted

    def in_workspace(self, workspace_id: str):
        return self.filter(workspace_id=workspace_id)

    def visible_in(self, workspace_ids: list[str] | None, source: str | None = None):
        """Events of `workspace_ids` (None: every workspace, platform-wide ones included);
        no integration makes another workspace's events visible."""
        if source == "integration":
            return self.none()
        if workspace_ids is None:
            return self.all()
        return self.filter(workspace_id__in=workspace_ids)

    def for_caller(self, caller, min_role: str = "viewer"):
        return self.visible_in(caller.workspace_ids(min_role))


class AuditEvent(models.Model):
    """Who (`actor_*`) did `action` (`<resource>.<verb>`) to `target_type`/`target_id` in
    workspace `workspace_id`, from `ip`, in the request `correlation_id`; `before` and `after`
    hold the changed fields only. The workspace and target are plain ids, not foreign keys: an
    event outlives what it describes (a purged swarm, a deleted workspace)."""

    id = PrefixedIdField(prefix="aud")
    # Null (not "") for platform-wide actions, as the API renders an absent id.
    workspace_id = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True, help_text="Empty for platform-wide actions."
    )
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(
        max_length=64, blank=True, default="", help_text="A user's or API key's id."
    )
    actor_label = models.CharField(
        max_length=254, blank=True, default="", help_text="The user's email or the key's name."
    )
    action = models.CharField(max_length=64, help_text="`<resource>.<verb>`, e.g. swarm.update.")
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=200, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    correlation_id = models.CharField(
        max_length=128, blank=True, default="", help_text="The request's X-Request-ID."
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEventQuerySet.as_manager()
    workspace_lookup = "workspace_id"

    class Meta:
        verbose_name = "audit event"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace_id", "created_at", "id"], name="audit_ws_created"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["action", "created_at"], name="audit_action"),
            # Retention (a cut-off per plan) and staff's unscoped list.
            models.Index(fields=["created_at", "id"], name="audit_created"),
        ]

    def __str__(self) -> str:
        actor = self.actor_label or self.actor_type
        return f"{self.action} {self.target_type} {self.target_id} by {actor}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditAppendOnly("Audit events are append-only: they cannot be updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditAppendOnly(
            "Audit events are append-only: only retention pruning deletes them "
            "(audit.services.audit_retention_prune)."
        )
