"""The single SCIM attribute table (scim/attributes.py) and the one filter grammar: /Schemas, the filter
compiler and the PATCH engine all answer from the same definitions, so they cannot drift apart.

Mostly pure: the table, the parser and the PATCH engine need no database, and `user_filter_q` only
builds a `Q`. One test reads /Schemas over HTTP to pin that what clients see is the table.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from scim import patch_values
from scim.attributes import (
    ENTERPRISE_SCHEMA,
    ENTERPRISE_SCHEMA_MISSPELT,
    GROUP,
    GROUP_SCHEMA,
    USER,
    USER_SCHEMA,
    Attribute,
    Resource,
    user_storage,
)
from scim.errors import InvalidFilter, InvalidPath, Mutability
from scim.filter_grammar import parse_attr_path, parse_filter, parse_path
from scim.filters import group_filter_q, user_filter_q
from scim.patch import apply_group_patch, apply_user_patch
from scim.schemas import SCHEMAS, schema_document
from tests.scim.conftest import SCIMClient
from tests.scim.support import listed

BASE = "https://contoso.example/scim/v2"
USER_DOCUMENT: dict[str, Any] = {
    "schemas": [USER_SCHEMA],
    "id": "u-1",
    "userName": "a@contoso.com",
    "active": True,
}
GROUP_DOCUMENT: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": "g-1", "displayName": "Sales"}


def every_attribute(resource: Resource) -> list[tuple[str, Attribute]]:
    """(schema, attribute) for every top-level attribute of a resource, common ones included."""
    return [
        (schema, attribute) for schema, attributes in resource.schemas.items() for attribute in attributes
    ]


def qualified(resource: Resource, schema: str, name: str) -> str:
    return name if schema == resource.core_schema else f"{schema}:{name}"


def ids(pairs: list[tuple[str, Attribute]]) -> list[str]:
    return [attribute.name for _schema, attribute in pairs]


USER_ATTRIBUTES = every_attribute(USER)
GROUP_ATTRIBUTES = every_attribute(GROUP)


# ------------------------------------------------------------------------------------ /Schemas


@pytest.mark.parametrize("uri", [USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA])
def test_schema_documents_are_the_tables_published_attributes(uri: str) -> None:
    resource = GROUP if uri == GROUP_SCHEMA else USER
    document = schema_document(uri, base_url=BASE)
    assert document["attributes"] == [a.to_dict() for a in resource.schemas[uri] if a.published]
    assert SCHEMAS[uri][2] == resource.published(uri)


def test_common_attributes_are_in_the_table_but_not_published() -> None:
    """RFC 7643 §3.1: id, meta and schemas belong to every resource and no schema; externalId is
    listed anyway, because Entra's validator must discover every attribute it maps."""
    for resource in (USER, GROUP):
        core = {a.name: a for a in resource.schemas[resource.core_schema]}
        assert {name for name, a in core.items() if not a.published} == {"id", "meta", "schemas"}
        assert all(core[name].read_only for name in ("id", "meta", "schemas"))
        assert core["externalId"].published


def test_every_attribute_is_defined_once() -> None:
    for resource in (USER, GROUP):
        names = [attribute.name.lower() for _schema, attribute in every_attribute(resource)]
        assert len(names) == len(set(names))
        for _schema, attribute in every_attribute(resource):
            subs = [sub.name.lower() for sub in attribute.sub_attributes]
            assert len(subs) == len(set(subs))


@pytest.mark.django_db
def test_schemas_endpoint_serves_the_table(scim: SCIMClient) -> None:
    served = {schema["id"]: schema for schema in listed(scim.get("/Schemas"))["Resources"]}
    assert set(served) == set(SCHEMAS)
    for uri, (_name, _description, attributes) in SCHEMAS.items():
        assert served[uri]["attributes"] == [a.to_dict() for a in attributes]


# ------------------------------------------------------------------------------------- storage


def _resolves(model: type[models.Model], lookup: str) -> bool:
    """Whether an ORM path (`group__display_name`) names a field from `model`."""
    try:
        for part in lookup.split("__"):
            field = model._meta.get_field(part)
            if field.is_relation and field.related_model is not None and part != lookup.split("__")[-1]:
                model = field.related_model
    except FieldDoesNotExist:
        return False
    return True


