"""Admin for users, workspaces, memberships, API keys and plan limits, for platform operators.
A workspace's page links to its runs, swarms, keys, members and usage report (other apps' admin
pages, by URL name: this app imports none of them)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.contrib.auth.forms import UserCreationForm as BaseUserCreationForm
from django.contrib.auth.models import Group
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts import services
from accounts.models import (
    ApiKey,
    ApiKeyStatus,
    Integration,
    Membership,
    PlanLimits,
    User,
    Workspace,
)
from accounts.selectors import plan_limits_forget
from audit.admin import AuditedModelAdmin
from sverm.admin_format import (
    EMPTY,
    exact_time,
    filtered_changelist,
    time_ago,
    usage_report_url,
)

ADMIN_CSS = {"all": ["sverm/admin.css"]}


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserChangeForm(BaseUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(User)
class UserAdmin(AuditedModelAdmin, BaseUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "name", "id", "is_active", "is_staff", "last_login", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "name", "id"]
    readonly_fields = ["id", "last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),
    )


# Django's own, with what operators change in it recorded like every other admin change.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedModelAdmin, BaseGroupAdmin):
    pass


@admin.register(Workspace)
class WorkspaceAdmin(AuditedModelAdmin):
    audit_split_fields = {"plan": "plan_change"}  # as the API records it
    list_display = ["name", "id", "plan", "member_count", "allowed_tools", "open_links",
                    "created_at"]  # fmt: skip
    list_filter = ["plan", "created_at"]
    search_fields = ["name", "id", "memberships__user__email"]
    fields = ["id", "name", "plan", "allowed_tools", "links", "created_at", "updated_at"]
    readonly_fields = ["id", "links", "created_at", "updated_at"]
    inlines = [MembershipInline]
    # The Count annotation makes a GROUP BY, which drops Meta.ordering; autocomplete paginates.
    ordering = ["-created_at", "-id"]

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_member_count=Count("memberships", distinct=True))
        )

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, workspace):
        return workspace._member_count

    @admin.display(description="Open")
    def open_links(self, workspace):
        by_workspace = {"workspace__id__exact": workspace.pk}
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            [
                (filtered_changelist("admin:swarms_run_changelist", **by_workspace), "runs"),
                (filtered_changelist("admin:accounts_apikey_changelist", **by_workspace), "keys"),
                (usage_report_url(workspace.pk), "usage"),
            ],
        )

    @admin.display(description="Its pages")
    def links(self, workspace):
        if workspace is None or workspace.pk is None:
            return EMPTY
        by_workspace = {"workspace__id__exact": workspace.pk}
        keys = workspace.api_keys.aggregate(
            all=Count("pk"), active=Count("pk", filter=Q(revoked_at__isnull=True))
        )
        rows = [
            (filtered_changelist("admin:swarms_run_changelist", **by_workspace),
             f"Runs ({workspace.runs.count()})"),
            (filtered_changelist("admin:swarms_swarm_changelist", **by_workspace),
             f"Swarms ({workspace.swarms.count()})"),
            (filtered_changelist("admin:accounts_apikey_changelist", **by_workspace),
             f"API keys ({keys['all']}, {keys['active']} not revoked)"),
            (filtered_changelist("admin:accounts_membership_changelist", **by_workspace),
             f"Members ({workspace.memberships.count()})"),
            (usage_report_url(workspace.pk), f"Usage report, {timezone.now():%B %Y}"),
        ]  # fmt: skip
        return format_html(
            '<ul class="workspace-links">{}</ul>',
            format_html_join("", '<li><a href="{}">{}</a></li>', rows),
        )


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    # Named as the API names them: member.add, member.role_change, member.remove.
    audit_target_type = "member"
    audit_verbs = {"create": "add", "delete": "remove"}
    audit_split_fields = {"role": "role_change"}
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "workspace__name", "workspace__id"]
    autocomplete_fields = ["user", "workspace"]
    list_select_related = ["user", "workspace"]


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["workspace", "name", "role"]


class KeyStatusFilter(admin.SimpleListFilter):
    """Active (usable now), expired (past its `expires_at`) or revoked: ApiKeyQuerySet's rule."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return ApiKeyStatus.choices

    def queryset(self, request, queryset):
        if self.value() in ApiKeyStatus.values:
            return queryset.with_status().filter(status=self.value())
        return queryset


