"""The only writers of directory state.

Every function takes keyword-only arguments with `tenant=` and `actor=` explicit, runs in one
transaction (nested calls become savepoints of the caller's transaction), and records an `Event`
for each change it makes. Functions that find nothing to change write nothing, which keeps Entra's
repeated PATCHes idempotent (entra-scim.md R51).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from directory.exceptions import (
    InvalidValue,
    NotFound,
    ProtectedResource,
    TenantMismatch,
    UniquenessConflict,
)
from directory.feed import event_type
from directory.models import (
    SLUG_RE,
    Event,
    Group,
    Membership,
    Tenant,
    TenantEmailDomain,
    TenantHost,
    User,
    UserAddress,
    UserEmail,
    UserEntitlement,
    UserIm,
    UserPhoneNumber,
    UserPhoto,
    UserX509Certificate,
    WebhookDelivery,
    WebhookEndpoint,
    subscribed,
)
from directory.multi_values import MULTI_VALUE_FIELDS, copy_from_rows, rebuild_copies
from directory.prepared import insert, update
from directory.selectors import parse_scim_id

USER_SCALAR_FIELDS = frozenset(
    {
        "username",
        "external_id",
        "is_active",
        "formatted_name",
        "family_name",
        "given_name",
        "middle_name",
        "honorific_prefix",
        "honorific_suffix",
        "display_name",
        "nick_name",
        "profile_url",
        "title",
        "user_type",
        "preferred_language",
        "locale",
        "timezone",
        "employee_number",
        "cost_center",
        "organization",
        "division",
        "department",
        "roles",
    }
)
MULTI_VALUE_MODELS: dict[str, type[models.Model]] = {
    "emails": UserEmail,
    "phone_numbers": UserPhoneNumber,
    "ims": UserIm,
    "photos": UserPhoto,
    "entitlements": UserEntitlement,
    "x509_certificates": UserX509Certificate,
    "addresses": UserAddress,
}
"""The child table of each kind (directory.multi_values names them for migrations)."""
EVENT_ID_LIST_LIMIT = 1000
WEBHOOK_RETRY_WINDOW = timedelta(hours=24)
"""A change's webhook delivery is retried with back-off this long, then marked failed."""
PASSWORD_SET = "(set)"
"""What an Event records for a password: that one was set, never the password or its hash."""
UNSET: Any = object()

USERNAME_TAKEN = "userName {value!r} is already in use in this tenant."
DISPLAY_NAME_TAKEN = "A group named {value!r} already exists in this tenant."
TENANT_SLUG_TAKEN = "A tenant with slug {value!r} already exists."
HOST_TAKEN = "The host {value!r} already serves another tenant."
EMAIL_DOMAIN_TAKEN = "The email domain {value!r} belongs to another tenant."
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
HEX_COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the provisioning log shows it. A SCIM credential acts as the tenant's
    service principal; `label` and `credential` say which credential it was."""

    type: str
    user: User | None = None
    label: str = ""
    credential: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(type=Event.ActorType.SYSTEM, label=label)

    @classmethod
    def manager(cls, user: User) -> Actor:
        return cls(type=Event.ActorType.MANAGER, user=user, label=user.username)

    @classmethod
    def for_credential(cls, *, service_principal: User, label: str, credential: str) -> Actor:
        return cls(
            type=Event.ActorType.CREDENTIAL, user=service_principal, label=label, credential=credential
        )


@dataclass
class MultiValueDiff:
    old: list[dict[str, Any]] = field(default_factory=list)
    new: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- events


def event_record(
    *,
    tenant: Tenant,
    actor: Actor,
    action: str,
    resource_type: str = "",
    resource_id: str = "",
    resource_label: str = "",
    changes: Mapping[str, Any] | None = None,
    result: str = Event.Result.SUCCESS,
    status: int | None = None,
    scim_type: str = "",
    detail: str = "",
    request_method: str = "",
    request_path: str = "",
) -> Event:
    """Append to the provisioning log. Failed SCIM requests call this after their transaction rolled
    back, so the failure is kept while the change is not. A directory change also goes to the
    webhook outbox here, inside the caller's transaction (see `_outbox_write`)."""
    actor_user = actor.user if actor.user is not None and actor.user.pk is not None else None
    event = Event(
        tenant=tenant,
        actor_type=actor.type,
        actor_user=actor_user,
        actor_label=actor.label[:255],
        credential=actor.credential[:128],
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id)[:64],
        resource_label=resource_label[:255],
        changes=dict(changes or {}),
        result=result,
        status=status,
        scim_type=scim_type[:32],
        detail=detail,
        request_method=request_method[:8],
        request_path=request_path[:512],
    )
    insert(event)
    kind = event_type(action)
    if result == Event.Result.SUCCESS and kind is not None:
        _outbox_write(tenant, event, kind)
    return event


def _outbox_write(tenant: Tenant, event: Event, kind: str) -> None:
    """One pending delivery per active endpoint of the tenant that wants this event type, written
    in the transaction of the change itself: if the change rolls back, so do its deliveries, and a
    committed change always has them (the transactional outbox). One indexed query when the tenant
    has no endpoints, reading only the two columns that decide (no endpoint is built, no secret
    decrypted)."""
    with connection.cursor() as cursor:
        cursor.execute(ACTIVE_ENDPOINTS_SQL, [tenant.pk])
        rows = cursor.fetchall()
    endpoints = [
        endpoint_id
        for endpoint_id, event_types in rows
        if subscribed(json.loads(event_types) if isinstance(event_types, str) else event_types, kind)
    ]
    if not endpoints:
        return
    now = timezone.now()
    resource_key = f"{event.resource_type}:{event.resource_id}"[:100]
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            tenant=tenant,
            endpoint_id=endpoint_id,
            event=event,
            event_type=kind,
            resource_key=resource_key,
            next_attempt_at=now,
            retry_until=now + WEBHOOK_RETRY_WINDOW,
        )
        for endpoint_id in endpoints
    )


