"""MCP servers a workspace registers as tool sources, with their credentials sealed and the
tools they offered when last asked."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.tenancy import ScopedQuerySet
from sverm.api.ids import PrefixedIdField

# A server's name prefixes its tools' names (`<server>__<tool>`), which models see.
SERVER_NAME = r"^[a-z][a-z0-9_]{0,29}$"


class McpServer(models.Model):
    """An MCP server reached over the streamable HTTP transport. `headers_sealed` holds the
    headers sent with every request (an `Authorization` bearer token, an API key header),
    Fernet-sealed (sverm/sealed.py) and never shown back; `tools` is what `tools/list` answered
    at `tools_fetched_at` ([{name, description, input_schema}])."""

    id = PrefixedIdField(prefix="mcp")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="mcp_servers")
    name = models.CharField(
        max_length=30,
        validators=[RegexValidator(SERVER_NAME, "1-30 lowercase letters, digits or '_'.")],
        help_text="Prefixes its tools' names: tool `search` of server `docs` is `docs__search`.",
    )
    url = models.URLField(max_length=2000, help_text="Its streamable HTTP endpoint (…/mcp).")
    headers_sealed = models.TextField(blank=True, default="")
    header_names = models.JSONField(
        default=list, blank=True, help_text="The names of the headers sent (never their values)."
    )
    enabled = models.BooleanField(default=True)
    requires_approval = models.BooleanField(
        default=False, help_text="Every call of its tools waits for an operator's approval."
    )
    price_per_call_usd = models.DecimalField(
        max_digits=12, decimal_places=6, default=0,
        help_text="Charged for each call of its tools, under the run's budget.",
    )  # fmt: skip
    tools = models.JSONField(default=list, blank=True)
    tools_fetched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"

    class Meta:
        verbose_name = "MCP server"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="mcp_server_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"
