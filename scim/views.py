"""The /scim/v2/ endpoints (RFC 7644), built on django-scim2's SCIMView and replacing what it lacks:
bearer authentication per tenant, tenant-scoped filters, database-side paging, attribute
projection, ETags, Bulk, and one transaction per request.

Each resource operation is a plain function of a `RequestContext`, so `/Bulk` runs exactly the code
that the single-resource endpoints run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django_scim.views import SCIMView

from directory import selectors, services
from directory.exceptions import DirectoryError
from directory.models import Event, Group, Membership, Tenant, User
from directory.services import MULTI_VALUE_MODELS
from scim import errors
from scim.auth import SCIMPrincipal, authenticate
from scim.representation import (
    etag,
    group_from_scim,
    group_to_scim,
    parse_attribute_list,
    project,
    user_from_scim,
    user_to_scim,
    wants_members,
)
from scim.schemas import (
    BULK_REQUEST,
    BULK_RESPONSE,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    SCHEMAS,
    SEARCH_REQUEST,
    SERVICE_PROVIDER_CONFIG_SCHEMA,
    USER_SCHEMA,
    resource_type_documents,
    schema_document,
)

logger = logging.getLogger(__name__)
SCIM_CONTENT_TYPE = "application/scim+json"


@dataclass
class RequestContext:
    principal: SCIMPrincipal
    base_url: str

    @property
    def tenant(self) -> Tenant:
        return self.principal.tenant

    @property
    def actor(self) -> services.Actor:
        return self.principal.actor


@dataclass
class Result:
    status: int
    body: dict[str, Any] | None = None
    location: str = ""
    version: str = ""


def scim_base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}/scim/v2"


def json_response(status: int, body: dict[str, Any] | None = None, **headers: str) -> HttpResponse:
    content = json.dumps(body, ensure_ascii=False) if body is not None else ""
    response = HttpResponse(
        content, status=status, content_type=SCIM_CONTENT_TYPE if body is not None else None
    )
    if body is None:
        del response["Content-Type"]
    for name, value in headers.items():
        if value:
            response[name.replace("_", "-")] = value
    return response


def _refuse_non_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


MAX_JSON_DEPTH = 32


def check_storable_text(value: Any, *, where: str) -> None:
    """Refuse input the server cannot handle safely, once, at the edge, so it is a 400 on every
    route and database and never a 5xx from deep inside a write (R77):

    - strings the database cannot store: PostgreSQL text holds no NUL character, and a lone
      surrogate (`"\\ud800"` in JSON) cannot be encoded at all;
    - nesting deeper than any SCIM document (a Bulk operation's PATCH value is about six levels),
      which would otherwise exhaust the recursion of whatever walks it later.

    Iterative, so no input can exhaust the stack here."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise errors.InvalidValue(
                    f"{where} contains a NUL character (\\u0000), which cannot be stored."
                )
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise errors.InvalidValue(f"{where} contains text that is not valid Unicode.") from None
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise errors.InvalidSyntax(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def parse_json_body(raw: bytes) -> Any:
    """Lenient about a UTF-8 byte-order mark, strict about JSON itself: NaN and Infinity are not
    JSON, and nesting deep enough to exhaust the parser is a syntax error, not a crash."""
    if not raw.strip():
        raise errors.InvalidSyntax("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=_refuse_non_json_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidSyntax(f"The request body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise errors.InvalidSyntax("The request body is nested too deeply to be a SCIM document.") from None
    check_storable_text(body, where="The request body")
    return body


def loggable(text: str) -> str:
    """Request-supplied text as the failure log can store it (see check_storable_text)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def read_body(request: HttpRequest) -> bytes:
    """Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are refused by Django before they are read; that is
    a 413 like the Bulk limits, not the 500 Django's exception would become here."""
    try:
        return request.body
    except RequestDataTooBig:
        raise errors.PayloadTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        ) from None


def _text_param(params: dict[str, Any], name: str) -> str:
    raw = params.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise errors.InvalidValue(f"{name} must be a string.")
    return raw.strip()


def _attribute_list_param(params: dict[str, Any], name: str) -> list[str]:
    """A comma-separated string (query parameter) or an array of strings (SearchRequest body)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return parse_attribute_list(raw)
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return [item.strip() for item in raw if item.strip()]
    raise errors.InvalidValue(f"{name} must be a comma-separated string or an array of attribute names.")


def parse_paging(params: dict[str, Any]) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex < 1 means 1, count < 0 means 0; count is capped at maxResults."""

    def number(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise errors.InvalidValue(f"{name} must be an integer.")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise errors.InvalidValue(f"{name} must be an integer, got {str(raw)[:40]!r}.") from None

    start = max(1, number("startIndex", 1))
    count = min(max(0, number("count", settings.SCIM_MAX_RESULTS)), settings.SCIM_MAX_RESULTS)
    return start, count


def check_if_match(header: str | None, version: int) -> None:
    """RFC 7644 §3.14: a stale If-Match is 412; no If-Match is fine (Entra never sends one, R66)."""
    if not header:
        return
    candidates = [c.strip() for c in header.split(",")]
    if "*" in candidates:
        return
    wanted = {c.removeprefix("W/") for c in candidates}
    if f'"{version}"' not in wanted:
        raise errors.PreconditionFailed(
            f"The resource has changed: its version is {etag(version)}, not {header}.", scim_type=""
        )


def user_queryset(tenant: Tenant) -> QuerySet[User]:
    return (
        selectors.user_list(tenant=tenant)
        .select_related("manager")
        .prefetch_related(
            *MULTI_VALUE_MODELS,
            Prefetch("memberships", queryset=Membership.objects.select_related("group").order_by("id")),
        )
    )


def group_members(tenant: Tenant, groups: list[Group]) -> dict[int, list[User]]:
    """Members of a page of groups in one query."""
    members: dict[int, list[User]] = {g.pk: [] for g in groups}
    rows = (
        Membership.objects.filter(tenant=tenant, group__in=groups)
        .select_related("user")
        .only("group_id", "user__scim_id", "user__display_name", "user__username")
        .order_by("id")
    )
    for row in rows:
        members[row.group_id].append(row.user)
    return members


def resolve_members(tenant: Tenant, ids: list[str]) -> list[User]:
    try:
        return selectors.users_by_scim_ids(tenant=tenant, scim_ids=ids)
    except DirectoryError as exc:
        raise errors.InvalidValue(f"members: {exc.message}") from None


def existing_members(tenant: Tenant, ids: list[str]) -> list[User]:
    """For removals: ids that are not (or no longer) users of this tenant are simply not members."""
    parsed = [p for p in (selectors.parse_scim_id(i) for i in ids) if p is not None]
    return list(selectors.user_list(tenant=tenant).filter(scim_id__in=parsed))


# ---------------------------------------------------------------------------------------------- users


def user_get(ctx: RequestContext, scim_id: str) -> User:
    parsed = selectors.parse_scim_id(scim_id)
    user = user_queryset(ctx.tenant).filter(scim_id=parsed).first() if parsed else None
    if user is None:
        raise errors.NotFound(f"User {scim_id} not found.")
    return user


def user_result(ctx: RequestContext, user: User, status: int = 200, *, refetch: bool = True) -> Result:
    if refetch:
        user = user_queryset(ctx.tenant).get(pk=user.pk)
    body = user_to_scim(user, base_url=ctx.base_url)
    return Result(
        status=status, body=body, location=body["meta"]["location"], version=body["meta"]["version"]
    )


def users_create(ctx: RequestContext, body: Any) -> Result:
    data = user_from_scim(body)
    fields = {"is_active": True, **data.fields}
    user = services.user_create(
        tenant=ctx.tenant,
        actor=ctx.actor,
        username=data.username,
        fields=fields,
        **data.service_arguments(),
    )
    return user_result(ctx, user, status=201)


def user_save_document(
    ctx: RequestContext, user: User, document: Any, *, read: User | None = None, answer: bool = True
) -> Result:
    """Make the user what `document` says: a PUT body, or the current document after PATCH.
    The service writes only what differs, so both are idempotent (entra-scim.md R51).

    `read` is the user as read (with its prefetches) under the lock this transaction holds; when
    nothing changed it is still the stored state and is answered without re-reading it, which
    halves the cost of the unchanged values Entra re-sends every cycle (entra-scim.md §8 P13).
    `answer=False` (a PATCH that asked for no attributes) answers 204 and reads nothing back."""
    data = user_from_scim(document)
    user = services.user_update(
        tenant=ctx.tenant,
        actor=ctx.actor,
        user=user,
        fields={"username": data.username, **data.fields},
        **data.service_arguments(),
    )
    if not answer:
        return Result(status=204, version=etag(user.version))
    if read is not None and user.version == read.version:
        return user_result(ctx, read, refetch=False)
    return user_result(ctx, user)


def users_replace(ctx: RequestContext, scim_id: str, body: Any, if_match: str | None) -> Result:
    user = selectors.user_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, user.version)
    return user_save_document(ctx, user, body)


def users_patch(
    ctx: RequestContext, scim_id: str, body: Any, if_match: str | None, *, answer: bool = False
) -> Result:
    """RFC 7644 §3.5.2: 204 No Content unless the client asked for attributes (`answer=True`), then
    200 with the resource."""
    from scim.patch import apply_user_patch, validate_patch_request

    operations = validate_patch_request(body)
    user = selectors.user_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, user.version)
    read = user_queryset(ctx.tenant).get(pk=user.pk)
    current = user_to_scim(read, base_url=ctx.base_url, include_groups=False)
    return user_save_document(ctx, user, apply_user_patch(current, operations), read=read, answer=answer)