# Every directory change runs this, on the write path of each SCIM request; written out because
# the ORM spent more time compiling it than PostgreSQL spent answering it. Both databases hand the
# JSON column back as text here (Django parses it in the field, which a cursor skips).
ACTIVE_ENDPOINTS_SQL = (
    f"SELECT id, event_types FROM {WebhookEndpoint._meta.db_table} WHERE tenant_id = %s AND is_active"
)


# -------------------------------------------------------------------------------------------- tenants


def _clean_hostname(raw: str, *, what: str, field_name: str) -> str:
    """Hosts and email domains are compared as stored, so they are stored lower-case, without a
    port or a trailing dot; anything that is not a DNS name is refused rather than stored."""
    value = raw.strip().lower().rstrip(".")
    if not HOSTNAME_RE.fullmatch(value):
        raise InvalidValue(f"{value!r} is not a valid {what}.", field=field_name)
    return value


def _clean_tenant_fields(values: Mapping[str, Any]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(value, str):
            raise InvalidValue(f"{name} must be a string.", field=name)
        cleaned[name] = value.strip()
    if "name" in cleaned and not cleaned["name"]:
        raise InvalidValue("A tenant needs a name.", field="name")
    colour = cleaned.get("primary_color")
    if colour is not None and not HEX_COLOUR_RE.fullmatch(colour):
        raise InvalidValue("Enter the colour as #RRGGBB.", field="primary_color")
    logo_url = cleaned.get("logo_url")
    if logo_url and not logo_url.startswith(("https://", "http://")):
        raise InvalidValue("The logo URL must start with https://.", field="logo_url")
    _check_lengths(Tenant, cleaned)
    return cleaned


@transaction.atomic
def tenant_create(
    *,
    actor: Actor,
    slug: str,
    name: str,
    hosts: Sequence[str] = (),
    email_domains: Sequence[str] = (),
    display_name: str = "",
) -> Tenant:
    """A tenant with its primary host `<slug>.<base domain>`, any custom hosts, and its provisioning
    service principal (the user every SCIM credential acts as; unable to sign in).

    A root host is never a tenant's host: the middleware would resolve it to the platform anyway, and
    storing it would make the platform's host look owned by a customer."""
    from directory.tenancy import root_hosts, tenant_primary_host

    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise InvalidValue("A tenant slug is 1–63 lowercase letters, digits or hyphens.", field="slug")
    values = _clean_tenant_fields({"name": name, "display_name": display_name})
    primary = tenant_primary_host(slug)
    custom = [_clean_hostname(h, what="host name", field_name="hosts") for h in hosts if h.strip()]
    all_hosts = list(dict.fromkeys([primary, *custom]))
    domains = list(
        dict.fromkeys(
            _clean_hostname(d, what="email domain", field_name="email_domains")
            for d in email_domains
            if d.strip()
        )
    )
    for host in all_hosts:
        if host in root_hosts():
            raise InvalidValue(f"{host!r} is the platform's host, not a tenant's.", field="hosts")
    if Tenant.objects.filter(slug=slug).exists():
        raise UniquenessConflict(TENANT_SLUG_TAKEN.format(value=slug), field="slug")
    taken_host = TenantHost.objects.filter(host__in=all_hosts).values_list("host", flat=True).first()
    if taken_host is not None:
        raise UniquenessConflict(HOST_TAKEN.format(value=taken_host), field="hosts")
    taken_domain = (
        TenantEmailDomain.objects.filter(domain__in=domains).values_list("domain", flat=True).first()
    )
    if taken_domain is not None:
        raise UniquenessConflict(EMAIL_DOMAIN_TAKEN.format(value=taken_domain), field="email_domains")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, **values)
            TenantHost.objects.bulk_create(
                [TenantHost(tenant=tenant, host=h, is_primary=h == primary) for h in all_hosts]
            )
            TenantEmailDomain.objects.bulk_create(
                [TenantEmailDomain(tenant=tenant, domain=d, verified=True) for d in domains]
            )
    except IntegrityError:
        # Lost a race with a concurrent create of the same slug, host or domain.
        raise UniquenessConflict(
            "The tenant's slug, a host or an email domain was taken meanwhile.", field="slug"
        ) from None
    service_principal = User(
        tenant=tenant,
        username=f"securelogin-provisioning-{secrets.token_hex(6)}",
        display_name="SecureLogin provisioning",
        role=User.Role.SERVICE,
    )
    service_principal.set_unusable_password()
    service_principal.save()
    changes: dict[str, Any] = {
        "slug": [None, slug],
        "name": [None, tenant.name],
        "hosts": [None, all_hosts],
    }
    if domains:
        changes["email_domains"] = [None, domains]
    event_record(
        tenant=tenant,
        actor=actor,
        action="tenant.create",
        resource_type="Tenant",
        resource_id=str(tenant.pk),
        resource_label=tenant.slug,
        changes=changes,
    )
    return tenant


def _lock_tenant(tenant: Tenant) -> Tenant:
    locked = Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    if locked is None:
        raise NotFound(f"No tenant with slug {tenant.slug!r}.")
    return locked


def _tenant_apply(*, tenant: Tenant, actor: Actor, values: Mapping[str, Any], action: str) -> Tenant:
    locked = _lock_tenant(tenant)
    changes = {k: [getattr(locked, k), v] for k, v in values.items() if getattr(locked, k) != v}
    if not changes:
        return locked
    for key in changes:
        setattr(locked, key, values[key])
    locked.save(update_fields=list(changes))
    event_record(
        tenant=locked,
        actor=actor,
        action=action,
        resource_type="Tenant",
        resource_id=str(locked.pk),
        resource_label=locked.slug,
        changes=changes,
    )
    return locked


