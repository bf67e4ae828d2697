"""List field map (filter, orderBy) for `/api/templates`."""

from sverm.api.listing import DATETIME, ENUM, FieldSpec, ListSpec
from swarms.engine.schema import TOPOLOGIES

TEMPLATE_LIST = ListSpec(
    name="Template",
    fields={
        "id": FieldSpec("id"),
        # Null for built-ins: `{"workspaceId": {"isNull": true}}` lists only them.
        "workspaceId": FieldSpec("workspace_id", nullable=True),
        "name": FieldSpec("name"),
        "topology": FieldSpec("topology", ENUM, choices=TOPOLOGIES),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
)
