"""Wire shapes of usage: `/v1/usage` as seed 002 (snake_case) plus the month it covers, and
`/api/usage` for dashboards (camelCase, also as CSV). Money is a JSON number rounded down to 6
decimals (sverm/api/money.py); totals are sums of the runs' shown costs (sverm/money.py)."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from billing.periods import MONTH_PATTERN, current_month, month_after, month_parse
from billing.selectors import GROUPINGS, LABELS, RUN_GROUPINGS
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
    total_usd = MoneyField(
        help_text="Cost of the LLM calls of runs of this type made in the month: the sum of "
        "each run's cost in the month as shown (rounded down to 6 decimals), so it equals the "
        "sum of the runs' `current_cost_usd` for runs wholly in the month."
    )


class V1UsageMonthSerializer(serializers.Serializer):
    total_usd = MoneyField(
        help_text="Cost of every LLM call made in the month: the sum of `by_swarm_type`'s "
        "`total_usd`."
    )
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
                error_messages={
                    "invalid_choice": f'Must be one of {", ".join(GROUPINGS)}, not "{{input}}".'
                },
                help_text="One row per UTC day (default), model, swarm, template, API key "
                "(`api_key`: the key that started the run) or user (`user`: who started it; "
                "for a key's runs, the key's creator).",
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


_LABEL_HELP = {
    "name": "Grouped by `api_key`: the key's name; by `user`: the user's name (null when they "
    "gave none). Null when the key or user no longer exists, and on the row of runs without "
    "one.",
    "prefix": "Grouped by `api_key` only: the key's first characters (`sk-sverm-…`), as key "
    "lists show them.",
    "email": "Grouped by `user` only: the user's email.",
}


class UsageGroupSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True,
        help_text="The UTC day (YYYY-MM-DD), model name, swarm id (null for runs of a template "
        "or an inline definition), template id (`custom` for inline definitions and swarms), "
        "API key id (null for runs no key started: by a signed-in user, a schedule or a batch, "
        "and for calls recorded before the ledger kept keys) or user id (null when unknown).",
    )
    name = serializers.CharField(allow_null=True, required=False, help_text=_LABEL_HELP["name"])
    prefix = serializers.CharField(allow_null=True, required=False, help_text=_LABEL_HELP["prefix"])
    email = serializers.CharField(allow_null=True, required=False, help_text=_LABEL_HELP["email"])
    runs = serializers.IntegerField(
        required=False,
        help_text="Runs with at least one LLM call in the range. Only when grouping by "
        f"{', '.join(RUN_GROUPINGS)}, where each run falls in exactly one row.",
    )
    costUsd = MoneyField(
        source="cost_usd",
        help_text="The sum of the row's runs' costs in the range as shown (by day or model, of "
        "the parts each run's shown cost is split into).",
    )
    tokensIn = serializers.IntegerField(source="tokens_in")
    tokensOut = serializers.IntegerField(source="tokens_out")
    calls = serializers.IntegerField(help_text="LLM calls.")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("runs") is None:
            data.pop("runs", None)
        for label in ("name", "prefix", "email"):
            if label in instance.labels:
                data[label] = instance.labels[label]
            else:
                data.pop(label, None)
        return data

    @staticmethod
    def columns(group_by: str) -> list[str]:
        """The CSV's columns: the fields a row of this grouping has, in order, and `runs`
        always (the totals have it; rows by day or model leave it empty)."""
        labels = list(LABELS.get(group_by, ()))
        return ["key", *labels, "runs", "costUsd", "tokensIn", "tokensOut", "calls"]


class UsageTotalsSerializer(serializers.Serializer):
    runs = serializers.IntegerField(help_text="Runs with at least one LLM call in the range.")
    costUsd = MoneyField(
        source="cost_usd",
        help_text="The sum of the rows' `costUsd`, exactly; the same whatever the grouping.",
    )
    tokensIn = serializers.IntegerField(source="tokens_in")
    tokensOut = serializers.IntegerField(source="tokens_out")
    calls = serializers.IntegerField()


@extend_schema_serializer(many=False)
class UsageSerializer(serializers.Serializer):
    data = UsageGroupSerializer(many=True)
    totals = UsageTotalsSerializer()
