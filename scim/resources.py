"""What each SCIM operation on /Users and /Groups does (RFC 7644 §3.3–§3.6), as plain functions of a
`RequestContext`, so /Bulk runs exactly the code the single-resource endpoints run.

Every write takes one straight path (docs/design.md, "One straight path"): the body is decoded
first; then ONE service call reads the resource once, locked, inside its own transaction, lets the
function given here apply the request to what it read (the If-Match check, the PATCH operations),
writes what differs and records its Event; the answer is built from what was written, never read
back. No outer transaction wraps the service, so no savepoint is spent on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from directory import selectors, services
from directory.exceptions import DirectoryError, NotFound
from directory.models import Group, Tenant, User
from directory.prepared import PreparedQuery
from scim import errors
from scim.filter_grammar import Compare, Literal
from scim.http import ListQuery, RequestContext, Result, check_if_match, list_response
from scim.patch import apply_group_patch, apply_user_patch, validate_patch_request
from scim.representation import (
    etag,
    group_from_scim,
    group_to_scim,
    project,
    user_from_scim,
    user_to_scim,
    wants_attribute,
)
from scim.schemas import GROUP_SCHEMA, USER_SCHEMA

MEMBER_CHANGE_KINDS = {"add": "add", "replace": "set", "remove": "remove"}

def user_rows(ctx: RequestContext) -> QuerySet[User]:
    """The tenant's users as SCIM reads them. Their managers are read apart (`with_managers`):
    joined, they would double the columns Django compiles and hashes for every page."""
    return selectors.user_list(tenant=ctx.tenant)


def with_managers(ctx: RequestContext, users: list[User]) -> list[User]:
    """Attach the managers a page's users link to, in one query, and none when no user has one
    (a tenant's first cycle)."""
    ids = {u.manager_id for u in users if u.manager_id is not None}
    if ids:
        managers = selectors.user_references_by_pk(tenant=ctx.tenant, pks=ids)
        for user in users:
            if user.manager_id is not None:
                user.manager = managers.get(user.manager_id)
    return users


def user_result(
    ctx: RequestContext, user: User, *, status: int = 200, groups: list[tuple[str, str]] | None
) -> Result:
    body = user_to_scim(user, base_url=ctx.base_url, groups=groups)
    return Result(
        status=status, body=body, location=body["meta"]["location"], version=body["meta"]["version"]
    )


def user_groups(ctx: RequestContext, user: User) -> list[tuple[str, str]]:
    return selectors.groups_of_users(tenant=ctx.tenant, user_ids=[user.pk])[user.pk]


def _user_changes(document: Any) -> services.UserChanges:
    data = user_from_scim(document)
    return {"fields": {"username": data.username, **data.fields}, **data.service_arguments()}


# ---------------------------------------------------------------------------------------------- users


def users_get_one(ctx: RequestContext, scim_id: str, query: ListQuery) -> Result:
    user = selectors.user_get(tenant=ctx.tenant, scim_id=scim_id)
    with_managers(ctx, [user])
    wanted = wants_attribute(
        "groups", schema=USER_SCHEMA, attributes=query.attributes, excluded=query.excluded
    )
    return user_result(ctx, user, groups=user_groups(ctx, user) if wanted else None)


def users_create(ctx: RequestContext, body: Any) -> Result:
    """A user is in no group yet, so its answer needs nothing read."""
    data = user_from_scim(body)
    user = services.user_create(
        tenant=ctx.tenant,
        actor=ctx.actor,
        username=data.username,
        fields={"is_active": True, **data.fields},
        **data.service_arguments(),
    )
    return user_result(ctx, user, status=201, groups=[])


def _answer_user(ctx: RequestContext, user: User, *, answer: bool) -> Result:
    """204 with the new ETag and nothing read (RFC 7644 §3.5.2), or the resource."""
    if not answer:
        return Result(status=204, version=etag(user.version))
    with_managers(ctx, [user])
    return user_result(ctx, user, groups=user_groups(ctx, user))


def users_replace(ctx: RequestContext, scim_id: str, body: Any, if_match: str | None) -> Result:
    """PUT: the user becomes the document; what it leaves out is cleared (RFC 7644 §3.5.1). The
    service writes only what differs, so a repeated PUT is a no-op (entra-scim.md R51)."""
    changes = _user_changes(body)

    def edit(locked: User) -> services.UserChanges:
        check_if_match(if_match, locked.version)
        return changes

    user = services.user_edit(tenant=ctx.tenant, actor=ctx.actor, scim_id=scim_id, edit=edit)
    return _answer_user(ctx, user, answer=True)


def users_patch(
    ctx: RequestContext, scim_id: str, body: Any, if_match: str | None, *, answer: bool = False
) -> Result:
    """RFC 7644 §3.5.2: the operations apply to the user's document as stored (its row and the copy
    of its values), the patched document is decoded like a PUT body, and the service writes what
    differs. 204 unless the client asked for attributes (`answer=True`)."""
    operations = validate_patch_request(body)

    def edit(locked: User) -> services.UserChanges:
        check_if_match(if_match, locked.version)
        current = user_to_scim(locked, base_url=ctx.base_url, groups=None, references=False)
        return _user_changes(apply_user_patch(current, operations))

    user = services.user_edit(tenant=ctx.tenant, actor=ctx.actor, scim_id=scim_id, edit=edit)
    return _answer_user(ctx, user, answer=answer)


def users_delete(ctx: RequestContext, scim_id: str, if_match: str | None) -> Result:
    with transaction.atomic():
        user = selectors.user_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
        check_if_match(if_match, user.version)
        services.user_delete(tenant=ctx.tenant, actor=ctx.actor, user=user)
    return Result(status=204)


# --------------------------------------------------------------------------------------------- groups


def group_result(
    ctx: RequestContext, group: Group, *, status: int = 200, members: list[tuple[str, str]] | None
) -> Result:
    body = group_to_scim(group, base_url=ctx.base_url, members=members)
    return Result(
        status=status, body=body, location=body["meta"]["location"], version=body["meta"]["version"]
    )


def group_members(ctx: RequestContext, group: Group) -> list[tuple[str, str]]:
    return selectors.members_of_groups(tenant=ctx.tenant, group_ids=[group.pk])[group.pk]


def groups_get_one(ctx: RequestContext, scim_id: str, query: ListQuery) -> Result:
    group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id)
    wanted = wants_attribute(
        "members", schema=GROUP_SCHEMA, attributes=query.attributes, excluded=query.excluded
    )
    return group_result(ctx, group, members=group_members(ctx, group) if wanted else None)


def groups_create(ctx: RequestContext, body: Any) -> Result:
    data = group_from_scim(body)
    members: list[User] = []
    if data.member_ids:
        try:
            members = selectors.users_by_scim_ids(tenant=ctx.tenant, scim_ids=data.member_ids)
        except DirectoryError as exc:
            raise errors.InvalidValue(f"members: {exc.message}") from None
    group = services.group_create(
        tenant=ctx.tenant,
        actor=ctx.actor,
        display_name=data.display_name,
        external_id=data.external_id,
        members=members,
    )
    written = {u.pk: (str(u.scim_id), u.display_name) for u in members}
    return group_result(ctx, group, status=201, members=list(written.values()))


def _group_edit(ctx: RequestContext, scim_id: str, edit: Callable[[Group], services.GroupChanges]) -> Group:
    try:
        return services.group_edit(tenant=ctx.tenant, actor=ctx.actor, scim_id=scim_id, edit=edit)
    except DirectoryError as exc:
        if exc.field == "members" and not isinstance(exc, NotFound):
            raise errors.InvalidValue(f"members: {exc.message}") from None
        raise


def groups_replace(ctx: RequestContext, scim_id: str, body: Any, if_match: str | None) -> Result:
    """PUT replaces displayName and externalId; `members`, when present, becomes the exact
    membership. An absent `members` leaves membership alone, so a client that never read 50,000
    members cannot wipe them by accident (entra-scim.md R61)."""
    data = group_from_scim(body)
    members = () if data.member_ids is None else (services.MemberChange("set", data.member_ids),)

    def edit(locked: Group) -> services.GroupChanges:
        check_if_match(if_match, locked.version)
        return services.GroupChanges(
            display_name=data.display_name, external_id=data.external_id, members=members
        )

    group = _group_edit(ctx, scim_id, edit)
    return group_result(ctx, group, members=group_members(ctx, group))


def groups_patch(
    ctx: RequestContext, scim_id: str, body: Any, if_match: str | None, *, answer: bool = False
) -> Result:
    """Group PATCH never loads the member list: member operations become membership changes over
    just the ids named (entra-scim.md R61). It answers 204 (R26), or 200 with the group when the
    client asked for attributes (`answer=True`, RFC 7644 §3.5.2)."""
    operations = validate_patch_request(body)

    def edit(locked: Group) -> services.GroupChanges:
        check_if_match(if_match, locked.version)
        current = group_to_scim(locked, base_url=ctx.base_url, members=None)
        patched, member_operations = apply_group_patch(current, operations)
        data = group_from_scim({**patched, "members": None})
        renamed = (data.display_name, data.external_id) != (locked.display_name, locked.external_id)
        return services.GroupChanges(
            display_name=data.display_name if renamed else None,
            external_id=data.external_id if renamed else None,
            members=[
                services.MemberChange(
                    "set" if op.kind == "remove" and not op.ids else MEMBER_CHANGE_KINDS[op.kind], op.ids
                )
                for op in member_operations
            ],
        )

    group = _group_edit(ctx, scim_id, edit)
    if answer:
        return group_result(ctx, group, members=group_members(ctx, group))
    return Result(status=204, version=etag(group.version))


def groups_delete(ctx: RequestContext, scim_id: str, if_match: str | None) -> Result:
    with transaction.atomic():
        group = selectors.group_get(tenant=ctx.tenant, scim_id=scim_id, for_update=True)
        check_if_match(if_match, group.version)
        services.group_delete(tenant=ctx.tenant, actor=ctx.actor, group=group)
    return Result(status=204)


# ------------------------------------------------------------------------------------------- listing


def page_of(queryset: QuerySet, query: ListQuery, sort_field: Callable[[str], str]) -> tuple[int, list[Any]]:
    """One page, and the total: counted only when the page alone cannot tell it (a page that is not
    full, started inside the results, ends them). Entra's lookups by userName and by displayName
    therefore cost one query."""
    if query.sort_by:
        field = sort_field(query.sort_by)
        tiebreak = "-id" if query.descending else "id"
        ordering = [f"-{field}" if query.descending else field, tiebreak]
    else:
        ordering = ["id"]
    if query.count == 0:
        return queryset.count(), []
    offset = query.start - 1
    rows = list(queryset.order_by(*ordering)[offset : offset + query.count])
    if rows and len(rows) < query.count:
        return offset + len(rows), rows
    if not rows and offset == 0:
        return 0, rows
    return queryset.count(), rows


def render_users(ctx: RequestContext, users: list[User], query: ListQuery) -> list[dict[str, Any]]:
    with_managers(ctx, users)
    wanted = wants_attribute(
        "groups", schema=USER_SCHEMA, attributes=query.attributes, excluded=query.excluded
    )
    groups = selectors.groups_of_users(tenant=ctx.tenant, user_ids=[u.pk for u in users]) if wanted else {}
    return [
        project(
            user_to_scim(u, base_url=ctx.base_url, groups=groups.get(u.pk) if wanted else None),
            schema=USER_SCHEMA,
            attributes=query.attributes,
            excluded=query.excluded,
        )
        for u in users
    ]


def render_groups(ctx: RequestContext, groups: list[Group], query: ListQuery) -> list[dict[str, Any]]:
    wanted = wants_attribute(
        "members", schema=GROUP_SCHEMA, attributes=query.attributes, excluded=query.excluded
    )
    group_ids = [g.pk for g in groups]
    members = selectors.members_of_groups(tenant=ctx.tenant, group_ids=group_ids) if wanted else {}
    return [
        project(
            group_to_scim(g, base_url=ctx.base_url, members=members.get(g.pk) if wanted else None),
            schema=GROUP_SCHEMA,
            attributes=query.attributes,
            excluded=query.excluded,
        )
        for g in groups
    ]


_prepared_lookups: dict[tuple[str, int], PreparedQuery[User]] = {}


def _prepared_user_lookup(lookup: Compare, count: int) -> PreparedQuery[User]:
    """The first page of users matching `lookup`'s attribute, as the list path would read it
    (user_rows, the compiled filter, ordered by id), compiled once per attribute and page size.
    At most two attributes × SCIM_MAX_RESULTS sizes, so the dict stays small."""
    from scim.filters import user_node_q

    key = (lookup.path.attr.lower() if lookup.path.attr else "", count)
    prepared = _prepared_lookups.get(key)
    if prepared is None:

        def build(tenant_id: int, value: str) -> QuerySet[User]:
            node = Compare(path=lookup.path, op="eq", value=Literal("string", value))
            users = selectors.user_list(tenant=Tenant(pk=tenant_id))
            return users.filter(user_node_q(node)).order_by("id")[:count]

        prepared = _prepared_lookups.setdefault(key, PreparedQuery(build, tenant_id=int, value=str))
    return prepared


def users_list(ctx: RequestContext, query: ListQuery) -> Result:
    from scim.filter_grammar import parse_filter
    from scim.filters import email_equality, prepared_lookup, user_node_q, user_sort_field

    node = parse_filter(query.filter) if query.filter else None
    lookup = prepared_lookup(node) if node is not None else None
    if lookup is not None and not query.sort_by and query.start == 1 and query.count > 0:
        users = _prepared_user_lookup(lookup, query.count).run(
            tenant_id=ctx.tenant.pk, value=lookup.value.text if lookup.value else ""
        )
        if len(users) < query.count:
            total = len(users)
        else:
            total = user_rows(ctx).filter(user_node_q(lookup)).count()
        return Result(status=200, body=list_response(total, 1, render_users(ctx, users, query)))
    queryset = user_rows(ctx)
    if node is not None:
        queryset = queryset.filter(user_node_q(node))
        email = email_equality(node)
        if email is not None:
            # The email is looked up through its own index first; the compiled filter still decides.
            queryset = queryset.filter(pk__in=selectors.user_ids_with_email(tenant=ctx.tenant, email=email))
    total, users = page_of(queryset, query, user_sort_field)
    return Result(status=200, body=list_response(total, query.start, render_users(ctx, users, query)))


def groups_list(ctx: RequestContext, query: ListQuery) -> Result:
    from scim.filters import group_filter_q, group_sort_field

    queryset = selectors.group_list(tenant=ctx.tenant)
    if query.filter:
        queryset = queryset.filter(group_filter_q(query.filter))
    total, groups = page_of(queryset, query, group_sort_field)
    return Result(status=200, body=list_response(total, query.start, render_groups(ctx, groups, query)))


def search_all(ctx: RequestContext, query: ListQuery) -> Result:
    """Root-level /.search (RFC 7644 §3.4.3): users, then groups, paged as one list. A filter that
    names attributes of only one resource type searches that type."""
    from scim.filters import group_filter_q, user_filter_q

    sources: list[tuple[QuerySet, str]] = []
    failures: list[errors.SCIMError] = []
    for queryset, compile_filter, kind in (
        (user_rows(ctx), user_filter_q, "User"),
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
        render = render_users if kind == "User" else render_groups
        resources += render(ctx, rows, query)
    return Result(status=200, body=list_response(sum(counts), query.start, resources))
