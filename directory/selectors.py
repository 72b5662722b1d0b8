"""Reads of directory state. Every selector that returns tenant data takes `tenant=` and filters on
it first; nothing here can be called without saying whose data it reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Generic, TypeVar

from django.db import connection
from django.db.models import Count, QuerySet, Value
from django.db.models.functions import Lower

from directory.exceptions import NotFound, ReferenceNotFound
from directory.models import (
    Event,
    Group,
    Membership,
    Tenant,
    TenantEmailDomain,
    TenantHost,
    User,
    UserEmail,
)
from directory.prepared import PreparedQuery

M = TypeVar("M", User, Group)


def parse_scim_id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def tenant_for_host(*, host: str) -> Tenant | None:
    """The tenant served on `host`: the platform tenant on a root host, else a stored TenantHost."""
    from directory.tenancy import root_hosts

    if host in root_hosts():
        return Tenant.objects.filter(is_platform=True).first()
    row = TenantHost.objects.select_related("tenant").filter(host=host).first()
    return row.tenant if row is not None else None


def tenant_get(*, slug: str) -> Tenant:
    """Slugs are stored lower-case (services.tenant_create), so `Contoso` finds `contoso`."""
    tenant = Tenant.objects.filter(slug=slug.strip().lower()).first()
    if tenant is None:
        raise NotFound(f"No tenant with slug {slug!r}.")
    return tenant


def tenant_primary_host(*, tenant: Tenant) -> str:
    row = TenantHost.objects.filter(tenant=tenant, is_primary=True).first()
    if row is not None:
        return row.host
    from directory.tenancy import tenant_primary_host as default_host

    return default_host(tenant.slug)


def _tenant_for_verified_email_domain(domain: str) -> Tenant | None:
    row = TenantEmailDomain.objects.select_related("tenant").filter(domain=domain, verified=True).first()
    return row.tenant if row is not None else None


def tenant_for_domain_input(*, value: str) -> Tenant | None:
    """What the go-to-domain page accepts: a slug, a tenant host, an address in a verified email
    domain, or that domain alone. Unverified domains, inactive tenants and the platform resolve to
    None, indistinguishable from unknown input, so the page reveals nothing about them."""
    from directory.tenancy import normalise_host

    text = value.strip().lower()
    if not text or len(text) > 320:
        return None
    tenant: Tenant | None
    if "@" in text:
        tenant = _tenant_for_verified_email_domain(text.rsplit("@", 1)[1])
    else:
        host = normalise_host(text)
        row = TenantHost.objects.select_related("tenant").filter(host=host).first()
        if row is not None:
            tenant = row.tenant
        else:
            tenant = Tenant.objects.filter(slug=host).first() or _tenant_for_verified_email_domain(host)
    if tenant is None or not tenant.is_active or tenant.is_platform:
        return None
    return tenant


def lowered(value: str) -> Lower:
    """The right-hand side for `field__lower=`: LOWER() applied by the database, exactly as the
    case-insensitive unique indexes apply it. Python's str.lower() also folds non-ASCII letters,
    which SQLite's LOWER() leaves alone, so `LOWER(username) = 'ärne'` would miss `Ärne` there."""
    return Lower(Value(value))


def user_by_username(*, tenant: Tenant, username: str) -> User | None:
    """The directory user whose userName matches case-insensitively, as the unique constraint does."""
    return user_list(tenant=tenant).filter(username__lower=lowered(username)).first()


def user_list(*, tenant: Tenant) -> QuerySet[User]:
    """The tenant's directory users as SCIM sees them: the service principal is never listed."""
    return User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE)


def user_get(*, tenant: Tenant, scim_id: object, for_update: bool = False) -> User:
    return _one_by_scim_id(_USER_BY_SCIM_ID, tenant=tenant, scim_id=scim_id, locked=for_update, kind="User")