def users_delete(ctx: RequestContext, scim_id: str, if_match: str | None) -> Result:
    user = selectors.user_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, user.version)
    services.user_delete(tenant=ctx.tenant, actor=ctx.actor, user=user)
    return Result(status=204)


# --------------------------------------------------------------------------------------------- groups


def group_result(
    ctx: RequestContext, group: Group, *, status: int = 200, with_members: bool = True
) -> Result:
    members = group_members(ctx.tenant, [group])[group.pk] if with_members else None
    body = group_to_scim(group, base_url=ctx.base_url, members=members)
    return Result(
        status=status, body=body, location=body["meta"]["location"], version=body["meta"]["version"]
    )


def groups_create(ctx: RequestContext, body: Any) -> Result:
    data = group_from_scim(body)
    members = resolve_members(ctx.tenant, data.member_ids) if data.member_ids else []
    group = services.group_create(
        tenant=ctx.tenant,
        actor=ctx.actor,
        display_name=data.display_name,
        external_id=data.external_id,
        members=members,
    )
    return group_result(ctx, group, status=201)


def groups_replace(ctx: RequestContext, scim_id: str, body: Any, if_match: str | None) -> Result:
    """PUT replaces displayName and externalId; `members`, when present, becomes the exact
    membership. An absent `members` leaves membership alone, so a client that never read 50,000
    members cannot wipe them by accident (entra-scim.md R61)."""
    group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, group.version)
    data = group_from_scim(body)
    group = services.group_update(
        tenant=ctx.tenant,
        actor=ctx.actor,
        group=group,
        display_name=data.display_name,
        external_id=data.external_id,
    )
    if data.member_ids is not None:
        members = resolve_members(ctx.tenant, data.member_ids)
        group = services.membership_set(tenant=ctx.tenant, actor=ctx.actor, group=group, users=members)
    return group_result(ctx, group)


