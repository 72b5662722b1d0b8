"""SCIM PATCH engine (RFC 7644 §3.5.2): PatchOp operations applied to a canonical RFC 7643 document.

Pure functions over plain JSON dicts, no database: the view builds the resource's canonical JSON, calls
`apply_user_patch` / `apply_group_patch`, and turns the returned document back into service calls.

Entra ID speaks two PATCH dialects (entra-scim.md §3, with and without `aadOptscim062020`) and the
tenant, not us, picks one, so both are accepted at once (R69):
- `op` in any case (R13, R70); booleans as JSON or as "True"/"false" strings, emitted as JSON (R43, R71);
- single values as scalars, objects or `[{"value": …}]` (R74); `manager` in every shape (R54);
- path-less add/replace whose value keys are dotted or URN-qualified (R72);
- value-filter paths that create the missing element (R50); roles as stringified JSON (R55);
- member removal by `value` list or by `members[value eq "…"]` filter (R58, R73).

Group `members` are never applied to the document (a group may have 50,000 members and the view never
loads them, R61): they come back as `MemberOperation`s over just the ids named.

Every bad input raises a `scim.errors.SCIMError` subclass, never anything else (C72: no 5xx).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    SCIMError,
)
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

MAX_PATH_LENGTH = 2048
MAX_FILTER_DEPTH = 32
"""Bounds on attacker-controlled path text: the filter parser is recursive, so nesting is capped
well below Python's recursion limit rather than trusted."""

OPERATION_KINDS = ("add", "replace", "remove")


# ------------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class Attribute:
    """One RFC 7643 attribute as far as PATCH needs it. `required` attributes cannot be removed or
    cleared; `ignored` names sub-attributes that are accepted and dropped (read-only or derived)."""

    name: str
    type: Literal["string", "boolean", "complex"] = "string"
    multi_valued: bool = False
    sub_attributes: tuple[Attribute, ...] = ()
    required: bool = False
    case_exact: bool = False
    ignored: frozenset[str] = frozenset()
    write_only: bool = False

    def sub(self, name: str) -> Attribute | None:
        return _find(self.sub_attributes, name)