class _ByScimId(Generic[M]):
    """The one row of a tenant's listing (user_list, group_list) with a scim_id, plain or locked,
    as prepared queries (directory.prepared): every SCIM read and write of one resource starts
    here. scim_id is unique, so "the one row" needs no ordering or LIMIT."""

    def __init__(self, listing: Callable[..., QuerySet[M]]) -> None:
        self.plain = PreparedQuery(partial(self._build, listing, False), tenant_id=int, scim_id=uuid.UUID)
        self.locked = PreparedQuery(partial(self._build, listing, True), tenant_id=int, scim_id=uuid.UUID)

    @staticmethod
    def _build(
        listing: Callable[..., QuerySet[M]], locked: bool, tenant_id: int, scim_id: uuid.UUID
    ) -> QuerySet[M]:
        rows = listing(tenant=Tenant(pk=tenant_id)).filter(scim_id=scim_id)
        return rows.select_for_update() if locked else rows


def _one_by_scim_id(
    prepared: _ByScimId[M], *, tenant: Tenant, scim_id: object, locked: bool, kind: str
) -> M:
    parsed = parse_scim_id(scim_id)
    query = prepared.locked if locked else prepared.plain
    found = query.run(tenant_id=tenant.pk, scim_id=parsed) if parsed is not None else []
    if not found:
        raise NotFound(f"{kind} {scim_id} not found.")
    return found[0]


def user_references_by_pk(*, tenant: Tenant, pks: Iterable[int]) -> dict[int, User]:
    """The tenant's users with these primary keys, read only as far as a reference shows them
    (id, scim_id, displayName): a page's managers, in one query."""
    rows = User.objects.filter(tenant=tenant, pk__in=list(pks)).order_by()
    return {u.pk: u for u in rows.only("id", "tenant_id", "scim_id", "display_name")}


def users_by_scim_ids(*, tenant: Tenant, scim_ids: Iterable[object]) -> list[User]:
    """Resolve member or manager references inside the tenant, in one query (see `users_named`).
    Unknown ids and ids of another tenant's users are refused alike."""
    wanted: dict[uuid.UUID, str] = {}
    bad: list[str] = []
    for raw in scim_ids:
        parsed = parse_scim_id(raw)
        if parsed is None:
            bad.append(str(raw))
        else:
            wanted[parsed] = str(raw)
    if bad:
        raise ReferenceNotFound(f"No user with id {', '.join(sorted(bad)[:5])} in this tenant.")
    found = users_named(tenant=tenant, scim_ids=wanted)
    missing = set(wanted) - {u.scim_id for u in found}
    if missing:
        raise ReferenceNotFound(
            f"No user with id {', '.join(sorted(wanted[m] for m in missing)[:5])} in this tenant."
        )
    return found


def users_named(*, tenant: Tenant, scim_ids: Iterable[uuid.UUID]) -> list[User]:
    """The tenant's users (never its service principal) among `scim_ids`; other ids are ignored.
    Only what a reference needs is read: id, tenant, scim_id, displayName, userName (Entra adds
    members 50 at a time, and fifty full rows of the wide user model were half a member PATCH's CPU;
    other fields load on access, one query each).

    The rows are found through the unique scim_id index alone and the tenant is checked on the
    rows: with the tenant in the WHERE clause, a planner without fresh statistics takes the tenant
    index as selective and ANDs a bitmap of every user of the tenant into the lookup, 3.8 ms at
    100,000 users instead of 0.2 (docs/design.md, "Plans that need no fresh statistics"). scim_ids
    are unique across tenants, so at most len(scim_ids) rows are read, and a row of another tenant
    is dropped here exactly as an unknown id is."""
    ids = list(scim_ids)
    if not ids:
        return []
    columns = ("id", "tenant_id", "scim_id", "display_name", "username", "role")
    rows = User.objects.filter(scim_id__in=ids).only(*columns)
    return [u for u in rows if u.tenant_id == tenant.pk and u.role != User.Role.SERVICE]


