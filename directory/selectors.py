"""Reads of directory state. Every selector that returns tenant data takes `tenant=` and filters on
it first; nothing here can be called without saying whose data it reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import QuerySet

from directory.exceptions import NotFound, ReferenceNotFound
from directory.models import Event, Group, Membership, Tenant, TenantEmailDomain, TenantHost, User


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
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"No tenant with slug {slug!r}.")
    return tenant


def tenant_primary_host(*, tenant: Tenant) -> str:
    row = TenantHost.objects.filter(tenant=tenant, is_primary=True).first()
    if row is not None:
        return row.host
    from directory.tenancy import tenant_primary_host as default_host

    return default_host(tenant.slug)


def tenant_for_domain_input(*, value: str) -> Tenant | None:
    """What the go-to-domain page accepts: a slug, a tenant host, or an address in a verified email
    domain. Inactive tenants resolve to None, indistinguishable from unknown ones."""
    from directory.tenancy import normalise_host, tenant_primary_host

    text = value.strip().lower()
    if not text or len(text) > 320:
        return None
    tenant: Tenant | None = None
    if "@" in text:
        domain = text.rsplit("@", 1)[1]
        row = TenantEmailDomain.objects.select_related("tenant").filter(domain=domain, verified=True).first()
        tenant = row.tenant if row else None
    else:
        host = normalise_host(text)
        row_host = TenantHost.objects.select_related("tenant").filter(host=host).first()
        if row_host is not None:
            tenant = row_host.tenant
        else:
            tenant = Tenant.objects.filter(slug=text).first()
            if tenant is None:
                candidates = TenantHost.objects.select_related("tenant").filter(
                    host=tenant_primary_host(text)
                )
                tenant = candidates[0].tenant if candidates else None
    if tenant is None or not tenant.is_active or tenant.is_platform:
        return None
    return tenant


def user_list(*, tenant: Tenant) -> QuerySet[User]:
    """The tenant's directory users as SCIM sees them: the service principal is never listed."""
    return User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE)


def user_get(*, tenant: Tenant, scim_id: object, for_update: bool = False) -> User:
    parsed = parse_scim_id(scim_id)
    if parsed is None:
        raise NotFound(f"User {scim_id} not found.")
    queryset = user_list(tenant=tenant)
    if for_update:
        queryset = queryset.select_for_update()
    user = queryset.filter(scim_id=parsed).first()
    if user is None:
        raise NotFound(f"User {scim_id} not found.")
    return user


def users_by_scim_ids(*, tenant: Tenant, scim_ids: Iterable[object]) -> list[User]:
    """Resolve member or manager references inside the tenant, in one query. Unknown ids and ids of
    another tenant's users are refused alike."""
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
    found = list(user_list(tenant=tenant).filter(scim_id__in=list(wanted)))
    missing = set(wanted) - {u.scim_id for u in found}
    if missing:
        raise ReferenceNotFound(
            f"No user with id {', '.join(sorted(wanted[m] for m in missing)[:5])} in this tenant."
        )
    return found


def service_principal_get(*, tenant: Tenant) -> User:
    user = User.objects.filter(tenant=tenant, role=User.Role.SERVICE).first()
    if user is None:
        raise NotFound(f"Tenant {tenant.slug} has no provisioning service principal.")
    return user


def group_list(*, tenant: Tenant) -> QuerySet[Group]:
    return Group.objects.filter(tenant=tenant)


def group_get(*, tenant: Tenant, scim_id: object, for_update: bool = False) -> Group:
    parsed = parse_scim_id(scim_id)
    if parsed is None:
        raise NotFound(f"Group {scim_id} not found.")
    queryset = group_list(tenant=tenant)
    if for_update:
        queryset = queryset.select_for_update()
    group = queryset.filter(scim_id=parsed).first()
    if group is None:
        raise NotFound(f"Group {scim_id} not found.")
    return group


def group_member_ids(*, tenant: Tenant, group: Group) -> set[int]:
    return set(Membership.objects.filter(tenant=tenant, group=group).values_list("user_id", flat=True))


def event_list(*, tenant: Tenant) -> QuerySet[Event]:
    return Event.objects.filter(tenant=tenant)
