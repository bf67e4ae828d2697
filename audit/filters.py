"""The audit trail's list: its field map (`filter`, `orderBy`) and shorthand query parameters."""

import django_filters

from audit.models import ActorType, AuditEvent
from sverm.api.listing import DATETIME, ENUM, FieldSpec, IsoDateTimeFilter, ListSpec

AUDIT_EVENT_LIST = ListSpec(
    name="AuditEvent",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id", nullable=True),
        "actorType": FieldSpec("actor_type", ENUM, choices=tuple(ActorType.values)),
        "actorId": FieldSpec("actor_id"),
        "actorLabel": FieldSpec("actor_label"),
        "action": FieldSpec("action"),
        "targetType": FieldSpec("target_type"),
        "targetId": FieldSpec("target_id"),
        "ip": FieldSpec("ip", nullable=True, sortable=False),
        "correlationId": FieldSpec("correlation_id"),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
)


class AuditEventFilterSet(django_filters.FilterSet):
    """Shorthands for the common questions (`workspace_id` is scoping, applied by the viewset
    base); anything else through `filter`."""

    action = django_filters.CharFilter(field_name="action", help_text="E.g. `swarm.update`.")
    actor_type = django_filters.ChoiceFilter(field_name="actor_type", choices=ActorType.choices)
    actor_id = django_filters.CharFilter(field_name="actor_id")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    correlation_id = django_filters.CharFilter(field_name="correlation_id")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []
