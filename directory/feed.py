"""The change feed's vocabulary: which provisioning-log actions are directory changes that the
tenant's own software hears about (through `/api/v1/events/` and webhooks), and under which name.

One table, read by the services (to write webhook deliveries in the same transaction as the change)
and by the API (to name events). Credential and tenant events are the platform's own business and
stay out of the feed; so does `user.set_password`, since nothing about a password is ever served.
"""

from __future__ import annotations

FEED_EVENT_TYPES: dict[str, str] = {
    "user.create": "user.created",
    "user.update": "user.updated",
    "user.deactivate": "user.deactivated",
    "user.reactivate": "user.reactivated",
    "user.delete": "user.deleted",
    "group.create": "group.created",
    "group.update": "group.updated",
    "group.delete": "group.deleted",
    "group.members_add": "group.members_added",
    "group.members_remove": "group.members_removed",
    "group.members_set": "group.members_replaced",
}
"""provisioning-log action → feed event type."""

EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(FEED_EVENT_TYPES.values()))
FEED_ACTIONS: tuple[str, ...] = tuple(FEED_EVENT_TYPES)


def event_type(action: str) -> str | None:
    return FEED_EVENT_TYPES.get(action)
