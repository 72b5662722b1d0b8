"""The one SCIM attribute table: every attribute of a User (core and enterprise extension) and of a
Group, with its RFC 7643 characteristics and where the directory stores it.

RFC 7643 §4.1, §4.2, §4.3 and §8.7 define the attributes; §2.2 and §7 their characteristics
(type, multiValued, caseExact, mutability, returned, uniqueness). Everything that needs to know an
attribute reads it here: /Schemas (scim.schemas), the filter compiler (scim.filters), the PATCH
engine (scim.patch) and the SCIM ↔ model translation, so a characteristic can never say one thing in
/Schemas and do another in a filter or a PATCH.

Storage is given as ORM names, never model classes, so this module imports nothing from Django and
the PATCH engine stays free of the database:

- `column`: the field holding the value, on the model that holds its parent: the resource model for
  top-level attributes and for the parts of a single-valued complex attribute (`name.givenName` →
  `User.given_name`), the row model for the parts of a multi-valued one (`emails.value` →
  `UserEmail.value`). A lookup through a relation (`group__display_name`) is allowed.
- `rows`: for a multi-valued attribute kept one row per value, the row model and its owner key.
- `identifier`: the column holds a UUID (`scim_id`): a value that is no UUID names nothing.

Common attributes (`id`, `meta`, `schemas`, RFC 7643 §3.1) are in the table for filters, sorting
and PATCH's mutability check, with `published=False`: /Schemas never listed them. `externalId` is
published, because Entra maps to it by default and its gallery validator fails a mapped attribute it
cannot discover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.attribute_model import (
    ENTERPRISE_SCHEMA,
    ENTERPRISE_SCHEMA_MISSPELT,
    GROUP_SCHEMA,
    READ_ONLY,
    SCHEMA_ALIASES,
    USER_SCHEMA,
    WRITE_ONLY,
    Attribute,
    Resource,
    Rows,
    canonical_schema,
)

__all__ = [
    "ENTERPRISE_ATTRIBUTES",
    "ENTERPRISE_SCHEMA",
    "ENTERPRISE_SCHEMA_MISSPELT",
    "GROUP",
    "GROUP_ATTRIBUTES",
    "GROUP_SCHEMA",
    "RESOURCES",
    "SCHEMA_ALIASES",
    "USER",
    "USER_ATTRIBUTES",
    "USER_SCHEMA",
    "Attribute",
    "MultiValuedStorage",
    "Resource",
    "Rows",
    "UserStorage",
    "canonical_schema",
    "user_storage",
]


def _text(name: str, description: str, column: str | None = None, **kwargs: Any) -> Attribute:
    return Attribute(name=name, description=description, column=column, **kwargs)


def _flag(name: str, description: str, column: str | None = None, **kwargs: Any) -> Attribute:
    return Attribute(name=name, type="boolean", description=description, column=column, **kwargs)


def _user_rows(model: str, related_name: str) -> Rows:
    return Rows(model=model, owner="user", related_name=related_name)


def _multi(
    name: str,
    description: str,
    value_description: str,
    types: tuple[str, ...],
    rows: Rows,
    *,
    value: Attribute | None = None,
) -> Attribute:
    """RFC 7643 §2.4's value-shaped multi-valued attribute, stored in a `MultiValue` row model.
    Several values may share a `type`; only `primary` is limited, to one true value."""
    return Attribute(
        name=name,
        type="complex",
        multi_valued=True,
        description=description,
        rows=rows,
        sub_attributes=(
            value or _text("value", value_description, "value"),
            _text("display", "A human-readable name, primarily used for display purposes.", "display"),
            _text("type", "A label indicating the attribute's function.", "type", canonical_values=types),
            _flag("primary", "The preferred value, true at most once.", "primary"),
        ),
    )


def _external_id(resource: str) -> Attribute:
    """A common attribute (RFC 7643 §3.1) listed in /Schemas anyway (see the module docstring).
    RFC 7643 gives it no uniqueness, and none is enforced: two users may share a mailNickname."""
    return _text(
        "externalId",
        f"The provisioning client's identifier for the {resource}, case-exact; not unique.",
        "external_id",
        case_exact=True,
    )


def _common() -> tuple[Attribute, ...]:
    """RFC 7643 §3 and §3.1: every resource has them, the service provider alone sets them."""
    return (
        Attribute(
            name="schemas",
            multi_valued=True,
            description="The schema URIs the resource's attributes come from.",
            mutability=READ_ONLY,
            returned="always",
            published=False,
        ),
        _text(
            "id",
            "The service provider's unique identifier of the resource.",
            "scim_id",
            identifier=True,
            case_exact=True,
            mutability=READ_ONLY,
            returned="always",
            uniqueness="server",
            published=False,
        ),
        Attribute(
            name="meta",
            type="complex",
            description="Resource metadata maintained by the service provider.",
            mutability=READ_ONLY,
            published=False,
            sub_attributes=(
                _text("resourceType", "The name of the resource type.", mutability=READ_ONLY),
                Attribute(
                    name="created",
                    type="dateTime",
                    description="When the resource was added.",
                    column="created",
                    mutability=READ_ONLY,
                ),
                Attribute(
                    name="lastModified",
                    type="dateTime",
                    description="When the resource was last changed.",
                    column="last_modified",
                    mutability=READ_ONLY,
                ),
                _text("location", "The URI of the resource.", mutability=READ_ONLY),
                _text("version", "The resource's version, as its weak ETag.", mutability=READ_ONLY),
            ),
        ),
    )


USER_ATTRIBUTES: tuple[Attribute, ...] = (
    _text(
        "userName",
        "Unique identifier for the User, unique per tenant and compared case-insensitively.",
        "username",
        required=True,
        uniqueness="server",
    ),
    _external_id("User"),
    Attribute(
        name="name",
        type="complex",
        description="The components of the user's real name.",
        sub_attributes=(
            _text("formatted", "The full name, formatted for display.", "formatted_name"),
            _text("familyName", "The family name (last name).", "family_name"),
            _text("givenName", "The given name (first name).", "given_name"),
            _text("middleName", "The middle name(s).", "middle_name"),
            _text("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'.", "honorific_prefix"),
            _text("honorificSuffix", "The honorific suffix(es), e.g. 'III'.", "honorific_suffix"),
        ),
    ),
    _text("displayName", "The name of the User, suitable for display to end-users.", "display_name"),
    _text("nickName", "The casual way to address the user.", "nick_name"),
    Attribute(
        name="profileUrl",
        type="reference",
        reference_types=("external",),
        description="Profile URL.",
        column="profile_url",
    ),
    _text("title", "The user's title, such as 'Vice President'.", "title"),
    _text(
        "userType",
        "The relationship between the organization and the user, e.g. 'Employee'.",
        "user_type",
    ),
    _text(
        "preferredLanguage",
        "The user's preferred written or spoken language, e.g. 'en-US'.",
        "preferred_language",
    ),
    _text("locale", "The user's default location for localization, e.g. 'en-US'.", "locale"),
    _text("timezone", "The user's time zone in IANA format, e.g. 'America/Los_Angeles'.", "timezone"),
    _flag(
        "active",
        "The user's administrative status. Required: it can be set to true or false but never "
        "removed; a create that leaves it out makes an active user.",
        "is_active",
        required=True,
    ),
    _text(
        "password",
        "The user's clear-text password for the tenant's sign-in page; hashed on arrival, never returned.",
        "password",
        mutability=WRITE_ONLY,
        returned="never",
    ),
    _multi(
        "emails",
        "Email addresses for the user.",
        "Email address for the user.",
        ("work", "home", "other"),
        _user_rows("UserEmail", "emails"),
    ),
    _multi(
        "phoneNumbers",
        "Phone numbers for the user.",
        "Phone number, stored exactly as sent.",
        ("work", "home", "mobile", "fax", "pager", "other"),
        _user_rows("UserPhoneNumber", "phone_numbers"),
    ),
    _multi(
        "ims",
        "Instant messaging addresses for the user.",
        "Instant messaging address for the user.",
        ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        _user_rows("UserIm", "ims"),
    ),
    _multi(
        "photos",
        "URLs of photos of the user.",
        "URL of a photo of the user.",
        ("photo", "thumbnail"),
        _user_rows("UserPhoto", "photos"),
        value=Attribute(
            name="value",
            type="reference",
            reference_types=("external",),
            description="URL of a photo.",
            column="value",
        ),
    ),
    _multi(
        "entitlements",
        "Entitlements of the user.",
        "The value of an entitlement.",
        (),
        _user_rows("UserEntitlement", "entitlements"),
    ),
    _multi(
        "x509Certificates",
        "X.509 certificates issued to the user.",
        "The DER certificate, base64-encoded.",
        (),
        _user_rows("UserX509Certificate", "x509_certificates"),
        value=Attribute(
            name="value",
            type="binary",
            case_exact=True,
            description="The value of an X.509 certificate, base64-encoded DER.",
            column="value",
        ),
    ),
    Attribute(
        name="addresses",
        type="complex",
        multi_valued=True,
        description="A physical mailing address for this user.",
        rows=_user_rows("UserAddress", "addresses"),
        sub_attributes=(
            _text("formatted", "The full mailing address, formatted for display.", "formatted"),
            _text("streetAddress", "The full street address component.", "street_address"),
            _text("locality", "The city or locality component.", "locality"),
            _text("region", "The state or region component.", "region"),
            _text("postalCode", "The zip code or postal code component.", "postal_code"),
            _text("country", "The country name component.", "country"),
            _text(
                "type",
                "A label indicating the attribute's function.",
                "type",
                canonical_values=("work", "home", "other"),
            ),
            _flag("primary", "The preferred mailing address.", "primary"),
        ),
    ),
    Attribute(
        name="groups",
        type="complex",
        multi_valued=True,
        mutability=READ_ONLY,
        description="Groups the user belongs to directly; change them through /Groups.",
        rows=Rows(model="Membership", owner="user", related_name="memberships"),
        sub_attributes=(
            _text("value", "The id of the group.", "group__scim_id", identifier=True, mutability=READ_ONLY),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("Group",),
                mutability=READ_ONLY,
                description="The URI of the group.",
            ),
            _text("display", "The group's displayName.", "group__display_name", mutability=READ_ONLY),
        ),
    ),
    Attribute(
        name="roles",
        type="complex",
        multi_valued=True,
        description="Application roles assigned to the user (Entra app role assignments).",
        column="roles",
        sub_attributes=(
            _text("value", "The value of a role."),
            _text("display", "A human-readable name of the role."),
            _text("type", "A label indicating the role's function."),
            _flag("primary", "The primary role."),
        ),
    ),
)
"""`roles` live as a JSON list in `User.roles`: kept and returned, but not filterable."""

ENTERPRISE_ATTRIBUTES: tuple[Attribute, ...] = (
    _text("employeeNumber", "Numeric or alphanumeric identifier assigned to a person.", "employee_number"),
    _text("costCenter", "Identifies the name of a cost center.", "cost_center"),
    _text("organization", "Identifies the name of an organization.", "organization"),
    _text("division", "Identifies the name of a division.", "division"),
    _text("department", "Identifies the name of a department.", "department"),
    Attribute(
        name="manager",
        type="complex",
        description=(
            "The user's manager. A value naming no user of this tenant (yet) is kept as sent and "
            "linked once that user exists."
        ),
        column="manager",
        sub_attributes=(
            _text(
                "value",
                "The id of the SCIM resource representing the user's manager.",
                "manager_value",
                case_exact=True,
            ),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("User",),
                description="The URI of the manager.",
            ),
            _text("displayName", "The displayName of the user's manager.", mutability=READ_ONLY),
        ),
    ),
)
"""`manager.value` is the reference as sent (`User.manager_value`); the `User.manager` foreign key
is the user it names inside the tenant, from which `$ref` and `displayName` are read."""

GROUP_ATTRIBUTES: tuple[Attribute, ...] = (
    _text(
        "displayName",
        "A human-readable name for the Group, unique per tenant and compared case-insensitively.",
        "display_name",
        required=True,
        uniqueness="server",
    ),
    _external_id("Group"),
    Attribute(
        name="members",
        type="complex",
        multi_valued=True,
        description="The direct members of the Group (users of the same tenant).",
        rows=Rows(model="Membership", owner="group", related_name="memberships"),
        sub_attributes=(
            _text("value", "The id of the member.", "user__scim_id", identifier=True, mutability="immutable"),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("User",),
                mutability="immutable",
                description="The URI of the member.",
            ),
            _text("display", "The member's displayName.", mutability=READ_ONLY),
            _text("type", "The type of member: 'User'.", mutability="immutable", canonical_values=("User",)),
        ),
    ),
)


USER = Resource(
    name="User",
    core_schema=USER_SCHEMA,
    schemas={USER_SCHEMA: (*_common(), *USER_ATTRIBUTES), ENTERPRISE_SCHEMA: ENTERPRISE_ATTRIBUTES},
)
GROUP = Resource(
    name="Group",
    core_schema=GROUP_SCHEMA,
    schemas={GROUP_SCHEMA: (*_common(), *GROUP_ATTRIBUTES)},
)
RESOURCES: dict[str, Resource] = {"User": USER, "Group": GROUP}


# ------------------------------------------------------------------------ storage for translation


@dataclass(frozen=True)
class MultiValuedStorage:
    """A row-stored multi-valued attribute: the resource's accessor (and service argument) and
    each sub-attribute's row field."""

    related_name: str
    parts: dict[str, str]