@transaction.atomic
def tenant_update(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str | None = None,
    display_name: str | None = None,
    logo_url: str | None = None,
    primary_color: str | None = None,
) -> Tenant:
    """Change the given attributes (None leaves one as it is); an update that changes nothing
    writes nothing. The slug is the tenant's host name and never changes."""
    given = {
        "name": name,
        "display_name": display_name,
        "logo_url": logo_url,
        "primary_color": primary_color,
    }
    values = _clean_tenant_fields({k: v for k, v in given.items() if v is not None})
    return _tenant_apply(tenant=tenant, actor=actor, values=values, action="tenant.update")


@transaction.atomic
def tenant_update_branding(
    *, tenant: Tenant, actor: Actor, display_name: str, logo_url: str, primary_color: str
) -> Tenant:
    values = _clean_tenant_fields(
        {"display_name": display_name, "logo_url": logo_url, "primary_color": primary_color}
    )
    return _tenant_apply(tenant=tenant, actor=actor, values=values, action="tenant.branding_update")


def _check_not_platform(tenant: Tenant, verb: str) -> None:
    if tenant.is_platform:
        raise ProtectedResource(f"The platform tenant cannot be {verb}.")


@transaction.atomic
def tenant_deactivate(*, tenant: Tenant, actor: Actor) -> Tenant:
    """An inactive tenant keeps its data, but nobody signs in to it and its credentials stop
    working (TenantModelBackend, Application.is_usable); the go-to-domain page no longer finds it."""
    _check_not_platform(tenant, "deactivated")
    return _tenant_apply(tenant=tenant, actor=actor, values={"is_active": False}, action="tenant.deactivate")


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant, actor: Actor) -> Tenant:
    _check_not_platform(tenant, "reactivated")
    return _tenant_apply(tenant=tenant, actor=actor, values={"is_active": True}, action="tenant.reactivate")


@transaction.atomic
def tenant_delete(*, tenant: Tenant, actor: Actor) -> None:
    """Delete a tenant with everything in it. Its own event log goes with it, so the deletion is
    recorded in the platform tenant's log, which outlives every customer tenant."""
    _check_not_platform(tenant, "deleted")
    locked = _lock_tenant(tenant)
    platform = Tenant.objects.get(is_platform=True)
    event_record(
        tenant=platform,
        actor=actor,
        action="tenant.delete",
        resource_type="Tenant",
        resource_id=str(locked.pk),
        resource_label=locked.slug,
        changes={"slug": [locked.slug, None], "name": [locked.name, None]},
    )
    locked.delete()


# ---------------------------------------------------------------------------------------------- users


def _check_lengths(model: type[models.Model], values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        model_field = model._meta.get_field(name)
        max_length = getattr(model_field, "max_length", None)
        if isinstance(value, str) and max_length and len(value) > max_length:
            label = str(model_field.verbose_name)
            raise InvalidValue(f"{label} is longer than {max_length} characters.", field=name)


def _clean_user_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - USER_SCALAR_FIELDS
    if unknown:
        raise InvalidValue(f"Unknown user attribute(s): {', '.join(sorted(unknown))}.")
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "is_active":
            if not isinstance(value, bool):
                raise InvalidValue("active must be a boolean.", field="is_active")
        elif name == "roles":
            if value is None:
                value = []
            if not isinstance(value, list):
                raise InvalidValue("roles must be a list.", field="roles")
        else:
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise InvalidValue(f"{name} must be a string.", field=name)
        cleaned[name] = value
    if "username" in cleaned and not cleaned["username"].strip():
        raise InvalidValue("userName is required and cannot be empty.", field="username")
    _check_lengths(User, {k: v for k, v in cleaned.items() if k != "roles"})
    return cleaned


def _clean_multi_values(kind: str, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """RFC 7643 §2.4: `primary` is true at most once. Nothing else is limited: a user may have two
    work emails or two mobile numbers, and the values keep the order they were sent in."""
    allowed = MULTI_VALUE_FIELDS[kind]
    model = MULTI_VALUE_MODELS[kind]
    cleaned: list[dict[str, Any]] = []
    primaries = 0
    for item in items:
        unknown = set(item) - set(allowed)
        if unknown:
            raise InvalidValue(f"Unknown sub-attribute(s) of {kind}: {', '.join(sorted(unknown))}.")
        row: dict[str, Any] = {}
        for name in allowed:
            value = item.get(name)
            if name == "primary":
                value = bool(value)
            elif value is None:
                value = ""
            elif not isinstance(value, str):
                raise InvalidValue(f"{kind}.{name} must be a string.", field=kind)
            row[name] = value
        if "value" in row and not row["value"]:
            continue
        if kind == "addresses" and not any(row[n] for n in allowed if n not in ("type", "primary")):
            continue
        primaries += row["primary"]
        _check_lengths(model, {k: v for k, v in row.items() if k != "primary"})
        cleaned.append(row)
    if primaries > 1:
        raise InvalidValue(f"Only one of the {kind} can be primary.", field=kind)
    return cleaned


def _multi_value_rows(user: User, kind: str) -> list[dict[str, Any]]:
    return list((user.multi_values or {}).get(kind, []))


def _write_multi_values(
    tenant: Tenant, user: User, kind: str, rows: list[dict[str, Any]], *, replace: bool = True
) -> None:
    """The child rows of one kind, replaced in two statements at most: one DELETE and one multi-row
    INSERT, written with the cursor (every SCIM POST and most PATCHes run this; `bulk_create`'s
    per-row model instances and compile cost more than the round trip). No signal listens to the
    child tables. `replace=False` for a user inserted in this transaction: it has no rows to delete
    yet, and skipping the DELETE saves a query per attribute on every SCIM POST."""
    model = MULTI_VALUE_MODELS[kind]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        if replace:
            cursor.execute(f"DELETE FROM {table} WHERE user_id = %s", [user.pk])
        if not rows:
            return
        fields = [f for f in model._meta.concrete_fields if f.name not in ("id", "tenant", "user")]
        columns = ", ".join(quote(c) for c in ("tenant_id", "user_id", *(f.column for f in fields)))
        row_marks = "(" + ", ".join(["%s"] * (len(fields) + 2)) + ")"
        params: list[Any] = []
        for row in rows:
            params += [tenant.pk, user.pk]
            params += [f.get_db_prep_save(row.get(f.name, f.get_default()), connection) for f in fields]
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_marks] * len(rows))}", params
        )


