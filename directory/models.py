"""The directory: tenants and what Entra provisions into them.

Every row below `Tenant` carries a non-null tenant foreign key, and every index that serves a
lookup leads with `tenant_id` (architecture.md, "Tenancy" and "Scale"). Uniqueness that SCIM
promises (userName, externalId, group displayName) is a database constraint, so concurrent
requests cannot both win.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from directory.feed import FEED_ACTIONS

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HEX_COLOUR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Enter a colour as #RRGGBB.")


class Tenant(models.Model):
    """A customer directory, reached by `<slug>.<SECURELOGIN_BASE_DOMAIN>` or a stored custom host.

    Exactly one row is the platform tenant (the root host), created by a data migration; its
    managers are the platform operators. Branding is typed data rendered with autoescaping,
    never tenant-supplied HTML.
    """

    slug = models.SlugField(max_length=63, unique=True, validators=[RegexValidator(SLUG_RE.pattern)])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    is_platform = models.BooleanField(default=False, editable=False)
    display_name = models.CharField(max_length=200, blank=True, help_text="Shown on sign-in pages.")
    logo_url = models.URLField(blank=True)
    primary_color = models.CharField(max_length=7, default="#2563eb", validators=[HEX_COLOUR])
    created = models.DateTimeField(auto_now_add=True)
    feed_head = models.BigIntegerField(
        default=0, editable=False, help_text="The last change-feed position given to one of its events."
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_platform"],
                condition=Q(is_platform=True),
                name="%(app_label)s_%(class)s_single_platform",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def brand_name(self) -> str:
        return self.display_name or self.name


class TenantHost(models.Model):
    """A host name that serves a tenant. `<slug>.<base domain>` is stored here too, so resolving a
    request's tenant is one indexed lookup and never parses user input into a redirect."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="hosts")
    host = models.CharField(max_length=253, unique=True)
    is_primary = models.BooleanField(default=False)

    class Meta:
        ordering = ["host"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_primary=True), name="%(app_label)s_%(class)s_one_primary"
            ),
        ]

    def __str__(self) -> str:
        return self.host


