"""Wire shapes of usage: `/v1/usage` as seed 002 (snake_case) plus the month it covers, and
`/api/usage` for dashboards (camelCase). Money is a JSON number rounded down to 6 decimals
(sverm/api/money.py)."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from billing.periods import MONTH_PATTERN, current_month, month_after, month_parse
from billing.selectors import GROUPINGS, RUN_GROUPINGS
from sverm.api.money import MoneyField

MAX_RANGE_DAYS = 366


# ---------------------------------------------------------------------------------------------
# /v1/usage
# ---------------------------------------------------------------------------------------------
MONTH_SCHEMA = {"type": "string", "pattern": MONTH_PATTERN.pattern, "example": "2026-04"}


@extend_schema_field(MONTH_SCHEMA)
class MonthField(serializers.Field):
    """A month as `YYYY-MM`, in and out; its value is the month's first day."""

    def to_internal_value(self, data):
        try:
            return month_parse(str(data))
        except ValueError:
            self.fail("invalid", value=str(data)[:20])

    def to_representation(self, value):
        return f"{value:%Y-%m}"


class V1UsageQuerySerializer(serializers.Serializer):
    month = MonthField(
        required=False,
        error_messages={"invalid": "Must be a month as YYYY-MM (e.g. 2026-04), not '{value}'."},
        help_text="The UTC month to report, as `YYYY-MM`; defaults to the current UTC month.",
    )

    def validate(self, attrs):
        attrs.setdefault("month", current_month())
        return attrs


class V1UsageSwarmTypeSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Swarm runs of this type started in the month.")
    total_usd = MoneyField(help_text="Cost of their LLM calls made in the month, in USD.")


class V1UsageMonthSerializer(serializers.Serializer):
    total_usd = MoneyField(help_text="Cost of every LLM call made in the month, in USD.")
    total_swarms = serializers.IntegerField(help_text="Swarm runs started in the month.")
    total_tokens = serializers.IntegerField(help_text="Input plus output tokens.")
    by_swarm_type = serializers.DictField(
        child=V1UsageSwarmTypeSerializer(),
        help_text="Per template id (`custom` for inline definitions and swarms), busiest first. "
        "The types' `total_usd` add up to the month's exactly.",
    )


@extend_schema_serializer(many=False)
class V1UsageSerializer(serializers.Serializer):
    current_month = V1UsageMonthSerializer(
        source="*",
        help_text="Usage of the month reported (kept under this name when `?month=` asks for "
        "another month, so clients of seed 002 read it unchanged).",
    )
    month = MonthField(help_text="The UTC month reported (YYYY-MM).")


# ---------------------------------------------------------------------------------------------
# /api/usage
# ---------------------------------------------------------------------------------------------
class UsageQuerySerializer(serializers.Serializer):
    """`from` is a Python keyword, so the fields are declared in `get_fields`."""

    def get_fields(self):
        return {
            "workspace_id": serializers.CharField(
                required=False,
                allow_blank=True,
                help_text="Only this workspace (404 unless you are a member). When omitted, "
                "every workspace you are a member of.",
            ),
            "from": serializers.DateField(
                required=False,
                help_text="First UTC day included (YYYY-MM-DD); defaults to the first day of "
                "the current UTC month.",
            ),
            "to": serializers.DateField(
                required=False,
                help_text="First UTC day no longer included (YYYY-MM-DD); defaults to the first "
                f"day of the next UTC month. At most {MAX_RANGE_DAYS} days after `from`.",
            ),
            "group_by": serializers.ChoiceField(
                choices=list(GROUPINGS),
                required=False,
                help_text="One row per UTC day (default), model, swarm or template.",
            ),
        }

    def validate(self, attrs):
        month = current_month()
        start = attrs.setdefault("from", month)
        end = attrs.setdefault("to", month_after(month))
        attrs.setdefault("group_by", "day")
        if end <= start:
            raise serializers.ValidationError({"to": "Must be after `from`."}, code="invalid")
        if end - start > timedelta(days=MAX_RANGE_DAYS):
            raise serializers.ValidationError(
                {"to": f"The range from `from` to `to` may span at most {MAX_RANGE_DAYS} days."},
                code="invalid",
            )
        return attrs


class UsageGroupSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True,
        help_text="The UTC day (YYYY-MM-DD), model name, swarm id (null for runs of a template "
        "or an inline definition) or template id (`custom` for inline definitions and swarms).",
    )
    runs = serializers.IntegerField(
        required=False,
        help_text="Runs with at least one LLM call in the range. Only when grouping by "
        f"{' or '.join(RUN_GROUPINGS)}, where each run falls in exactly one row.",
    )
    costUsd = MoneyField(source="cost_usd")
    tokensIn = serializers.IntegerField(source="tokens_in")
    tokensOut = serializers.IntegerField(source="tokens_out")
    calls = serializers.IntegerField(help_text="LLM calls.")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("runs") is None:
            data.pop("runs", None)
        return data


class UsageTotalsSerializer(serializers.Serializer):
    runs = serializers.IntegerField(help_text="Runs with at least one LLM call in the range.")
    costUsd = MoneyField(source="cost_usd", help_text="The rows' `costUsd` add up to it exactly.")
    tokensIn = serializers.IntegerField(source="tokens_in")
    tokensOut = serializers.IntegerField(source="tokens_out")
    calls = serializers.IntegerField()


@extend_schema_serializer(many=False)
class UsageSerializer(serializers.Serializer):
    data = UsageGroupSerializer(many=True)
    totals = UsageTotalsSerializer()