@pytest.mark.parametrize(("resource", "model_name"), [(USER, "User"), (GROUP, "Group")])
def test_every_storage_name_is_a_real_model_field(resource: Resource, model_name: str) -> None:
    owner = apps.get_model("directory", model_name)
    for _schema, attribute in every_attribute(resource):
        if attribute.column is not None:
            assert _resolves(owner, attribute.column), attribute.name
        holder = owner
        if attribute.rows is not None:
            holder = apps.get_model("directory", attribute.rows.model)
            assert _resolves(holder, attribute.rows.owner), attribute.name
            assert hasattr(owner, attribute.rows.related_name), attribute.name
        for sub in attribute.sub_attributes:
            if sub.column is not None:
                assert _resolves(holder, sub.column), f"{attribute.name}.{sub.name}"


def test_user_storage_gives_the_translation_maps() -> None:
    storage = user_storage()
    assert storage.scalars["userName"] == "username"
    assert storage.scalars["active"] == "is_active"
    assert "password" not in storage.scalars
    assert storage.name_parts["givenName"] == "given_name"
    assert storage.enterprise["employeeNumber"] == "employee_number"
    assert storage.manager == "manager_value"
    assert storage.multi_valued["emails"].related_name == "emails"
    assert storage.multi_valued["emails"].parts == {
        "value": "value",
        "display": "display",
        "type": "type",
        "primary": "primary",
    }
    assert storage.multi_valued["addresses"].parts["postalCode"] == "postal_code"
    assert "groups" not in storage.multi_valued
    assert storage.roles == "roles"


# -------------------------------------------------------------------------------------- filters


def _paths(resource: Resource) -> list[tuple[str, Attribute, Attribute | None]]:
    """(path, attribute, sub) for every attribute and every sub-attribute of a resource."""
    found = []
    for schema, attribute in every_attribute(resource):
        found.append((qualified(resource, schema, attribute.name), attribute, None))
        for sub in attribute.sub_attributes:
            found.append((qualified(resource, schema, f"{attribute.name}.{sub.name}"), attribute, sub))
    return found


@pytest.mark.parametrize(
    ("resource", "compile_q"), [(USER, user_filter_q), (GROUP, group_filter_q)], ids=["User", "Group"]
)
def test_filterable_exactly_where_the_table_has_storage(resource: Resource, compile_q: Any) -> None:
    """`pr` compiles for every stored, returned attribute and is refused for all others (the
    password, roles kept as JSON, parts derived at read time such as manager.displayName)."""
    for path, attribute, sub in _paths(resource):
        filterable = attribute.filterable and (sub is None or sub.filterable)
        if filterable:
            compile_q(f"{path} pr")
        else:
            with pytest.raises(InvalidFilter, match="Unsupported filter attribute"):
                compile_q(f"{path} pr")


def test_filterability_follows_the_rfc_characteristics() -> None:
    password = USER.find("password")
    assert password is not None and password[1].write_only and not password[1].filterable
    roles = USER.find("roles")
    assert roles is not None and roles[1].column == "roles" and not roles[1].filterable


# ---------------------------------------------------------------------------------------- PATCH


def _sample(attribute: Attribute) -> Any:
    """A value the table says the attribute takes: a boolean, a text, or an object of its first
    writable sub-attribute (a list of one for a multi-valued attribute); a read-only attribute gets
    a value shaped the same way, which PATCH must refuse before reading it."""
    if attribute.type == "boolean":
        return True
    if attribute.type != "complex":
        return "sample"
    writable = [s for s in attribute.sub_attributes if not s.read_only and s.name != "$ref"]
    sub = (writable or list(attribute.sub_attributes))[0]
    element = {sub.name: _sample(sub)}
    return [element] if attribute.multi_valued else element


@pytest.mark.parametrize(("schema", "attribute"), USER_ATTRIBUTES, ids=ids(USER_ATTRIBUTES))
@pytest.mark.parametrize("op", ["add", "replace"])
def test_user_attributes_patch_as_their_mutability_says(op: str, schema: str, attribute: Attribute) -> None:
    path = qualified(USER, schema, attribute.name)
    operation = {"op": op, "path": path, "value": _sample(attribute)}
    if attribute.read_only:
        with pytest.raises(Mutability):
            apply_user_patch(USER_DOCUMENT, [operation])
        return
    patched = apply_user_patch(USER_DOCUMENT, [operation])
    holder = patched if schema == USER_SCHEMA else patched[schema]
    assert attribute.name in holder


