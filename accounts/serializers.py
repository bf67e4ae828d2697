"""Wire shapes for accounts. `/api` bodies are camelCase, as in seed 003."""

from rest_framework import serializers

from accounts.models import (
    ApiKey,
    Integration,
    Membership,
    Plan,
    Workspace,
    validate_login_email,
)
from accounts.roles import Role
from sverm.api.serializers import InputSerializer


class LoginInputSerializer(InputSerializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class LoginOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="JWT access token (24 h by default).")
    refresh = serializers.CharField(help_text="Refresh token for POST /api/auth/refresh.")


class RefreshInputSerializer(InputSerializer):
    refresh = serializers.CharField(max_length=4096)


class RefreshOutputSerializer(serializers.Serializer):
    token = serializers.CharField()


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="The caller's role in this workspace.")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Workspace
        fields = ["id", "name", "plan", "role", "createdAt", "updatedAt"]
        read_only_fields = fields

    def get_role(self, workspace: Workspace) -> str | None:
        caller = self.context.get("caller")
        return caller.role_in(workspace.pk) if caller else None


class WorkspaceCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=200)
    plan = serializers.ChoiceField(
        choices=Plan.choices, default=Plan.FREE,
        help_text="Defaults to `free`; only platform staff may choose another plan (403).",
    )  # fmt: skip


class WorkspaceUpdateSerializer(InputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    plan = serializers.ChoiceField(
        choices=Plan.choices, required=False,
        help_text="Only platform staff may change it (403); the current plan is accepted.",
    )  # fmt: skip


class MemberSerializer(serializers.ModelSerializer):
    userId = serializers.CharField(source="user_id")
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    workspaceId = serializers.CharField(source="workspace_id")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Membership
        fields = ["userId", "email", "name", "workspaceId", "role", "createdAt", "updatedAt"]
        read_only_fields = fields


class MemberAddSerializer(InputSerializer):
    email = serializers.CharField(max_length=254, validators=[validate_login_email])
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberUpdateSerializer(InputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    prefix = serializers.CharField(help_text="The key's first characters, for recognising it.")
    createdBy = serializers.CharField(source="created_by_id")
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "workspaceId",
            "name",
            "role",
            "prefix",
            "createdBy",
            "createdAt",
            "lastUsedAt",
            "revokedAt",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(
        help_text="The secret key. Shown only in this response; store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, api_key: ApiKey) -> str:
        return self.context["raw_key"]


class ApiKeyCreateSerializer(InputSerializer):
    workspaceId = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.OPERATOR)


class IntegrationSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="installer_id")
    publisherWorkspaceId = serializers.CharField(source="publisher_id")
    installedBy = serializers.CharField(source="installed_by_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Integration
        fields = ["id", "workspaceId", "publisherWorkspaceId", "installedBy", "createdAt"]
        read_only_fields = fields


class IntegrationCreateSerializer(InputSerializer):
    publisherWorkspaceId = serializers.CharField(
        max_length=32, help_text="The workspace whose swarms become visible."
    )
