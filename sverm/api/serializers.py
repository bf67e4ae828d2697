"""Serializer bases shared by the API apps."""

from functools import cache

from rest_framework import serializers

# DRF's own words for a list or object where text belongs.
NOT_A_STRING = serializers.CharField.default_error_messages["invalid"]


class StrictString:
    """Mixed into every string field of an input serializer: only a JSON string is text. DRF's
    CharField turns 123 into "123" and ChoiceField matches 1 against "1"; here they are a 400
    naming the field."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(NOT_A_STRING, code="invalid")
        return super().to_internal_value(data)


@cache
def _strict_class(cls: type) -> type:
    return type(f"Strict{cls.__name__}", (StrictString, cls), {})


def _make_strict(field: serializers.Field) -> None:
    """Makes `field` (a bound copy: declarations stay as written) and the items of a list or
    dict field take only strings when they are text. Nested serializers do this themselves."""
    text = isinstance(field, serializers.CharField) or (
        isinstance(field, serializers.ChoiceField)
        and not isinstance(field, serializers.MultipleChoiceField)
        and all(isinstance(choice, str) for choice in field.choices)
    )
    if text and not isinstance(field, StrictString):
        field.__class__ = _strict_class(type(field))
    child = getattr(field, "child", None)
    if isinstance(child, serializers.Field) and not isinstance(child, serializers.BaseSerializer):
        _make_strict(child)


class InputSerializer(serializers.Serializer):
    """Request bodies: must be a JSON object, unknown fields are refused by name, and text
    fields take only JSON strings (a number is not text)."""

    # Every CharField (URL, email, regex), ChoiceField of strings, and such items of lists and
    # dicts of every input serializer is made strict here, not field by field.
    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            _make_strict(field)
        return fields

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Expected a JSON object."]}, code="invalid"
            )
        known = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - known)
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown field."] for name in unknown}, code="unknown_field"
            )
        return super().to_internal_value(data)


class SuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField()


def query_values(request) -> dict[str, str]:
    """The query string as a plain dict, so that `?month=` is validated as the empty value it
    is rather than dropped as an empty HTML form field would be."""
    return request.query_params.dict()


def text_problem(value: str) -> str | None:
    """Why text no database column can hold is refused (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None
