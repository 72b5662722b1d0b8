"""Translation between SCIM JSON (RFC 7643) and the directory's models and service arguments.

Reading is lenient where Entra is sloppy (entra-scim.md R40–R43, R54, R55, R71): attribute names are
matched case-insensitively, nulls mean "absent", booleans may be strings, `manager` may be a string,
an object or an array, and `roles` values may be JSON text. Writing is strict RFC: real booleans,
no nulls, `manager` as the complex `{"value", "$ref"}` inside the enterprise extension.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from directory.models import Group, User
from directory.services import UNSET
from scim.attributes import user_storage
from scim.errors import InvalidSyntax, InvalidValue
from scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

ENTERPRISE_SCHEMA_MISSPELT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"

STORAGE = user_storage()
USER_TOP_LEVEL = {k: v for k, v in STORAGE.scalars.items() if k not in ("userName", "active")}
"""The core's simple attributes other than userName and active, which every document handles itself."""
NAME_PARTS = STORAGE.name_parts
ENTERPRISE_FIELDS = STORAGE.enterprise
ADDRESS_PARTS = STORAGE.multi_valued["addresses"].parts
MULTI_VALUED = {
    name: (storage.related_name, storage.parts)
    for name, storage in STORAGE.multi_valued.items()
    if name != "addresses"
}
"""RFC 7643 §4.1.2's value-shaped multi-valued attributes: SCIM name → (service argument, parts).
All of it comes from the one attribute table (scim.attributes)."""


def scim_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_bool(value: object, *, attribute: str) -> bool:
    """JSON booleans, or "True"/"False" in any case: Entra sends `active` as a string (R43, R71)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidValue(f"{attribute} must be a boolean (true or false), got {json.dumps(value)[:60]}.")


def ci_items(data: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lower-cased, nulls dropped: RFC 7643 §2.1 attribute names are case-insensitive and
    Entra's example bodies carry explicit nulls for absent attributes (R40)."""
    return {str(k).lower(): v for k, v in data.items() if v is not None}


