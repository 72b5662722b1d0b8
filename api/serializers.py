"""The directory API's representation: the API's own snake_case names (not SCIM's), read-only.

A user's `manager` says what the identity provider sent (`reference`) and, when that names a user
of the tenant, that user's `id`; an unresolved reference has `id: null`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from directory.models import Group, User


class EmailSerializer(serializers.Serializer):
    value = serializers.CharField()
    type = serializers.CharField()
    primary = serializers.BooleanField()


class ManagerSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True, help_text="The manager's id; null while unresolved.")
    reference = serializers.CharField(help_text="manager.value as the identity provider sent it.")


class UserSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="scim_id")
    user_name = serializers.CharField(source="username")
    active = serializers.BooleanField(source="is_active")
    emails = serializers.SerializerMethodField()
    manager = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="created")
    updated_at = serializers.DateTimeField(source="last_modified")

    class Meta:
        model = User
        fields = [
            "id",
            "user_name",
            "external_id",
            "active",
            "display_name",
            "given_name",
            "family_name",
            "title",
            "department",
            "division",
            "organization",
            "cost_center",
            "employee_number",
            "emails",
            "manager",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(EmailSerializer(many=True))
    def get_emails(self, user: User) -> list[dict[str, Any]]:
        return [{"value": e.value, "type": e.type, "primary": e.primary} for e in user.emails.all()]

    @extend_schema_field(ManagerSerializer(allow_null=True))
    def get_manager(self, user: User) -> dict[str, Any] | None:
        if not user.manager_value:
            return None
        manager = user.manager if user.manager_id is not None else None
        return {"id": str(manager.scim_id) if manager else None, "reference": user.manager_value}


class GroupSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="scim_id")
    member_count = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(source="created")
    updated_at = serializers.DateTimeField(source="last_modified")

    class Meta:
        model = Group
        fields = ["id", "display_name", "external_id", "member_count", "created_at", "updated_at"]
        read_only_fields = fields


class EventResourceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "group"])
    id = serializers.CharField()
    name = serializers.CharField(help_text="user_name or display_name at the time of the change.")


class EventSerializer(serializers.Serializer):
    """Documents the feed's event shape; the values come from api.events.event_payload."""

    id = serializers.CharField(help_text="Unique per event: deliveries are at least once, dedupe on it.")
    cursor = serializers.CharField(help_text="Pass as `after` to read the events that follow this one.")
    type = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    resource = EventResourceSerializer()
    changed_fields = serializers.ListField(
        child=serializers.CharField(), help_text="Sorted; `password` is named, its value never sent."
    )
    changes = serializers.DictField(help_text="For updates: {field: {old, new}}; members: added/removed ids.")
    actor = serializers.ChoiceField(choices=["provisioning", "manager", "system"])


class EventPageSerializer(serializers.Serializer):
    events = EventSerializer(many=True)
    next_cursor = serializers.CharField(help_text="`after` for the next page; unchanged when empty.")
    has_more = serializers.BooleanField()