def _check_manager(tenant: Tenant, user: User | None, manager: User | None) -> None:
    if manager is None:
        return
    if manager.tenant_id != tenant.id or manager.role == User.Role.SERVICE:
        raise TenantMismatch("The manager must be a user of the same tenant.", field="manager")
    if user is not None and user.pk is not None and manager.pk == user.pk:
        raise InvalidValue("A user cannot be their own manager.", field="manager")


def _manager_link(tenant: Tenant, user: User | None, manager: User | str | None) -> tuple[str, User | None]:
    """The manager reference to store and the user it links to now.

    A `User` is a choice made in the console. A string is `manager.value` as a SCIM client sent it
    (RFC 7643 §4.3, the id of the manager's resource): it is stored as sent and linked to the user
    of *this* tenant it names, by id or else by an externalId only one user holds (clients such as
    Okta send their own ids). A reference to a user that is not (yet) here is kept unresolved,
    never refused and never looked up in another tenant; `_link_pending_reports` links it when that
    user arrives."""
    if manager is None:
        return "", None
    if isinstance(manager, User):
        _check_manager(tenant, user, manager)
        return str(manager.scim_id), manager
    value = manager.strip()
    if len(value) > User._meta.get_field("manager_value").max_length:
        raise InvalidValue("manager.value is longer than 255 characters.", field="manager")
    if not value:
        return "", None
    candidates = User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE)
    target = None
    if parse_scim_id(value) is not None:
        target = candidates.filter(scim_id=value).first()
    if target is None:
        by_external_id = list(candidates.filter(external_id=value)[:2])
        target = by_external_id[0] if len(by_external_id) == 1 else None
    if target is not None and user is not None and user.pk is not None and target.pk == user.pk:
        raise InvalidValue("A user cannot be their own manager.", field="manager")
    return value, target


def _link_pending_reports(tenant: Tenant, user: User, *, created: bool) -> None:
    """Users whose `manager.value` named this user before it existed here, by id or by an externalId
    that only this user holds, now link to it: one indexed UPDATE over the pending references (their
    version moves so ETags change). Called when a user is created or its externalId changes.

    A user just created has an id nobody could have named yet (the server draws it), so then only
    its externalId can be pending, and without one there is nothing to look for."""
    if created and not user.external_id:
        return
    external_id = user.external_id or None  # NULL matches no row: no externalId, no candidates
    with connection.cursor() as cursor:
        cursor.execute(
            LINK_PENDING_REPORTS_SQL,
            [
                user.pk,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                tenant.pk,
                user.pk,
                str(user.scim_id),
                external_id,
                tenant.pk,
                external_id,
                user.pk,
            ],
        )


# Written out rather than built with the ORM: Entra sends an externalId with every user it creates,
# so this runs on every SCIM POST, and compiling the ORM's form of it (an Exists inside an OR) cost a
# third of the request's CPU (docs/benchmarks.md, "Where a POST's time went"). Plain SQL that
# PostgreSQL and SQLite both run; `manager_value <> ''` keeps the pending-reference partial index
# (dir_user_pending_manager) usable. Parameters: the user's pk, now, tenant, the user's pk again,
# its scim_id, its externalId (or NULL); then tenant, externalId and pk for "no other user holds it".
_USERS = User._meta.db_table
LINK_PENDING_REPORTS_SQL = f"""
UPDATE {_USERS} SET manager_id = %s, version = version + 1, last_modified = %s
WHERE tenant_id = %s AND manager_id IS NULL AND manager_value <> '' AND id <> %s
  AND (
    manager_value = %s
    OR (
      manager_value = %s
      AND NOT EXISTS (
        SELECT 1 FROM {_USERS} holder
        WHERE holder.tenant_id = %s AND holder.external_id = %s AND holder.id <> %s
      )
    )
  )
"""


def _lock_user(tenant: Tenant, user: User) -> User:
    """Re-read the row under a lock: the caller's object may be stale (another request changed or
    deleted it) and must never be written back as it is."""
    if user.tenant_id != tenant.id:
        raise TenantMismatch("That user belongs to another tenant.")
    locked = User.objects.select_for_update().filter(pk=user.pk, tenant=tenant).first()
    if locked is None:
        raise NotFound(f"User {user.scim_id} not found.")
    return locked


def _uniqueness_error(exc: IntegrityError, values: Mapping[str, Any]) -> UniquenessConflict:
    """Told from the violated constraint's name, which both databases put in the message: a query
    here would fail on PostgreSQL, whose transaction the violation has aborted (and no savepoint is
    spent on every write just to be able to ask)."""
    username = values.get("username")
    if username and "unique_username_per_tenant" in str(exc):
        return UniquenessConflict(USERNAME_TAKEN.format(value=username), field="username")
    return UniquenessConflict("The user conflicts with an existing user of this tenant.")


