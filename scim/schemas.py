"""The schemas this server supports (RFC 7643 §7), served by /Schemas and /ResourceTypes.

The documents are derived from the attribute table in scim.attributes, so /Schemas describes exactly
what filters, PATCH and the representation accept. Only attributes that are stored and returned are
described: Entra's validator flattens /Schemas into attribute paths and fails on sub-attributes the
server does not keep, while gallery discovery needs every mapped attribute present. No null values
anywhere: Entra reads a null as a value.
"""

from __future__ import annotations

from typing import Any

from scim.attributes import (
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    USER,
    USER_SCHEMA,
    Attribute,
)

__all__ = [
    "BULK_REQUEST",
    "BULK_RESPONSE",
    "ENTERPRISE_SCHEMA",
    "GROUP_SCHEMA",
    "LIST_RESPONSE",
    "PATCH_OP",
    "RESOURCE_TYPE_SCHEMA",
    "SCHEMAS",
    "SCHEMA_SCHEMA",
    "SEARCH_REQUEST",
    "SERVICE_PROVIDER_CONFIG_SCHEMA",
    "USER_SCHEMA",
    "Attribute",
    "resource_type_documents",
    "schema_document",
]

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

SCHEMAS: dict[str, tuple[str, str, tuple[Attribute, ...]]] = {
    USER_SCHEMA: ("User", "User Account", USER.published(USER_SCHEMA)),
    ENTERPRISE_SCHEMA: ("EnterpriseUser", "Enterprise User", USER.published(ENTERPRISE_SCHEMA)),
    GROUP_SCHEMA: ("Group", "Group", GROUP.published(GROUP_SCHEMA)),
}
"""Schema URN → (name, description, the attributes /Schemas lists), in the table's order."""


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
    """RFC 7643 §6; the extensions come from the table, none of them required."""
    documents: dict[str, dict[str, Any]] = {}
    for resource, endpoint, description in ((USER, "/Users", "User Account"), (GROUP, "/Groups", "Group")):
        documents[resource.name] = {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": resource.name,
            "name": resource.name,
            "endpoint": endpoint,
            "description": description,
            "schema": resource.core_schema,
            "schemaExtensions": [{"schema": urn, "required": False} for urn in resource.extensions],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/{resource.name}"},
        }
    return documents
