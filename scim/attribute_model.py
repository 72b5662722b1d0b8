"""The vocabulary of the SCIM attribute table (scim.attributes): schema URNs, the RFC 7643 §2.2/§7
attribute characteristics with their storage, and resource types as attributes grouped by schema.

Kept apart from the table itself so the grammar (scim.filter_grammar) can know the schema URNs, and
so that the table module is only the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTERPRISE_SCHEMA_MISSPELT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"
"""Entra's own sample requests drop the colon before `User`; read as the enterprise extension."""

SCHEMA_ALIASES: dict[str, str] = {
    urn.lower(): canonical
    for urn, canonical in (
        (USER_SCHEMA, USER_SCHEMA),
        (GROUP_SCHEMA, GROUP_SCHEMA),
        (ENTERPRISE_SCHEMA, ENTERPRISE_SCHEMA),
        (ENTERPRISE_SCHEMA_MISSPELT, ENTERPRISE_SCHEMA),
    )
}
"""Every schema URN an attribute path may start with (lower-cased) → the URN as /Schemas writes it."""

READ_ONLY = "readOnly"
WRITE_ONLY = "writeOnly"


@dataclass(frozen=True)
class Rows:
    """A multi-valued attribute kept as one row per value: `model` in the directory app, `owner` the
    row's key to the resource, `related_name` the resource's accessor (also the service argument)."""

    model: str
    owner: str
    related_name: str


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
    column: str | None = None
    rows: Rows | None = None
    identifier: bool = False
    published: bool = True

    @cached_property
    def _subs_by_name(self) -> dict[str, Attribute]:
        return {sub.name.lower(): sub for sub in self.sub_attributes}

    def sub(self, name: str) -> Attribute | None:
        """A sub-attribute by name; names are case-insensitive (RFC 7643 §2.1)."""
        return self._subs_by_name.get(name.lower())

    @property
    def read_only(self) -> bool:
        return self.mutability == READ_ONLY

    @property
    def write_only(self) -> bool:
        return self.mutability == WRITE_ONLY

    @property
    def default_sub(self) -> str | None:
        """RFC 7644 §3.4.2.2: a complex attribute with a `value` compares through it (`emails eq x`)."""
        return "value" if self.sub("value") is not None else None

    @property
    def filterable(self) -> bool:
        """Stored where a query can reach it, and ever returned: a returned "never" attribute (the
        password) must not be probed through filters. Multi-valued attributes need rows."""
        if self.returned == "never":
            return False
        if self.multi_valued:
            return self.rows is not None
        if self.sub_attributes:
            return any(sub.filterable for sub in self.sub_attributes)
        return self.column is not None

    def to_dict(self) -> dict[str, Any]:
        """The RFC 7643 §7 attribute definition; caseExact and uniqueness only where they mean
        something (text), and no nulls (Entra's validator trips over them)."""
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


@dataclass(frozen=True)
class Resource:
    """A resource type: its attributes by schema URN, core schema first, common attributes with the
    core ones (RFC 7643 §3: they belong to no schema, and clients write them unqualified)."""

    name: str
    core_schema: str
    schemas: dict[str, tuple[Attribute, ...]] = field(hash=False)

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(schema for schema in self.schemas if schema != self.core_schema)

    @cached_property
    def _by_schema(self) -> dict[str, dict[str, Attribute]]:
        return {
            schema: {attribute.name.lower(): attribute for attribute in attributes}
            for schema, attributes in self.schemas.items()
        }

    def attributes(self) -> tuple[Attribute, ...]:
        return tuple(attribute for attributes in self.schemas.values() for attribute in attributes)

    def find(self, name: str, schema: str | None = None) -> tuple[str, Attribute] | None:
        """The attribute `name` and the schema holding it: in `schema` when given (a canonical URN),
        otherwise in the core schema and then the extensions, since Entra writes `manager` as often
        as its URN-qualified form."""
        lowered = name.lower()
        for candidate in (schema,) if schema is not None else tuple(self.schemas):
            attribute = self._by_schema.get(candidate, {}).get(lowered)
            if attribute is not None:
                return candidate, attribute
        return None

    def published(self, schema: str) -> tuple[Attribute, ...]:
        return tuple(attribute for attribute in self.schemas[schema] if attribute.published)


def canonical_schema(urn: str) -> str | None:
    """The schema a URN names, as /Schemas writes it, or None for a schema this service lacks."""
    return SCHEMA_ALIASES.get(urn.lower())