def groups_patch(
    ctx: RequestContext, scim_id: str, body: Any, if_match: str | None, *, answer: bool = False
) -> Result:
    """Group PATCH never loads the member list: member operations become membership services over
    just the ids named (entra-scim.md R61). It answers 204 (R26), or 200 with the group when the
    client asked for attributes (`answer=True`, RFC 7644 §3.5.2)."""
    from scim.patch import apply_group_patch, validate_patch_request

    operations = validate_patch_request(body)
    group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, group.version)
    current = group_to_scim(group, base_url=ctx.base_url, members=None)
    patched, member_operations = apply_group_patch(current, operations)
    data = group_from_scim({**patched, "members": None})
    if (data.display_name, data.external_id) != (group.display_name, group.external_id):
        # Most group PATCHes only add or remove members (Entra's batches of members): skipping the
        # no-op update saves its savepoint and second row lock on every one of them.
        group = services.group_update(
            tenant=ctx.tenant,
            actor=ctx.actor,
            group=group,
            display_name=data.display_name,
            external_id=data.external_id,
        )
    for operation in member_operations:
        if operation.kind == "add":
            users = resolve_members(ctx.tenant, operation.ids)
            group = services.membership_add(tenant=ctx.tenant, actor=ctx.actor, group=group, users=users)
        elif operation.kind == "replace":
            users = resolve_members(ctx.tenant, operation.ids)
            group = services.membership_set(tenant=ctx.tenant, actor=ctx.actor, group=group, users=users)
        elif operation.ids:
            users = existing_members(ctx.tenant, operation.ids)
            group = services.membership_remove(tenant=ctx.tenant, actor=ctx.actor, group=group, users=users)
        else:
            group = services.membership_set(tenant=ctx.tenant, actor=ctx.actor, group=group, users=[])
    if answer:
        return group_result(ctx, group)
    return Result(status=204, version=etag(group.version))


def groups_delete(ctx: RequestContext, scim_id: str, if_match: str | None) -> Result:
    group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
    check_if_match(if_match, group.version)
    services.group_delete(tenant=ctx.tenant, actor=ctx.actor, group=group)
    return Result(status=204)


# ------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ListQuery:
    filter: str
    start: int
    count: int
    sort_by: str
    descending: bool
    attributes: list[str]
    excluded: list[str]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ListQuery:
        start, count = parse_paging(params)
        sort_order = _text_param(params, "sortOrder").lower() or "ascending"
        if sort_order not in ("ascending", "descending"):
            raise errors.InvalidValue("sortOrder must be 'ascending' or 'descending'.")
        return cls(
            filter=_text_param(params, "filter"),
            start=start,
            count=count,
            sort_by=_text_param(params, "sortBy"),
            descending=sort_order == "descending",
            attributes=_attribute_list_param(params, "attributes"),
            excluded=_attribute_list_param(params, "excludedAttributes"),
        )