@transaction.atomic
def user_create(
    *,
    tenant: Tenant,
    actor: Actor,
    username: str,
    fields: Mapping[str, Any] | None = None,
    emails: Iterable[Mapping[str, Any]] = (),
    phone_numbers: Iterable[Mapping[str, Any]] = (),
    ims: Iterable[Mapping[str, Any]] = (),
    photos: Iterable[Mapping[str, Any]] = (),
    entitlements: Iterable[Mapping[str, Any]] = (),
    x509_certificates: Iterable[Mapping[str, Any]] = (),
    addresses: Iterable[Mapping[str, Any]] = (),
    manager: User | str | None = None,
    role: str = User.Role.MEMBER,
    password: str | None = None,
) -> User:
    """Create a directory user. userName uniqueness per tenant is enforced by the database, so of
    eight concurrent creates of one userName exactly one wins and the others get UniquenessConflict.
    `manager` is a `User`, or a SCIM `manager.value` kept as sent (see `_manager_link`)."""
    if role not in (User.Role.MEMBER, User.Role.MANAGER):
        raise InvalidValue("Only members and managers can be created.", field="role")
    values = _clean_user_fields({**(fields or {}), "username": username})
    given = {
        "emails": emails,
        "phone_numbers": phone_numbers,
        "ims": ims,
        "photos": photos,
        "entitlements": entitlements,
        "x509_certificates": x509_certificates,
        "addresses": addresses,
    }
    multi = {kind: _clean_multi_values(kind, items) for kind, items in given.items()}
    manager_value, manager_user = _manager_link(tenant, None, manager)
    user = User(
        tenant=tenant,
        role=role,
        manager=manager_user,
        manager_value=manager_value,
        multi_values=copy_from_rows(multi),
        **values,
    )
    if password == "":
        raise InvalidValue("A password cannot be empty.", field="password")
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        if password:
            user.save(force_insert=True)  # AbstractBaseUser.save tells the password validators
        else:
            insert(user)
    except IntegrityError as exc:
        raise _uniqueness_error(exc, values) from None
    for kind, rows in multi.items():
        if rows:
            _write_multi_values(tenant, user, kind, rows, replace=False)
    _link_pending_reports(tenant, user, created=True)
    changes: dict[str, Any] = {
        name: [None, value] for name, value in values.items() if value not in ("", [], None)
    }
    changes.update({kind: [None, rows] for kind, rows in multi.items() if rows})
    if manager_value:
        changes["manager"] = [None, manager_value]
    if password:
        changes["password"] = [None, PASSWORD_SET]
    if role != User.Role.MEMBER:
        changes["role"] = [None, role]
    event_record(
        tenant=tenant,
        actor=actor,
        action="user.create",
        resource_type="User",
        resource_id=str(user.scim_id),
        resource_label=user.username,
        changes=changes,
    )
    return user


UserChanges = Mapping[str, Any]
"""`user_update`'s keyword arguments other than tenant, actor and user: what a user should become."""


@transaction.atomic
def user_update(
    *,
    tenant: Tenant,
    actor: Actor,
    user: User,
    fields: Mapping[str, Any] | None = None,
    emails: Iterable[Mapping[str, Any]] | None = None,
    phone_numbers: Iterable[Mapping[str, Any]] | None = None,
    ims: Iterable[Mapping[str, Any]] | None = None,
    photos: Iterable[Mapping[str, Any]] | None = None,
    entitlements: Iterable[Mapping[str, Any]] | None = None,
    x509_certificates: Iterable[Mapping[str, Any]] | None = None,
    addresses: Iterable[Mapping[str, Any]] | None = None,
    manager: User | str | None = UNSET,
    role: str | None = None,
    password: str | None = None,
) -> User:
    """Apply the given values to the user's row, locked for the rest of the transaction.

    Only attributes that differ from the stored row are written, so concurrent updates of different
    attributes never overwrite each other and a repeated update is a no-op (no new version, no event).
    Multi-valued attributes, when given, replace the whole list. A `password`, when given, is always
    a change: comparing it with the stored hash would cost a full hash per request.
    """
    return _user_apply(
        tenant=tenant,
        actor=actor,
        locked=_lock_user(tenant, user),
        changes={
            "fields": fields,
            "emails": emails,
            "phone_numbers": phone_numbers,
            "ims": ims,
            "photos": photos,
            "entitlements": entitlements,
            "x509_certificates": x509_certificates,
            "addresses": addresses,
            "manager": manager,
            "role": role,
            "password": password,
        },
    )


@transaction.atomic
def user_edit(
    *, tenant: Tenant, actor: Actor, scim_id: object, edit: Callable[[User], UserChanges]
) -> User:
    """Read the user once, locked, let `edit` say what it becomes, and write that: a SCIM PUT or
    PATCH is one read, one transaction and no savepoint (docs/design.md, "One straight path").

    `edit` sees the locked row, with its `multi_values`, and returns `user_update`'s keyword
    arguments; an exception it raises (a failed If-Match, an invalid PATCH) rolls back what little
    was done."""
    from directory.selectors import user_get

    locked = user_get(tenant=tenant, scim_id=scim_id, for_update=True)
    return _user_apply(tenant=tenant, actor=actor, locked=locked, changes=edit(locked))


