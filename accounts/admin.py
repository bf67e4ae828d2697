"""Admin for users, workspaces, memberships, API keys and plan limits, for platform operators."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.contrib.auth.forms import UserCreationForm as BaseUserCreationForm
from django.contrib.auth.models import Group

from accounts import services
from accounts.models import ApiKey, Integration, Membership, PlanLimits, User, Workspace
from accounts.selectors import plan_limits_forget
from audit.admin import AuditedModelAdmin


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
    list_display = ["name", "id", "plan", "member_count", "allowed_tools", "created_at"]
    list_filter = ["plan", "created_at"]
    search_fields = ["name", "id", "memberships__user__email"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]
    # The Count annotation makes a GROUP BY, which drops Meta.ordering; autocomplete paginates.
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        from django.db.models import Count

        return (
            super()
            .get_queryset(request)
            .annotate(_member_count=Count("memberships", distinct=True))
        )

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, workspace):
        return workspace._member_count


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


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    list_display = ["name", "masked", "workspace", "role", "status", "last_used_at", "created_at"]
    list_filter = ["role", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "id", "workspace__name", "created_by__email"]
    list_select_related = ["workspace"]
    readonly_fields = [
        "id",
        "masked",
        "workspace",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    fields = [
        "id",
        "name",
        "masked",
        "workspace",
        "role",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke_keys"]
    autocomplete_fields = ["workspace"]

    @admin.display(description="Key")
    def masked(self, api_key):
        return f"{api_key.prefix}…"

    @admin.display(description="Status", boolean=False)
    def status(self, api_key):
        return "active" if api_key.revoked_at is None else "revoked"

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