def service_principal_get(*, tenant: Tenant) -> User:
    user = User.objects.filter(tenant=tenant, role=User.Role.SERVICE).first()
    if user is None:
        raise NotFound(f"Tenant {tenant.slug} has no provisioning service principal.")
    return user


def group_list(*, tenant: Tenant) -> QuerySet[Group]:
    return Group.objects.filter(tenant=tenant)


def group_get(*, tenant: Tenant, scim_id: object, for_update: bool = False) -> Group:
    return _one_by_scim_id(_GROUP_BY_SCIM_ID, tenant=tenant, scim_id=scim_id, locked=for_update, kind="Group")


def group_member_ids(*, tenant: Tenant, group: Group) -> set[int]:
    return set(Membership.objects.filter(tenant=tenant, group=group).values_list("user_id", flat=True))


def event_list(*, tenant: Tenant) -> QuerySet[Event]:
    return Event.objects.filter(tenant=tenant)


# ----------------------------------------------------------------------------------- manager console


@dataclass(frozen=True)
class DirectoryCounts:
    users_active: int
    users_inactive: int
    groups: int
    memberships: int


@dataclass(frozen=True)
class ActivityBucket:
    start: datetime
    success: int
    failure: int

    @property
    def total(self) -> int:
        return self.success + self.failure


@dataclass(frozen=True)
class ProvisioningContact:
    when: datetime
    via: str


@dataclass(frozen=True)
class FailureSummary:
    total: int
    by_scim_type: list[tuple[str, int]]
    top_details: list[str]


PROVISIONING_LOOKBACK = timedelta(days=30)


def directory_counts(*, tenant: Tenant) -> DirectoryCounts:
    """What the dashboard headlines, in three aggregate queries over tenant-leading indexes."""
    from django.db.models import Count, Q

    users = user_list(tenant=tenant).aggregate(
        active=Count("id", filter=Q(is_active=True)), inactive=Count("id", filter=Q(is_active=False))
    )
    return DirectoryCounts(
        users_active=users["active"],
        users_inactive=users["inactive"],
        groups=group_list(tenant=tenant).count(),
        memberships=Membership.objects.filter(tenant=tenant).count(),
    )


def provisioning_requests(*, tenant: Tenant) -> QuerySet[Event]:
    """Events caused by a SCIM credential: every change Entra made and every request it got wrong.
    Requests that changed nothing are not logged, so this counts the requests that mattered."""
    return event_list(tenant=tenant).filter(actor_type=Event.ActorType.CREDENTIAL)


def provisioning_activity(*, tenant: Tenant, since: datetime, unit: str) -> list[ActivityBucket]:
    """Provisioning requests per hour or per day since `since`, oldest first, with empty buckets
    kept so a quiet hour shows as a gap rather than vanishing from the chart."""
    from django.db.models import Count
    from django.db.models.functions import TruncDay, TruncHour
    from django.utils import timezone

    if unit not in ("hour", "day"):
        raise ValueError("unit is 'hour' or 'day'")
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (
        provisioning_requests(tenant=tenant)
        .filter(created__gte=since)
        .annotate(bucket=trunc("created"))
        .values("bucket", "result")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[datetime, str], int] = {}
    for row in rows:
        counts[(row["bucket"], row["result"])] = row["n"]
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    start = timezone.localtime(since).replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = start.replace(hour=0)
    buckets = []
    now = timezone.now()
    while start <= now:
        buckets.append(
            ActivityBucket(
                start=start,
                success=counts.get((start, Event.Result.SUCCESS), 0),
                failure=counts.get((start, Event.Result.FAILURE), 0),
            )
        )
        start += step
    return buckets