def _page(queryset: QuerySet, query: ListQuery, sort_field: Callable[[str], str]) -> tuple[int, list[Any]]:
    if query.sort_by:
        field = sort_field(query.sort_by)
        ordering = [f"-{field}" if query.descending else field, "-id" if query.descending else "id"]
    else:
        ordering = ["id"]
    total = queryset.count()
    if query.count == 0 or query.start > total:
        return total, []
    offset = query.start - 1
    return total, list(queryset.order_by(*ordering)[offset : offset + query.count])


def list_response(total: int, start: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def users_list(ctx: RequestContext, query: ListQuery) -> Result:
    from scim.filters import user_filter_q, user_sort_field

    queryset = user_queryset(ctx.tenant)
    if query.filter:
        queryset = queryset.filter(user_filter_q(query.filter))
    total, users = _page(queryset, query, user_sort_field)
    resources = [
        project(
            user_to_scim(u, base_url=ctx.base_url),
            schema=USER_SCHEMA,
            attributes=query.attributes,
            excluded=query.excluded,
        )
        for u in users
    ]
    return Result(status=200, body=list_response(total, query.start, resources))


def groups_list(ctx: RequestContext, query: ListQuery) -> Result:
    from scim.filters import group_filter_q, group_sort_field

    queryset = selectors.group_list(tenant=ctx.tenant)
    if query.filter:
        queryset = queryset.filter(group_filter_q(query.filter))
    total, groups = _page(queryset, query, group_sort_field)
    with_members = wants_members(attributes=query.attributes, excluded=query.excluded)
    members = group_members(ctx.tenant, groups) if with_members and groups else {}
    resources = [
        project(
            group_to_scim(g, base_url=ctx.base_url, members=members.get(g.pk) if with_members else None),
            schema=GROUP_SCHEMA,
            attributes=query.attributes,
            excluded=query.excluded,
        )
        for g in groups
    ]
    return Result(status=200, body=list_response(total, query.start, resources))


def search_all(ctx: RequestContext, query: ListQuery) -> Result:
    """Root-level /.search (RFC 7644 §3.4.3): users, then groups, paged as one list. A filter that
    names attributes of only one resource type searches that type."""
    from scim.filters import group_filter_q, user_filter_q

    sources: list[tuple[QuerySet, str]] = []
    failures: list[errors.SCIMError] = []
    for queryset, compile_filter, kind in (
        (user_queryset(ctx.tenant), user_filter_q, "User"),
        (selectors.group_list(tenant=ctx.tenant), group_filter_q, "Group"),
    ):
        try:
            sources.append(
                (queryset.filter(compile_filter(query.filter)) if query.filter else queryset, kind)
            )
        except errors.SCIMError as exc:
            failures.append(exc)
    if not sources:
        raise failures[0]
    counts = [qs.count() for qs, _ in sources]
    total = sum(counts)
    resources: list[dict[str, Any]] = []
    offset = query.start - 1
    remaining = query.count
    for (queryset, kind), size in zip(sources, counts, strict=True):
        if remaining <= 0:
            break
        if offset >= size:
            offset -= size
            continue
        rows = list(queryset.order_by("id")[offset : offset + remaining])
        offset = 0
        remaining -= len(rows)
        if kind == "User":
            resources += [
                project(
                    user_to_scim(u, base_url=ctx.base_url),
                    schema=USER_SCHEMA,
                    attributes=query.attributes,
                    excluded=query.excluded,
                )
                for u in rows
            ]
        else:
            with_members = wants_members(attributes=query.attributes, excluded=query.excluded)
            members = group_members(ctx.tenant, rows) if with_members and rows else {}
            resources += [
                project(
                    group_to_scim(
                        g, base_url=ctx.base_url, members=members.get(g.pk) if with_members else None
                    ),
                    schema=GROUP_SCHEMA,
                    attributes=query.attributes,
                    excluded=query.excluded,
                )
                for g in rows
            ]
    return Result(status=200, body=list_response(total, query.start, resources))


SEARCH_PARAMETERS = {
    name.lower(): name
    for name in ("filter", "startIndex", "count", "sortBy", "sortOrder", "attributes", "excludedAttributes")
}


def search_request(body: Any) -> ListQuery:
    """RFC 7644 §3.4.3. Member names are matched case-insensitively like every SCIM attribute name;
    `schemas` may be left out, but if sent it must name SearchRequest."""
    if not isinstance(body, dict):
        raise errors.InvalidSyntax("A SearchRequest is a JSON object.")
    schemas = next((v for k, v in body.items() if k.lower() == "schemas"), None)
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST not in schemas):
        raise errors.InvalidSyntax(f"A SearchRequest's schemas must be [{SEARCH_REQUEST!r}].")
    return ListQuery.from_params(
        {SEARCH_PARAMETERS[k.lower()]: v for k, v in body.items() if k.lower() in SEARCH_PARAMETERS}
    )


# --------------------------------------------------------------------------------------------- views


