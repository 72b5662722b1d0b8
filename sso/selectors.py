"""Reads of sign-in activity, tenant first like every selector."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from directory.models import Event, Tenant, User
from sso.services import SIGN_IN, SIGN_IN_REFUSED


def sign_in_events(*, tenant: Tenant, user: User | None = None) -> QuerySet[Event]:
    """Sign-ins and refused sign-ins, newest first; one user's when `user` is given."""
    events = Event.objects.filter(tenant=tenant, action__in=[SIGN_IN, SIGN_IN_REFUSED])
    if user is not None:
        events = events.filter(resource_id=str(user.scim_id))
    return events.order_by("-created", "-id")


def sign_in_count(*, tenant: Tenant, since: datetime) -> int:
    """Successful sign-ins since `since` (the dashboard's "sign-ins (7 days)"), on the
    (tenant, created) index."""
    return Event.objects.filter(tenant=tenant, action=SIGN_IN, created__gte=since).count()
