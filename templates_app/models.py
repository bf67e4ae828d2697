"""Swarm templates: a named, validated definition, built in (no workspace) or a workspace's."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.tenancy import ScopedQuerySet
from swarms.engine.topologies import TOPOLOGY_NAMES

# Readable slugs, one namespace for built-ins and workspace templates: `research-swarm-v1`.
TEMPLATE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$"
TEMPLATE_ID_HELP = (
    "3-100 lowercase letters, digits and hyphens, starting and ending with a letter or digit, "
    "e.g. `research-swarm-v1`."
)
validate_template_id = RegexValidator(TEMPLATE_ID_PATTERN, f"Must be {TEMPLATE_ID_HELP}")


def topology_choices() -> list[tuple[str, str]]:
    """The engine's topologies. A callable, so migrations name it instead of copying the list:
    adding a topology to the engine needs no migration here."""
    return [(name, name.capitalize()) for name in TOPOLOGY_NAMES]


class SwarmTemplate(models.Model):
    id = models.CharField(
        primary_key=True,
        max_length=100,
        validators=[validate_template_id],
        help_text=TEMPLATE_ID_HELP,
    )
    workspace = models.ForeignKey(
        Workspace,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="templates",
        help_text="Empty for built-in templates, which every workspace can read.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Copied from the definition so lists can filter and order by it.
    topology = models.CharField(max_length=20, choices=topology_choices)
    definition = models.JSONField(help_text="The validated definition, without name/description.")
    yaml = models.TextField(
        help_text="The YAML source as written (a YAML dump for definitions sent as JSON)."
    )
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()
    workspace_lookup = "workspace"
    shared_when_unowned = True  # built-ins: readable by everyone, writable by no one

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="template_ws_created"),
            models.Index(fields=["workspace", "topology"], name="template_ws_topology"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def built_in(self) -> bool:
        return self.workspace_id is None