def last_provisioning_request(*, tenant: Tenant) -> ProvisioningContact | None:
    """When Entra last reached this tenant: the newest event written by a credential (within the
    last 30 days, so the scan stays bounded), or a credential's `last_used`, which the SCIM auth
    layer refreshes even for requests that change nothing."""
    from django.utils import timezone

    from oauth.models import Application, SecretToken

    candidates: list[ProvisioningContact] = []
    event = (
        provisioning_requests(tenant=tenant)
        .filter(created__gte=timezone.now() - PROVISIONING_LOOKBACK)
        .order_by("-created")
        .values("created", "actor_label")
        .first()
    )
    if event is not None:
        candidates.append(ProvisioningContact(when=event["created"], via=event["actor_label"]))
    token = (
        SecretToken.objects.filter(tenant=tenant, last_used__isnull=False)
        .order_by("-last_used")
        .values("last_used", "name", "prefix")
        .first()
    )
    if token is not None:
        label = f"secret token {token['name']} ({token['prefix']}…)"
        candidates.append(ProvisioningContact(when=token["last_used"], via=label))
    application = (
        Application.objects.filter(tenant=tenant, last_used__isnull=False)
        .order_by("-last_used")
        .values("last_used", "name")
        .first()
    )
    if application is not None:
        label = f"OAuth application {application['name']}"
        candidates.append(ProvisioningContact(when=application["last_used"], via=label))
    return max(candidates, key=lambda c: c.when, default=None)


def provisioning_failures(*, tenant: Tenant, since: datetime, sample: int = 200) -> FailureSummary:
    """Failed provisioning requests since `since` by scimType, with the details of the most common
    type (a bounded sample) so the console can say which attribute keeps failing."""
    from django.db.models import Count

    failures = provisioning_requests(tenant=tenant).filter(created__gte=since, result=Event.Result.FAILURE)
    by_type = [
        (row["scim_type"], row["n"])
        for row in failures.values("scim_type").annotate(n=Count("id")).order_by("-n", "scim_type")
    ]
    total = sum(n for _, n in by_type)
    details: list[str] = []
    if by_type:
        details = list(
            failures.filter(scim_type=by_type[0][0])
            .order_by("-created")
            .values_list("detail", flat=True)[:sample]
        )
    return FailureSummary(total=total, by_scim_type=by_type, top_details=details)


def user_department_values(*, tenant: Tenant, limit: int = 100) -> list[str]:
    """Distinct departments, read from the (tenant, department) index."""
    return list(
        user_list(tenant=tenant)
        .exclude(department="")
        .order_by("department")
        .values_list("department", flat=True)
        .distinct()[:limit]
    )


def user_groups(*, tenant: Tenant, user: User) -> QuerySet[Group]:
    return group_list(tenant=tenant).filter(memberships__user=user, memberships__tenant=tenant)


def resource_events(*, tenant: Tenant, resource_id: str) -> QuerySet[Event]:
    """A user's or group's history, newest first, on the (tenant, resource_id) index."""
    return event_list(tenant=tenant).filter(resource_id=resource_id).order_by("-created", "-id")


# ------------------------------------------------------------------------------- directory API


@dataclass(frozen=True)
class TenantUserFilterQuery:
    """The directory API's user filters; every one is an indexed lookup inside the tenant."""

    active: bool | None = None
    user_name: str = ""
    email: str = ""
    external_id: str = ""
    group: uuid.UUID | None = None
    updated_after: datetime | None = None


EMAIL_MATCH_LIMIT = 1000


def user_ids_with_email(*, tenant: Tenant, email: str) -> list[int]:
    """Ids of the users with this email (any type, case-insensitively), read through the email
    index alone: callers then fetch those users by primary key, a plan no statistics can change
    (docs/design.md, "Plans that need no fresh statistics"). At most EMAIL_MATCH_LIMIT."""
    emails = UserEmail.objects.filter(tenant=tenant, value__lower=lowered(email))
    return list(emails.values_list("user_id", flat=True)[:EMAIL_MATCH_LIMIT])