def _user_apply(*, tenant: Tenant, actor: Actor, locked: User, changes: UserChanges) -> User:
    """`user_update` on a row this transaction has locked. Its version is known, so the new one is
    computed here rather than read back."""
    unknown = set(changes) - {"fields", "manager", "role", "password", *MULTI_VALUE_FIELDS}
    if unknown:
        raise InvalidValue(f"Unknown user change(s): {', '.join(sorted(unknown))}.")
    if locked.role == User.Role.SERVICE:
        raise ProtectedResource("The provisioning service principal cannot be changed.")
    values = _clean_user_fields(changes.get("fields") or {})
    recorded: dict[str, Any] = {}
    changed_columns: list[str] = []
    for name, value in values.items():
        old = getattr(locked, name)
        if old != value:
            recorded[name] = [old, value]
            changed_columns.append(name)
            setattr(locked, name, value)
    role = changes.get("role")
    if role is not None and role != locked.role:
        if role not in (User.Role.MEMBER, User.Role.MANAGER):
            raise InvalidValue("A user is a member or a manager.", field="role")
        recorded["role"] = [locked.role, role]
        changed_columns.append("role")
        locked.role = role
    manager = changes.get("manager", UNSET)
    if isinstance(manager, str) and manager.strip() == locked.manager_value and locked.manager_id:
        manager = UNSET  # the reference Entra re-sends every cycle, already linked: nothing to look up
    if manager is not UNSET:
        manager_value, manager_user = _manager_link(tenant, locked, manager)
        new_manager_id = manager_user.pk if manager_user else None
        if locked.manager_value != manager_value or locked.manager_id != new_manager_id:
            if locked.manager_value != manager_value:
                recorded["manager"] = [locked.manager_value or None, manager_value or None]
            changed_columns.extend(["manager", "manager_value"])
            locked.manager = manager_user
            locked.manager_value = manager_value
    password = changes.get("password")
    if password is not None:
        if not password:
            raise InvalidValue("A password cannot be empty.", field="password")
        locked.set_password(password)
        recorded["password"] = [PASSWORD_SET, PASSWORD_SET]
        changed_columns.append("password")
    multi_updates: dict[str, list[dict[str, Any]]] = {}
    for kind in MULTI_VALUE_FIELDS:
        given = changes.get(kind)
        if given is None:
            continue
        rows = _clean_multi_values(kind, given)
        current = _multi_value_rows(locked, kind)
        if rows != current:
            recorded[kind] = [current, rows]
            multi_updates[kind] = rows
    if not recorded and not changed_columns:
        return locked
    if multi_updates:
        locked.multi_values = copy_from_rows({**(locked.multi_values or {}), **multi_updates})
        changed_columns.append("multi_values")
    locked.version += 1
    try:
        if password is not None:
            locked.save(update_fields=[*changed_columns, "version", "last_modified"])  # validators hear it
        else:
            update(locked, [*changed_columns, "version", "last_modified"])
    except IntegrityError as exc:
        raise _uniqueness_error(exc, values) from None
    for kind, rows in multi_updates.items():
        _write_multi_values(tenant, locked, kind, rows)
    if "external_id" in recorded:
        _link_pending_reports(tenant, locked, created=False)
    if "is_active" in recorded:
        action = "user.reactivate" if locked.is_active else "user.deactivate"
    else:
        action = "user.update"
    event_record(
        tenant=tenant,
        actor=actor,
        action=action,
        resource_type="User",
        resource_id=str(locked.scim_id),
        resource_label=locked.username,
        changes=recorded,
    )
    return locked


@transaction.atomic
def user_multi_values_rebuild(*, tenant: Tenant, users: Sequence[User] | None = None) -> int:
    """Recompute the `multi_values` copy from the child tables, for rows written around the services
    (a bulk import, test data). The directory's content does not change, so no Event."""
    queryset = User.objects.filter(tenant=tenant)
    if users is not None:
        queryset = queryset.filter(pk__in=[u.pk for u in users])
    return rebuild_copies(queryset, lambda name: apps.get_model("directory", name))


def user_deactivate(*, tenant: Tenant, actor: Actor, user: User) -> User:
    """Soft delete (entra-scim.md R7): the user stays readable over SCIM with active=false and keeps
    its memberships, which Entra does not restore on reactivation."""
    return user_update(tenant=tenant, actor=actor, user=user, fields={"is_active": False})


def user_reactivate(*, tenant: Tenant, actor: Actor, user: User) -> User:
    return user_update(tenant=tenant, actor=actor, user=user, fields={"is_active": True})


