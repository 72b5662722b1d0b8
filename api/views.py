"""/api/v1/: the tenant's own software reads its directory and its change feed.

Every view takes the tenant from the credential (api.authentication) and reads through
directory.selectors, which require it; an id of another tenant is simply not found (404). Lists are
cursor-paginated in creation order, so a page never shifts when users are added meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import ApiCredential, TenantApiAuthentication
from api.events import event_payload
from api.permissions import HasApiScope
from api.serializers import EventPageSerializer, GroupSerializer, UserSerializer
from directory import selectors, services
from directory.exceptions import NotFound
from directory.models import Group, Tenant, User

DIRECTORY_READ = "directory:read"
EVENTS_READ = "events:read"
FEED_DEFAULT_LIMIT = 100
FEED_MAX_LIMIT = 1000


class CreationOrderPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500


class TenantApiView(generics.GenericAPIView):
    authentication_classes = [TenantApiAuthentication]
    permission_classes = [HasApiScope]
    required_scope = DIRECTORY_READ
    pagination_class = CreationOrderPagination

    @property
    def tenant(self) -> Tenant:
        credential: ApiCredential = self.request.auth
        return credential.tenant


def _parse_bool(name: str, raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError({name: "Use true or false."})


def _parse_uuid(name: str, raw: str | None) -> Any:
    if not raw:
        return None
    parsed = selectors.parse_scim_id(raw)
    if parsed is None:
        raise ValidationError({name: "Not a valid id."})
    return parsed


def _parse_datetime(name: str, raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = parse_datetime(raw)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError({name: "Use an ISO 8601 date-time with a zone, e.g. 2026-12-01T00:00:00Z."})
    return parsed


USER_FILTERS = [
    OpenApiParameter("active", OpenApiTypes.BOOL, description="Active (true) or inactive (false) users."),
    OpenApiParameter("userName", OpenApiTypes.STR, description="Exact userName, case-insensitive."),
    OpenApiParameter("email", OpenApiTypes.STR, description="Any of the user's emails, case-insensitive."),
    OpenApiParameter("externalId", OpenApiTypes.STR, description="Exact externalId (case-sensitive)."),
    OpenApiParameter("group", OpenApiTypes.UUID, description="Direct members of this group id."),
    OpenApiParameter("updated_after", OpenApiTypes.DATETIME, description="Changed after this moment."),
]


@extend_schema(parameters=USER_FILTERS, summary="List the tenant's users")
class UserListView(TenantApiView, generics.ListAPIView):
    serializer_class = UserSerializer

    def get_queryset(self) -> QuerySet[User]:
        params = self.request.query_params
        query = selectors.TenantUserFilterQuery(
            active=_parse_bool("active", params.get("active")),
            user_name=params.get("userName", ""),
            email=params.get("email", ""),
            external_id=params.get("externalId", ""),
            group=_parse_uuid("group", params.get("group")),
            updated_after=_parse_datetime("updated_after", params.get("updated_after")),
        )
        return selectors.user_filter(tenant=self.tenant, query=query)


def _user(tenant: Tenant, user_id: str) -> User:
    try:
        return selectors.user_get(tenant=tenant, scim_id=user_id)
    except NotFound:
        raise Http404 from None


def _group(tenant: Tenant, group_id: str) -> Group:
    try:
        return selectors.group_get(tenant=tenant, scim_id=group_id)
    except NotFound:
        raise Http404 from None


@extend_schema(summary="One user")
class UserDetailView(TenantApiView, generics.RetrieveAPIView):
    serializer_class = UserSerializer

    def get_object(self) -> User:
        user = _user(self.tenant, self.kwargs["user_id"])
        if user.is_service_principal:
            raise Http404
        everyone = selectors.TenantUserFilterQuery()
        return selectors.user_filter(tenant=self.tenant, query=everyone).get(pk=user.pk)


@extend_schema(summary="The groups a user belongs to directly")
class UserGroupsView(TenantApiView, generics.ListAPIView):
    serializer_class = GroupSerializer

    def get_queryset(self) -> QuerySet[Group]:
        user = _user(self.tenant, self.kwargs["user_id"])
        return selectors.groups_with_member_counts(tenant=self.tenant).filter(memberships__user=user)


@extend_schema(summary="List the tenant's groups")
class GroupListView(TenantApiView, generics.ListAPIView):
    serializer_class = GroupSerializer

    def get_queryset(self) -> QuerySet[Group]:
        return selectors.groups_with_member_counts(tenant=self.tenant)


@extend_schema(summary="One group")
class GroupDetailView(TenantApiView, generics.RetrieveAPIView):
    serializer_class = GroupSerializer

    def get_object(self) -> Group:
        group = _group(self.tenant, self.kwargs["group_id"])
        return selectors.groups_with_member_counts(tenant=self.tenant).get(pk=group.pk)


@extend_schema(summary="A group's direct members")
class GroupMembersView(TenantApiView, generics.ListAPIView):
    serializer_class = UserSerializer

    def get_queryset(self) -> QuerySet[User]:
        group = _group(self.tenant, self.kwargs["group_id"])
        return selectors.group_members_list(tenant=self.tenant, group=group)


class EventFeedView(APIView):
    """The change feed: every directory change in the order it became visible, after a cursor.

    Reading first positions the changes committed since the last read (services.feed_stamp), so a
    change committed late by a slow transaction is placed after the cursor a reader already holds,
    never before it: a reader that follows `next_cursor` misses nothing."""

    authentication_classes = [TenantApiAuthentication]
    permission_classes = [HasApiScope]
    required_scope = EVENTS_READ

    @extend_schema(
        summary="Directory changes after a cursor",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.STR, description="A cursor of a page; 0: the start."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description=f"1–{FEED_MAX_LIMIT}, default {FEED_DEFAULT_LIMIT}."
            ),
        ],
        responses=EventPageSerializer,
    )
    def get(self, request: Request) -> Response:
        credential: ApiCredential = request.auth
        tenant = credential.tenant
        after = self._int(request.query_params.get("after"), "after", default=0, low=0, high=2**62)
        limit = self._int(
            request.query_params.get("limit"), "limit", default=FEED_DEFAULT_LIMIT, low=1, high=FEED_MAX_LIMIT
        )
        services.feed_stamp(tenant=tenant)
        events = selectors.feed_events(tenant=tenant, after=after, limit=limit + 1)
        has_more = len(events) > limit
        events = events[:limit]
        next_cursor = str(events[-1].feed_position) if events else str(after)
        return Response(
            {"events": [event_payload(e) for e in events], "next_cursor": next_cursor, "has_more": has_more}
        )

    @staticmethod
    def _int(raw: str | None, name: str, *, default: int, low: int, high: int) -> int:
        if raw is None or raw == "":
            return default
        # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses (a 500).
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise ValidationError({name: f"Use a whole number from {low} to {high}."})
        return int(raw)