def user_filter(*, tenant: Tenant, query: TenantUserFilterQuery) -> QuerySet[User]:
    """Users of the tenant's directory (never its service principal) matching `query`, in a stable
    order (creation order, by primary key) with their emails and manager loaded.

    Shaped so the plan does not depend on fresh statistics (a new tenant's first cycle runs before
    autoanalyze): the manager is prefetched by id instead of joined, and an email is resolved to
    user ids through its own index first, instead of a semi-join the planner may drive from the
    tenant's whole user list."""
    users = (
        User.objects.filter(tenant=tenant)
        .exclude(role=User.Role.SERVICE)
        .prefetch_related("emails", "manager")
        .order_by("id")
    )
    if query.active is not None:
        users = users.filter(is_active=query.active)
    if query.user_name:
        users = users.filter(username__lower=lowered(query.user_name))
    if query.email:
        users = users.filter(pk__in=user_ids_with_email(tenant=tenant, email=query.email))
    if query.external_id:
        users = users.filter(external_id=query.external_id)
    if query.group is not None:
        users = users.filter(
            pk__in=Membership.objects.filter(tenant=tenant, group__scim_id=query.group).values("user_id")
        )
    if query.updated_after is not None:
        users = users.filter(last_modified__gt=query.updated_after)
    return users


def group_members_list(*, tenant: Tenant, group: Group) -> QuerySet[User]:
    return (
        User.objects.filter(tenant=tenant, memberships__group=group)
        .prefetch_related("emails", "manager")
        .order_by("id")
    )


def groups_with_member_counts(*, tenant: Tenant) -> QuerySet[Group]:
    return Group.objects.filter(tenant=tenant).annotate(member_count=Count("memberships")).order_by("id")


def feed_events(*, tenant: Tenant, after: int, limit: int) -> list[Event]:
    """The tenant's change feed after position `after`: only positioned events (see
    services.feed_stamp), in position order."""
    return list(
        Event.objects.filter(tenant=tenant, feed_position__gt=after)
        .order_by("feed_position")[:limit]
    )


GroupRef = tuple[str, str]
MemberRef = tuple[str, str]


def _references(sql: str, owner_ids: Iterable[int], tenant: Tenant) -> dict[int, list[tuple[str, str]]]:
    """Run one of the two reference reads below. Written as SQL because they serve every SCIM read
    of a user or a group: Django's compiler spends longer on the join than PostgreSQL does."""
    refs: dict[int, list[tuple[str, str]]] = {pk: [] for pk in owner_ids}
    if not refs:
        return refs
    placeholders = ", ".join(["%s"] * len(refs))
    with connection.cursor() as cursor:
        cursor.execute(sql.format(ids=placeholders), [tenant.pk, *refs])
        for owner_id, scim_id, display_name in cursor.fetchall():
            refs[owner_id].append((str(uuid.UUID(str(scim_id))), display_name))
    return refs


_GROUPS_OF_USERS = (
    f"SELECT m.user_id, g.scim_id, g.display_name FROM {Membership._meta.db_table} m"
    f" JOIN {Group._meta.db_table} g ON g.id = m.group_id"
    " WHERE m.tenant_id = %s AND m.user_id IN ({ids}) ORDER BY m.id"
)
_MEMBERS_OF_GROUPS = (
    f"SELECT m.group_id, u.scim_id, u.display_name FROM {Membership._meta.db_table} m"
    f" JOIN {User._meta.db_table} u ON u.id = m.user_id"
    " WHERE m.tenant_id = %s AND m.group_id IN ({ids}) ORDER BY m.id"
)


def groups_of_users(*, tenant: Tenant, user_ids: Iterable[int]) -> dict[int, list[GroupRef]]:
    """(SCIM id, displayName) of each user's groups, for a page of users in one query."""
    return _references(_GROUPS_OF_USERS, user_ids, tenant)


def members_of_groups(*, tenant: Tenant, group_ids: Iterable[int]) -> dict[int, list[MemberRef]]:
    """(SCIM id, displayName) of each group's members, for a page of groups in one query."""
    return _references(_MEMBERS_OF_GROUPS, group_ids, tenant)


_USER_BY_SCIM_ID: _ByScimId[User] = _ByScimId(user_list)
_GROUP_BY_SCIM_ID: _ByScimId[Group] = _ByScimId(group_list)