@pytest.mark.parametrize(("schema", "attribute"), GROUP_ATTRIBUTES, ids=ids(GROUP_ATTRIBUTES))
def test_group_attributes_patch_as_their_mutability_says(schema: str, attribute: Attribute) -> None:
    operation = {"op": "replace", "path": attribute.name, "value": _sample(attribute)}
    if attribute.read_only:
        with pytest.raises(Mutability):
            apply_group_patch(GROUP_DOCUMENT, [operation])
        return
    patched, members = apply_group_patch(GROUP_DOCUMENT, [operation])
    assert attribute.name in patched or [m.kind for m in members] == ["replace"]


@pytest.mark.parametrize("path", ["groups", 'groups[value eq "g-1"]', "meta.lastModified", "id"])
def test_read_only_attributes_are_a_mutability_error_whatever_the_path(path: str) -> None:
    with pytest.raises(Mutability):
        apply_user_patch(USER_DOCUMENT, [{"op": "remove", "path": path}])


def test_read_only_sub_attributes_are_accepted_and_dropped() -> None:
    """A client echoing manager.displayName from a GET must not fail (mutability readOnly)."""
    patched = apply_user_patch(
        USER_DOCUMENT,
        [
            {
                "op": "add",
                "path": f"{ENTERPRISE_SCHEMA}:manager",
                "value": {"value": "m-1", "displayName": "B"},
            }
        ],
    )
    assert patched[ENTERPRISE_SCHEMA]["manager"] == {"value": "m-1"}


def test_the_patch_engine_uses_the_tables_attribute_objects() -> None:
    assert patch_values.MANAGER is USER.find("manager", ENTERPRISE_SCHEMA)[1]  # type: ignore[index]
    assert patch_values.MEMBERS is GROUP.find("members")[1]  # type: ignore[index]
    assert patch_values.ROLES is USER.find("roles")[1]  # type: ignore[index]


# ---------------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("path", "filter_text"),
    [
        ('emails[type eq "work"].value', 'emails[type eq "work"].value eq "x"'),
        (
            'members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]',
            'members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]',
        ),
        (
            'addresses[type eq "work" and primary eq True].locality',
            'addresses[type eq "work" and primary eq True].locality pr',
        ),
        (
            'emails[not (type eq work) or value co "@x"].display',
            'emails[not (type eq work) or value co "@x"].display pr',
        ),
    ],
)
def test_patch_paths_and_filters_parse_to_the_same_tree(path: str, filter_text: str) -> None:
    """The bracketed value filter of a PATCH path is the very tree `?filter=` builds for it."""
    parsed = parse_path(path)
    value_path = parse_filter(filter_text)
    assert parsed.path == value_path.path  # type: ignore[union-attr]
    assert parsed.condition == value_path.condition  # type: ignore[union-attr]
    tail = value_path.tail  # type: ignore[union-attr]
    assert parsed.sub == (tail.path.attr if tail is not None else None)


@pytest.mark.parametrize(
    "text",
    [
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:department",
        f"{ENTERPRISE_SCHEMA_MISSPELT}:department",
    ],
)
def test_enterprise_urn_forms_are_one_attribute_path(text: str) -> None:
    """Entra's sample requests misspell the extension URN (`2.0User`); both spellings, in any case,
    name the one enterprise attribute, for filters and PATCH alike."""
    assert parse_attr_path(text) == parse_attr_path(f"{ENTERPRISE_SCHEMA}:department")
    user_filter_q(f'{text} eq "R&D"')
    patched = apply_user_patch(USER_DOCUMENT, [{"op": "add", "path": text, "value": "R&D"}])
    assert patched[ENTERPRISE_SCHEMA] == {"department": "R&D"}


@pytest.mark.parametrize(
    "path",
    [
        'emails[type eq "work"',
        "emails[type eq]",
        'emails[type xx "work"]',
        'emails[not type eq "w"]',
        "emails[]",
    ],
)
def test_malformed_value_filters_fail_alike_in_patch_and_filter(path: str) -> None:
    """One parser, one diagnosis: PATCH reports the filter parser's own message, as invalidPath."""
    with pytest.raises(InvalidFilter) as in_filter:
        parse_filter(path)
    with pytest.raises(InvalidPath) as in_patch:
        apply_user_patch(USER_DOCUMENT, [{"op": "replace", "path": path, "value": "x"}])
    assert in_filter.value.detail in in_patch.value.detail
