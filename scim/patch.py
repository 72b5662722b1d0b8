"""SCIM PATCH engine (RFC 7644 §3.5.2): PatchOp operations applied to a canonical RFC 7643 document.

Pure functions over plain JSON dicts, no database: the view builds the resource's canonical JSON, calls
`apply_user_patch` / `apply_group_patch`, and turns the returned document back into service calls.

The engine is three modules: scim.patch_paths resolves a path against the attribute table (parsed by
scim.filter_grammar, the parser `?filter=` uses) and evaluates value filters in memory;
scim.patch_values brings values to canonical form; this module applies operations in order. Entra ID
speaks two PATCH dialects (with and without the `aadOptscim062020` flag) and the tenant, not us,
picks one, so both are accepted at once:
- path-less add/replace whose value keys are dotted or URN-qualified (`name.givenName`,
  `urn:…:enterprise:2.0:User:department`) are expanded, never stored as literal keys;
- `add`/`replace` on a value-filter path whose element is missing creates it (`type` from the filter);
- member removal by `value` list or by `members[value eq "…"]` filter, never "remove everyone".

Group `members` are never applied to the document (a group may have 50,000 members and the view never
loads them): they come back as `MemberOperation`s over just the ids named.

Every bad input raises a `scim.errors.SCIMError` subclass, never anything else: no 5xx.
"""

from __future__ import annotations

import copy
from typing import Any

from scim.attributes import GROUP, USER, Attribute, Resource
from scim.errors import InvalidPath, InvalidSyntax, InvalidValue, NoTarget, SCIMError
from scim.patch_paths import (
    Target,
    ids_from_filter,
    matches,
    resolve,
    seed,
    show,
)
from scim.patch_values import (
    CLEAR,
    MANAGER,
    MEMBERS,
    ROLES,
    MemberOperation,
    Operation,
    coerce,
    describe,
    has_content,
    identity,
    is_empty,
    lowered_keys,
    matches_spec,
    member_ids,
    ordered,
    parse_operation,
    parts,
    role_element,
    unwrap_single,
)
from scim.patch_values import element as value_of
from scim.patch_values import elements as values_of
from scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA

__all__ = [
    "ENTERPRISE_SCHEMA",
    "GROUP_SCHEMA",
    "PATCH_SCHEMA",
    "USER_SCHEMA",
    "MemberOperation",
    "apply_group_patch",
    "apply_user_patch",
    "validate_patch_request",
]

PATCH_SCHEMA = PATCH_OP

_MANAGER_VALUE = MANAGER.sub("value")
assert _MANAGER_VALUE is not None