@transaction.atomic
def user_set_operator(*, tenant: Tenant, actor: Actor, user: User, is_operator: bool) -> User:
    """Grant or revoke platform operator rights (`is_superuser`). Only users of the platform tenant
    can hold them: on the root host operators see every tenant, which no customer's user may."""
    if not tenant.is_platform:
        raise InvalidValue(
            "Only users of the platform tenant can be platform operators.", field="is_superuser"
        )
    locked = _lock_user(tenant, user)
    if locked.role == User.Role.SERVICE:
        raise ProtectedResource("The provisioning service principal cannot be changed.")
    if locked.is_superuser == is_operator:
        return locked
    locked.is_superuser = is_operator
    locked.version = F("version") + 1
    locked.save(update_fields=["is_superuser", "version", "last_modified"])
    locked.refresh_from_db(fields=["version", "last_modified"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="user.operator_grant" if is_operator else "user.operator_revoke",
        resource_type="User",
        resource_id=str(locked.scim_id),
        resource_label=locked.username,
        changes={"is_superuser": [not is_operator, is_operator]},
    )
    return locked


@transaction.atomic
def user_set_password(*, tenant: Tenant, actor: Actor, user: User, password: str) -> User:
    """The event records that a password was set, never the password or its hash."""
    if not password:
        raise InvalidValue("A password cannot be empty.", field="password")
    locked = _lock_user(tenant, user)
    if locked.role == User.Role.SERVICE:
        raise ProtectedResource("The provisioning service principal cannot sign in.")
    locked.set_password(password)
    locked.save(update_fields=["password"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="user.set_password",
        resource_type="User",
        resource_id=str(locked.scim_id),
        resource_label=locked.username,
    )
    return locked


@transaction.atomic
def user_delete(*, tenant: Tenant, actor: Actor, user: User) -> None:
    """Hard delete (SCIM DELETE, entra-scim.md R53): memberships and multi-values go with the row;
    the event keeps the id and userName so the log still says who was removed.

    The groups it was in and the users it managed change too (members, manager), so their versions
    move on and their ETags no longer match; two queries, whatever their number."""
    locked = _lock_user(tenant, user)
    if locked.role == User.Role.SERVICE:
        raise ProtectedResource("The provisioning service principal cannot be deleted.")
    now = timezone.now()
    Group.objects.filter(tenant=tenant, memberships__user=locked).update(
        version=F("version") + 1, last_modified=now
    )
    User.objects.filter(tenant=tenant, manager=locked).update(version=F("version") + 1, last_modified=now)
    event_record(
        tenant=tenant,
        actor=actor,
        action="user.delete",
        resource_type="User",
        resource_id=str(locked.scim_id),
        resource_label=locked.username,
        changes={"userName": [locked.username, None]},
    )
    locked.delete()


# --------------------------------------------------------------------------------------------- groups


def _clean_group_fields(display_name: str | None, external_id: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if display_name is not None:
        if not isinstance(display_name, str) or not display_name.strip():
            raise InvalidValue("displayName is required and cannot be empty.", field="display_name")
        values["display_name"] = display_name
    if external_id is not None:
        if not isinstance(external_id, str):
            raise InvalidValue("externalId must be a string.", field="external_id")
        values["external_id"] = external_id
    _check_lengths(Group, values)
    return values


def _group_uniqueness_error(exc: IntegrityError, values: Mapping[str, str]) -> UniquenessConflict:
    """As `_uniqueness_error`: told from the constraint's name, without a query."""
    name = values.get("display_name")
    if name and "unique_display_name_per_tenant" in str(exc):
        return UniquenessConflict(DISPLAY_NAME_TAKEN.format(value=name), field="display_name")
    return UniquenessConflict("The group conflicts with an existing group of this tenant.")


def _check_members(tenant: Tenant, users: Sequence[User]) -> None:
    for user in users:
        if user.tenant_id != tenant.id or user.role == User.Role.SERVICE:
            raise TenantMismatch("Group members must be users of the same tenant.", field="members")


def _id_list(users: Iterable[User]) -> list[str]:
    return [str(u.scim_id) for u in users][:EVENT_ID_LIST_LIMIT]


@transaction.atomic
def group_create(
    *,
    tenant: Tenant,
    actor: Actor,
    display_name: str,
    external_id: str = "",
    members: Sequence[User] = (),
) -> Group:
    values = _clean_group_fields(display_name, external_id or "")
    _check_members(tenant, members)
    group = Group(tenant=tenant, **values)
    try:
        group.save(force_insert=True)
    except IntegrityError as exc:
        raise _group_uniqueness_error(exc, values) from None
    unique_members = list({u.pk: u for u in members}.values())
    if unique_members:
        Membership.objects.bulk_create(
            [Membership(tenant=tenant, group=group, user=u) for u in unique_members]
        )
    changes: dict[str, Any] = {"displayName": [None, group.display_name]}
    if group.external_id:
        changes["externalId"] = [None, group.external_id]
    if unique_members:
        changes["members"] = {"added": _id_list(unique_members)}
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.create",
        resource_type="Group",
        resource_id=str(group.scim_id),
        resource_label=group.display_name,
        changes=changes,
    )
    return group


def _lock_group(tenant: Tenant, group: Group) -> Group:
    if group.tenant_id != tenant.id:
        raise TenantMismatch("That group belongs to another tenant.")
    locked = Group.objects.select_for_update().filter(pk=group.pk, tenant=tenant).first()
    if locked is None:
        raise NotFound(f"Group {group.scim_id} not found.")
    return locked


def _touch_group(group: Group) -> None:
    """The group is locked by this transaction, so its next version is known without reading it."""
    group.version += 1
    update(group, ["version", "last_modified"])


@transaction.atomic
def group_update(
    *,
    tenant: Tenant,
    actor: Actor,
    group: Group,
    display_name: str | None = None,
    external_id: str | None = None,
) -> Group:
    return _group_rename(
        tenant=tenant,
        actor=actor,
        locked=_lock_group(tenant, group),
        display_name=display_name,
        external_id=external_id,
    )


def _group_rename(
    *, tenant: Tenant, actor: Actor, locked: Group, display_name: str | None, external_id: str | None
) -> Group:
    values = _clean_group_fields(display_name, external_id)
    changes = {k: [getattr(locked, k), v] for k, v in values.items() if getattr(locked, k) != v}
    if not changes:
        return locked
    for key in changes:
        setattr(locked, key, values[key])
    locked.version += 1
    try:
        locked.save(update_fields=[*changes, "version", "last_modified"])
    except IntegrityError as exc:
        raise _group_uniqueness_error(exc, values) from None
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.update",
        resource_type="Group",
        resource_id=str(locked.scim_id),
        resource_label=locked.display_name,
        changes={"displayName" if k == "display_name" else "externalId": v for k, v in changes.items()},
    )
    return locked


@transaction.atomic
def group_delete(*, tenant: Tenant, actor: Actor, group: Group) -> None:
    """Hard delete; memberships go with the group, the users stay."""
    locked = _lock_group(tenant, group)
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.delete",
        resource_type="Group",
        resource_id=str(locked.scim_id),
        resource_label=locked.display_name,
        changes={"displayName": [locked.display_name, None]},
    )
    locked.delete()


@transaction.atomic
def membership_add(*, tenant: Tenant, actor: Actor, group: Group, users: Sequence[User]) -> Group:
    """Add members in a constant number of queries whatever the group's size: only the k given users
    are read and written, and members already present are skipped (entra-scim.md R59, R61)."""
    _check_members(tenant, users)
    return _members_add(tenant=tenant, actor=actor, locked=_lock_group(tenant, group), users=users)


