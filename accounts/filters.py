"""List field maps (filter, orderBy) for the accounts resources."""

from accounts.models import ApiKeyStatus, Plan
from accounts.roles import Role
from sverm.api.listing import DATETIME, ENUM, FieldSpec, ListSpec

USER_LIST = ListSpec(
    name="User",
    fields={
        "id": FieldSpec("id"),
        "email": FieldSpec("email"),
        "name": FieldSpec("name"),
    },
    default_order=(("email", "asc"),),
)

WORKSPACE_LIST = ListSpec(
    name="Workspace",
    fields={
        "id": FieldSpec("id"),
        "name": FieldSpec("name"),
        "plan": FieldSpec("plan", ENUM, choices=tuple(Plan.values)),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
)

MEMBER_LIST = ListSpec(
    name="Member",
    fields={
        "userId": FieldSpec("user_id"),
        "email": FieldSpec("user__email"),
        "name": FieldSpec("user__name"),
        "role": FieldSpec("role", ENUM, choices=tuple(Role.values)),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
    relations={"user": ("user", USER_LIST)},
    id_field="userId",
)

API_KEY_LIST = ListSpec(
    name="ApiKey",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id"),
        "name": FieldSpec("name"),
        "role": FieldSpec("role", ENUM, choices=tuple(Role.values)),
        "prefix": FieldSpec("prefix"),
        "createdBy": FieldSpec("created_by_id"),
        "createdAt": FieldSpec("created_at", DATETIME),
        "lastUsedAt": FieldSpec("last_used_at", DATETIME, nullable=True),
        "revokedAt": FieldSpec("revoked_at", DATETIME, nullable=True),
        "expiresAt": FieldSpec("expires_at", DATETIME, nullable=True),
        # Annotated now by selectors.api_keys_for_listing.
        "status": FieldSpec("status", ENUM, choices=tuple(ApiKeyStatus.values), sortable=False),
        "replaces": FieldSpec("replaces_id", nullable=True),
    },
    relations={"creator": ("created_by", USER_LIST)},
)

INTEGRATION_LIST = ListSpec(
    name="Integration",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("installer_id"),
        "publisherWorkspaceId": FieldSpec("publisher_id"),
        "installedBy": FieldSpec("installed_by_id", nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
    relations={"publisher": ("publisher", WORKSPACE_LIST)},
)