class TenantEmailDomain(models.Model):
    """An email domain a tenant has proven it owns; the go-to-domain page accepts addresses in it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="email_domains")
    domain = models.CharField(max_length=253, unique=True)
    verified = models.BooleanField(default=False)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class BoundedTextField(models.CharField):
    """A CharField stored as PostgreSQL `text`; `max_length` is still enforced by forms and services.

    Why: until a table is first analysed, PostgreSQL estimates its rows from its pages and the row
    width its column types declare. A user row of some twenty `varchar(255)` columns is declared
    wider than a page, so a never-analysed user table of 100,000 rows is estimated at one row, every
    plan looks free, and lookups by userName walk the whole table. Declared as text, the same table
    is estimated at tens of thousands of rows and looked up through its indexes (docs/design.md,
    "Plans that need no fresh statistics")."""

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "postgresql":
            return "text"
        return super().db_type(connection)


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        raise NotImplementedError("Users are resolved per tenant; use directory.backends.TenantModelBackend.")


class User(AbstractBaseUser):
    """A person (or the tenant's provisioning service principal) in one tenant's directory.

    `scim_id` is the SCIM `id`: an opaque UUID that never changes (RFC 7643 §3.1), unlike userName,
    which Entra may rename. `version` grows on every change and is the ETag (`W/"<version>"`).
    Provisioned users have no usable password unless a manager sets one.

    `multi_values` is a copy of the user's child rows (emails, phone numbers, addresses, …) that the
    services write in the same statement as the row itself: reading or patching a user then costs one
    row, whatever its number of values and kinds, and the child tables serve only the lookups that
    need their indexes (filters, the console's inlines). Keys are the service's kinds, rows are the
    child rows' fields, in the order kept (docs/design.md, "One straight path").
    """

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MANAGER = "manager", "Manager"
        SERVICE = "service", "Provisioning service principal"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="users")
    password = BoundedTextField("password", max_length=128)
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="SCIM id")
    username = BoundedTextField("userName", max_length=255)
    external_id = BoundedTextField("externalId", max_length=255, blank=True, default="")
    is_active = models.BooleanField("active", default=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    is_superuser = models.BooleanField(
        default=False, help_text="Platform operator: sees every tenant from the root host."
    )

    formatted_name = BoundedTextField("name.formatted", max_length=512, blank=True)
    family_name = BoundedTextField("name.familyName", max_length=255, blank=True)
    given_name = BoundedTextField("name.givenName", max_length=255, blank=True)
    middle_name = BoundedTextField("name.middleName", max_length=255, blank=True)
    honorific_prefix = models.CharField("name.honorificPrefix", max_length=64, blank=True)
    honorific_suffix = models.CharField("name.honorificSuffix", max_length=64, blank=True)
    display_name = BoundedTextField("displayName", max_length=255, blank=True)
    nick_name = BoundedTextField("nickName", max_length=255, blank=True)
    profile_url = BoundedTextField("profileUrl", max_length=1024, blank=True)
    title = BoundedTextField(max_length=255, blank=True)
    user_type = models.CharField("userType", max_length=64, blank=True)
    preferred_language = models.CharField("preferredLanguage", max_length=64, blank=True)
    locale = models.CharField(max_length=64, blank=True)
    timezone = models.CharField(max_length=64, blank=True)

    employee_number = BoundedTextField("employeeNumber", max_length=255, blank=True)
    cost_center = BoundedTextField("costCenter", max_length=255, blank=True)
    organization = BoundedTextField(max_length=255, blank=True)
    division = BoundedTextField(max_length=255, blank=True)
    department = BoundedTextField(max_length=255, blank=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    manager_value = BoundedTextField(
        "manager.value",
        max_length=255,
        blank=True,
        help_text="The manager's id as the client sent it; `manager` links it once that user exists here.",
    )
    roles = models.JSONField(
        default=list, blank=True, help_text="SCIM roles as Entra sends them (app role assignments)."
    )
    multi_values = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The multi-valued attributes (emails, phone_numbers, …) as the child tables hold them.",
    )

    created = models.DateTimeField(auto_now_add=True)
    last_modified = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["tenant_id", "id"]
        constraints = [
            models.UniqueConstraint(
                F("tenant"),
                Lower("username"),
                name="%(app_label)s_%(class)s_unique_username_per_tenant",
                violation_error_message="userName is already in use in this tenant.",
            ),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(role="service"),
                name="%(app_label)s_%(class)s_one_service_principal_per_tenant",
            ),
            models.CheckConstraint(
                condition=~Q(username=""), name="%(app_label)s_%(class)s_username_not_empty"
            ),
        ]
        indexes = [
            models.Index(F("tenant"), F("role"), F("id"), name="dir_user_tenant_role_id"),
            models.Index(F("tenant"), F("department"), name="dir_user_tenant_department"),
            models.Index(F("tenant"), F("external_id"), name="dir_user_tenant_external_id"),
            models.Index(
                F("tenant"),
                F("manager_value"),
                condition=Q(manager__isnull=True) & ~Q(manager_value=""),
                name="dir_user_pending_manager",
            ),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def is_staff(self) -> bool:
        """The admin's gate: managers run their tenant, operators run the platform."""
        return self.is_active and (self.is_superuser or self.role == self.Role.MANAGER)

    @property
    def is_service_principal(self) -> bool:
        return self.role == self.Role.SERVICE

    @property
    def email(self) -> str:
        emails = (self.multi_values or {}).get("emails", [])
        primary = [e for e in emails if e.get("primary")] or emails
        return primary[0]["value"] if primary else ""

    def get_full_name(self) -> str:
        return (
            self.display_name
            or " ".join(p for p in [self.given_name, self.family_name] if p)
            or self.username
        )

    def get_short_name(self) -> str:
        return self.given_name or self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        # Row scoping is done by the admin's querysets (directory.admin); these flags only open the door.
        return self.is_staff

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return all(self.has_perm(p, obj) for p in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff

    def clean(self) -> None:
        if self.manager_id and self.manager and self.manager.tenant_id != self.tenant_id:
            raise ValidationError({"manager": "A manager must belong to the same tenant."})


class MultiValue(models.Model):
    """Shared fields of SCIM multi-valued attributes (RFC 7643 §2.4)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=64, blank=True)
    primary = models.BooleanField(default=False)
    display = models.CharField(max_length=255, blank=True)

    class Meta:
        abstract = True


class UserEmail(MultiValue):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="emails")
    value = models.CharField(max_length=320)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("tenant"), Lower("value"), name="dir_email_tenant_value")]

    def __str__(self) -> str:
        return self.value


class UserPhoneNumber(MultiValue):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="phone_numbers")
    value = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("tenant"), F("value"), name="dir_phone_tenant_value")]

    def __str__(self) -> str:
        return self.value


class UserIm(MultiValue):
    """RFC 7643 §4.1.2 `ims`: instant messaging addresses."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ims")
    value = models.CharField(max_length=320)

    class Meta:
        ordering = ["id"]
        verbose_name = "instant messaging address"
        indexes = [models.Index(F("tenant"), Lower("value"), name="dir_im_tenant_value")]

    def __str__(self) -> str:
        return self.value


class UserPhoto(MultiValue):
    """RFC 7643 §4.1.2 `photos`: URLs of images of the user. Not indexed: a URL may be longer than
    a PostgreSQL btree entry may hold, and no client looks users up by photo."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="photos")
    value = models.CharField(max_length=2048)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.value


class UserEntitlement(MultiValue):
    """RFC 7643 §4.1.2 `entitlements`: things the user has, such as licences."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="entitlements")
    value = models.CharField(max_length=512)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(F("tenant"), Lower("value"), name="dir_entitle_tenant_value")]

    def __str__(self) -> str:
        return self.value


class UserX509Certificate(MultiValue):
    """RFC 7643 §4.1.2 `x509Certificates`: DER certificates, base64 as sent (`binary`, compared
    case-exactly). Not indexed: a certificate outgrows a btree entry."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="x509_certificates")
    value = models.TextField()

    class Meta:
        ordering = ["id"]
        verbose_name = "X.509 certificate"

    def __str__(self) -> str:
        return f"{self.value[:24]}…" if len(self.value) > 24 else self.value


class UserAddress(MultiValue):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="addresses")
    formatted = models.CharField(max_length=1024, blank=True)
    street_address = models.CharField("streetAddress", max_length=512, blank=True)
    locality = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=255, blank=True)
    postal_code = models.CharField("postalCode", max_length=64, blank=True)
    country = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "user addresses"

    def __str__(self) -> str:
        return self.formatted or ", ".join(
            p for p in [self.street_address, self.locality, self.region, self.postal_code, self.country] if p
        )


class Group(models.Model):
    """A SCIM group. displayName is unique per tenant, case-insensitively: Entra matches groups on it
    (entra-scim.md R25)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="SCIM id")
    display_name = models.CharField("displayName", max_length=255)
    external_id = models.CharField("externalId", max_length=255, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    last_modified = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    members = models.ManyToManyField(User, through="Membership", related_name="member_of")

    class Meta:
        ordering = ["tenant_id", "id"]
        constraints = [
            models.UniqueConstraint(
                F("tenant"),
                Lower("display_name"),
                name="%(app_label)s_%(class)s_unique_display_name_per_tenant",
                violation_error_message="displayName is already in use in this tenant.",
            ),
            models.CheckConstraint(
                condition=~Q(display_name=""), name="%(app_label)s_%(class)s_display_name_not_empty"
            ),
        ]
        indexes = [models.Index(F("tenant"), F("external_id"), name="dir_group_tenant_external_id")]

    def __str__(self) -> str:
        return self.display_name


class Membership(models.Model):
    """A user's direct membership of a group (Entra provisions first-level membership only)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "user"], name="%(app_label)s_%(class)s_unique_group_user"
            ),
        ]
        indexes = [models.Index(F("tenant"), F("user"), name="dir_membership_tenant_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"


class Event(models.Model):
    """The provisioning log: one row per change, written by the service in the same transaction,
    plus one row per failed SCIM request. Never holds tokens, secrets or passwords."""

    class Result(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    class ActorType(models.TextChoices):
        SYSTEM = "system", "System"
        MANAGER = "manager", "Manager"
        CREDENTIAL = "credential", "SCIM credential"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="events")
    created = models.DateTimeField(auto_now_add=True, db_index=False)
    action = models.CharField(max_length=64)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.SUCCESS)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices, default=ActorType.SYSTEM)
    actor_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=255, blank=True)
    credential = models.CharField(max_length=128, blank=True, help_text="Which credential acted, by id.")
    resource_type = models.CharField(max_length=32, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    resource_label = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    scim_type = models.CharField(max_length=32, blank=True)
    detail = models.TextField(blank=True)
    request_method = models.CharField(max_length=8, blank=True)
    request_path = models.CharField(max_length=512, blank=True)
    feed_position = models.BigIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Place in the tenant's change feed, given once the change is committed and seen.",
    )

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "feed_position"],
                condition=Q(feed_position__isnull=False),
                name="%(app_label)s_%(class)s_unique_feed_position",
            ),
        ]
        indexes = [
            models.Index(
                F("tenant"),
                F("id"),
                condition=Q(feed_position__isnull=True, action__in=FEED_ACTIONS),
                name="dir_event_feed_unstamped",
            ),
            models.Index(F("tenant"), F("created").desc(), name="dir_event_tenant_created"),
            models.Index(F("tenant"), F("resource_id"), name="dir_event_tenant_resource"),
            models.Index(F("tenant"), F("result"), F("created").desc(), name="dir_event_tenant_result"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_label or self.resource_id}".strip()


class WebhookEndpoint(models.Model):
    """An HTTPS endpoint of the tenant's own software that hears about directory changes.

    The signing secret is needed in the clear to sign each delivery (HMAC-SHA256), so it is stored
    encrypted with a key derived from SECRET_KEY (directory.secrets), never hashed, and shown to
    the manager once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Feed event types to deliver; empty means every type."
    )
    secret_encrypted = models.TextField(editable=False)
    secret_prefix = models.CharField(max_length=16, editable=False)
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["tenant_id", "id"]
        indexes = [models.Index(F("tenant"), F("is_active"), name="dir_webhook_tenant_active")]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return subscribed(self.event_types, event_type)