@dataclass(frozen=True)
class UserStorage:
    """Where a User document's attributes live, SCIM name → model field, for translating a document
    to service arguments and back. `scalars` are the core's single-valued simple attributes (not
    the write-only password), `name_parts` the parts of `name`, `enterprise` the extension's simple
    attributes, `manager` the field holding the manager reference as sent, `multi_valued` the
    writable row-stored attributes (`groups` is read-only and not among them), `roles` the JSON field."""

    scalars: dict[str, str]
    name_parts: dict[str, str]
    enterprise: dict[str, str]
    manager: str
    multi_valued: dict[str, MultiValuedStorage]
    roles: str


def _columns(attributes: tuple[Attribute, ...]) -> dict[str, str]:
    return {
        attribute.name: attribute.column
        for attribute in attributes
        if attribute.column is not None and not attribute.sub_attributes and not attribute.multi_valued
    }


def user_storage() -> UserStorage:
    core = USER_ATTRIBUTES
    name = USER.find("name")
    manager = USER.find("manager", ENTERPRISE_SCHEMA)
    roles = USER.find("roles")
    assert name is not None and manager is not None and roles is not None
    manager_value = manager[1].sub("value")
    assert manager_value is not None and manager_value.column is not None and roles[1].column is not None
    return UserStorage(
        scalars={key: column for key, column in _columns(core).items() if key != "password"},
        name_parts=_columns(name[1].sub_attributes),
        enterprise=_columns(ENTERPRISE_ATTRIBUTES),
        manager=manager_value.column,
        multi_valued={
            attribute.name: MultiValuedStorage(
                attribute.rows.related_name, _columns(attribute.sub_attributes)
            )
            for attribute in core
            if attribute.rows is not None and not attribute.read_only
        },
        roles=roles[1].column,
    )
