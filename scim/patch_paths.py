"""PATCH paths (RFC 7644 §3.5.2) resolved against the attribute table, and value filters evaluated
in memory against one JSON element.

The path text is parsed by scim.filter_grammar, the same parser `?filter=` uses, so
`emails[type eq "work"].value` means the same thing in a PATCH as in a filter; here the syntax tree
is bound to the table (unknown names refused, the mutability checked) and evaluated against the
elements of a document instead of being compiled to SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.attributes import Attribute, Resource
from scim.errors import InvalidFilter, InvalidPath, Mutability
from scim.filter_grammar import And, Compare, Literal, Node, Not, Or, PatchPath, ValuePath, parse_path


def show(text: str, *, quote: bool = True) -> str:
    """Client text echoed in an error detail, bounded: the detail is shown to admins, not a mirror."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return repr(shown) if quote else shown


def fold(value: Any, case_exact: bool) -> Any:
    return value.casefold() if isinstance(value, str) and not case_exact else value


def is_ignored(attribute: Attribute, name: str) -> bool:
    """Sub-attributes accepted and dropped when written: a `$ref` (the server builds its own) and
    read-only parts such as manager.displayName, which clients echo back from a GET."""
    sub = attribute.sub(name)
    return name.lower() == "$ref" or (sub is not None and sub.read_only)


def writable_sub(attribute: Attribute, name: str) -> Attribute | None:
    sub = attribute.sub(name)
    return None if sub is None or is_ignored(attribute, name) else sub


def writable_names(attribute: Attribute) -> str:
    return ", ".join(s.name for s in attribute.sub_attributes if not is_ignored(attribute, s.name))


@dataclass(frozen=True)
class Target:
    """A path resolved against a resource type. `attribute is None`: the whole `schema` object.
    `ignored`: a sub-attribute accepted and dropped (manager.displayName, any `$ref`)."""

    path: str
    schema: str
    attribute: Attribute | None
    value_filter: Node | None = None
    sub_attribute: Attribute | None = None
    ignored: bool = False


def _parse(path: str) -> PatchPath:
    try:
        return parse_path(path)
    except InvalidFilter as exc:
        raise InvalidPath(f"Cannot parse path {show(path)}: {exc.detail}") from None


def resolve(resource: Resource, path: str, *, scope: str | None = None) -> Target:
    """Unqualified names are looked up in `scope` when given (keys inside an extension object),
    otherwise in the core schema and then the extensions: Entra writes `manager` as often as the
    URN form."""
    parsed = _parse(path)
    where = parsed.path
    if where.urn is not None and where.urn not in resource.schemas:
        raise InvalidPath(
            f"Unknown schema URN {where.urn!r} in path {show(path)}; a {resource.name}'s attributes "
            f"belong to {' or '.join(resource.schemas)}."
        )
    if where.attr is None:
        assert where.urn is not None
        if where.urn == resource.core_schema:
            raise InvalidPath(
                f"Path {show(path)} names the whole {resource.name}; name an attribute instead."
            )
        return Target(path, where.urn, None)
    found = resource.find(where.attr, where.urn or scope)
    if found is None:
        names = ", ".join(a.name for a in resource.attributes() if not a.read_only)
        raise InvalidPath(
            f"Unknown attribute {show(where.attr)} in path {show(path)}; a {resource.name} supports: {names}."
        )
    schema, attribute = found
    if attribute.read_only:
        raise Mutability(f"{where.attr} is read-only and cannot be modified (path {show(path)}).")
    if attribute.write_only and (parsed.condition is not None or where.sub or parsed.sub):
        raise InvalidPath(
            f"{attribute.name} is write-only: its path is exactly `{attribute.name}`, "
            "without a filter or part."
        )
    value_filter = None
    if parsed.condition is not None:
        if where.sub is not None:
            raise InvalidPath(
                f"Path {show(path)}: the filter goes before the sub-attribute, "
                f"as in {attribute.name}[...].{where.sub}."
            )
        if not attribute.multi_valued:
            raise InvalidPath(f"Path {show(path)} filters {attribute.name}, which is not multi-valued.")
        _check_filter(parsed.condition, attribute, path)
        value_filter = parsed.condition
    sub_name = where.sub or parsed.sub
    if sub_name is None:
        return Target(path, schema, attribute, value_filter)
    if attribute.type != "complex":
        raise InvalidPath(f"Path {show(path)}: {attribute.name} has no sub-attributes.")
    if is_ignored(attribute, sub_name):
        return Target(path, schema, attribute, value_filter, ignored=True)
    sub = attribute.sub(sub_name)
    if sub is None:
        raise InvalidPath(
            f"Unknown sub-attribute {show(sub_name)} in path {show(path)}; "
            f"{attribute.name} has: {writable_names(attribute)}."
        )
    return Target(path, schema, attribute, value_filter, sub)