def subscribed(event_types: list[str], event_type: str) -> bool:
    """An endpoint's subscription: no event types means every type."""
    return not event_types or event_type in event_types


class WebhookDelivery(models.Model):
    """The transactional outbox: one row per (endpoint, change), written by the service in the
    change's own transaction, so a change is delivered if and only if it committed.

    Workers claim due rows with a lease (`claimed_until`), taken under `SELECT … FOR UPDATE SKIP
    LOCKED` on PostgreSQL: a worker that dies mid-send leaves a lease that runs out, and another
    worker takes the row again (at-least-once). A row is only due when no earlier row of the same
    endpoint and resource is still pending, which keeps deliveries in order per resource."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    resource_key = models.CharField(max_length=100, help_text="resource type and id: the unit of ordering.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    retry_until = models.DateTimeField(help_text="Back-off retries stop here; then the delivery is failed.")
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                F("next_attempt_at"),
                F("id"),
                condition=Q(status="pending"),
                name="dir_delivery_due",
            ),
            models.Index(
                F("endpoint"),
                F("resource_key"),
                F("id"),
                condition=Q(status="pending"),
                name="dir_delivery_pending_resource",
            ),
            models.Index(F("tenant"), F("endpoint"), F("id"), name="dir_delivery_tenant_endpoint"),
            models.Index(F("tenant"), F("id"), name="dir_delivery_tenant_id"),
            models.Index(
                F("endpoint"), F("id"), condition=Q(status="failed"), name="dir_delivery_failed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint}"
