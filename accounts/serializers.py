"""Wire shapes for accounts. `/api` bodies are camelCase, as in seed 003."""

from datetime import datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import (
    ApiKey,
    ApiKeyStatus,
    Integration,
    Membership,
    Plan,
    Workspace,
    validate_login_email,
)
from accounts.roles import Role
from accounts.services import API_KEY_DEFAULT_OVERLAP, API_KEY_MAX_LIFETIME, API_KEY_MAX_OVERLAP
from sverm.api.listing import as_utc
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
    status = serializers.SerializerMethodField(
        help_text="`active` while it authenticates; `expired` from `expiresAt` on; `revoked`."
    )
    createdBy = serializers.CharField(source="created_by_id")
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(
        source="last_used_at", allow_null=True,
        help_text="When it last authenticated a request (kept to within a minute).",
    )  # fmt: skip
    expiresAt = serializers.DateTimeField(
        source="expires_at", allow_null=True,
        help_text="Refused from this time on; null: never expires. A rotated key's is the end of "
        "its overlap.",
    )  # fmt: skip
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)
    replaces = serializers.CharField(
        source="replaces_id", allow_null=True, help_text="The key this one was rotated from."
    )
    replacedBy = serializers.SerializerMethodField(
        help_text="The key this one was rotated to; null until it is rotated."
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "workspaceId",
            "name",
            "role",
            "prefix",
            "status",
            "createdBy",
            "createdAt",
            "lastUsedAt",
            "expiresAt",
            "revokedAt",
            "replaces",
            "replacedBy",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ApiKeyStatus.choices))
    def get_status(self, api_key: ApiKey) -> str:
        return api_key.status_at()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_replacedBy(self, api_key: ApiKey) -> str | None:
        # Lists and reads annotate it (selectors.api_keys_for_listing); a key just made
        # has none.
        if hasattr(api_key, "replacement_id"):
            return api_key.replacement_id
        return ApiKey.objects.filter(replaces=api_key).values_list("pk", flat=True).first()


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(
        help_text="The secret key. Shown only in this response; store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, api_key: ApiKey) -> str:
        return self.context["raw_key"]


class FutureDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time with its UTC offset (a naive one would be read in some zone the
    client did not choose), after now and at most `max_ahead` from now; kept in UTC."""

    default_error_messages = {
        "naive": "Must include a timezone (`Z` or an offset such as `+02:00`).",
        "past": "Must be in the future.",
        "too_far": "Must be at most {days} days from now.",
    }

    def __init__(self, *, max_ahead: timedelta, **kwargs):
        self.max_ahead = max_ahead
        super().__init__(**kwargs)

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)

    def to_internal_value(self, value) -> datetime:
        parsed = super().to_internal_value(value)
        try:
            parsed = as_utc(parsed)
        except (ValueError, OverflowError):
            self.fail("overflow")
        now = timezone.now()
        if parsed <= now:
            self.fail("past")
        if parsed > now + self.max_ahead:
            self.fail("too_far", days=self.max_ahead.days)
        return parsed


def _expires_at_field() -> FutureDateTimeField:
    return FutureDateTimeField(
        max_ahead=API_KEY_MAX_LIFETIME, required=False, allow_null=True,
        help_text="When the key stops working: an ISO 8601 date-time with a timezone, in the "
        f"future, at most {API_KEY_MAX_LIFETIME.days} days ahead. Omitted or null: never.",
    )  # fmt: skip


class ApiKeyCreateSerializer(InputSerializer):
    workspaceId = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.OPERATOR)
    expiresAt = _expires_at_field()


class ApiKeyRotateSerializer(InputSerializer):
    overlapUntil = FutureDateTimeField(
        max_ahead=API_KEY_MAX_OVERLAP, required=False,
        help_text="Until when the old key keeps working beside the new one: an ISO 8601 "
        f"date-time with a timezone, within {API_KEY_MAX_OVERLAP.days} days. Give this or "
        "`overlapSeconds`, not both.",
    )  # fmt: skip
    overlapSeconds = serializers.IntegerField(
        min_value=0, max_value=int(API_KEY_MAX_OVERLAP.total_seconds()), required=False,
        help_text="How long the old key keeps working beside the new one (default "
        f"{int(API_KEY_DEFAULT_OVERLAP.total_seconds())}, a day; 0 stops it at once, e.g. "
        "after a leak).",
    )  # fmt: skip
    expiresAt = _expires_at_field()

    def validate(self, attrs: dict) -> dict:
        if "overlapUntil" in attrs and "overlapSeconds" in attrs:
            message = "Give overlapUntil or overlapSeconds, not both."
            raise serializers.ValidationError(
                {"overlapUntil": [message], "overlapSeconds": [message]}
            )
        return attrs

    def overlap_until(self) -> datetime:
        """The end of the old key's overlap, from the validated body."""
        values = self.validated_data
        if "overlapUntil" in values:
            return values["overlapUntil"]
        seconds = values.get("overlapSeconds", int(API_KEY_DEFAULT_OVERLAP.total_seconds()))
        return timezone.now() + timedelta(seconds=seconds)


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
