"""The audit trail in the admin: read-only (no add, change or delete, for anyone), and the mixin
every other ModelAdmin uses so what operators change there is recorded too (as the `admin` actor,
the middleware names them), in the admin's own transaction."""

import json
import re

from django.contrib import admin
from django.db import models, router, transaction
from django.utils.html import format_html

from audit.models import AuditEvent
from audit.services import audit_capture, audit_diff, audit_record

# Values of such fields never reach the trail; that they changed does.
SENSITIVE_FIELD = re.compile(r"password|secret|hashed|sealed|encrypted|token", re.IGNORECASE)
REDACTED = "<redacted>"


def snake_name(model: type[models.Model]) -> str:
    """`ApiKey` -> `api_key`: the target type of a model's events."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", model.__name__).lower()


def workspace_of(obj: models.Model) -> str | None:
    """The workspace id of a workspace-owned row (its model's `workspace_lookup`, the path the
    tenancy scoping follows), None for a platform-wide one (users, plans, prices)."""
    lookup = getattr(type(obj), "workspace_lookup", None)
    if lookup is None:
        return None
    *path, last = lookup.split("__")
    for name in path:
        obj = getattr(obj, name)
        if obj is None:
            return None
    if last in ("id", "pk"):
        return obj.pk
    return getattr(obj, obj._meta.get_field(last).attname)


def audit_values(obj: models.Model) -> dict:
    """What the trail keeps of a row: its concrete fields by attribute name (`workspace_id`),
    secrets redacted, timestamps that change on every save (`auto_now`) left out."""
    values = {}
    for field in obj._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            continue
        value = getattr(obj, field.attname)
        if SENSITIVE_FIELD.search(field.name) and value not in (None, ""):
            value = REDACTED
        values[field.attname] = value
    return values


def related_values(obj: models.Model) -> dict:
    """A row's many-to-many choices (a user's groups and permissions) as sorted ids; relations
    through a model of their own (a workspace's memberships) are that model's rows, recorded as
    such."""
    return {
        field.name: sorted(str(pk) for pk in getattr(obj, field.name).values_list("pk", flat=True))
        for field in obj._meta.many_to_many
        if field.remote_field.through._meta.auto_created
    }


def stored_values(obj: models.Model) -> dict | None:
    """`audit_values` of the row as the database holds it now (before a save applies)."""
    if obj.pk is None:
        return None
    stored = type(obj)._base_manager.filter(pk=obj.pk).first()
    return None if stored is None else audit_values(stored)


class AuditNaming:
    """How a model's admin changes are named: `<target_type>.<verb>`, with `verbs` renaming
    create/update/delete (a member is `added`), and `split_fields` giving a field its own event
    (a workspace's `plan` changes as `workspace.plan_change`)."""

    def __init__(self, target_type: str, verbs: dict | None = None, split_fields=None):
        self.target_type = target_type
        self.verbs = {"create": "create", "update": "update", "delete": "delete", **(verbs or {})}
        self.split_fields = dict(split_fields or {})

    def action(self, verb: str) -> str:
        return f"{self.target_type}.{self.verbs.get(verb, verb)}"

    def saved(self, obj: models.Model, before: dict | None) -> None:
        after = audit_values(obj)
        workspace_id = workspace_of(obj)
        if before is None:
            audit_record(action=self.action("create"), workspace_id=workspace_id,
                         target_type=self.target_type, target_id=obj.pk, after=after)  # fmt: skip
            return
        old, new = audit_diff(before, after)
        for field, verb in self.split_fields.items():
            if field in new:
                audit_record(
                    action=self.action(verb), workspace_id=workspace_id,
                    target_type=self.target_type, target_id=obj.pk,
                    before={field: old.pop(field)}, after={field: new.pop(field)},
                )  # fmt: skip
        if new:
            audit_record(action=self.action("update"), workspace_id=workspace_id,
                         target_type=self.target_type, target_id=obj.pk, before=old,
                         after=new)  # fmt: skip

    def deleted(self, obj: models.Model, before: dict | None, pk) -> None:
        audit_record(action=self.action("delete"), workspace_id=workspace_of(obj),
                     target_type=self.target_type, target_id=pk,
                     before=before or audit_values(obj))  # fmt: skip


def _covers(events: list[AuditEvent], pk) -> bool:
    """Whether a service called by the admin recorded the change of row `pk` itself."""
    return any(event.target_id == str(pk) for event in events)


class ViewOnlyAdminMixin:
    """For an admin (or inline) that shows and never adds, changes or deletes, superusers
    included: history, ledgers, what the engine writes."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose adds, changes (forms, list_editable, inlines) and deletions (one or
    selected) are recorded with their values before and after, inside the admin's transaction.
    What an admin action or save does through a service is recorded by that service (as the
    `admin` actor), and not twice. Set `audit_target_type`, `audit_verbs`, `audit_split_fields`
    to name the events as the API's are named."""

    audit_target_type: str | None = None
    audit_verbs: dict[str, str] = {}
    audit_split_fields: dict[str, str] = {}

    def audit_naming(self) -> AuditNaming:
        return AuditNaming(
            self.audit_target_type or snake_name(self.model), self.audit_verbs,
            self.audit_split_fields,
        )  # fmt: skip

    def _atomic(self):
        return transaction.atomic(using=router.db_for_write(self.model))

    def save_model(self, request, obj, form, change):
        before = stored_values(obj) if change else None
        with self._atomic(), audit_capture() as recorded:
            super().save_model(request, obj, form, change)
            if not _covers(recorded, obj.pk):
                self.audit_naming().saved(obj, before)

    def save_related(self, request, form, formsets, change):
        # Many-to-many choices (and inlines, through save_formset) are saved after the row.
        before = related_values(form.instance) if change else None
        super().save_related(request, form, formsets, change)
        if before is None:
            return
        old, new = audit_diff(before, related_values(form.instance))
        if new:
            naming = self.audit_naming()
            audit_record(action=naming.action("update"), workspace_id=workspace_of(form.instance),
                         target_type=naming.target_type, target_id=form.instance.pk, before=old,
                         after=new)  # fmt: skip

    def delete_model(self, request, obj):
        pk, before = obj.pk, audit_values(obj)
        with self._atomic(), audit_capture() as recorded:
            super().delete_model(request, obj)
            if not _covers(recorded, pk):
                self.audit_naming().deleted(obj, before, pk)

    def delete_queryset(self, request, queryset):
        with self._atomic():
            naming = self.audit_naming()
            for obj in queryset:
                naming.deleted(obj, audit_values(obj), obj.pk)
            super().delete_queryset(request, queryset)

    def save_formset(self, request, form, formset, change):
        # An inline's rows (a workspace's memberships) are named as their own admin names them.
        owner = self.admin_site._registry.get(formset.model)
        naming = (
            owner.audit_naming()
            if isinstance(owner, AuditedModelAdmin)
            else AuditNaming(snake_name(formset.model))
        )
        before = {
            id(f.instance): (f.instance.pk, stored_values(f.instance))
            for f in formset.initial_forms
        }
        with self._atomic():
            super().save_formset(request, form, formset, change)
            for obj in formset.new_objects:
                naming.saved(obj, None)
            for obj, _fields in formset.changed_objects:
                naming.saved(obj, before.get(id(obj), (None, None))[1])
            for obj in formset.deleted_objects:
                pk, values = before.get(id(obj), (obj.pk, None))
                naming.deleted(obj, values, pk)


def _pretty(value) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="margin:0">{}</pre>', text)


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone, superusers included: events are appended by the code that makes
    each change and removed only by retention."""

    list_display = ["created_at", "action", "actor_type", "actor_label", "workspace_id",
                    "target_type", "target_id", "ip", "correlation_id"]  # fmt: skip
    list_filter = ["actor_type", "target_type", "action", "created_at"]
    search_fields = ["id", "action", "workspace_id", "actor_id", "actor_label", "target_id",
                     "correlation_id", "ip"]  # fmt: skip
    date_hierarchy = "created_at"
    fields = ["id", "created_at", "action", "actor_type", "actor_id", "actor_label",
              "workspace_id", "target_type", "target_id", "changes", "ip",
              "correlation_id"]  # fmt: skip
    readonly_fields = fields
    # The changelist's count walks the table: it is shown without one on big trails.
    show_full_result_count = False

    @admin.display(description="Before → after")
    def changes(self, event: AuditEvent) -> str:
        return format_html(
            '<table><tr><th>Before</th><th>After</th></tr><tr><td style="vertical-align:top">{}'
            '</td><td style="vertical-align:top">{}</td></tr></table>',
            _pretty(event.before),
            _pretty(event.after),
        )
