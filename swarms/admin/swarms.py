"""Swarms in the admin: versions inline (read-only), soft delete, restore and purge as actions,
links to their workspace and runs."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin, ViewOnlyAdminMixin
from sverm.admin_format import filtered_changelist
from sverm.api.errors import ApplicationError
from swarms import services
from swarms.admin.pages import ADMIN_CSS
from swarms.models import (
    Swarm,
    SwarmVersion,
)


class SwarmVersionInline(admin.TabularInline):
    model = SwarmVersion
    fk_name = "swarm"
    extra = 0
    can_delete = False
    fields = ["number", "id", "model_names", "instructions", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeletedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("deleted", "Soft-deleted")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.alive()
        if self.value() == "deleted":
            return queryset.deleted()
        return queryset


class SwarmForm(forms.ModelForm):
    class Meta:
        model = Swarm
        fields = ["name", "description", "default_version", "runtime_user", "retention_tier"]

    def clean_runtime_user(self):
        user = self.cleaned_data.get("runtime_user")
        if (
            user is not None
            and not user.memberships.filter(workspace_id=self.instance.workspace_id).exists()
        ):
            raise forms.ValidationError("Not a member of the swarm's workspace.")
        return user


@admin.register(Swarm)
class SwarmAdmin(AuditedModelAdmin):
    audit_split_fields = {"default_version_id": "default_version_switch"}  # as the API
    form = SwarmForm
    list_display = ["name", "id", "workspace", "retention_tier", "state", "default_version",
                    "created_by", "created_at"]  # fmt: skip
    list_filter = [DeletedFilter, "retention_tier", "workspace", "created_at"]
    search_fields = ["name", "id", "workspace__name", "workspace__id"]
    list_select_related = ["workspace", "default_version", "created_by"]

    class Media:
        css = ADMIN_CSS

    readonly_fields = ["id", "links", "created_by", "deleted_at", "created_at", "updated_at"]
    fields = ["id", "links", "name", "description", "default_version", "runtime_user",
              "retention_tier", "created_by", "deleted_at", "created_at", "updated_at"]  # fmt: skip
    autocomplete_fields = ["runtime_user"]
    inlines = [SwarmVersionInline]
    actions = ["soft_delete", "restore", "purge"]

    def has_add_permission(self, request):
        return False  # swarms are created through the API, which also makes version 1

    def has_delete_permission(self, request, obj=None):
        return False  # the soft-delete and purge actions replace Django's delete

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "default_version":
            swarm_id = unquote(request.resolver_match.kwargs.get("object_id") or "")
            kwargs["queryset"] = SwarmVersion.objects.filter(swarm_id=swarm_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="State")
    def state(self, swarm):
        return "deleted" if swarm.deleted_at else "active"

    @admin.display(description="Workspace and runs")
    def links(self, swarm):
        workspace = reverse("admin:accounts_workspace_change", args=[quote(swarm.workspace_id)])
        runs = filtered_changelist("admin:swarms_run_changelist", swarm__id__exact=swarm.pk)
        return format_html(
            '<ul class="workspace-links"><li>Workspace <a href="{}">{}</a> <code>{}</code></li>'
            '<li><a href="{}">Its runs ({})</a></li></ul>',
            workspace, swarm.workspace.name, swarm.workspace_id, runs, swarm.runs.count(),
        )  # fmt: skip

    def _apply(self, request, queryset, service, verb):
        done, refused = 0, []
        for swarm in queryset:
            try:
                service(swarm=swarm)
                done += 1
            except ApplicationError as exc:
                refused.append(exc.message)
        if done:
            self.message_user(request, f"{verb} {done} swarm(s).", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Soft-delete selected swarms")
    def soft_delete(self, request, queryset):
        self._apply(request, queryset, services.swarm_soft_delete, "Soft-deleted")

    @admin.action(description="Restore selected swarms")
    def restore(self, request, queryset):
        self._apply(request, queryset, services.swarm_restore, "Restored")

    @admin.action(description="Purge selected soft-deleted swarms (permanent)")
    def purge(self, request, queryset):
        self._apply(request, queryset, services.swarm_purge, "Purged")


@admin.register(SwarmVersion)
class SwarmVersionAdmin(ViewOnlyAdminMixin, AuditedModelAdmin):
    list_display = ["swarm", "number", "id", "created_by", "created_at"]
    search_fields = ["id", "swarm__id", "swarm__name"]
    list_select_related = ["swarm", "created_by"]
    readonly_fields = ["id", "swarm", "number", "definition", "instructions", "model_names",
                       "created_by", "created_at"]  # fmt: skip