def _string(value: object, *, attribute: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise InvalidValue(f"{attribute} must be a string.")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and "value" in value[0]:
        return _string(value[0]["value"], attribute=attribute)
    raise InvalidValue(f"{attribute} must be a string.")


def _object(value: object, *, attribute: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue(f"{attribute} must be an object.")
    return ci_items(value)


def _list(value: object, *, attribute: str) -> list[Any]:
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise InvalidValue(f"{attribute} must be an array.")
    return value


def _multi_values(value: object, *, attribute: str, parts: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    lowered = {k.lower(): (k, v) for k, v in parts.items()}
    for item in _list(value, attribute=attribute):
        if isinstance(item, str):
            item = {"value": item}
        element = _object(item, attribute=attribute)
        row: dict[str, Any] = {}
        for key, raw in element.items():
            if key not in lowered:
                continue
            scim_name, model_name = lowered[key]
            if scim_name == "primary":
                row[model_name] = parse_bool(raw, attribute=f"{attribute}.primary")
            else:
                row[model_name] = _string(raw, attribute=f"{attribute}.{scim_name}")
        rows.append(row)
    return rows


def _roles(value: object) -> list[dict[str, Any]]:
    """Roles as Entra sends them; a `value` holding JSON text is decoded (entra-scim.md R55)."""
    roles = []
    for item in _list(value, attribute="roles"):
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict):
            continue
        element = ci_items(item)
        raw_value = element.get("value", "")
        if isinstance(raw_value, str) and raw_value.strip().startswith("{"):
            try:
                decoded = json.loads(raw_value)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                decoded = ci_items(decoded)
                element = {**element, "value": decoded.get("value", raw_value)}
                element.setdefault("display", decoded.get("displayname", ""))
        role: dict[str, Any] = {"value": str(element.get("value", ""))}
        for key, name in (("display", "display"), ("displayname", "display"), ("type", "type")):
            if element.get(key):
                role[name] = str(element[key])
        if "primary" in element:
            role["primary"] = parse_bool(element["primary"], attribute="roles.primary")
        if role["value"]:
            roles.append(role)
    return roles


def manager_reference(value: object) -> str | None:
    """The manager's id from any of Entra's shapes: "id", {"value": id}, [{"$ref": …, "value": id}];
    empty means "no manager" (entra-scim.md R54)."""
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            return None
        if len(value) != 1:
            raise InvalidValue("manager takes a single value.")
        value = value[0]
    if isinstance(value, dict):
        value = ci_items(value).get("value")
        if value is None:
            return None
    if not isinstance(value, str):
        raise InvalidValue("manager must be a user id.")
    return value.strip() or None


ENTERPRISE_URNS = (ENTERPRISE_SCHEMA.lower(), ENTERPRISE_SCHEMA_MISSPELT.lower())
ENTERPRISE_NAMES = {name.lower() for name in (*ENTERPRISE_FIELDS, "manager")}


def _enterprise_extension(data: Mapping[str, Any]) -> dict[str, Any]:
    """The enterprise attributes of a User document, wherever Entra put them: in the extension
    object (also under the `...2.0User` misspelling of its URN, entra-scim.md R40), as URN-qualified
    top-level keys, or, as in Microsoft's own "Example 2", as plain top-level keys. The extension
    object wins over the other forms, so nothing a correct client sends is overridden."""
    extension: dict[str, Any] = {}
    for key, value in data.items():
        urn, _, name = key.rpartition(":")
        if urn in ENTERPRISE_URNS and name in ENTERPRISE_NAMES:
            extension.setdefault(name, value)
        elif key in ENTERPRISE_NAMES:
            extension.setdefault(key, value)
    for urn in ENTERPRISE_URNS:
        if urn in data:
            extension.update(_object(data[urn], attribute=ENTERPRISE_SCHEMA))
    return extension


@dataclass
class UserInput:
    """Service arguments decoded from a User document."""

    username: str
    fields: dict[str, Any] = field(default_factory=dict)
    multi_values: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    manager: Any = UNSET
    password: str | None = None

    def service_arguments(self) -> dict[str, Any]:
        """Keyword arguments shared by `user_create` and `user_update`."""
        return {**self.multi_values, "manager": self.manager, "password": self.password}


def user_from_scim(document: object) -> UserInput:
    """Decode a full User document (POST, PUT, or a patched document). Absent attributes come back
    empty, so a PUT clears what it leaves out (RFC 7644 §3.5.1); `active` is only set when sent.
    `manager` stays the reference as sent: the service links it inside the tenant. `password` is
    write-only (RFC 7643 §4.1.1, returned "never"): decoded here, hashed by the service, never read
    back, and an absent password leaves the stored one as it is."""
    if not isinstance(document, dict):
        raise InvalidSyntax("The request body must be a JSON object.")
    data = ci_items(document)
    username = data.get("username")
    if username is None or (isinstance(username, str) and not username.strip()):
        raise InvalidValue("userName is required.")
    result = UserInput(username=_string(username, attribute="userName"))
    for scim_name, model_name in USER_TOP_LEVEL.items():
        result.fields[model_name] = (
            _string(data[scim_name.lower()], attribute=scim_name) if scim_name.lower() in data else ""
        )
    if "active" in data:
        result.fields["is_active"] = parse_bool(data["active"], attribute="active")
    name = _object(data["name"], attribute="name") if "name" in data else {}
    for scim_name, model_name in NAME_PARTS.items():
        raw = name.get(scim_name.lower())
        result.fields[model_name] = _string(raw, attribute=f"name.{scim_name}") if raw is not None else ""

    extension = _enterprise_extension(data)
    for scim_name, model_name in ENTERPRISE_FIELDS.items():
        raw = extension.get(scim_name.lower())
        result.fields[model_name] = _string(raw, attribute=scim_name) if raw is not None else ""
    result.manager = manager_reference(extension.get("manager"))

    for scim_name, (kind, parts) in MULTI_VALUED.items():
        result.multi_values[kind] = _multi_values(
            data.get(scim_name.lower(), []), attribute=scim_name, parts=parts
        )
    result.multi_values["addresses"] = _multi_values(
        data.get("addresses", []), attribute="addresses", parts=ADDRESS_PARTS
    )
    result.fields["roles"] = _roles(data["roles"]) if "roles" in data else []
    if "password" in data:
        result.password = _string(data["password"], attribute="password")
    return result


@dataclass
class GroupInput:
    display_name: str
    external_id: str
    member_ids: list[str] | None


def group_from_scim(document: object) -> GroupInput:
    if not isinstance(document, dict):
        raise InvalidSyntax("The request body must be a JSON object.")
    data = ci_items(document)
    display_name = data.get("displayname")
    if display_name is None or (isinstance(display_name, str) and not display_name.strip()):
        raise InvalidValue("displayName is required.")
    members = None
    if "members" in data:
        members = []
        for item in _list(data["members"], attribute="members"):
            value = (
                item
                if isinstance(item, str)
                else ci_items(item).get("value")
                if isinstance(item, dict)
                else None
            )
            if not isinstance(value, str) or not value:
                raise InvalidValue("Each member needs a value: the id of a user of this tenant.")
            members.append(value)
    external_id = data.get("externalid")
    return GroupInput(
        display_name=_string(display_name, attribute="displayName"),
        external_id=_string(external_id, attribute="externalId") if external_id is not None else "",
        member_ids=members,
    )


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in ("", None, [], {}):
        target[key] = value


GroupRef = tuple[str, str]
"""A group the user is in, as its `groups` lists it: (SCIM id, displayName)."""


def _element(row: Mapping[str, Any], parts: Mapping[str, str]) -> dict[str, Any]:
    element: dict[str, Any] = {}
    for part, attr in parts.items():
        value = row.get(attr)
        if part == "primary":
            if value:
                element["primary"] = True
        else:
            _put(element, part, value)
    return element


def user_to_scim(
    user: User, *, base_url: str, groups: Iterable[GroupRef] | None = None, references: bool = True
) -> dict[str, Any]:
    """The User as Entra reads it, from the row alone: multi-valued attributes come from the copy
    the services keep on it (`User.multi_values`), `manager` from the row and its manager's (a
    `select_related("manager")` away). `groups=None` leaves `groups` out (a PATCH's working
    document, or a caller that was not asked for it); callers that list pass what
    `user_groups` read for the whole page in one query. `references=False` leaves out the
    manager's `$ref` and displayName, which need the manager's row (a PATCH works on `value`)."""
    location = f"{base_url}/Users/{user.scim_id}"
    doc: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": str(user.scim_id)}
    _put(doc, "externalId", user.external_id)
    doc["userName"] = user.username
    name = {scim: getattr(user, model) for scim, model in NAME_PARTS.items() if getattr(user, model)}
    _put(doc, "name", name)
    for scim_name, model_name in USER_TOP_LEVEL.items():
        if scim_name != "externalId":
            _put(doc, scim_name, getattr(user, model_name))
    doc["active"] = user.is_active
    stored = user.multi_values or {}
    for scim_name, (kind, parts) in MULTI_VALUED.items():
        _put(doc, scim_name, [_element(row, parts) for row in stored.get(kind, ())])
    _put(doc, "addresses", [_element(row, ADDRESS_PARTS) for row in stored.get("addresses", ())])
    _put(doc, "roles", list(user.roles or []))
    if groups is not None:
        _put(
            doc,
            "groups",
            [
                {"value": group_id, "$ref": f"{base_url}/Groups/{group_id}", "display": display}
                for group_id, display in groups
            ],
        )
    extension: dict[str, Any] = {}
    for scim_name, model_name in ENTERPRISE_FIELDS.items():
        _put(extension, scim_name, getattr(user, model_name))
    if user.manager_value:
        extension["manager"] = {"value": user.manager_value}
        if references and user.manager_id is not None and user.manager is not None:
            extension["manager"]["$ref"] = f"{base_url}/Users/{user.manager.scim_id}"
            _put(extension["manager"], "displayName", user.manager.display_name)
    if extension:
        doc["schemas"].append(ENTERPRISE_SCHEMA)
        doc[ENTERPRISE_SCHEMA] = extension
    doc["meta"] = {
        "resourceType": "User",
        "created": scim_datetime(user.created),
        "lastModified": scim_datetime(user.last_modified),
        "location": location,
        "version": etag(user.version),
    }
    return doc


def group_to_scim(
    group: Group, *, base_url: str, members: Iterable[tuple[str, str]] | None
) -> dict[str, Any]:
    """`members` are (SCIM id, displayName) pairs; `None` leaves members out entirely
    (excludedAttributes=members, entra-scim.md R57)."""
    doc: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(group.scim_id)}
    _put(doc, "externalId", group.external_id)
    doc["displayName"] = group.display_name
    if members is not None:
        doc["members"] = []
        for user_id, display_name in members:
            member = {"value": user_id, "$ref": f"{base_url}/Users/{user_id}", "type": "User"}
            _put(member, "display", display_name)
            doc["members"].append(member)
    doc["meta"] = {
        "resourceType": "Group",
        "created": scim_datetime(group.created),
        "lastModified": scim_datetime(group.last_modified),
        "location": f"{base_url}/Groups/{group.scim_id}",
        "version": etag(group.version),
    }
    return doc


VALUE_FILTER = re.compile(r"\[[^\]]*\]")


def _split_path(path: str, schema: str) -> tuple[str, str | None]:
    """`urn:…:User:name.givenName` → ("name", "givenName"); extension attributes keep their URN.
    A value filter is dropped (`emails[type eq "work"].value` → ("emails", "value")): the Postman
    suite of Microsoft's reference code asks for `attributes=emails[type eq "work"]` and expects the
    emails, although RFC 7644 §3.4.2.5 has no filters there."""
    path = VALUE_FILTER.sub("", path).strip()
    lowered = path.lower()
    for uri in (ENTERPRISE_SCHEMA, schema):
        prefix = uri.lower() + ":"
        if lowered.startswith(prefix):
            rest = path[len(prefix) :]
            if uri == ENTERPRISE_SCHEMA:
                top, _, sub = rest.partition(".")
                return ENTERPRISE_SCHEMA, top + (f".{sub}" if sub else "")
            path = rest
            break
    if lowered == ENTERPRISE_SCHEMA.lower():
        return ENTERPRISE_SCHEMA, None
    top, _, sub = path.partition(".")
    return top, sub or None


def parse_attribute_list(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def _without(element: Any, name: str) -> Any:
    if not isinstance(element, dict):
        return element
    return {k: v for k, v in element.items() if k.lower() != name}


def _only(element: Any, name: str) -> dict[str, Any]:
    if not isinstance(element, dict):
        return {}
    return {k: v for k, v in element.items() if k.lower() == name}


def _pruned(value: Any) -> Any:
    """Drop what projection emptied: `{}` elements, then an empty attribute altogether (R27)."""
    if isinstance(value, list):
        value = [e for e in value if e != {}]
    return None if value in ({}, []) else value


def project(
    document: dict[str, Any], *, schema: str, attributes: list[str], excluded: list[str]
) -> dict[str, Any]:
    """RFC 7644 §3.4.2.5 `attributes` / `excludedAttributes`; `id` and `schemas` are always returned.
    A sub-attribute (`emails.value`, `name.givenName`, `urn:…:enterprise:2.0:User:manager.value`)
    selects or removes that part of each value; the extension's URN leaves `schemas` when none of
    the extension is returned."""
    if not attributes and not excluded:
        return document
    keys = {k.lower(): k for k in document}
    touched: set[str] = set()
    if attributes:
        result: dict[str, Any] = {"schemas": document["schemas"], "id": document.get("id")}
        whole: set[str] = set()
        for path in attributes:
            top, sub = _split_path(path, schema)
            key = keys.get(top.lower())
            if key is None or key in whole or key in ("schemas", "id"):
                continue
            value = document[key]
            if sub is None or not isinstance(value, dict | list):
                result[key] = value
                whole.add(key)
                continue
            name = sub.partition(".")[0].lower()
            touched.add(key)
            if isinstance(value, dict):
                result.setdefault(key, {}).update(_only(value, name))
            else:
                picked = result.setdefault(key, [{} for _ in value])
                for target, element in zip(picked, value, strict=True):
                    target.update(_only(element, name))
        for key in whole:
            touched.discard(key)
    else:
        result = dict(document)
        for path in excluded:
            top, sub = _split_path(path, schema)
            key = keys.get(top.lower())
            if key is None or key in ("id", "schemas") or key not in result:
                continue
            if sub is None:
                del result[key]
                continue
            name = sub.partition(".")[0].lower()
            value = result[key]
            touched.add(key)
            if isinstance(value, dict):
                result[key] = _without(value, name)
            elif isinstance(value, list):
                result[key] = [_without(e, name) for e in value]
    for key in touched:
        if key in result:
            result[key] = _pruned(result[key])
    result = {k: v for k, v in result.items() if v is not None}
    if ENTERPRISE_SCHEMA not in result and ENTERPRISE_SCHEMA in result["schemas"]:
        result["schemas"] = [s for s in result["schemas"] if s != ENTERPRISE_SCHEMA]
    return result


def wants_attribute(name: str, *, schema: str, attributes: list[str], excluded: list[str]) -> bool:
    """Whether a response needs `name` (members, groups) at all: it costs a query to read."""

    def names(paths: list[str]) -> set[str]:
        return {_split_path(p, schema)[0].lower() for p in paths}

    if attributes:
        return name.lower() in names(attributes)
    return name.lower() not in names(excluded)


def wants_members(*, attributes: list[str], excluded: list[str]) -> bool:
    """Whether a Group response needs its members loaded at all."""
    return wants_attribute("members", schema=GROUP_SCHEMA, attributes=attributes, excluded=excluded)