def _check_filter(node: Node, attribute: Attribute, path: str) -> None:
    """Every name in a value filter is a sub-attribute of the filtered attribute (any of them,
    read-only ones included: a filter only reads)."""
    if isinstance(node, Compare):
        name = node.path
        if (
            name.urn is not None
            or name.sub is not None
            or name.attr is None
            or attribute.sub(name.attr) is None
        ):
            raise InvalidPath(
                f"Unknown sub-attribute {show(name.text)} in the filter of path {show(path)}; "
                f"{attribute.name} has: {', '.join(s.name for s in attribute.sub_attributes)}."
            )
    elif isinstance(node, Not):
        _check_filter(node.part, attribute, path)
    elif isinstance(node, And | Or):
        for part in node.parts:
            _check_filter(part, attribute, path)
    else:
        raise InvalidPath(f"Value filters cannot be nested (path {show(path)}).")


def literal_value(sub: Attribute, literal: Literal | None) -> Any:
    """A filter value as the JSON value it is compared with: `primary eq "True"` compares as a
    boolean (Entra's role mappings write exactly that), and an unquoted word or number compared
    with a text sub-attribute is that text, as in `?filter=`."""
    if literal is None or literal.kind == "null":
        return None
    if sub.type == "boolean":
        if literal.kind in ("boolean", "string") and literal.text.strip().lower() in ("true", "false"):
            return literal.text.strip().lower() == "true"
        return literal.text
    return literal.text


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
        equal = same_kind and fold(actual, case_exact) == fold(expected, case_exact)
        return equal if operator == "eq" else not equal
    if not same_kind or isinstance(actual, bool) or actual is None:
        return False
    left, right = fold(actual, case_exact), fold(expected, case_exact)
    if operator == "co":
        return isinstance(left, str) and right in left
    if operator == "sw":
        return isinstance(left, str) and left.startswith(right)
    if operator == "ew":
        return isinstance(left, str) and left.endswith(right)
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[operator]


def _sub_of(attribute: Attribute, node: Compare) -> Attribute:
    assert node.path.attr is not None
    sub = attribute.sub(node.path.attr)
    assert sub is not None
    return sub


def matches(node: Node, element: Any, attribute: Attribute) -> bool:
    """Whether one value of a multi-valued attribute, in canonical form, satisfies a value filter
    (RFC 7644 §3.4.2.2)."""
    if not isinstance(element, dict):
        return False
    if isinstance(node, Compare):
        sub = _sub_of(attribute, node)
        return _compare(node.op, element.get(sub.name), literal_value(sub, node.value), sub.case_exact)
    if isinstance(node, Not):
        return not matches(node.part, element, attribute)
    if isinstance(node, And):
        return all(matches(part, element, attribute) for part in node.parts)
    if isinstance(node, Or):
        return any(matches(part, element, attribute) for part in node.parts)
    assert not isinstance(node, ValuePath)
    return False


def seed(node: Node, attribute: Attribute) -> dict[str, Any] | None:
    """The element a filter describes, when it is `eq` comparisons joined by `and`: what Entra expects
    to be created when `emails[type eq "work"].value` finds no work email. Anything looser names no
    one element."""
    if isinstance(node, Compare):
        sub = _sub_of(attribute, node)
        value = literal_value(sub, node.value)
        if node.op != "eq":
            return None
        if sub.type == "boolean" and isinstance(value, bool):
            return {sub.name: value}
        if sub.type != "boolean" and isinstance(value, str) and value:
            return {sub.name: value}
        return None
    if isinstance(node, And):
        found: dict[str, Any] = {}
        for part in node.parts:
            piece = seed(part, attribute)
            if piece is None or any(key in found and found[key] != value for key, value in piece.items()):
                return None
            found.update(piece)
        return found
    return None


def ids_from_filter(node: Node, path: str) -> list[str]:
    """Group members by filter: only `value eq "id"` (optionally or-ed) can be answered without
    loading the member list, which may hold 50,000 users."""
    if isinstance(node, Compare) and node.path.attr is not None and node.path.attr.lower() == "value":
        value = node.value
        if (
            node.op == "eq"
            and value is not None
            and value.kind in ("string", "number")
            and value.text.strip()
        ):
            return [value.text]
    elif isinstance(node, Or):
        ids: list[str] = []
        for part in node.parts:
            ids.extend(i for i in ids_from_filter(part, path) if i not in ids)
        return ids
    raise InvalidFilter(
        f"Unsupported member filter in path {show(path)}: "
        'use members[value eq "<id>"] (optionally joined with or).'
    )
