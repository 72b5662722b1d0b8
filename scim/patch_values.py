"""PATCH values (RFC 7644 §3.5.2) in every shape Entra sends them, brought to canonical RFC 7643 form.

Entra ID speaks two PATCH dialects (with and without the `aadOptscim062020` Tenant URL flag) and the
tenant, not us, picks one, so both are read at once: booleans as JSON or as "True"/"false" strings;
single values as scalars, objects or `[{"value": …}]` (the old .NET shape); roles whose `value` is
stringified JSON; members as `{"$ref": null, "value": id}` lists. What an attribute is (boolean or
text, which parts it has, which are read-only) comes from the table in scim.attributes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from scim.attributes import ENTERPRISE_SCHEMA, GROUP, USER, Attribute, Resource
from scim.errors import InvalidPath, InvalidSyntax, InvalidValue
from scim.patch_paths import fold, is_ignored, show, writable_names, writable_sub

OPERATION_KINDS = ("add", "replace", "remove")

_CONTENT_FREE_PARTS = frozenset({"type", "primary", "display"})
"""Sub-attributes that describe an element rather than hold its data: an element left with only
these (an email without an address) is dropped instead of being written back half-empty."""


def _named(resource: Resource, name: str, schema: str | None = None) -> Attribute:
    found = resource.find(name, schema)
    assert found is not None
    return found[1]


ROLES = _named(USER, "roles")
MANAGER = _named(USER, "manager", ENTERPRISE_SCHEMA)
MEMBERS = _named(GROUP, "members")
"""The attributes with an Entra dialect of their own: roles as JSON text, manager in every shape,
members as operations the view applies without loading the member list."""


class _Clear:
    """Marker for "no value": null, "", [] all clear an attribute (Entra's "replace with empty")."""

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR = _Clear()


def describe(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def lowered_keys(value: dict[Any, Any], label: str) -> dict[str, Any]:
    lowered = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidValue(f"{label}: object keys must be strings.")
        lowered[key.lower()] = item
    return lowered


def unwrap_single(value: Any, label: str) -> Any:
    """A single-valued attribute may arrive as `[x]` (the old .NET shape); `[]` means "no value"."""
    if isinstance(value, list):
        if not value:
            return None
        if len(value) > 1:
            raise InvalidValue(f"{label} is single-valued, but {len(value)} values were sent.")
        return value[0]
    return value


def coerce(attribute: Attribute, value: Any, label: str) -> Any:
    """A scalar for `attribute`, or CLEAR. Numbers become strings for text attributes (as the
    representation layer reads them, so PATCH and POST agree); "True"/"false" become booleans. No
    error quotes a write-only value: details are shown to clients and kept in the provisioning log."""
    value = unwrap_single(value, label)

    def shown(sent: Any) -> str:
        return "(the value sent)" if attribute.write_only else describe(sent)

    if isinstance(value, dict):
        keys = lowered_keys(value, label)
        if "value" not in keys or not set(keys) <= {"value", "$ref", "display"}:
            raise InvalidValue(f"{label} takes a single value, not the object {shown(value)}.")
        value = keys["value"]
    if value is None:
        return CLEAR
    if attribute.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "":
                return CLEAR
        raise InvalidValue(f"{label} must be a boolean (true or false), got {shown(value)}.")
    if isinstance(value, str):
        return value if value != "" else CLEAR
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidValue(f"{label} must be a string, got {shown(value)}.")


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def ordered(attribute: Attribute, element: dict[str, Any]) -> dict[str, Any]:
    return {sub.name: element[sub.name] for sub in attribute.sub_attributes if sub.name in element}


def _decode_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def role_element(raw: Any) -> dict[str, Any] | None:
    """Roles never fail a PATCH: without the flag Entra sends `{"value": "<JSON text>"}` holding
    `{"id", "value", "displayName"}`. Unusable parts are dropped; a role without a value is skipped."""
    if isinstance(raw, str):
        raw = _decode_object(raw) or {"value": raw}
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = {"value": str(raw)}
    if not isinstance(raw, dict):
        return None
    outer = {key.lower(): item for key, item in raw.items() if isinstance(key, str)}
    layers = [outer]
    if isinstance(outer.get("value"), str):
        decoded = _decode_object(outer["value"])
        if decoded is not None:
            inner = {key.lower(): item for key, item in decoded.items() if isinstance(key, str)}
            layers = [inner, {key: item for key, item in outer.items() if key != "value"}]
    role: dict[str, Any] = {}
    for layer in layers:
        value = layer.get("value")
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            role["value"] = str(value)
        display = layer.get("display", layer.get("displayname"))
        if isinstance(display, str) and display:
            role["display"] = display
        if isinstance(layer.get("type"), str) and layer["type"]:
            role["type"] = layer["type"]
        primary = layer.get("primary")
        if isinstance(primary, bool):
            role["primary"] = primary
        elif isinstance(primary, str) and primary.strip().lower() in ("true", "false"):
            role["primary"] = primary.strip().lower() == "true"
    if "value" not in role:
        fallback = role.get("display", outer.get("value"))
        if isinstance(fallback, str) and fallback:
            role["value"] = fallback
    return ordered(ROLES, role) if "value" in role else None


def element(attribute: Attribute, raw: Any) -> dict[str, Any] | None:
    """One value of a multi-valued complex attribute in canonical form, or None when it holds nothing.
    A bare scalar is that element's `value` (`"emails": "a@b"`)."""
    if attribute is ROLES:
        return role_element(raw)
    label = attribute.name
    if isinstance(raw, str | int | float) and not isinstance(raw, bool) and attribute.sub("value"):
        raw = {"value": raw}
    if not isinstance(raw, dict):
        raise InvalidValue(f"Each value of {label} must be an object, got {describe(raw)}.")
    result = {sub.name: part for sub, part in parts(attribute, lowered_keys(raw, label)) if part is not CLEAR}
    return ordered(attribute, result) if result else None


def parts(attribute: Attribute, items: dict[str, Any]) -> Iterator[tuple[Attribute, Any]]:
    """Each writable sub-attribute named in `items` with its coerced value (or CLEAR); read-only
    parts and `$ref` are skipped, unknown names refused."""
    for key, item in items.items():
        sub = writable_sub(attribute, key)
        if sub is None:
            if is_ignored(attribute, key):
                continue
            raise InvalidPath(
                f"Unknown sub-attribute {show(key)} of {attribute.name}; "
                f"{attribute.name} has: {writable_names(attribute)}."
            )
        yield sub, coerce(sub, item, f"{attribute.name}.{sub.name}")


def elements(attribute: Attribute, value: Any) -> list[dict[str, Any]]:
    if is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    return [found for found in (element(attribute, item) for item in items) if found is not None]


def identity(attribute: Attribute, value: dict[str, Any]) -> Any:
    """Which existing value a re-sent value is: by `value` and `type` (caseExact=false) where the
    attribute has a `value`, otherwise by everything but `primary`. Entra re-sends unchanged PATCHes
    every cycle, so an add of a value already present merges instead of duplicating."""
    value_sub = attribute.sub("value")
    if value_sub is not None and "value" in value:
        return ("value", fold(value.get("value"), value_sub.case_exact), fold(value.get("type"), False))
    return tuple(sorted((key, fold(item, False)) for key, item in value.items() if key != "primary"))


def has_content(attribute: Attribute, value: Any) -> bool:
    if not isinstance(value, dict):
        return True
    if attribute.sub("value") is not None:
        return value.get("value") not in (None, "")
    return any(key not in _CONTENT_FREE_PARTS and item not in (None, "") for key, item in value.items())


def matches_spec(value: Any, spec: dict[str, Any]) -> bool:
    if not isinstance(value, dict):
        return False
    return all(fold(value.get(key), False) == fold(item, False) for key, item in spec.items())


# ------------------------------------------------------------------------------------------ members


@dataclass(frozen=True)
class MemberOperation:
    """A membership change for the view to apply with the membership services, in order.
    `remove` with `ids == []` means remove every member (valueless `remove members`, RFC 7644
    §3.5.2.2); `replace` with `ids == []` means the group ends up empty."""

    kind: Literal["add", "remove", "replace"]
    ids: list[str]


def member_ids(value: Any) -> list[str]:
    """Member ids as strings, first occurrence kept: `[{"$ref": null, "value": id}]` (`$ref`,
    `display`, `type` ignored), bare strings, or a single object. Whether an id names a user of the
    tenant is the view's question."""
    if is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    seen: set[str] = set()
    for item in items:
        raw = item
        if isinstance(item, dict):
            keys = lowered_keys(item, "members")
            if "value" not in keys:
                raise InvalidValue(
                    f"Each member needs a 'value' holding the member's id, got {describe(item)}."
                )
            raw = keys["value"]
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise InvalidValue(f"A member's value must be an id string, got {describe(raw)}.")
        member_id = str(raw)
        if not member_id.strip():
            raise InvalidValue("A member's value must be a non-empty id.")
        if member_id not in seen:
            seen.add(member_id)
            ids.append(member_id)
    return ids


# ------------------------------------------------------------------------------------------ operations


@dataclass(frozen=True)
class Operation:
    kind: Literal["add", "replace", "remove"]
    path: str | None
    value: Any
    has_value: bool


def parse_operation(raw: Any, index: int) -> Operation:
    """One PatchOp operation; `op` in any case, since Entra sends `Replace`/`Add`/`Remove`."""
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSyntax(f"{where} must be an object with op, path and value.")
    fields = lowered_keys(raw, where)
    kind = fields.get("op")
    if not isinstance(kind, str) or kind.strip().lower() not in OPERATION_KINDS:
        raise InvalidSyntax(f"{where}.op must be add, replace or remove, got {describe(kind)}.")
    kind = kind.strip().lower()
    path = fields.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidPath(f"{where}.path must be a string, got {describe(path)}.")
    if path is not None:
        path = path.strip() or None
    has_value = "value" in fields
    if kind != "remove" and not has_value:
        raise InvalidValue(f"{where}: {kind} needs a value (RFC 7644 §3.5.2).")
    return Operation(kind, path, fields.get("value"), has_value)
