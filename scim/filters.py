"""SCIM filters (RFC 7644 §3.4.2.2) compiled to Django `Q` objects over `User` and `Group`.

The grammar (tokenizer, parser, syntax tree) is scim.filter_grammar, shared with PATCH paths; it is
hand-written because it is small and must read the looser filters Entra sends (unquoted values,
`True`, `\\"` escapes) that the RFC's ABNF refuses. What each attribute is, and where it is stored,
comes from the table in scim.attributes: an attribute is filterable when it has a column (or rows)
and is ever returned, so /Schemas, PATCH and filters can never disagree about it.

Semantics, decided once here so every caller gets the same answer (a clause is never dropped, and
anything this module cannot honour raises `InvalidFilter`: Entra would otherwise match the wrong
object):

- Absent means "" for text columns (the directory stores no NULL text) and no rows for multi-valued
  attributes. `eq null` and `eq ""` match absent values; `pr` matches present ones (not "", or at
  least one row).
- `a ne v` is exactly `not (a eq v)`, so a user without a title matches `title ne "x"`, and
  `emails.value ne "x"` means "has no email x". Inside brackets a condition applies to one value, so
  `emails[value ne "x"]` means "has an email other than x" (RFC 7644's "any value" rule).
- `co`/`sw`/`ew` and the orderings `gt`/`ge`/`lt`/`le` never match an absent value. Strings order
  lexicographically in the database collation; `caseExact=false` attributes compare lower-cased
  through the registered `lower` lookup, which the per-tenant LOWER() indexes serve.
- `meta.created`/`meta.lastModified` take ISO 8601 values and compare at the precision written:
  `meta.lastModified eq "2024-05-01T10:00:00Z"` matches the whole second, so a value echoed from a
  response matches however many fractional digits the database holds.
- Booleans accept `true`/`false` in any case, quoted or not (Entra sends booleans as strings), and
  only with `eq`, `ne` and `pr`. Identifiers (`id`, `groups`, `members`) accept `eq`, `ne` and `pr`;
  a value that is not a UUID matches nothing.
- Multi-valued attributes compile to `EXISTS` subqueries correlated on the owner and its tenant, so a
  value filter must hold for one row and results never repeat.

Decoding `+` and `%22` is the caller's (Django's QueryDict does it); a literal `+` here is data.
SQLite's LOWER() folds ASCII only, so non-ASCII case-insensitivity holds on PostgreSQL alone, and
ordering comparisons follow each database's collation.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from operator import and_, or_

from django.apps import apps
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Left, Right, StrIndex
from django.db.models.lookups import Exact, GreaterThan

from scim.attribute_model import USER_SCHEMA
from scim.attributes import GROUP, USER, Attribute, Resource, Rows
from scim.errors import BadRequest, InvalidFilter
from scim.filter_grammar import (
    MAX_COMPARISONS,
    MAX_FILTER_LENGTH,
    MAX_NESTING,
    And,
    AttrPath,
    Compare,
    Literal,
    Node,
    Not,
    Or,
    ValuePath,
    parse_attr_path,
    parse_filter,
)

__all__ = [
    "MAX_COMPARISONS",
    "MAX_FILTER_LENGTH",
    "MAX_NESTING",
    "group_filter_q",
    "group_sort_field",
    "parse_filter",
    "user_filter_q",
    "user_sort_field",
]

STRING = "string"
BOOLEAN = "boolean"
DATETIME = "dateTime"
IDENTIFIER = "identifier"

_ORDERING_LOOKUPS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_PATTERN_LOOKUPS = {"co": "contains", "sw": "startswith", "ew": "endswith"}
_INSTANT_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2})?)?"
)


@dataclass(frozen=True)
class _Leaf:
    """One filterable value: `name` as written in messages (`emails.primary`), `field` an ORM path
    from the model holding it (the resource, or the row model of a multi-valued attribute)."""

    name: str
    kind: str
    field: str
    case_exact: bool = False


def _leaf(attribute: Attribute, parent: Attribute | None = None) -> _Leaf:
    assert attribute.column is not None
    if attribute.identifier:
        kind = IDENTIFIER
    elif attribute.type in (BOOLEAN, DATETIME):
        kind = attribute.type
    else:
        kind = STRING
    name = attribute.name if parent is None else f"{parent.name}.{attribute.name}"
    return _Leaf(name=name, kind=kind, field=attribute.column, case_exact=attribute.case_exact)


def _filterable_subs(attribute: Attribute) -> list[Attribute]:
    return [sub for sub in attribute.sub_attributes if sub.filterable]


def _match_all() -> Q:
    """Always true, and never an empty `Q()`: `~Q()` is also empty and would match every row."""
    return Q(pk__isnull=False)


def _match_none() -> Q:
    """Always false; Django turns `pk IN ()` into an empty result, and its negation into all rows."""
    return Q(pk__in=[])


def _presence(leaf: _Leaf) -> Q:
    """Text columns hold "" for absent (never NULL); other kinds are always present."""
    if leaf.kind == STRING:
        return ~Q(**{leaf.field: ""})
    return _match_all()


def _as_boolean(leaf: _Leaf, value: Literal) -> bool:
    if value.kind in ("boolean", "string") and value.text.lower() in ("true", "false"):
        return value.text.lower() == "true"
    raise InvalidFilter(f"{leaf.name} is a boolean; compare it with true or false, not {value.text!r}.")


def _as_interval(leaf: _Leaf, value: Literal) -> tuple[datetime, datetime]:
    """The instant written, widened to its precision: a date covers its day, a time without seconds
    its minute, and `…:05.12Z` the hundredth of a second it names."""
    match = _INSTANT_RE.fullmatch(value.text) if value.kind in ("string", "number") else None
    if match is None:
        raise InvalidFilter(
            f"{leaf.name} is a date-time; compare it with an ISO 8601 value such as "
            f'"2024-05-01T12:00:00Z", not {value.text!r}.'
        )
    parts = match.groupdict()
    try:
        start = datetime.fromisoformat(parts["date"]).replace(tzinfo=UTC)
        if parts["hour"] is None:
            return start, start + timedelta(days=1)
        zone = parts["zone"] or "Z"
        offset = UTC
        if zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        fraction = (parts["fraction"] or "")[:6]
        start = start.replace(
            hour=int(parts["hour"]),
            minute=int(parts["minute"]),
            second=int(parts["second"] or 0),
            microsecond=int(fraction.ljust(6, "0")) if fraction else 0,
            tzinfo=offset,
        )
    except ValueError:
        raise InvalidFilter(f"{value.text!r} is not a valid date-time for {leaf.name}.") from None
    if parts["second"] is None:
        step = timedelta(minutes=1)
    elif not fraction:
        step = timedelta(seconds=1)
    else:
        step = timedelta(microseconds=10 ** (6 - len(fraction)))
    return start.astimezone(UTC), (start + step).astimezone(UTC)


def _case_exact_pattern(field: str, op: str, text: str) -> Q:
    """co/sw/ew that respect case on every backend: SQLite's LIKE ignores ASCII case, so
    caseExact attributes use STRPOS/INSTR and LEFT/RIGHT comparisons instead."""
    column = F(field)
    if op == "co":
        return Q(GreaterThan(StrIndex(column, Value(text)), 0))
    part = Left(column, len(text)) if op == "sw" else Right(column, len(text))
    return Q(Exact(part, Value(text)))


def _leaf_q(leaf: _Leaf, op: str, value: Literal | None) -> Q:
    """One comparison on one value; `ne` has already become `not eq` by the caller."""
    if value is None:
        return _presence(leaf)
    if op != "eq" and (leaf.kind == BOOLEAN or leaf.kind == IDENTIFIER):
        what = "a boolean" if leaf.kind == BOOLEAN else "an identifier"
        raise InvalidFilter(f"{leaf.name} is {what}; it supports only eq, ne and pr, not {op}.")
    if op in _PATTERN_LOOKUPS and leaf.kind == DATETIME:
        raise InvalidFilter(
            f"{leaf.name} is a date-time; it supports eq, ne, gt, ge, lt, le and pr, not {op}."
        )
    if value.kind == "null":
        if op != "eq":
            raise InvalidFilter(f"{leaf.name} cannot be compared with null using {op}; use pr or eq null.")
        return ~_presence(leaf)
    if leaf.kind == BOOLEAN:
        return Q(**{leaf.field: _as_boolean(leaf, value)})
    if leaf.kind == IDENTIFIER:
        if value.text == "":
            return ~_presence(leaf)
        try:
            identifier = uuid.UUID(value.text)
        except ValueError:
            return _match_none()
        return Q(**{leaf.field: identifier})
    if leaf.kind == DATETIME:
        start, end = _as_interval(leaf, value)
        return {
            "eq": Q(**{f"{leaf.field}__gte": start, f"{leaf.field}__lt": end}),
            "gt": Q(**{f"{leaf.field}__gte": end}),
            "ge": Q(**{f"{leaf.field}__gte": start}),
            "lt": Q(**{f"{leaf.field}__lt": start}),
            "le": Q(**{f"{leaf.field}__lt": end}),
        }[op]
    field = leaf.field if leaf.case_exact else f"{leaf.field}__lower"
    text = value.text if leaf.case_exact else value.text.lower()
    if op == "eq":
        return ~_presence(leaf) if text == "" else Q(**{field: text})
    if op in _PATTERN_LOOKUPS:
        if text == "":
            return _presence(leaf)
        if leaf.case_exact:
            return _case_exact_pattern(leaf.field, op, text)
        return Q(**{f"{field}__{_PATTERN_LOOKUPS[op]}": text})
    return Q(**{f"{field}__{_ORDERING_LOOKUPS[op]}": text}) & _presence(leaf)


class _Compiler:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def compile(self, node: Node, scope: Attribute | None = None) -> Q:
        if isinstance(node, And):
            return reduce(and_, (self.compile(part, scope) for part in node.parts))
        if isinstance(node, Or):
            return reduce(or_, (self.compile(part, scope) for part in node.parts))
        if isinstance(node, Not):
            return ~self.compile(node.part, scope)
        if isinstance(node, ValuePath):
            return self.value_path(node)
        return self.compare(node, scope)

    @staticmethod
    def rows_exist(rows: Rows, condition: Q | None) -> Q:
        """EXISTS over the attribute's rows of this owner. Filtering the rows by the owner's tenant as
        well lets PostgreSQL use the (tenant, LOWER(value)) indexes and keeps the subquery inside the
        tenant even if a row were ever mis-attached."""
        model = apps.get_model("directory", rows.model)
        matching = model.objects.filter(tenant=OuterRef("tenant"), **{rows.owner: OuterRef("pk")})
        if condition is not None:
            matching = matching.filter(condition)
        return Q(Exists(matching))

    def compare(self, node: Compare, scope: Attribute | None) -> Q:
        if node.op == "ne":
            return ~self.compare(Compare(path=node.path, op="eq", value=node.value), scope)
        if scope is not None:
            return _leaf_q(self.sub_attribute(scope, node.path), node.op, node.value)
        attribute = self.attribute(node.path)
        if attribute.type != "complex":
            if node.path.sub is not None:
                raise InvalidFilter(f"{attribute.name} has no sub-attributes (in {node.path.text!r}).")
            return _leaf_q(_leaf(attribute), node.op, node.value)
        if node.path.sub is None and node.op == "pr":
            if attribute.rows is not None:
                return self.rows_exist(attribute.rows, None)
            return reduce(or_, (_presence(_leaf(sub, attribute)) for sub in _filterable_subs(attribute)))
        leaf = self.member(attribute, node.path, node.path.sub)
        condition = _leaf_q(leaf, node.op, node.value)
        return condition if attribute.rows is None else self.rows_exist(attribute.rows, condition)

    def value_path(self, node: ValuePath) -> Q:
        if node.tail is not None and node.tail.op == "ne":
            positive = Compare(path=node.tail.path, op="eq", value=node.tail.value)
            return ~self.value_path(ValuePath(path=node.path, condition=node.condition, tail=positive))
        attribute = self.attribute(node.path)
        if attribute.type != "complex" or node.path.sub is not None:
            raise InvalidFilter(
                f"{node.path.text!r} cannot take a value filter '[...]'; only multi-valued or complex "
                'attributes can, e.g. emails[type eq "work"].'
            )
        condition = self.compile(node.condition, attribute)
        if node.tail is not None:
            condition &= self.compare(node.tail, attribute)
        return condition if attribute.rows is None else self.rows_exist(attribute.rows, condition)

    def attribute(self, path: AttrPath) -> Attribute:
        resource = self.resource
        if path.attr is None:
            raise InvalidFilter(f"{path.text!r} names a whole schema; filter on one of its attributes.")
        if path.urn is not None:
            if path.urn not in resource.schemas:
                known = " or ".join(resource.schemas)
                raise InvalidFilter(
                    f"Unknown schema {path.urn!r} in {path.text!r}; {resource.name} attributes "
                    f"belong to {known}."
                )
            if resource.find(path.attr, path.urn) is None:
                raise InvalidFilter(f"{path.attr!r} is not an attribute of {path.urn}.")
        found = resource.find(path.attr, path.urn)
        if found is None or not found[1].filterable:
            names = ", ".join(a.name for a in resource.attributes() if a.filterable)
            raise InvalidFilter(
                f"Unsupported filter attribute {path.text!r}. {resource.name} filters can use: {names}."
            )
        return found[1]

    def member(self, attribute: Attribute, path: AttrPath, name: str | None) -> _Leaf:
        """The sub-attribute `name` of a complex attribute, or its default (`emails` means
        `emails.value`, RFC 7644 §3.4.2.2)."""
        sub_name = name or attribute.default_sub
        names = ", ".join(f"{attribute.name}.{sub.name}" for sub in _filterable_subs(attribute))
        if sub_name is None:
            raise InvalidFilter(f"{attribute.name} is complex; compare one of its sub-attributes: {names}.")
        sub = attribute.sub(sub_name)
        if sub is None or not sub.filterable:
            raise InvalidFilter(f"Unsupported filter attribute {path.text!r}; {attribute.name} has {names}.")
        return _leaf(sub, attribute)

    def sub_attribute(self, scope: Attribute, path: AttrPath) -> _Leaf:
        """Inside `emails[...]` names are sub-attributes of one email (RFC 7644 §3.4.2.2 valFilter)."""
        if path.urn is not None or path.sub is not None or path.attr is None:
            raise InvalidFilter(
                f"Inside {scope.name}[...] use its sub-attribute names, such as "
                f"{_filterable_subs(scope)[0].name}, not {path.text!r}."
            )
        return self.member(scope, path, path.attr)


# -------------------------------------------------------------------------------------------- API


def user_filter_q(filter_text: str) -> Q:
    """A `Q` over `directory.models.User` for a SCIM filter. It does not scope to a tenant: callers
    filter by tenant first (the multi-valued subqueries correlate on the user's tenant)."""
    return user_node_q(parse_filter(filter_text))


def user_node_q(node: Node) -> Q:
    """`user_filter_q` for a filter already parsed, so a caller that also inspects it parses once."""
    return _Compiler(USER).compile(node)


def email_equality(node: Node) -> str | None:
    """The address a filter names when the whole filter is one equality on an email's value
    (`emails.value eq "…"`, `emails[type eq "work"].value eq "…"`): the lookup Entra makes before
    creating a user, which callers resolve through the email index first (docs/design.md, "Plans
    that need no fresh statistics"). None for any other filter."""
    if isinstance(node, ValuePath) and node.path.attr and node.path.attr.lower() == "emails":
        tail = node.tail
        if tail is None or not tail.path.attr or tail.path.attr.lower() != "value" or tail.path.sub:
            return None
        compare = tail
    elif isinstance(node, Compare) and node.path.attr and node.path.attr.lower() == "emails":
        if not node.path.sub or node.path.sub.lower() != "value":
            return None
        compare = node
    else:
        return None
    if compare.op != "eq" or compare.value is None or compare.value.kind == "null":
        return None
    return compare.value.text


PREPARED_LOOKUP_ATTRIBUTES = frozenset({"username", "externalid"})


def prepared_lookup(node: Node) -> Compare | None:
    """The comparison when the whole filter is `userName eq "…"` or `externalId eq "…"` with a
    non-empty value: the lookups Entra makes before every create, whose SQL differs only in the
    value and is therefore compiled once (directory.prepared). None for any other filter."""
    if not isinstance(node, Compare) or node.op != "eq" or node.value is None:
        return None
    path = node.path
    if path.sub is not None or path.attr is None or path.attr.lower() not in PREPARED_LOOKUP_ATTRIBUTES:
        return None
    if path.urn not in (None, USER_SCHEMA) or node.value.kind == "null" or not node.value.text:
        return None
    return node


def group_filter_q(filter_text: str) -> Q:
    """A `Q` over `directory.models.Group`; tenant scoping is the caller's, as for users."""
    return _Compiler(GROUP).compile(parse_filter(filter_text))


def _sort_field(resource: Resource, sort_by: str) -> str:
    text = sort_by.strip() if isinstance(sort_by, str) else ""
    try:
        if not text:
            raise InvalidFilter("sortBy is empty.")
        path = parse_attr_path(text)
        compiler = _Compiler(resource)
        attribute = compiler.attribute(path)
        if attribute.type != "complex":
            if path.sub is not None:
                raise InvalidFilter(f"{attribute.name} has no sub-attributes (in {text!r}).")
            return _leaf(attribute).field
        if attribute.rows is not None:
            raise InvalidFilter(f"Sorting by the multi-valued attribute {text!r} is not supported.")
        return compiler.member(attribute, path, path.sub).field
    except InvalidFilter as exc:
        raise BadRequest(f"Invalid sortBy: {exc.detail}", scim_type="invalidValue") from None


def user_sort_field(sort_by: str) -> str:
    """The User model field that orders by a SCIM `sortBy` attribute (RFC 7644 §3.4.2.3)."""
    return _sort_field(USER, sort_by)


def group_sort_field(sort_by: str) -> str:
    """The Group model field that orders by a SCIM `sortBy` attribute."""
    return _sort_field(GROUP, sort_by)
