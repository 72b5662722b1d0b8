"""Provisioning-log rows as change-feed events, in the API's own names. One shape for the feed
(`/api/v1/events/`) and for webhook bodies, so a consumer parses one thing."""

from __future__ import annotations

from typing import Any

from directory.feed import event_type
from directory.models import Event

FIELD_NAMES = {
    "username": "user_name",
    "userName": "user_name",
    "is_active": "active",
    "displayName": "display_name",
    "externalId": "external_id",
}
"""Users log model field names, groups SCIM names; the feed speaks the API's snake_case."""
WITHOUT_VALUES = frozenset({"password"})
"""Fields whose change is announced without its values."""
ACTORS = {
    Event.ActorType.CREDENTIAL: "provisioning",
    Event.ActorType.MANAGER: "manager",
    Event.ActorType.SYSTEM: "system",
}


def _changes(event: Event) -> tuple[list[str], dict[str, Any]]:
    """Sorted by name: PostgreSQL's jsonb keeps keys in its own order (shortest first), SQLite in
    the order written, and a consumer should see one order whatever the database."""
    raw = event.changes or {}
    names: list[str] = []
    changes: dict[str, Any] = {}
    for key, value in sorted(raw.items(), key=lambda item: FIELD_NAMES.get(item[0], item[0])):
        name = FIELD_NAMES.get(key, key)
        names.append(name)
        if name in WITHOUT_VALUES:
            continue
        if isinstance(value, list) and len(value) == 2:
            changes[name] = {"old": value[0], "new": value[1]}
        else:
            changes[name] = value
    return names, changes


def event_payload(event: Event) -> dict[str, Any]:
    changed_fields, changes = _changes(event)
    return {
        "id": f"evt_{event.pk}",
        "cursor": str(event.feed_position) if event.feed_position is not None else "",
        "type": event_type(event.action) or event.action,
        "occurred_at": event.created.isoformat().replace("+00:00", "Z"),
        "resource": {
            "type": event.resource_type.lower(),
            "id": event.resource_id,
            "name": event.resource_label,
        },
        "changed_fields": changed_fields,
        "changes": changes,
        "actor": ACTORS.get(event.actor_type, "system"),
    }