def _find(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    lowered = name.lower()
    for attribute in attributes:
        if attribute.name.lower() == lowered:
            return attribute
    return None


def _strings(*names: str) -> tuple[Attribute, ...]:
    return tuple(Attribute(name) for name in names)


_PRIMARY = Attribute("primary", "boolean")
_VALUE_PARTS = (Attribute("value"), Attribute("type"), _PRIMARY, Attribute("display"))

NAME = Attribute(
    "name",
    "complex",
    sub_attributes=_strings(
        "formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"
    ),
)
EMAILS = Attribute("emails", "complex", multi_valued=True, sub_attributes=_VALUE_PARTS)
PHONE_NUMBERS = Attribute("phoneNumbers", "complex", multi_valued=True, sub_attributes=_VALUE_PARTS)
IMS = Attribute("ims", "complex", multi_valued=True, sub_attributes=_VALUE_PARTS)
PHOTOS = Attribute("photos", "complex", multi_valued=True, sub_attributes=_VALUE_PARTS)
ENTITLEMENTS = Attribute("entitlements", "complex", multi_valued=True, sub_attributes=_VALUE_PARTS)
X509_CERTIFICATES = Attribute(
    "x509Certificates",
    "complex",
    multi_valued=True,
    sub_attributes=(Attribute("value", case_exact=True), *_VALUE_PARTS[1:]),
)
ADDRESSES = Attribute(
    "addresses",
    "complex",
    multi_valued=True,
    sub_attributes=(
        *_strings("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"),
        _PRIMARY,
    ),
)
ROLES = Attribute(
    "roles", "complex", multi_valued=True, sub_attributes=(*_strings("value", "display", "type"), _PRIMARY)
)
MANAGER = Attribute(
    "manager",
    "complex",
    sub_attributes=(Attribute("value", case_exact=True),),
    ignored=frozenset({"displayname"}),
)
MEMBERS = Attribute(
    "members",
    "complex",
    multi_valued=True,
    sub_attributes=(Attribute("value", case_exact=True), Attribute("display"), Attribute("type")),
)

PASSWORD = Attribute("password", write_only=True)
"""Write-only (RFC 7643 §4.1.1, returned "never"): no error detail ever quotes what was sent for it,
since details are shown to clients and kept in the provisioning log."""
WRITE_ONLY_PATH = re.compile(
    r"^\s*(?:urn:ietf:params:scim:schemas:core:2\.0:user:)?password\b", re.IGNORECASE
)

_CONTENT_FREE_PARTS = frozenset({"type", "primary", "display"})
"""Sub-attributes that describe an element rather than hold its data: an element left with only
these (an email without an address) is dropped instead of being written back half-empty."""


@dataclass(frozen=True)
class Resource:
    """A resource type's attributes by schema URN (core first), plus the names PATCH must refuse:
    `read_only` → mutability (RFC 7644 §3.5.2), `unsupported` → RFC attributes this service doesn't keep."""

    label: str
    core_schema: str
    schemas: dict[str, tuple[Attribute, ...]]
    read_only: frozenset[str]
    unsupported: frozenset[str] = frozenset()

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(schema for schema in self.schemas if schema != self.core_schema)

    def attribute_names(self) -> str:
        return ", ".join(attribute.name for attributes in self.schemas.values() for attribute in attributes)


USER = Resource(
    label="User",
    core_schema=USER_SCHEMA,
    schemas={
        USER_SCHEMA: (
            Attribute("externalId", case_exact=True),
            Attribute("userName", required=True),
            NAME,
            *_strings(
                "displayName",
                "nickName",
                "profileUrl",
                "title",
                "userType",
                "preferredLanguage",
                "locale",
                "timezone",
            ),
            Attribute("active", "boolean", required=True),
            PASSWORD,
            EMAILS,
            PHONE_NUMBERS,
            IMS,
            PHOTOS,
            ENTITLEMENTS,
            X509_CERTIFICATES,
            ADDRESSES,
            ROLES,
        ),
        ENTERPRISE_SCHEMA: (
            *_strings("employeeNumber", "costCenter", "organization", "division", "department"),
            MANAGER,
        ),
    },
    read_only=frozenset({"id", "meta", "schemas", "groups"}),
)

GROUP = Resource(
    label="Group",
    core_schema=GROUP_SCHEMA,
    schemas={
        GROUP_SCHEMA: (
            Attribute("displayName", required=True),
            Attribute("externalId", case_exact=True),
            MEMBERS,
        )
    },
    read_only=frozenset({"id", "meta", "schemas"}),
)

_KNOWN_URNS = (ENTERPRISE_SCHEMA, USER_SCHEMA, GROUP_SCHEMA)


# ------------------------------------------------------------------------------------------ filters


@dataclass(frozen=True)
class Comparison:
    attribute: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class AllOf:
    operands: tuple[FilterNode, ...]


@dataclass(frozen=True)
class AnyOf:
    operands: tuple[FilterNode, ...]


@dataclass(frozen=True)
class Negation:
    operand: FilterNode


FilterNode = Comparison | AllOf | AnyOf | Negation

_COMPARISON_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_NAME_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]*")
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_TOKEN_RE = re.compile(r'\s*(?:(?P<paren>[()])|(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[^\s()"]+))')


