"""Serializer bases shared by the API apps."""

from rest_framework import serializers


class InputSerializer(serializers.Serializer):
    """Request bodies: must be a JSON object, and unknown fields are refused by name."""

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