def record_failure(
    ctx: RequestContext,
    exc: errors.SCIMError,
    *,
    method: str,
    resource_type: str,
    resource_id: str,
    path: str,
) -> None:
    """A failed request in the tenant's provisioning log, as Entra's admins need it to see what was
    refused and why. Written after the request's own changes rolled back (or, in /Bulk, after the
    operation's savepoint did), inside its own savepoint so a logging failure cannot break the
    response."""
    try:
        with transaction.atomic():
            services.event_record(
                tenant=ctx.tenant,
                actor=ctx.actor,
                action=f"scim.{method.lower()}_{resource_type.lower() or 'request'}"[:64],
                result=Event.Result.FAILURE,
                resource_type=resource_type[:32],
                resource_id=loggable(resource_id)[:64],
                status=exc.status,
                scim_type=exc.scim_type,
                detail=loggable(exc.detail)[:2000],
                request_method=method,
                request_path=loggable(path),
            )
    except DatabaseError:
        logger.exception("Could not record the failed SCIM request")


class SCIMEndpoint(SCIMView):
    """Base of every /scim/v2/ view: authenticate, run the handler in one transaction, and turn every
    error into a SCIM error body; failures are logged as Events after the rollback."""

    requires_auth = True
    resource_type = ""
    http_method_names = ["get", "post", "put", "patch", "delete"]

    @method_decorator(csrf_exempt)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.context: RequestContext | None = None
        method = request.method.lower() if request.method else ""
        try:
            if self.requires_auth:
                self.context = RequestContext(
                    principal=authenticate(request), base_url=scim_base_url(request)
                )
            handler = getattr(self, method, None)
            if method not in self.http_method_names or handler is None:
                raise errors.MethodNotAllowed(f"{request.method} is not supported on {request.path}.")
            self.check_request(request)
            if method == "get":
                return handler(request, *args, **kwargs)
            with transaction.atomic():
                return handler(request, *args, **kwargs)
        except DirectoryError as exc:
            return self.failure(request, errors.from_domain(exc), kwargs)
        except errors.SCIMError as exc:
            return self.failure(request, exc, kwargs)
        except DatabaseError:
            logger.exception("Database error while serving %s %s", request.method, request.path)
            return self.failure(
                request,
                errors.SCIMError("The service is temporarily unavailable; retry later.", status=503),
                kwargs,
            )
        except Exception:
            logger.exception("Unexpected error while serving %s %s", request.method, request.path)
            return self.failure(request, errors.SCIMError("Internal server error.", status=500), kwargs)

    def failure(self, request: HttpRequest, exc: errors.SCIMError, kwargs: dict[str, Any]) -> HttpResponse:
        headers: dict[str, str] = {}
        if exc.status == 401:
            headers["WWW_Authenticate"] = settings.SCIM_SERVICE_PROVIDER["WWW_AUTHENTICATE_HEADER"]
        if exc.status == 405:
            headers["Allow"] = ", ".join(self.allowed_methods(kwargs))
        if self.context is not None and exc.status != 401:
            record_failure(
                self.context,
                exc,
                method=request.method or "",
                resource_type=self.resource_type,
                resource_id=str(kwargs.get("scim_id", "")),
                path=request.path,
            )
        return json_response(exc.status, exc.to_dict(), **headers)

    def check_request(self, request: HttpRequest) -> None:
        """A view's own precondition on the request, checked after authentication and the method;
        overriding this rather than `dispatch` keeps the CSRF exemption and the error mapping."""

    def allowed_methods(self, kwargs: dict[str, Any]) -> list[str]:
        """For the `Allow` header a 405 must carry (RFC 9110 §15.5.6)."""
        return [m.upper() for m in self.http_method_names if hasattr(self, m)]

    @property
    def ctx(self) -> RequestContext:
        if self.context is None:
            raise errors.Unauthorized("Authentication required.")
        return self.context

    def respond(self, result: Result) -> HttpResponse:
        return json_response(
            result.status,
            result.body,
            Location=result.location if result.status == 201 else "",
            ETag=result.version,
        )

    def body(self, request: HttpRequest) -> Any:
        return parse_json_body(read_body(request))

    def params(self, request: HttpRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.GET.items()}
        check_storable_text(params, where="The query string")
        return params


def if_none_match(header: str | None, version: str) -> bool:
    if not header:
        return False
    candidates = {c.strip() for c in header.split(",")}
    return "*" in candidates or version in candidates or version.removeprefix("W/") in candidates