class _FilterParser:
    """Recursive descent over RFC 7644 §3.4.2.2 valFilter: `not` binds tighter than `and`, which
    binds tighter than `or`; `and`/`or` chains are collected flat, so evaluation depth stays small."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _TOKEN_RE.match(text, position)
            if match is None:
                if text[position:].strip():
                    raise self._error(f"cannot read {_show(text[position:])}")
                break
            position = match.end()
            kind = match.lastgroup
            if kind is not None:
                self.tokens.append((kind, match.group(kind)))
        self.position = 0

    def _error(self, problem: str) -> InvalidPath:
        return InvalidPath(f"Invalid value filter in path {_show(self.path)}: {problem}.")

    def _peek_word(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "word":
            return self.tokens[self.position][1].lower()
        return None

    def _next(self, expected: str) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise self._error(f"expected {expected}, found the end of the filter")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _expect_paren(self, paren: str) -> None:
        kind, text = self._next(f"'{paren}'")
        if kind != "paren" or text != paren:
            raise self._error(f"expected '{paren}', found {_show(text)}")

    def parse(self) -> FilterNode:
        if not self.tokens:
            raise self._error("the filter is empty")
        node = self._any_of(0)
        if self.position != len(self.tokens):
            raise self._error(f"unexpected {self.tokens[self.position][1]!r}")
        return node

    def _any_of(self, depth: int) -> FilterNode:
        operands = [self._all_of(depth)]
        while self._peek_word() == "or":
            self.position += 1
            operands.append(self._all_of(depth))
        return operands[0] if len(operands) == 1 else AnyOf(tuple(operands))

    def _all_of(self, depth: int) -> FilterNode:
        operands = [self._unary(depth)]
        while self._peek_word() == "and":
            self.position += 1
            operands.append(self._unary(depth))
        return operands[0] if len(operands) == 1 else AllOf(tuple(operands))

    def _unary(self, depth: int) -> FilterNode:
        if depth > MAX_FILTER_DEPTH:
            raise self._error("the filter is nested too deeply")
        kind, text = self._next("a comparison")
        if kind == "paren" and text == "(":
            node = self._any_of(depth + 1)
            self._expect_paren(")")
            return node
        if kind == "word" and text.lower() == "not":
            self._expect_paren("(")
            node = self._any_of(depth + 1)
            self._expect_paren(")")
            return Negation(node)
        if kind != "word" or not _NAME_RE.fullmatch(text):
            raise self._error(f"expected an attribute name, found {_show(text)}")
        _, operator = self._next("an operator")
        operator = operator.lower()
        if operator == "pr":
            return Comparison(text, "pr")
        if operator not in _COMPARISON_OPERATORS:
            raise self._error(
                f"unknown operator {_show(operator)} (use eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
            )
        return Comparison(text, operator, self._literal())

    def _literal(self) -> Any:
        kind, text = self._next("a value")
        if kind == "string":
            try:
                return json.loads(text)
            except ValueError:
                raise self._error(f"bad string {text}") from None
        if kind != "word":
            raise self._error(f"expected a value, found {_show(text)}")
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        if _NUMBER_RE.fullmatch(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        return text


def _bind_filter(node: FilterNode, attribute: Attribute, path: str) -> FilterNode:
    """Canonical sub-attribute names, and comparison values coerced to the sub-attribute's type
    (`primary eq "True"` compares as a boolean: Entra's role mappings say exactly that)."""
    if isinstance(node, Comparison):
        sub = attribute.sub(node.attribute)
        if sub is None:
            raise InvalidPath(
                f"Unknown sub-attribute {_show(node.attribute)} in the filter of path {_show(path)}; "
                f"{attribute.name} has: {', '.join(s.name for s in attribute.sub_attributes)}."
            )
        value = node.value
        if sub.type == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        elif sub.type == "string" and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        return Comparison(sub.name, node.operator, value)
    if isinstance(node, Negation):
        return Negation(_bind_filter(node.operand, attribute, path))
    bound = tuple(_bind_filter(operand, attribute, path) for operand in node.operands)
    return AllOf(bound) if isinstance(node, AllOf) else AnyOf(bound)


def _fold(value: Any, case_exact: bool) -> Any:
    return value.casefold() if isinstance(value, str) and not case_exact else value


def _compare(operator: str, actual: Any, expected: Any, case_exact: bool) -> bool:
    if operator == "pr":
        return actual not in (None, "", [], {})
    same_kind = (
        (isinstance(actual, bool) and isinstance(expected, bool))
        or (isinstance(actual, str) and isinstance(expected, str))
        or (
            isinstance(actual, int | float)
            and isinstance(expected, int | float)
            and not isinstance(actual, bool)
            and not isinstance(expected, bool)
        )
    )
    if expected is None:
        same_kind = actual is None
    if operator in ("eq", "ne"):
        equal = same_kind and _fold(actual, case_exact) == _fold(expected, case_exact)
        return equal if operator == "eq" else not equal
    if not same_kind or isinstance(actual, bool) or actual is None:
        return False
    left, right = _fold(actual, case_exact), _fold(expected, case_exact)
    if operator in ("co", "sw", "ew"):
        if not isinstance(left, str):
            return False
        return (
            right in left
            if operator == "co"
            else left.startswith(right)
            if operator == "sw"
            else left.endswith(right)
        )
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[operator]


def _matches(node: FilterNode, element: Any, attribute: Attribute) -> bool:
    if not isinstance(element, dict):
        return False
    if isinstance(node, Comparison):
        sub = attribute.sub(node.attribute)
        case_exact = sub.case_exact if sub is not None else False
        return _compare(node.operator, element.get(node.attribute), node.value, case_exact)
    if isinstance(node, Negation):
        return not _matches(node.operand, element, attribute)
    if isinstance(node, AllOf):
        return all(_matches(operand, element, attribute) for operand in node.operands)
    return any(_matches(operand, element, attribute) for operand in node.operands)


def _seed(node: FilterNode, attribute: Attribute) -> dict[str, Any] | None:
    """The element a filter describes, when it is `eq` comparisons joined by `and`: what R50 creates
    when `emails[type eq "work"].value` finds no work email. Anything looser names no one element."""
    if isinstance(node, Comparison):
        sub = attribute.sub(node.attribute)
        if node.operator != "eq" or sub is None:
            return None
        if sub.type == "boolean" and isinstance(node.value, bool):
            return {sub.name: node.value}
        if sub.type == "string" and isinstance(node.value, str) and node.value:
            return {sub.name: node.value}
        return None
    if isinstance(node, AllOf):
        seed: dict[str, Any] = {}
        for operand in node.operands:
            part = _seed(operand, attribute)
            if part is None or any(key in seed and seed[key] != value for key, value in part.items()):
                return None
            seed.update(part)
        return seed
    return None


# ------------------------------------------------------------------------------------------ paths


@dataclass(frozen=True)
class ParsedPath:
    """RFC 7644 §3.5.2 `PATH = attrPath / valuePath [subAttr]`, with an optional schema URN prefix.
    `attribute is None` means the path is a bare extension URN (the whole extension object)."""

    schema: str | None
    attribute: str | None
    value_filter: FilterNode | None = None
    sub_attribute: str | None = None


def _closing_bracket(text: str, start: int, path: str) -> int:
    in_string = False
    position = start + 1
    while position < len(text):
        char = text[position]
        if in_string:
            if char == "\\":
                position += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "[":
            raise InvalidPath(f"Nested '[' in path {_show(path)}: a value filter cannot contain another.")
        elif char == "]":
            return position
        position += 1
    raise InvalidPath(f"Unterminated '[' in path {_show(path)}.")


def parse_path(path: str) -> ParsedPath:
    """Parse a PATCH path (or a key of a path-less value object, which Entra writes the same way)."""
    text = path.strip()
    if not text:
        raise InvalidPath("The path is empty.")
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidPath(f"The path is longer than {MAX_PATH_LENGTH} characters.")
    schema = None
    rest = text
    if text[:4].lower() == "urn:":
        lowered = text.lower()
        for urn in _KNOWN_URNS:
            if lowered == urn.lower():
                return ParsedPath(schema=urn, attribute=None)
            if lowered.startswith(urn.lower() + ":"):
                schema, rest = urn, text[len(urn) + 1 :]
                break
        else:
            raise InvalidPath(
                f"Unknown schema URN in path {_show(path)}; known schemas: {', '.join(_KNOWN_URNS)}."
            )
    match = _NAME_RE.match(rest)
    if match is None:
        raise InvalidPath(f"Cannot parse path {_show(path)}: expected an attribute name.")
    attribute = match.group()
    position = match.end()
    value_filter = None
    sub_attribute = None
    if position < len(rest) and rest[position] == "[":
        end = _closing_bracket(rest, position, path)
        value_filter = _FilterParser(rest[position + 1 : end], path).parse()
        position = end + 1
    if position < len(rest) and rest[position] == ".":
        sub_match = _NAME_RE.match(rest, position + 1)
        if sub_match is None:
            raise InvalidPath(f"Cannot parse path {_show(path)}: expected a sub-attribute name after '.'.")
        sub_attribute = sub_match.group()
        position = sub_match.end()
    if position != len(rest):
        raise InvalidPath(f"Cannot parse path {_show(path)}: unexpected {_show(rest[position:])}.")
    return ParsedPath(schema, attribute, value_filter, sub_attribute)


@dataclass(frozen=True)
class Target:
    """A path resolved against a resource type. `attribute is None`: the whole `schema` object.
    `ignored`: a sub-attribute accepted and dropped (manager.displayName, any `$ref`)."""

    path: str
    schema: str
    attribute: Attribute | None
    value_filter: FilterNode | None = None
    sub_attribute: Attribute | None = None
    ignored: bool = False


def resolve(resource: Resource, path: str, *, scope: str | None = None) -> Target:
    """Unqualified names are looked up in `scope` when given (keys inside an extension object),
    otherwise in the core schema and then the extensions: Entra writes `manager` as often as the
    URN form (R54)."""
    if WRITE_ONLY_PATH.match(path) and WRITE_ONLY_PATH.sub("", path).strip():
        raise InvalidPath("password is write-only: its path is exactly `password`, without a filter or part.")
    parsed = parse_path(path)
    if parsed.schema is not None and parsed.schema not in resource.schemas:
        raise InvalidPath(
            f"Path {_show(path)} names schema {parsed.schema}, which a {resource.label} doesn't have."
        )
    if parsed.attribute is None:
        assert parsed.schema is not None
        if parsed.schema == resource.core_schema:
            raise InvalidPath(
                f"Path {_show(path)} names the whole {resource.label}; name an attribute instead."
            )
        return Target(path, parsed.schema, None)
    schema = parsed.schema or scope
    if schema in (None, resource.core_schema):
        lowered = parsed.attribute.lower()
        if lowered in resource.read_only:
            raise Mutability(f"{parsed.attribute} is read-only and cannot be modified (path {_show(path)}).")
        if lowered in resource.unsupported:
            raise InvalidPath(f"{parsed.attribute} is not supported by this service (path {_show(path)}).")
    candidates = [schema] if schema is not None else list(resource.schemas)
    attribute = None
    for candidate in candidates:
        attribute = _find(resource.schemas[candidate], parsed.attribute)
        if attribute is not None:
            schema = candidate
            break
    if attribute is None or schema is None:
        raise InvalidPath(
            f"Unknown attribute {_show(parsed.attribute)} in path {_show(path)}; "
            f"a {resource.label} supports: {resource.attribute_names()}."
        )
    value_filter = None
    if parsed.value_filter is not None:
        if not attribute.multi_valued:
            raise InvalidPath(f"Path {_show(path)} filters {attribute.name}, which is not multi-valued.")
        value_filter = _bind_filter(parsed.value_filter, attribute, path)
    if parsed.sub_attribute is None:
        return Target(path, schema, attribute, value_filter)
    if attribute.type != "complex":
        raise InvalidPath(f"Path {_show(path)}: {attribute.name} has no sub-attributes.")
    sub = attribute.sub(parsed.sub_attribute)
    if sub is None:
        if parsed.sub_attribute.lower() == "$ref" or parsed.sub_attribute.lower() in attribute.ignored:
            return Target(path, schema, attribute, value_filter, ignored=True)
        raise InvalidPath(
            f"Unknown sub-attribute {_show(parsed.sub_attribute)} in path {_show(path)}; "
            f"{attribute.name} has: {', '.join(s.name for s in attribute.sub_attributes)}."
        )
    return Target(path, schema, attribute, value_filter, sub)


# ------------------------------------------------------------------------------------------ values


class _Clear:
    """Marker for "no value": null, "", [] all clear an attribute (Logic App test 16, C50)."""

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR = _Clear()


def _show(text: str, *, quote: bool = True) -> str:
    """Client text echoed in an error detail, bounded: the detail is shown to admins, not a mirror."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return repr(shown) if quote else shown


def _describe(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _lowered_keys(value: dict[Any, Any], label: str) -> dict[str, Any]:
    lowered = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidValue(f"{label}: object keys must be strings.")
        lowered[key.lower()] = item
    return lowered


def _unwrap_single(value: Any, label: str) -> Any:
    """R74: a single-valued attribute may arrive as `[x]` (the old .NET shape); `[]` means "no value"."""
    if isinstance(value, list):
        if not value:
            return None
        if len(value) > 1:
            raise InvalidValue(f"{label} is single-valued, but {len(value)} values were sent.")
        return value[0]
    return value


def _coerce(attribute: Attribute, value: Any, label: str) -> Any:
    """A scalar for `attribute`, or CLEAR. Numbers become strings for string attributes (as the
    representation layer reads them, so PATCH and POST agree); "True"/"false" become booleans (R43, R71)."""
    value = _unwrap_single(value, label)
    def shown(sent: Any) -> str:
        return "(the value sent)" if attribute.write_only else _describe(sent)

    if isinstance(value, dict):
        keys = _lowered_keys(value, label)
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


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _ordered(attribute: Attribute, element: dict[str, Any]) -> dict[str, Any]:
    return {sub.name: element[sub.name] for sub in attribute.sub_attributes if sub.name in element}


def _decode_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _role_element(raw: Any) -> dict[str, Any] | None:
    """Roles never fail a PATCH (R55): without the flag Entra sends `{"value": "<JSON text>"}` holding
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
    return _ordered(ROLES, role) if "value" in role else None


def _element(attribute: Attribute, raw: Any) -> dict[str, Any] | None:
    """One value of a multi-valued complex attribute in canonical form, or None when it holds nothing.
    A bare scalar is that element's `value` (`"emails": "a@b"`)."""
    if attribute is ROLES:
        return _role_element(raw)
    label = attribute.name
    if isinstance(raw, str | int | float) and not isinstance(raw, bool) and attribute.sub("value"):
        raw = {"value": raw}
    if not isinstance(raw, dict):
        raise InvalidValue(f"Each value of {label} must be an object, got {_describe(raw)}.")
    element: dict[str, Any] = {}
    for key, item in _lowered_keys(raw, label).items():
        sub = attribute.sub(key)
        if sub is None:
            if key == "$ref" or key in attribute.ignored:
                continue
            raise InvalidPath(
                f"Unknown sub-attribute {_show(key)} in a value of {label}; "
                f"{label} has: {', '.join(s.name for s in attribute.sub_attributes)}."
            )
        coerced = _coerce(sub, item, f"{label}.{sub.name}")
        if coerced is not CLEAR:
            element[sub.name] = coerced
    return _ordered(attribute, element) if element else None


def _elements(attribute: Attribute, value: Any) -> list[dict[str, Any]]:
    if _is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    return [element for element in (_element(attribute, item) for item in items) if element is not None]


def _identity(attribute: Attribute, element: dict[str, Any]) -> Any:
    """Which existing value a re-sent value is: by `value` and `type` (caseExact=false) where the
    attribute has a `value`, otherwise by everything but `primary`. Entra re-sends unchanged PATCHes
    every cycle (R51, §8 P13), so an add of a value already present merges instead of duplicating."""
    value = attribute.sub("value")
    if value is not None and "value" in element:
        return ("value", _fold(element.get("value"), value.case_exact), _fold(element.get("type"), False))
    return tuple(sorted((key, _fold(item, False)) for key, item in element.items() if key != "primary"))


def _has_content(attribute: Attribute, element: Any) -> bool:
    if not isinstance(element, dict):
        return True
    if attribute.sub("value") is not None:
        return element.get("value") not in (None, "")
    return any(key not in _CONTENT_FREE_PARTS and item not in (None, "") for key, item in element.items())


def _matches_spec(element: Any, spec: dict[str, Any]) -> bool:
    if not isinstance(element, dict):
        return False
    return all(_fold(element.get(key), False) == _fold(item, False) for key, item in spec.items())


# ------------------------------------------------------------------------------------------ members


@dataclass(frozen=True)
class MemberOperation:
    """A membership change for the view to apply with the membership services, in order.
    `remove` with `ids == []` means remove every member (valueless `remove members`, RFC 7644
    §3.5.2.2); `replace` with `ids == []` means the group ends up empty."""

    kind: Literal["add", "remove", "replace"]
    ids: list[str]


def _member_ids(value: Any) -> list[str]:
    """Member ids as strings, first occurrence kept: `[{"$ref": null, "value": id}]` (`$ref`,
    `display`, `type` ignored, R73), bare strings, or a single object. Whether an id names a user of
    the tenant is the view's question (R62)."""
    if _is_empty(value):
        return []
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    seen: set[str] = set()
    for item in items:
        raw = item
        if isinstance(item, dict):
            keys = _lowered_keys(item, "members")
            if "value" not in keys:
                raise InvalidValue(
                    f"Each member needs a 'value' holding the member's id, got {_describe(item)}."
                )
            raw = keys["value"]
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise InvalidValue(f"A member's value must be an id string, got {_describe(raw)}.")
        member_id = str(raw)
        if not member_id.strip():
            raise InvalidValue("A member's value must be a non-empty id.")
        if member_id not in seen:
            seen.add(member_id)
            ids.append(member_id)
    return ids


def _ids_from_filter(node: FilterNode, path: str) -> list[str]:
    """Only `value eq "id"` (optionally or-ed) can be answered without loading the member list."""
    if isinstance(node, Comparison) and node.attribute == "value" and node.operator == "eq":
        if isinstance(node.value, str) and node.value.strip():
            return [node.value]
    elif isinstance(node, AnyOf):
        ids: list[str] = []
        for operand in node.operands:
            ids.extend(i for i in _ids_from_filter(operand, path) if i not in ids)
        return ids
    raise InvalidFilter(
        f"Unsupported member filter in path {_show(path)}: "
        'use members[value eq "<id>"] (optionally joined with or).'
    )


# ------------------------------------------------------------------------------------------ engine


@dataclass(frozen=True)
class Operation:
    kind: Literal["add", "replace", "remove"]
    path: str | None
    value: Any
    has_value: bool


def _operation(raw: Any, index: int) -> Operation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSyntax(f"{where} must be an object with op, path and value.")
    fields = _lowered_keys(raw, where)
    kind = fields.get("op")
    if not isinstance(kind, str) or kind.strip().lower() not in OPERATION_KINDS:
        raise InvalidSyntax(f"{where}.op must be add, replace or remove, got {_describe(kind)}.")
    kind = kind.strip().lower()
    path = fields.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidPath(f"{where}.path must be a string, got {_describe(path)}.")
    if path is not None:
        path = path.strip() or None
    has_value = "value" in fields
    if kind != "remove" and not has_value:
        raise InvalidValue(f"{where}: {kind} needs a value (RFC 7644 §3.5.2).")
    return Operation(kind, path, fields.get("value"), has_value)


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
    fields = _lowered_keys(body, "PATCH body")
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
    return [_operation_as_dict(_operation(raw, index)) for index, raw in enumerate(operations)]


class _Patcher:
    """Applies operations, in order, to a private deep copy; the caller only sees the copy once every
    operation has succeeded, which makes a PATCH atomic (R51)."""

    def __init__(self, resource: Resource, document: dict[str, Any]) -> None:
        self.resource = resource
        self.document = copy.deepcopy(document)
        self.member_operations: list[MemberOperation] = []
        self.extensions_before = {schema: bool(self.document.get(schema)) for schema in resource.extensions}

    def run(self, operations: Any) -> None:
        if not isinstance(operations, list):
            raise InvalidSyntax("Operations must be an array.")
        for index, raw in enumerate(operations):
            operation = _operation(raw, index)
            try:
                self.apply(operation)
            except SCIMError as exc:
                shown_path = _show(operation.path or "(no path)", quote=False)
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
        key (R72). Path-less `schemas`/`meta` describe the object and are ignored, and so is the
        `schemas` an extension object carries when it is serialised whole (scim2-models does); `id`
        may repeat the current id but not change it."""
        value = _unwrap_single(value, "value") if pathless else value
        if not isinstance(value, dict):
            if pathless:
                raise InvalidValue(f"A path-less {kind} needs an object value, got {_describe(value)}.")
            if _is_empty(value) and kind == "replace":
                self.document.pop(schema, None)
                return
            raise InvalidValue(f"The value for {schema} must be an object, got {_describe(value)}.")
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
            coerced = _coerce(attribute, value, attribute.name)
            if coerced is CLEAR:
                self._clear(target)
            else:
                self._write(target, coerced)

    def _set_manager(self, target: Target, value: Any) -> None:
        """R54: a string id, `{"value": id}` or `[{"$ref": …, "value": id}]`, at `manager`,
        `manager.value` or the URN path; empty clears. Stored as `{"value": id}` only, so a stale
        `$ref`/`displayName` of the previous manager never survives a change."""
        value = _unwrap_single(value, "manager")
        if isinstance(value, dict):
            keys = _lowered_keys(value, "manager")
            unknown = set(keys) - {"value", "$ref", "displayname", "display"}
            if unknown:
                raise InvalidPath(
                    f"Unknown sub-attribute {sorted(unknown)[0]!r} of manager; manager has: value."
                )
            value = keys.get("value")
        manager_id = _coerce(MANAGER.sub_attributes[0], value, "manager")
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
            value = _unwrap_single(value, attribute.name)
            if _is_empty(value):
                self._clear(target)
                return
            if not isinstance(value, dict):
                raise InvalidValue(
                    f"{attribute.name} must be an object of sub-attributes, got {_describe(value)}."
                )
            updates = _lowered_keys(value, attribute.name)
        for key, item in updates.items():
            sub = attribute.sub(key)
            if sub is None:
                if key.lower() == "$ref" or key.lower() in attribute.ignored:
                    continue
                raise InvalidPath(
                    f"Unknown sub-attribute {_show(key)} of {attribute.name}; "
                    f"{attribute.name} has: {', '.join(s.name for s in attribute.sub_attributes)}."
                )
            coerced = _coerce(sub, item, f"{attribute.name}.{sub.name}")
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
        and an unusable value is ignored rather than refused (R55). None means "leave it alone"."""
        if attribute is not ROLES:
            return _coerce(sub, value, f"{attribute.name}.{sub.name}")
        if _is_empty(value):
            return CLEAR
        try:
            if sub.name != "value":
                return _coerce(sub, value, f"roles.{sub.name}")
            role = _role_element(_unwrap_single(value, "roles"))
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
            incoming = _elements(attribute, value)
            if kind == "replace":
                elements = []
            for element in incoming:
                for position, current in enumerate(elements):
                    if isinstance(current, dict) and _identity(attribute, current) == _identity(
                        attribute, element
                    ):
                        elements[position] = _ordered(attribute, {**current, **element})
                        break
                else:
                    elements.append(element)
                    position = len(elements) - 1
                touched.append(position)
        else:
            selected = [
                position
                for position, element in enumerate(elements)
                if target.value_filter is None or _matches(target.value_filter, element, attribute)
            ]
            sub = target.sub_attribute
            if sub is None:
                patch = (
                    None if _is_empty(value) else _element(attribute, _unwrap_single(value, attribute.name))
                )
                if patch is None:
                    if kind == "replace":
                        elements = [e for position, e in enumerate(elements) if position not in selected]
                    self._store_elements(target, elements, [])
                    return
            else:
                part = self._coerce_part(attribute, sub, value)
                if part is None:
                    return
                patch = {sub.name: part}
            if not selected:
                if sub is not None and patch[sub.name] is CLEAR:
                    return
                seed = {} if target.value_filter is None else _seed(target.value_filter, attribute)
                if seed is None:
                    raise NoTarget(
                        f"No value of {attribute.name} matches the filter in path {_show(target.path)}, and "
                        "the filter does not describe one value to create (use eq comparisons joined by and)."
                    )
                elements.append({**seed})
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
                elements[position] = _ordered(attribute, element)
            touched = selected
        self._store_elements(target, elements, touched)

    def _store_elements(self, target: Target, elements: list[Any], touched: list[int]) -> None:
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
            if position not in touched or _has_content(attribute, element)
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
                    target.value_filter is None or _matches(target.value_filter, element, attribute)
                ):
                    element.pop(target.sub_attribute.name, None)
                    touched.append(position)
            self._store_elements(target, elements, touched)
            return
        if target.value_filter is not None:
            remaining = [e for e in elements if not _matches(target.value_filter, e, attribute)]
        elif has_value and not _is_empty(value):
            specs = _elements(attribute, value)
            remaining = [e for e in elements if not any(_matches_spec(e, spec) for spec in specs)]
        else:
            remaining = []
        self._store_elements(target, remaining, [])

    # -------------------------------------------------------------------------- members

    def _member_operation(self, target: Target, value: Any, kind: str, *, has_value: bool) -> None:
        """Entra without the flag removes with `path: members` plus a value list, which must remove
        only those members (R58), never all of them; with the flag it uses `members[value eq "…"]`.
        An explicitly empty list removes nobody: only a valueless remove clears the group."""
        if target.sub_attribute is not None or target.ignored:
            raise InvalidPath(f"Path {_show(target.path)}: patch members through the path 'members'.")
        if target.value_filter is not None:
            if kind != "remove":
                raise InvalidPath(
                    f"Path {_show(target.path)}: a members filter only works with remove; "
                    "to add members use path 'members' with a value list."
                )
            self.member_operations.append(
                MemberOperation("remove", _ids_from_filter(target.value_filter, target.path))
            )
            return
        if kind == "remove":
            if not has_value or value is None:
                self.member_operations.append(MemberOperation("remove", []))
                return
            ids = _member_ids(value)
            if ids:
                self.member_operations.append(MemberOperation("remove", ids))
            return
        ids = _member_ids(value)
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
    operations the view applies without ever loading the member list (R61)."""
    patcher = _run(GROUP, document, operations)
    return patcher.document, patcher.member_operations
