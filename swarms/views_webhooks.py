"""Webhooks on `/api`: a run's delivery attempts and manual redelivery, the workspace's signing
secret (rotated, shown once), and the endpoint URLs a 410 Gone disabled."""

from datetime import timedelta

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.errors import PROBLEM_CONTENT_TYPE, Conflict
from sverm.api.listing import BOOLEAN, DATETIME, INTEGER, FieldSpec, ListSpec
from sverm.api.schema import ProblemSerializer
from swarms.models import Run, WebhookDelivery, WebhookEndpoint, WebhookSecret
from swarms.serializers_webhooks import (
    WebhookDeliverySerializer,
    WebhookEndpointSerializer,
    WebhookRedeliveryAcceptedSerializer,
    WebhookSecretCreatedSerializer,
    WebhookSecretRotateSerializer,
    WebhookSecretSerializer,
)
from swarms.webhooks import delivery, signing

DELIVERY_LIST = ListSpec(
    name="WebhookDelivery",
    fields={
        "id": FieldSpec("id", INTEGER),
        "messageId": FieldSpec("message_id"),
        "attempt": FieldSpec("attempt", INTEGER),
        "eventType": FieldSpec("event_type"),
        "statusCode": FieldSpec("status_code", INTEGER, nullable=True),
        "success": FieldSpec("success", BOOLEAN),
        "manual": FieldSpec("manual", BOOLEAN),
        "nextAttemptAt": FieldSpec("next_attempt_at", DATETIME, nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
)

ENDPOINT_LIST = ListSpec(
    name="WebhookEndpoint",
    fields={
        "id": FieldSpec("id", INTEGER),
        "url": FieldSpec("url"),
        "disabledAt": FieldSpec("disabled_at", DATETIME, nullable=True),
        "disabledReason": FieldSpec("disabled_reason"),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
)


class WebhookEndpointFilterSet(django_filters.FilterSet):
    # A choice, not a BooleanFilter: that one ignores values it cannot read (`?disabled=maybe`).
    disabled = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_disabled",
        help_text="`true`: only disabled URLs; `false`: only URLs delivered to.",
    )  # fmt: skip

    class Meta:
        model = WebhookEndpoint
        fields: list[str] = []

    def filter_disabled(self, queryset, name, value):
        return queryset.filter(disabled_at__isnull=value == "false")


NOTHING_TO_REDELIVER = "Nothing to redeliver: the run has no webhook URL or is not finished."


@extend_schema(tags=["webhooks"])
class RunWebhookDeliveryViewSet(WorkspaceScopedViewSet):
    """`/api/runs/{run_id}/webhook-deliveries`: every attempt at the run's webhook, and a manual
    redelivery as a POST to the same collection (it adds an attempt to it)."""

    queryset = WebhookDelivery.objects.all()
    serializer_class = WebhookDeliverySerializer
    list_spec = DELIVERY_LIST
    # Like cancelling the run: an operator's action.
    action_roles = {"create": Role.OPERATOR}

    def safely_get_queryset(self, queryset):
        return queryset.filter(run_id=self.kwargs.get("run_id"))

    @extend_schema(summary="A run's webhook delivery attempts (newest first)")
    def list(self, request, run_id=None):
        self.get_scoped(Run.objects.all(), run_id, Role.VIEWER)  # 404, not an empty list
        return self.list_response()

    @extend_schema(
        summary="Redeliver the run's webhook now (its last message, sent even to a disabled URL)",
        request=None,
        responses={
            202: WebhookRedeliveryAcceptedSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description=NOTHING_TO_REDELIVER
            ),
        },
    )
    def create(self, request, run_id=None):
        run = self.get_scoped(Run.objects.all(), run_id)
        try:
            message_id = delivery.webhook_redeliver(run=run)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        body = WebhookRedeliveryAcceptedSerializer({"runId": run.pk, "messageId": message_id})
        return Response(body.data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["webhooks"])
class WebhookSecretViewSet(WorkspaceScopedViewSet):
    """`/api/workspaces/{workspace_id}/webhook-secret`: the one `whsec_` secret that signs the
    workspace's webhooks. GET shows its dates; POST rotates it and shows the new one once."""

    queryset = WebhookSecret.objects.all()
    serializer_class = WebhookSecretSerializer
    workspace_url_kwarg = "workspace_id"
    action_roles = {"create": Role.ADMIN}

    @extend_schema(summary="The workspace's webhook secret: its dates, never the secret")
    def retrieve(self, request, workspace_id=None):
        info = signing.webhook_secret_info(workspace_id=workspace_id)
        return Response(self.get_serializer(info).data)

    @extend_schema(
        summary="Create or rotate the webhook secret; the new one is shown only here (admin)",
        request=WebhookSecretRotateSerializer,
        responses={201: WebhookSecretCreatedSerializer},
    )
    def create(self, request, workspace_id=None):
        data = WebhookSecretRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grace = timedelta(seconds=data.validated_data["gracePeriodSeconds"])
        secret, row = signing.webhook_secret_issue(workspace_id=workspace_id, grace=grace)
        info = signing.webhook_secret_info(workspace_id=workspace_id, row=row)
        body = {**WebhookSecretSerializer(info).data, "secret": secret}
        # The secret must not linger in any cache between here and the caller.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


@extend_schema(tags=["webhooks"])
class WebhookEndpointViewSet(WorkspaceScopedViewSet):
    """`/api/workspaces/{workspace_id}/webhook-endpoints`: the delivery state of the URLs the
    workspace's runs post to; a URL that answered 410 Gone is disabled until re-enabled."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    filterset_class = WebhookEndpointFilterSet
    list_spec = ENDPOINT_LIST
    workspace_url_kwarg = "workspace_id"
    lookup_url_kwarg = "endpoint_id"
    action_roles = {"enable": Role.ADMIN}

    @extend_schema(summary="Webhook URLs with a delivery state (disabled ones with the reason)")
    def list(self, request, workspace_id=None):
        return self.list_response()

    @extend_schema(
        summary="Re-enable a disabled webhook URL (admin)",
        request=None,
        responses={200: WebhookEndpointSerializer},
    )
    def enable(self, request, workspace_id=None, endpoint_id=None):
        endpoint = self.get_object()
        endpoint = delivery.webhook_endpoint_enable(workspace_id=workspace_id, url=endpoint.url)
        return Response(self.get_serializer(endpoint).data)
