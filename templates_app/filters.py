"""List field map (filter, orderBy) for `/api/templates`."""

from sverm.api.listing import DATETIME, ENUM, FieldSpec, ListSpec
from swarms.engine.topologies import TOPOLOGY_NAMES

TEMPLATE_LIST = ListSpec(
    name="Template",
    fields={
        "id": FieldSpec("id"),
        # Null for built-ins: `{"workspaceId": {"isNull": true}}` lists only them.
        "workspaceId": FieldSpec("workspace_id", nullable=True),
        "name": FieldSpec("name"),
        "topology": FieldSpec("topology", ENUM, choices=TOPOLOGY_NAMES),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
)