class ResourceView(SCIMEndpoint):
    """/Users and /Groups: the collection and its members, with and without a trailing slash."""

    schema = USER_SCHEMA
    get_one: Callable[[RequestContext, str], Result]
    list_all: Callable[[RequestContext, ListQuery], Result]
    create: Callable[[RequestContext, Any], Result]
    replace: Callable[[RequestContext, str, Any, str | None], Result]
    modify: Callable[..., Result]
    remove: Callable[[RequestContext, str, str | None], Result]

    def allowed_methods(self, kwargs: dict[str, Any]) -> list[str]:
        return ["GET", "POST"] if kwargs.get("scim_id") is None else ["GET", "PUT", "PATCH", "DELETE"]

    def get(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        query = ListQuery.from_params(self.params(request))
        if scim_id is None:
            return self.respond(type(self).list_all(self.ctx, query))
        result = type(self).get_one(self.ctx, scim_id, query)
        if if_none_match(request.headers.get("If-None-Match"), result.version):
            return json_response(304, None, ETag=result.version)
        if result.body is not None:
            result.body = project(
                result.body, schema=self.schema, attributes=query.attributes, excluded=query.excluded
            )
        return self.respond(result)

    def post(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is not None:
            raise errors.MethodNotAllowed(f"POST a new {self.resource_type} to the collection, not to an id.")
        return self.respond(type(self).create(self.ctx, self.body(request)))

    def put(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is None:
            raise errors.MethodNotAllowed(f"PUT needs an id: /{self.resource_type}s/{{id}}.")
        return self.respond(
            type(self).replace(self.ctx, scim_id, self.body(request), request.headers.get("If-Match"))
        )

    def patch(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        """204 No Content, or 200 with the projected resource when the request names `attributes`
        or `excludedAttributes` (RFC 7644 §3.5.2)."""
        if scim_id is None:
            raise errors.MethodNotAllowed(f"PATCH needs an id: /{self.resource_type}s/{{id}}.")
        query = ListQuery.from_params(self.params(request))
        answer = bool(query.attributes or query.excluded)
        result = type(self).modify(
            self.ctx, scim_id, self.body(request), request.headers.get("If-Match"), answer=answer
        )
        if answer and result.body is not None:
            result.body = project(
                result.body, schema=self.schema, attributes=query.attributes, excluded=query.excluded
            )
        return self.respond(result)

    def delete(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is None:
            raise errors.MethodNotAllowed(f"DELETE needs an id: /{self.resource_type}s/{{id}}.")
        return self.respond(type(self).remove(self.ctx, scim_id, request.headers.get("If-Match")))


def user_get_one(ctx: RequestContext, scim_id: str, query: ListQuery) -> Result:
    return user_result(ctx, user_get(ctx, scim_id), refetch=False)


def group_get_one(ctx: RequestContext, scim_id: str, query: ListQuery) -> Result:
    group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id)
    return group_result(
        ctx, group, with_members=wants_members(attributes=query.attributes, excluded=query.excluded)
    )


class UsersView(ResourceView):
    resource_type = "User"
    schema = USER_SCHEMA
    get_one = staticmethod(user_get_one)
    list_all = staticmethod(users_list)
    create = staticmethod(users_create)
    replace = staticmethod(users_replace)
    modify = staticmethod(users_patch)
    remove = staticmethod(users_delete)


class GroupsView(ResourceView):
    resource_type = "Group"
    schema = GROUP_SCHEMA
    get_one = staticmethod(group_get_one)
    list_all = staticmethod(groups_list)
    create = staticmethod(groups_create)
    replace = staticmethod(groups_replace)
    modify = staticmethod(groups_patch)
    remove = staticmethod(groups_delete)


class SearchView(SCIMEndpoint):
    """POST /.search, /Users/.search, /Groups/.search (RFC 7644 §3.4.3)."""

    http_method_names = ["post"]
    search: Callable[[RequestContext, ListQuery], Result] = staticmethod(search_all)

    def post(self, request: HttpRequest) -> HttpResponse:
        return self.respond(type(self).search(self.ctx, search_request(self.body(request))))


class UserSearchView(SearchView):
    resource_type = "User"
    search = staticmethod(users_list)


class GroupSearchView(SearchView):
    resource_type = "Group"
    search = staticmethod(groups_list)


# ----------------------------------------------------------------------------------------------- bulk


BULK_ROUTES: dict[tuple[str, str], Callable[..., Result]] = {
    ("POST", "Users"): users_create,
    ("PUT", "Users"): users_replace,
    ("PATCH", "Users"): users_patch,
    ("DELETE", "Users"): users_delete,
    ("POST", "Groups"): groups_create,
    ("PUT", "Groups"): groups_replace,
    ("PATCH", "Groups"): groups_patch,
    ("DELETE", "Groups"): groups_delete,
}


BULK_ID_PREFIX = "bulkId:"


def substitute_bulk_ids(value: Any, bulk_ids: dict[str, str]) -> Any:
    """Replace `bulkId:<id>` references with the ids created by other operations of the same
    request (RFC 7644 §3.7.2). An unknown or failed reference is an error, not a dangling member."""
    if isinstance(value, str) and value.startswith(BULK_ID_PREFIX):
        key = value.removeprefix(BULK_ID_PREFIX)
        if key not in bulk_ids:
            raise errors.InvalidValue(
                f"bulkId {key!r} names no resource created by this request: unknown, or its operation failed."
            )
        return bulk_ids[key]
    if isinstance(value, list):
        return [substitute_bulk_ids(v, bulk_ids) for v in value]
    if isinstance(value, dict):
        return {k: substitute_bulk_ids(v, bulk_ids) for k, v in value.items()}
    return value


def bulk_references(operation: Any) -> set[str]:
    """The bulkIds an operation refers to, in its path or anywhere in its data."""
    if not isinstance(operation, dict):
        return set()
    found: set[str] = set()
    pending: list[Any] = [operation.get("path"), operation.get("data")]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            for part in item.split("/"):
                if part.startswith(BULK_ID_PREFIX):
                    found.add(part.removeprefix(BULK_ID_PREFIX))
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def bulk_order(operations: list[Any]) -> tuple[list[int], list[int]]:
    """The order to run operations in, and those caught in a reference cycle.

    RFC 7644 §3.7.2 lets an operation refer to a resource that a later POST creates, so an
    operation waits until every bulkId it names has been created; otherwise request order holds.
    References to bulkIds no POST defines are left to fail when the operation runs. What can never
    become ready (a cycle, or a reference to itself) is answered with 409, as the RFC allows."""
    defined = {
        str(op["bulkId"]): index
        for index, op in enumerate(operations)
        if isinstance(op, dict) and op.get("bulkId") and str(op.get("method", "")).upper() == "POST"
    }
    waits_for = [{defined[ref] for ref in bulk_references(op) if ref in defined} for op in operations]
    order: list[int] = []
    scheduled: set[int] = set()
    remaining = list(range(len(operations)))
    while True:
        ready = next((i for i in remaining if i not in waits_for[i] and waits_for[i] <= scheduled), None)
        if ready is None:
            return order, remaining
        order.append(ready)
        scheduled.add(ready)
        remaining.remove(ready)


def run_bulk_operation(ctx: RequestContext, operation: Any, bulk_ids: dict[str, str]) -> dict[str, Any]:
    if not isinstance(operation, dict):
        raise errors.InvalidSyntax("Each bulk operation is a JSON object.")
    method = str(operation.get("method", "")).upper()
    path = str(operation.get("path", "")).strip()
    bulk_id = operation.get("bulkId")
    parts = [p for p in path.split("/") if p]
    if method not in ("POST", "PUT", "PATCH", "DELETE") or not parts:
        raise errors.InvalidValue("A bulk operation needs a method (POST, PUT, PATCH, DELETE) and a path.")
    resource = parts[0]
    route = BULK_ROUTES.get((method, resource.capitalize()))
    if route is None:
        raise errors.InvalidPath(f"{method} {path} is not a bulk operation this server supports.")
    if method == "POST":
        if len(parts) != 1:
            raise errors.InvalidPath("POST operations target a collection such as /Users.")
        if not bulk_id:
            raise errors.InvalidValue("A bulk POST needs a bulkId.")
        result = route(ctx, substitute_bulk_ids(operation.get("data"), bulk_ids))
        if result.body is not None:
            bulk_ids[str(bulk_id)] = result.body["id"]
    else:
        if len(parts) != 2:
            raise errors.InvalidPath(f"{method} operations target a resource such as /{resource}/{{id}}.")
        target = substitute_bulk_ids(parts[1], bulk_ids)
        version = operation.get("version")
        if version is not None and not isinstance(version, str):
            raise errors.InvalidValue('A bulk operation\'s version must be an ETag string such as W/"3".')
        if method == "DELETE":
            result = route(ctx, target, version)
        else:
            result = route(ctx, target, substitute_bulk_ids(operation.get("data"), bulk_ids), version)
    response: dict[str, Any] = {"method": method, "status": str(result.status)}
    if bulk_id:
        response["bulkId"] = str(bulk_id)
    canonical = resource.capitalize()
    location = result.location or (f"{ctx.base_url}/{canonical}/{target}" if method != "POST" else "")
    if location:
        response["location"] = location
    if result.version:
        response["version"] = result.version
    return response


class BulkView(SCIMEndpoint):
    """POST /Bulk (RFC 7644 §3.7). Each operation runs in its own savepoint: a failed operation
    leaves nothing behind and the others still apply, up to `failOnErrors` failures."""

    http_method_names = ["post"]
    resource_type = "Bulk"

    def post(self, request: HttpRequest) -> HttpResponse:
        max_size, max_operations = settings.SCIM_BULK_MAX_PAYLOAD_SIZE, settings.SCIM_BULK_MAX_OPERATIONS
        raw = read_body(request)
        if len(raw) > max_size:
            raise errors.PayloadTooLarge(
                f"The bulk request is {len(raw)} bytes; maxPayloadSize is {max_size}."
            )
        body = parse_json_body(raw)
        schemas = body.get("schemas") if isinstance(body, dict) else None
        if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
            raise errors.InvalidSyntax(f"A bulk request is a JSON object with the schema {BULK_REQUEST}.")
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise errors.InvalidValue("A bulk request needs a non-empty Operations array.")
        if len(operations) > max_operations:
            raise errors.PayloadTooLarge(
                f"The bulk request has {len(operations)} operations; maxOperations is {max_operations}."
            )
        fail_on_errors = body.get("failOnErrors")
        if fail_on_errors is not None and (
            isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
        ):
            raise errors.InvalidValue("failOnErrors must be a positive integer.")
        order, cycle = bulk_order(operations)
        cyclic = set(cycle)
        bulk_ids: dict[str, str] = {}
        results: dict[int, dict[str, Any]] = {}
        failures = 0
        for index in [*order, *cycle]:
            operation = operations[index]
            try:
                if index in cyclic:
                    raise errors.SCIMError(
                        "This operation's bulkId references form a cycle, so none of them can be created.",
                        status=409,
                        scim_type="invalidValue",
                    )
                with transaction.atomic():
                    results[index] = run_bulk_operation(self.ctx, operation, bulk_ids)
            except (errors.SCIMError, DirectoryError) as exc:
                error = errors.from_domain(exc) if isinstance(exc, DirectoryError) else exc
                failures += 1
                results[index] = self.bulk_failure(request, operation, error)
                if fail_on_errors is not None and failures >= fail_on_errors:
                    break
        return json_response(
            200, {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]}
        )

    def bulk_failure(self, request: HttpRequest, operation: Any, error: errors.SCIMError) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": str(error.status), "response": error.to_dict()}
        path = ""
        if isinstance(operation, dict):
            entry["method"] = str(operation.get("method", "")).upper()
            if operation.get("bulkId"):
                entry["bulkId"] = str(operation["bulkId"])
            path = str(operation.get("path", ""))
        parts = [p for p in path.split("/") if p]
        record_failure(
            self.ctx,
            error,
            method=entry.get("method", "")[:8],
            resource_type={"Users": "User", "Groups": "Group"}.get(parts[0] if parts else "", "Bulk"),
            resource_id=parts[1] if len(parts) > 1 else "",
            path=f"{request.path} {path}"[:512],
        )
        return entry


# ------------------------------------------------------------------------------------------ discovery


class DiscoveryView(SCIMEndpoint):
    """Discovery documents carry no tenant data, so they need no credential (RFC 7644 §4).

    RFC 7644 §4: query parameters are ignored here, except that a `filter` SHOULD get a 403, so no
    client believes the documents it receives matched its filter."""

    requires_auth = False
    http_method_names = ["get"]

    def check_request(self, request: HttpRequest) -> None:
        if request.GET.get("filter", "").strip():
            raise errors.Forbidden("Discovery endpoints cannot be filtered (RFC 7644 §4).")


class ServiceProviderConfigView(DiscoveryView):
    def get(self, request: HttpRequest) -> HttpResponse:
        base_url = scim_base_url(request)
        body = {
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "documentationUri": f"{request.scheme}://{request.get_host()}/",
            "patch": {"supported": True},
            "bulk": {
                "supported": True,
                "maxOperations": settings.SCIM_BULK_MAX_OPERATIONS,
                "maxPayloadSize": settings.SCIM_BULK_MAX_PAYLOAD_SIZE,
            },
            "filter": {"supported": True, "maxResults": settings.SCIM_MAX_RESULTS},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": True},
            "authenticationSchemes": settings.SCIM_SERVICE_PROVIDER["AUTHENTICATION_SCHEMES"],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": f"{base_url}/ServiceProviderConfig",
            },
        }
        return json_response(200, body)


class ResourceTypesView(DiscoveryView):
    def get(self, request: HttpRequest, name: str | None = None) -> HttpResponse:
        documents = resource_type_documents(base_url=scim_base_url(request))
        if name is not None:
            if name not in documents:
                raise errors.NotFound(f"No resource type {name!r}.")
            return json_response(200, documents[name])
        resources = list(documents.values())
        return json_response(200, list_response(len(resources), 1, resources))


class SchemasView(DiscoveryView):
    def get(self, request: HttpRequest, uri: str | None = None) -> HttpResponse:
        base_url = scim_base_url(request)
        if uri is not None:
            if uri not in SCHEMAS:
                raise errors.NotFound(f"No schema {uri!r}.")
            return json_response(200, schema_document(uri, base_url=base_url))
        resources = [
            schema_document(u, base_url=base_url) for u in (USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA)
        ]
        return json_response(200, list_response(len(resources), 1, resources))


class NotFoundView(SCIMEndpoint):
    """Any other path under /scim/v2/, whatever the method: a SCIM 404, never Django's HTML page
    (R76). Exempt from CSRF like every SCIM route, or a POST would get Django's CSRF 403 instead."""

    requires_auth = False

    @method_decorator(csrf_exempt)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return json_response(404, errors.NotFound(f"No SCIM endpoint at {loggable(request.path)}.").to_dict())
