"""Admin for templates: the YAML is the editable source, re-validated on every save; the parsed
definition is shown read-only. Built-ins come from `templates_app/builtin/` and are refreshed by
every `migrate`, so the admin shows them read-only and never deletes them."""

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin
from sverm.api.errors import InvalidRequest
from templates_app import services
from templates_app.models import SwarmTemplate


class BuiltInFilter(admin.SimpleListFilter):
    title = "built in"
    parameter_name = "built_in"

    def lookups(self, request, model_admin):
        return [("yes", "Built in"), ("no", "Workspace")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(workspace__isnull=True)
        if self.value() == "no":
            return queryset.filter(workspace__isnull=False)
        return queryset


class SwarmTemplateForm(forms.ModelForm):
    class Meta:
        model = SwarmTemplate
        fields = ["id", "workspace", "name", "description", "yaml"]
        widgets = {"yaml": forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fields = self.fields
        if "workspace" in fields:
            # Built-ins ship as files; templates made here belong to a workspace.
            fields["workspace"].required = True
        if "yaml" in fields:  # a built-in's view-only page has no editable fields
            fields["yaml"].strip = False

    def clean_yaml(self):
        # Browsers send textarea lines ending in CRLF.
        return self.cleaned_data["yaml"].replace("\r\n", "\n")

    def clean(self):
        cleaned = super().clean()
        if "yaml" not in cleaned:
            return cleaned
        template_id = cleaned.get("id")
        if self.instance._state.adding and template_id in services.builtin_sources():
            self.add_error("id", "This id is reserved for a built-in template.")
        try:
            parsed = services.template_source_check(
                source=cleaned["yaml"],
                name=cleaned.get("name"),
                description=cleaned.get("description") or None,
            )
        except InvalidRequest as exc:
            details = [f"{e['field']}: {e['detail']}" for e in exc.field_errors] or [exc.message]
            self.add_error("yaml", details)
            return cleaned
        if not cleaned.get("description") and "description" in parsed.metadata:
            cleaned["description"] = parsed.metadata["description"]
        self.instance.definition = parsed.definition
        self.instance.topology = parsed.definition["topology"]
        return cleaned


@admin.register(SwarmTemplate)
class SwarmTemplateAdmin(AuditedModelAdmin):
    audit_target_type = "template"  # as the API records it
    form = SwarmTemplateForm
    list_display = ["id", "name", "topology", "owner", "updated_at"]
    list_filter = ["topology", BuiltInFilter]
    search_fields = ["id", "name", "description", "workspace__name", "workspace__id"]
    list_select_related = ["workspace"]
    ordering = ["id"]
    readonly_fields = ["topology", "definition_pretty", "created_by", "created_at", "updated_at"]
    autocomplete_fields = ["workspace"]

    def get_fields(self, request, obj=None):
        fields = ["id", "workspace", "name", "description", "yaml", *self.readonly_fields]
        return fields if obj is not None else ["id", "workspace", "name", "description", "yaml"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # The id is the primary key: changing it would copy the row, not rename it.
        return ["id", "workspace", *self.readonly_fields]

    @admin.display(description="Workspace", ordering="workspace__name")
    def owner(self, template: SwarmTemplate) -> str:
        return "built in" if template.built_in else str(template.workspace)

    @admin.display(description="Definition (parsed)")
    def definition_pretty(self, template: SwarmTemplate) -> str:
        pretty = json.dumps(template.definition, indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", pretty)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.built_in:
            return False  # edit the file in templates_app/builtin/ instead
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.built_in:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