def key_link(api_key: ApiKey | None) -> str:
    if api_key is None:
        return EMPTY
    url = reverse("admin:accounts_apikey_change", args=[quote(api_key.pk)])
    return format_html('<a href="{}">{}</a> ({})', url, str(api_key), api_key.status_at())


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    """Keys with when they expire, were last used and were revoked, and the rotation chain
    (`replaces` / replaced by). Made here or through the API (which also rotates them);
    revoked with the action, never deleted."""

    list_display = ["name_short", "masked", "workspace_name", "role", "status", "expires",
                    "last_used", "revoked", "created"]  # fmt: skip
    list_display_links = ["name_short"]
    list_filter = [KeyStatusFilter, "role", ("expires_at", admin.EmptyFieldListFilter),
                   "created_at"]  # fmt: skip
    search_fields = ["name", "prefix", "id", "workspace__name", "created_by__email"]
    list_select_related = ["workspace"]
    fields = ["id", "name", "masked", "workspace_link", "role", "status", "created_by", "created",
              "last_used", "expires", "revoked", "replaces_link", "replaced_by_links"]  # fmt: skip
    readonly_fields = [name for name in fields if name not in ("name", "role")]
    actions = ["revoke_keys"]
    autocomplete_fields = ["workspace"]

    class Media:
        css = ADMIN_CSS

    @admin.display(description="Name", ordering="name")
    def name_short(self, api_key):
        return format_html('<span class="key-name" title="{}">{}</span>', api_key.name,
                           api_key.name)  # fmt: skip

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, api_key):
        return format_html('<span class="key-name" title="{}">{}</span>', api_key.workspace_id,
                           api_key.workspace.name)  # fmt: skip

    def changelist_view(self, request, extra_context=None):
        # The columns need the width; the app sidebar would squeeze them off a 1366 px screen.
        extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status")
    def status(self, api_key):
        status = api_key.status_at()
        return format_html('<span class="status-badge status-{}">{}</span>', status, status)

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, api_key):
        if api_key.expires_at is None:
            return "never"
        return format_html('<span title="{}">{}</span>', exact_time(api_key.expires_at),
                           time_ago(api_key.expires_at))  # fmt: skip

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used(self, api_key):
        return time_ago(api_key.last_used_at) if api_key.last_used_at else "never"

    @admin.display(description="Revoked", ordering="revoked_at")
    def revoked(self, api_key):
        return time_ago(api_key.revoked_at)

    @admin.display(description="Created", ordering="created_at")
    def created(self, api_key):
        return format_html('<span title="{}">{}</span>', exact_time(api_key.created_at),
                           f"{timezone.localtime(api_key.created_at):%Y-%m-%d}")  # fmt: skip

    @admin.display(description="Workspace")
    def workspace_link(self, api_key):
        url = reverse("admin:accounts_workspace_change", args=[quote(api_key.workspace_id)])
        return format_html('<a href="{}">{}</a> <code>{}</code>', url, api_key.workspace.name,
                           api_key.workspace_id)  # fmt: skip

    @admin.display(description="Replaces (rotated from)")
    def replaces_link(self, api_key):
        return key_link(api_key.replaces)

    @admin.display(description="Replaced by (rotated to)")
    def replaced_by_links(self, api_key):
        newer = list(api_key.replaced_by.order_by("created_at"))
        if not newer:
            return EMPTY
        return format_html_join(", ", "{}", ((key_link(key),) for key in newer))

    @admin.display(description="Key")
    def masked(self, api_key):
        return f"{api_key.prefix}…"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ApiKeyAddForm.Meta.fields
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = services.api_key_create(
            workspace=form.cleaned_data["workspace"],
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            created_by=request.user,
        )
        obj.pk = api_key.pk
        obj.__dict__.update(api_key.__dict__)
        messages.warning(request, f"New API key (shown only now, copy it): {raw_key}")

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        # Keys are revoked, not deleted, so their history stays readable.
        return False


@admin.register(Integration)
class IntegrationAdmin(AuditedModelAdmin):
    audit_verbs = {"create": "install", "delete": "remove"}  # as the API records them
    list_display = ["id", "installer", "publisher", "installed_by", "created_at"]
    search_fields = ["id", "installer__name", "installer__id", "publisher__name", "publisher__id"]
    list_select_related = ["installer", "publisher", "installed_by"]
    autocomplete_fields = ["installer", "publisher"]
    readonly_fields = ["id", "installed_by", "created_at"]
    list_filter = ["created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.installed_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(PlanLimits)
class PlanLimitsAdmin(AuditedModelAdmin):
    """One row per plan, edited in place; a change applies to requests and runs at once."""

    list_display = ["plan", "requests_per_minute", "concurrent_runs", "runs_per_day",
                    "batches_per_hour", "audit_retention_days"]  # fmt: skip
    list_editable = ["requests_per_minute", "concurrent_runs", "runs_per_day",
                     "batches_per_hour", "audit_retention_days"]  # fmt: skip
    list_display_links = ["plan"]

    def get_readonly_fields(self, request, obj=None):
        return ["plan"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        plan_limits_forget(plan=obj.pk)

    def has_delete_permission(self, request, obj=None):
        # Every plan keeps a row; a missing one would silently fall back to seed 002's defaults.
        return False
