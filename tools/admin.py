"""MCP servers in the admin: see what each offers and when it was last asked, turn one off or
ask it again. Credentials are set through the API and never shown."""

from django.contrib import admin, messages

from audit.admin import AuditedModelAdmin
from tools import services
from tools.models import McpServer


@admin.register(McpServer)
class McpServerAdmin(AuditedModelAdmin):
    list_display = ["name", "workspace", "url", "enabled", "tool_count", "tools_fetched_at",
                    "last_error"]  # fmt: skip
    list_filter = ["enabled"]
    search_fields = ["name", "url", "workspace__name", "workspace__id"]
    list_select_related = ["workspace"]
    fields = ["workspace", "name", "url", "enabled", "header_names", "tools", "tools_fetched_at",
              "last_error", "created_by", "created_at"]  # fmt: skip
    readonly_fields = ["workspace", "name", "url", "header_names", "tools", "tools_fetched_at",
                       "last_error", "created_by", "created_at"]  # fmt: skip
    actions = ["refresh_tools"]

    def has_add_permission(self, request):
        return False  # registered through the API, where the server is asked for its tools

    @admin.display(description="Tools")
    def tool_count(self, server: McpServer) -> int:
        return len(server.tools)

    @admin.action(description="List the selected servers' tools again")
    def refresh_tools(self, request, queryset):
        for server in queryset:
            server = services.mcp_server_refresh(server=server)
            level = messages.WARNING if server.last_error else messages.SUCCESS
            note = server.last_error or f"{len(server.tools)} tools"
            self.message_user(request, f"{server.name}: {note}", level)
