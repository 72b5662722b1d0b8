"""The schemas this server actually supports (RFC 7643 §7), served by /Schemas.

Only attributes that are stored and returned are described: Entra's validator flattens /Schemas
into attribute paths and fails on sub-attributes the server does not keep (entra-scim.md §8 P16),
while gallery discovery needs every mapped attribute present (R63). No null values anywhere (R27).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"
    description: str = ""
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in ("string", "reference", "binary"):
            data["caseExact"] = self.case_exact
            data["uniqueness"] = self.uniqueness
        if self.canonical_values:
            data["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            data["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            data["subAttributes"] = [sub.to_dict() for sub in self.sub_attributes]
        return data


def _s(name: str, description: str = "", **kwargs: Any) -> Attribute:
    return Attribute(name=name, description=description, **kwargs)


def _multi(
    name: str,
    description: str,
    value_description: str,
    types: tuple[str, ...],
    *,
    value: Attribute | None = None,
) -> Attribute:
    """RFC 7643 §2.4's value-shaped multi-valued attribute. Several values may share a `type`;
    only `primary` is limited, to one true value."""
    return Attribute(
        name=name,
        type="complex",
        multi_valued=True,
        description=description,
        sub_attributes=(
            value or _s("value", value_description),
            _s("display", "A human-readable name, primarily used for display purposes."),
            _s("type", "A label indicating the attribute's function.", canonical_values=types),
            Attribute(name="primary", type="boolean", description="The preferred value, true at most once."),
        ),
    )


def _external_id(resource: str) -> Attribute:
    """A common attribute (RFC 7643 §3.1) that no schema has to list; it is listed anyway because
    Entra maps to it by default (mailNickname or objectId → externalId) and the gallery validator
    fails a mapped attribute it cannot discover in /Schemas. RFC 7643 gives it no uniqueness, and
    none is enforced: two users may share a mailNickname."""
    return _s(
        "externalId",
        f"The provisioning client's identifier for the {resource}, case-exact; not unique.",
        case_exact=True,
    )


USER_ATTRIBUTES: tuple[Attribute, ...] = (
    _s(
        "userName",
        "Unique identifier for the User, unique per tenant and compared case-insensitively.",
        required=True,
        uniqueness="server",
    ),
    _external_id("User"),
    Attribute(
        name="name",
        type="complex",
        description="The components of the user's real name.",
        sub_attributes=(
            _s("formatted", "The full name, formatted for display."),
            _s("familyName", "The family name (last name)."),
            _s("givenName", "The given name (first name)."),
            _s("middleName", "The middle name(s)."),
            _s("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
            _s("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
        ),
    ),
    _s("displayName", "The name of the User, suitable for display to end-users."),
    _s("nickName", "The casual way to address the user."),
    Attribute(name="profileUrl", type="reference", reference_types=("external",), description="Profile URL."),
    _s("title", "The user's title, such as 'Vice President'."),
    _s("userType", "The relationship between the organization and the user, e.g. 'Employee'."),
    _s("preferredLanguage", "The user's preferred written or spoken language, e.g. 'en-US'."),
    _s("locale", "The user's default location for localization, e.g. 'en-US'."),
    _s("timezone", "The user's time zone in IANA format, e.g. 'America/Los_Angeles'."),
    Attribute(
        name="active",
        type="boolean",
        required=True,
        description=(
            "The user's administrative status. Required: it can be set to true or false but never "
            "removed; a create that leaves it out makes an active user."
        ),
    ),
    _s(
        "password",
        "The user's clear-text password for the tenant's sign-in page; hashed on arrival, never returned.",
        mutability="writeOnly",
        returned="never",
    ),
    _multi(
        "emails", "Email addresses for the user.", "Email address for the user.", ("work", "home", "other")
    ),
    _multi(
        "phoneNumbers",
        "Phone numbers for the user.",
        "Phone number, stored exactly as sent.",
        ("work", "home", "mobile", "fax", "pager", "other"),
    ),
    _multi(
        "ims",
        "Instant messaging addresses for the user.",
        "Instant messaging address for the user.",
        ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
    ),
    _multi(
        "photos",
        "URLs of photos of the user.",
        "URL of a photo of the user.",
        ("photo", "thumbnail"),
        value=Attribute(
            name="value", type="reference", reference_types=("external",), description="URL of a photo."
        ),
    ),
    _multi("entitlements", "Entitlements of the user.", "The value of an entitlement.", ()),
    _multi(
        "x509Certificates",
        "X.509 certificates issued to the user.",
        "The DER certificate, base64-encoded.",
        (),
        value=Attribute(
            name="value",
            type="binary",
            case_exact=True,
            description="The value of an X.509 certificate, base64-encoded DER.",
        ),
    ),
    Attribute(
        name="addresses",
        type="complex",
        multi_valued=True,
        description="A physical mailing address for this user.",
        sub_attributes=(
            _s("formatted", "The full mailing address, formatted for display."),
            _s("streetAddress", "The full street address component."),
            _s("locality", "The city or locality component."),
            _s("region", "The state or region component."),
            _s("postalCode", "The zip code or postal code component."),
            _s("country", "The country name component."),
            _s(
                "type",
                "A label indicating the attribute's function.",
                canonical_values=("work", "home", "other"),
            ),
            Attribute(name="primary", type="boolean", description="The preferred mailing address."),
        ),
    ),
    Attribute(
        name="groups",
        type="complex",
        multi_valued=True,
        mutability="readOnly",
        description="Groups the user belongs to directly; change them through /Groups.",
        sub_attributes=(
            _s("value", "The id of the group.", mutability="readOnly"),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("Group",),
                mutability="readOnly",
                description="The URI of the group.",
            ),
            _s("display", "The group's displayName.", mutability="readOnly"),
        ),
    ),
    Attribute(
        name="roles",
        type="complex",
        multi_valued=True,
        description="Application roles assigned to the user (Entra app role assignments).",
        sub_attributes=(
            _s("value", "The value of a role."),
            _s("display", "A human-readable name of the role."),
            _s("type", "A label indicating the role's function."),
            Attribute(name="primary", type="boolean", description="The primary role."),
        ),
    ),
)

ENTERPRISE_ATTRIBUTES: tuple[Attribute, ...] = (
    _s("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
    _s("costCenter", "Identifies the name of a cost center."),
    _s("organization", "Identifies the name of an organization."),
    _s("division", "Identifies the name of a division."),
    _s("department", "Identifies the name of a department."),
    Attribute(
        name="manager",
        type="complex",
        description=(
            "The user's manager. A value naming no user of this tenant (yet) is kept as sent and "
            "linked once that user exists."
        ),
        sub_attributes=(
            _s("value", "The id of the SCIM resource representing the user's manager.", case_exact=True),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("User",),
                description="The URI of the manager.",
            ),
            _s("displayName", "The displayName of the user's manager.", mutability="readOnly"),
        ),
    ),
)

GROUP_ATTRIBUTES: tuple[Attribute, ...] = (
    _s(
        "displayName",
        "A human-readable name for the Group, unique per tenant and compared case-insensitively.",
        required=True,
        uniqueness="server",
    ),
    _external_id("Group"),
    Attribute(
        name="members",
        type="complex",
        multi_valued=True,
        description="The direct members of the Group (users of the same tenant).",
        sub_attributes=(
            _s("value", "The id of the member.", mutability="immutable"),
            Attribute(
                name="$ref",
                type="reference",
                reference_types=("User",),
                mutability="immutable",
                description="The URI of the member.",
            ),
            _s("display", "The member's displayName.", mutability="readOnly"),
            _s("type", "The type of member: 'User'.", mutability="immutable", canonical_values=("User",)),
        ),
    ),
)

SCHEMAS: dict[str, tuple[str, str, tuple[Attribute, ...]]] = {
    USER_SCHEMA: ("User", "User Account", USER_ATTRIBUTES),
    ENTERPRISE_SCHEMA: ("EnterpriseUser", "Enterprise User", ENTERPRISE_ATTRIBUTES),
    GROUP_SCHEMA: ("Group", "Group", GROUP_ATTRIBUTES),
}


def schema_document(uri: str, *, base_url: str) -> dict[str, Any]:
    name, description, attributes = SCHEMAS[uri]
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": uri,
        "name": name,
        "description": description,
        "attributes": [a.to_dict() for a in attributes],
        "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{uri}"},
    }


def resource_type_documents(*, base_url: str) -> dict[str, dict[str, Any]]:
    return {
        "User": {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
        },
        "Group": {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/Group"},
        },
    }