@transaction.atomic
def membership_remove(*, tenant: Tenant, actor: Actor, group: Group, users: Sequence[User]) -> Group:
    """Remove exactly the given members; the others stay (entra-scim.md R58)."""
    _check_members(tenant, users)
    return _members_remove(tenant=tenant, actor=actor, locked=_lock_group(tenant, group), users=users)


@transaction.atomic
def membership_set(*, tenant: Tenant, actor: Actor, group: Group, users: Sequence[User]) -> Group:
    """Make the membership exactly `users` (PUT, `replace members`, valueless `remove members`)."""
    _check_members(tenant, users)
    return _members_set(tenant=tenant, actor=actor, locked=_lock_group(tenant, group), users=users)


def _members_add(*, tenant: Tenant, actor: Actor, locked: Group, users: Sequence[User]) -> Group:
    wanted = {u.pk: u for u in users}
    present = set(
        Membership.objects.filter(group=locked, user_id__in=list(wanted)).values_list("user_id", flat=True)
    )
    new = [u for pk, u in wanted.items() if pk not in present]
    if not new:
        return locked
    Membership.objects.bulk_create(
        [Membership(tenant=tenant, group=locked, user=u) for u in new], ignore_conflicts=True
    )
    _touch_group(locked)
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.members_add",
        resource_type="Group",
        resource_id=str(locked.scim_id),
        resource_label=locked.display_name,
        changes={"members": {"added": _id_list(new)}},
    )
    return locked


def _members_remove(*, tenant: Tenant, actor: Actor, locked: Group, users: Sequence[User]) -> Group:
    wanted = {u.pk: u for u in users}
    present = set(
        Membership.objects.filter(group=locked, user_id__in=list(wanted)).values_list("user_id", flat=True)
    )
    if not present:
        return locked
    Membership.objects.filter(group=locked, user_id__in=list(present)).delete()
    _touch_group(locked)
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.members_remove",
        resource_type="Group",
        resource_id=str(locked.scim_id),
        resource_label=locked.display_name,
        changes={"members": {"removed": _id_list(wanted[pk] for pk in present)}},
    )
    return locked


def _members_set(*, tenant: Tenant, actor: Actor, locked: Group, users: Sequence[User]) -> Group:
    wanted = {u.pk: u for u in users}
    current = dict(Membership.objects.filter(group=locked).values_list("user_id", "user__scim_id"))
    to_remove = [pk for pk in current if pk not in wanted]
    to_add = [u for pk, u in wanted.items() if pk not in current]
    if not to_remove and not to_add:
        return locked
    if to_remove:
        Membership.objects.filter(group=locked, user_id__in=to_remove).delete()
    if to_add:
        Membership.objects.bulk_create(
            [Membership(tenant=tenant, group=locked, user=u) for u in to_add], ignore_conflicts=True
        )
    _touch_group(locked)
    changes: dict[str, Any] = {"members": {}}
    if to_add:
        changes["members"]["added"] = _id_list(to_add)
    if to_remove:
        changes["members"]["removed"] = [str(current[pk]) for pk in to_remove][:EVENT_ID_LIST_LIMIT]
    event_record(
        tenant=tenant,
        actor=actor,
        action="group.members_set",
        resource_type="Group",
        resource_id=str(locked.scim_id),
        resource_label=locked.display_name,
        changes=changes,
    )
    return locked


@dataclass(frozen=True)
class MemberChange:
    """One change to a group's membership, naming users by SCIM id: `add` and `remove` those
    users, `set` makes them the whole membership (an empty `set` removes everyone)."""

    kind: str
    scim_ids: Sequence[str]


@dataclass(frozen=True)
class GroupChanges:
    """What a group becomes: None leaves displayName or externalId as it is."""

    display_name: str | None = None
    external_id: str | None = None
    members: Sequence[MemberChange] = ()


@transaction.atomic
def group_edit(
    *, tenant: Tenant, actor: Actor, scim_id: object, edit: Callable[[Group], GroupChanges]
) -> Group:
    """Read the group once, locked, let `edit` say what changes, and apply it in this one
    transaction: a SCIM PUT or PATCH of a group, member batches included, never loads the member
    list and spends no savepoint (docs/design.md, "One straight path"; entra-scim.md R61).

    Users named for adding or setting must be users of this tenant (ReferenceNotFound otherwise);
    ids named for removal that are not (or no longer) users here are simply not members."""
    from directory.selectors import group_get, users_by_scim_ids, users_named

    locked = group_get(tenant=tenant, scim_id=scim_id, for_update=True)
    changes = edit(locked)
    if changes.display_name is not None or changes.external_id is not None:
        locked = _group_rename(
            tenant=tenant,
            actor=actor,
            locked=locked,
            display_name=changes.display_name,
            external_id=changes.external_id,
        )
    for change in changes.members:
        if change.kind == "remove":
            parsed = [p for p in (parse_scim_id(i) for i in change.scim_ids) if p is not None]
            users = users_named(tenant=tenant, scim_ids=parsed)
            locked = _members_remove(tenant=tenant, actor=actor, locked=locked, users=users)
            continue
        users = users_by_scim_ids(tenant=tenant, scim_ids=change.scim_ids) if change.scim_ids else []
        if change.kind == "add":
            locked = _members_add(tenant=tenant, actor=actor, locked=locked, users=users)
        elif change.kind == "set":
            locked = _members_set(tenant=tenant, actor=actor, locked=locked, users=users)
        else:
            raise InvalidValue(f"Unknown membership change {change.kind!r}.", field="members")
    return locked


# The change feed and webhook writers live beside this module and are part of the same API
# (`services.webhook_endpoint_create`, …); imported last because they use Actor and event_record.
from directory.services.webhooks import *  # noqa: E402, F403