def _operation_as_dict(operation: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {"op": operation.kind, "path": operation.path}
    if operation.has_value:
        result["value"] = operation.value
    return result


def validate_patch_request(body: object) -> list[dict[str, Any]]:
    """Check a PatchOp body and return its operations as `{"op", "path"[, "value"]}` dicts, `op`
    lower-cased, blank paths as None, `value` present only when it was sent (null is a value: it
    clears). `schemas` may be missing (nothing is ambiguous without it) but if sent must name PatchOp;
    key names are matched case-insensitively like everything else Entra sends."""
    if not isinstance(body, dict):
        raise InvalidSyntax("A PATCH body must be a JSON object with schemas and Operations.")
    fields = lowered_keys(body, "PATCH body")
    schemas = fields.get("schemas")
    if schemas is not None:
        listed = [schemas] if isinstance(schemas, str) else schemas
        if not isinstance(listed, list) or PATCH_SCHEMA.lower() not in {
            s.strip().lower() for s in listed if isinstance(s, str)
        }:
            raise InvalidSyntax(f"A PATCH body's schemas must be [{PATCH_SCHEMA!r}].")
    operations = fields.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("A PATCH body needs Operations: a non-empty array of {op, path, value}.")
    return [_operation_as_dict(parse_operation(raw, index)) for index, raw in enumerate(operations)]


class _Patcher:
    """Applies operations, in order, to a private deep copy; the caller only sees the copy once every
    operation has succeeded, which makes a PATCH atomic (RFC 7644 §3.5.2: all or nothing)."""

    def __init__(self, resource: Resource, document: dict[str, Any]) -> None:
        self.resource = resource
        self.document = copy.deepcopy(document)
        self.member_operations: list[MemberOperation] = []
        self.extensions_before = {schema: bool(self.document.get(schema)) for schema in resource.extensions}

    def run(self, operations: Any) -> None:
        if not isinstance(operations, list):
            raise InvalidSyntax("Operations must be an array.")
        for index, raw in enumerate(operations):
            operation = parse_operation(raw, index)
            try:
                self.apply(operation)
            except SCIMError as exc:
                shown_path = show(operation.path or "(no path)", quote=False)
                where = f"Operations[{index}] ({operation.kind} {shown_path})"
                raise type(exc)(f"{where}: {exc.detail}", scim_type=exc.scim_type, status=exc.status) from exc
        self._tidy_schemas()

    def apply(self, operation: Operation) -> None:
        if operation.path is None:
            if operation.kind == "remove":
                raise NoTarget("remove needs a path (RFC 7644 §3.5.2.2).")
            self._apply_object(self.resource.core_schema, operation.value, operation.kind, pathless=True)
            return
        target = resolve(self.resource, operation.path)
        if operation.kind == "remove":
            self._remove(target, operation.value, operation.has_value)
        else:
            self._set(target, operation.value, operation.kind)

    # -------------------------------------------------------------------------- containers

    def _container(self, schema: str, *, create: bool) -> dict[str, Any] | None:
        if schema == self.resource.core_schema:
            return self.document
        container = self.document.get(schema)
        if isinstance(container, dict):
            return container
        if not create:
            return None
        self.document[schema] = {}
        return self.document[schema]

    def _write(self, target: Target, value: Any) -> None:
        assert target.attribute is not None
        container = self._container(target.schema, create=True)
        assert container is not None
        container[target.attribute.name] = value

    def _drop(self, schema: str, name: str) -> None:
        container = self._container(schema, create=False)
        if container is None:
            return
        container.pop(name, None)
        if schema != self.resource.core_schema and not container:
            self.document.pop(schema, None)

    def _clear(self, target: Target) -> None:
        attribute = target.attribute
        assert attribute is not None
        if attribute.required:
            hint = "send true or false" if attribute.type == "boolean" else "send a new value"
            raise InvalidValue(f"{attribute.name} is required and cannot be removed or emptied; {hint}.")
        self._drop(target.schema, attribute.name)

    def _tidy_schemas(self) -> None:
        """Keep `schemas` naming exactly the extensions present (RFC 7643 §3): added when a PATCH
        creates extension data, removed when a PATCH removes the last of it."""
        schemas = self.document.get("schemas")
        if not isinstance(schemas, list):
            return
        for extension in self.resource.extensions:
            present = bool(self.document.get(extension))
            if not present:
                self.document.pop(extension, None)
            if present and extension not in schemas:
                schemas.append(extension)
            elif not present and self.extensions_before[extension] and extension in schemas:
                schemas.remove(extension)

    # -------------------------------------------------------------------------- add / replace

    def _apply_object(self, schema: str, value: Any, kind: str, *, pathless: bool) -> None:
        """A path-less value, or the value of a bare extension-URN path: each key is itself a path
        (`name.givenName`, `urn:…:User:employeeNumber`, `emails[type eq "work"].value`), never a literal
        key (Entra's flag dialect writes them so). Path-less `schemas`/`meta` describe the object and
        are ignored, and so is the `schemas` an extension object carries when it is serialised whole
        (scim2-models does); `id` may repeat the current id but not change it."""
        value = unwrap_single(value, "value") if pathless else value
        if not isinstance(value, dict):
            if pathless:
                raise InvalidValue(f"A path-less {kind} needs an object value, got {describe(value)}.")
            if is_empty(value) and kind == "replace":
                self.document.pop(schema, None)
                return
            raise InvalidValue(f"The value for {schema} must be an object, got {describe(value)}.")
        scope = None if schema == self.resource.core_schema else schema
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue("Object keys must be strings.")
            if key.strip().lower() == "schemas" or (pathless and key.strip().lower() == "meta"):
                continue
            if pathless and key.strip().lower() == "id" and item == self.document.get("id"):
                continue
            self._set(resolve(self.resource, key, scope=scope), item, kind)

    def _set(self, target: Target, value: Any, kind: str) -> None:
        attribute = target.attribute
        if target.ignored:
            return
        if attribute is None:
            self._apply_object(target.schema, value, kind, pathless=False)
        elif attribute is MEMBERS:
            self._member_operation(target, value, kind, has_value=True)
        elif attribute.multi_valued:
            self._set_multi(target, value, kind)
        elif attribute is MANAGER:
            self._set_manager(target, value)
        elif attribute.type == "complex":
            self._set_complex(target, value)
        else:
            coerced = coerce(attribute, value, attribute.name)
            if coerced is CLEAR:
                self._clear(target)
            else:
                self._write(target, coerced)

    def _set_manager(self, target: Target, value: Any) -> None:
        """Entra sends manager as a string id, `{"value": id}` or `[{"$ref": …, "value": id}]`, at `manager`,
        `manager.value` or the URN path; empty clears. Stored as `{"value": id}` only, so a stale
        `$ref`/`displayName` of the previous manager never survives a change."""
        value = unwrap_single(value, "manager")
        if isinstance(value, dict):
            keys = lowered_keys(value, "manager")
            unknown = set(keys) - {"value", "$ref", "displayname", "display"}
            if unknown:
                raise InvalidPath(
                    f"Unknown sub-attribute {sorted(unknown)[0]!r} of manager; manager has: value."
                )
            value = keys.get("value")
        manager_id = coerce(_MANAGER_VALUE, value, "manager")
        if manager_id is CLEAR or not manager_id.strip():
            self._drop(target.schema, MANAGER.name)
        else:
            self._write(target, {"value": manager_id})

    def _set_complex(self, target: Target, value: Any) -> None:
        """Single-valued complex (`name`): the value's sub-attributes replace or add, the others stay
        (RFC 7644 §3.5.2.1/§3.5.2.3); add and replace therefore behave alike."""
        attribute = target.attribute
        assert attribute is not None
        container = self._container(target.schema, create=False) or {}
        existing = container.get(attribute.name)
        current = dict(existing) if isinstance(existing, dict) else {}
        if target.sub_attribute is not None:
            updates = {target.sub_attribute.name: value}
        else:
            value = unwrap_single(value, attribute.name)
            if is_empty(value):
                self._clear(target)
                return
            if not isinstance(value, dict):
                raise InvalidValue(
                    f"{attribute.name} must be an object of sub-attributes, got {describe(value)}."
                )
            updates = lowered_keys(value, attribute.name)
        for sub, coerced in parts(attribute, updates):
            if coerced is CLEAR:
                current.pop(sub.name, None)
            else:
                current[sub.name] = coerced
        if current:
            self._write(target, current)
        else:
            self._drop(target.schema, attribute.name)

    def _coerce_part(self, attribute: Attribute, sub: Attribute, value: Any) -> Any:
        """A sub-attribute value of a multi-valued attribute; for roles a JSON-text value is decoded
        and an unusable value is ignored rather than refused (Entra re-sends it every cycle). None
        means "leave it alone"."""
        if attribute is not ROLES:
            return coerce(sub, value, f"{attribute.name}.{sub.name}")
        if is_empty(value):
            return CLEAR
        try:
            if sub.name != "value":
                return coerce(sub, value, f"roles.{sub.name}")
            role = role_element(unwrap_single(value, "roles"))
        except InvalidValue:
            return None
        return None if role is None else role["value"]

    def _set_multi(self, target: Target, value: Any, kind: str) -> None:
        attribute = target.attribute
        assert attribute is not None
        container = self._container(target.schema, create=False) or {}
        existing = container.get(attribute.name)
        elements = (
            [dict(e) if isinstance(e, dict) else e for e in existing] if isinstance(existing, list) else []
        )
        touched: list[int] = []

        if target.value_filter is None and target.sub_attribute is None:
            incoming = values_of(attribute, value)
            if kind == "replace":
                elements = []
            for element in incoming:
                for position, current in enumerate(elements):
                    if isinstance(current, dict) and identity(attribute, current) == identity(
                        attribute, element
                    ):
                        elements[position] = ordered(attribute, {**current, **element})
                        break
                else:
                    elements.append(element)
                    position = len(elements) - 1
                touched.append(position)
        else:
            selected = [
                position
                for position, element in enumerate(elements)
                if target.value_filter is None or matches(target.value_filter, element, attribute)
            ]
            sub = target.sub_attribute
            if sub is None:
                patch = None if is_empty(value) else value_of(attribute, unwrap_single(value, attribute.name))
                if patch is None:
                    if kind == "replace":
                        elements = [e for position, e in enumerate(elements) if position not in selected]
                    self._storeelements(target, elements, [])
                    return
            else:
                part = self._coerce_part(attribute, sub, value)
                if part is None:
                    return
                patch = {sub.name: part}
            if not selected:
                if sub is not None and patch[sub.name] is CLEAR:
                    return
                created = {} if target.value_filter is None else seed(target.value_filter, attribute)
                if created is None:
                    raise NoTarget(
                        f"No value of {attribute.name} matches the filter in path {show(target.path)}, and "
                        "the filter does not describe one value to create (use eq comparisons joined by and)."
                    )
                elements.append({**created})
                selected = [len(elements) - 1]
            for position in selected:
                element = elements[position]
                if not isinstance(element, dict):
                    continue
                for key, item in patch.items():
                    if item is CLEAR:
                        element.pop(key, None)
                    else:
                        element[key] = item
                elements[position] = ordered(attribute, element)
            touched = selected
        self._storeelements(target, elements, touched)

    def _storeelements(self, target: Target, elements: list[Any], touched: list[int]) -> None:
        """Write a multi-valued attribute back: at most one `primary` (a value just made primary wins,
        RFC 7644 §3.5.2), touched values left without content dropped, an empty list removed."""
        attribute = target.attribute
        assert attribute is not None
        if attribute.sub("primary") is not None:
            winners = sorted(
                {p for p in touched if isinstance(elements[p], dict) and elements[p].get("primary") is True}
            )
            if len(winners) > 1:
                raise InvalidValue(f"Only one value of {attribute.name} can have primary set to true.")
            if winners:
                for position, element in enumerate(elements):
                    if (
                        position != winners[0]
                        and isinstance(element, dict)
                        and element.get("primary") is True
                    ):
                        element["primary"] = False
        kept = [
            element
            for position, element in enumerate(elements)
            if position not in touched or has_content(attribute, element)
        ]
        if kept:
            self._write(target, kept)
        else:
            self._drop(target.schema, attribute.name)

    # -------------------------------------------------------------------------- remove

    def _remove(self, target: Target, value: Any, has_value: bool) -> None:
        attribute = target.attribute
        if target.ignored:
            return
        if attribute is None:
            self.document.pop(target.schema, None)
            return
        if attribute is MEMBERS:
            self._member_operation(target, value, "remove", has_value=has_value)
            return
        if not attribute.multi_valued:
            if target.sub_attribute is None:
                self._clear(target)
            elif attribute is MANAGER:
                self._drop(target.schema, MANAGER.name)
            else:
                self._set_complex(target, None)
            return
        container = self._container(target.schema, create=False) or {}
        existing = container.get(attribute.name)
        if not isinstance(existing, list):
            return
        elements = [dict(e) if isinstance(e, dict) else e for e in existing]
        if target.sub_attribute is not None:
            touched = []
            for position, element in enumerate(elements):
                if isinstance(element, dict) and (
                    target.value_filter is None or matches(target.value_filter, element, attribute)
                ):
                    element.pop(target.sub_attribute.name, None)
                    touched.append(position)
            self._storeelements(target, elements, touched)
            return
        if target.value_filter is not None:
            remaining = [e for e in elements if not matches(target.value_filter, e, attribute)]
        elif has_value and not is_empty(value):
            specs = values_of(attribute, value)
            remaining = [e for e in elements if not any(matches_spec(e, spec) for spec in specs)]
        else:
            remaining = []
        self._storeelements(target, remaining, [])

    # -------------------------------------------------------------------------- members

    def _member_operation(self, target: Target, value: Any, kind: str, *, has_value: bool) -> None:
        """Entra without the flag removes with `path: members` plus a value list, which must remove
        only those members, never all of them (an RFC-literal "remove all" loses data); with the flag
        it uses `members[value eq "…"]`.
        An explicitly empty list removes nobody: only a valueless remove clears the group."""
        if target.sub_attribute is not None or target.ignored:
            raise InvalidPath(f"Path {show(target.path)}: patch members through the path 'members'.")
        if target.value_filter is not None:
            if kind != "remove":
                raise InvalidPath(
                    f"Path {show(target.path)}: a members filter only works with remove; "
                    "to add members use path 'members' with a value list."
                )
            self.member_operations.append(
                MemberOperation("remove", ids_from_filter(target.value_filter, target.path))
            )
            return
        if kind == "remove":
            if not has_value or value is None:
                self.member_operations.append(MemberOperation("remove", []))
                return
            ids = member_ids(value)
            if ids:
                self.member_operations.append(MemberOperation("remove", ids))
            return
        ids = member_ids(value)
        if kind == "replace":
            self.member_operations.append(MemberOperation("replace", ids))
        elif ids:
            self.member_operations.append(MemberOperation("add", ids))


def _run(resource: Resource, document: dict[str, Any], operations: list[dict[str, Any]]) -> _Patcher:
    patcher = _Patcher(resource, document)
    patcher.run(operations)
    return patcher


def apply_user_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The patched User as a new document; `document` is left untouched. Raises a SCIMError naming
    the failing operation, in which case nothing was applied."""
    return _run(USER, document, operations).document


def apply_group_patch(
    document: dict[str, Any], operations: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[MemberOperation]]:
    """The patched Group (displayName, externalId) and, separately and in request order, the member
    operations the view applies without ever loading the member list (it may be huge)."""
    patcher = _run(GROUP, document, operations)
    return patcher.document, patcher.member_operations
