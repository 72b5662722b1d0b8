"""SCIM filters (RFC 7644 §3.4.2.2) compiled to Django `Q` objects over `User` and `Group`.

Why a hand-written parser rather than scim2-filter-parser's lexer: that lexer cannot read what Entra
and the RFC send (entra-scim.md R45, R83; libraries.md §1.7, trap 6). Unquoted values
(`externalId eq jyoung`, unquoted GUIDs), `\\"` escapes, `True`, multi-digit numbers and decimals fail
to lex, and an attribute whose name starts with a literal (`trueName`) is split into two tokens. The
grammar is small, so this module tokenises into words, strings and brackets and lets the
recursive-descent parser decide from position whether a word is an attribute, an operator or a value.

Supported grammar (case-insensitive keywords; `not` binds tighter than `and`, which binds tighter
than `or`)::

    filter     = or
    or         = and *("or" and)
    and        = unary *("and" unary)
    unary      = "not" "(" filter ")" / "(" filter ")" / attrExp
    attrExp    = attrPath "pr"
               / attrPath compareOp compValue
               / attrPath "[" valFilter "]" [ "." subAttr ( "pr" / compareOp compValue ) ]
    valFilter  = the same grammar over the sub-attributes of one value, without nested "[...]"
    attrPath   = [ schemaURN ":" ] attrName [ "." subAttr ]
    compareOp  = eq / ne / co / sw / ew / gt / ge / lt / le
    compValue  = JSON string / true / false / null / number / an unquoted word (read as text)

Semantics, decided once here so every caller gets the same answer (R48: a clause is never dropped,
and anything this module cannot honour raises `InvalidFilter`):

- Absent means "" for text columns (the directory stores no NULL text), NULL for `manager`, and no
  rows for multi-valued attributes. `eq null` and `eq ""` match absent values; `pr` matches present
  ones (not NULL, not "", or at least one row).
- `a ne v` is exactly `not (a eq v)`, so a user without a title matches `title ne "x"`, and
  `emails.value ne "x"` means "has no email x". Inside brackets a condition applies to one value, so
  `emails[value ne "x"]` means "has an email other than x" (RFC 7644's "any value" rule).
- `co`/`sw`/`ew` and the orderings `gt`/`ge`/`lt`/`le` never match an absent value. Strings order
  lexicographically in the database collation; `caseExact=false` attributes compare lower-cased
  through the registered `lower` lookup, which the per-tenant LOWER() indexes serve.
- `meta.created`/`meta.lastModified` take ISO 8601 values and compare at the precision written:
  `meta.lastModified eq "2024-05-01T10:00:00Z"` matches the whole second, so a value echoed from a
  response matches however many fractional digits the database holds.
- Booleans accept `true`/`false` in any case, quoted or not (Entra sends booleans as strings, R43),
  and only with `eq`, `ne` and `pr`. Identifiers (`id`, `manager`, `groups`, `members`) accept `eq`,
  `ne` and `pr`; a value that is not a UUID matches nothing.
- Multi-valued attributes compile to `EXISTS` subqueries correlated on the owner and its tenant, so a
  value filter must hold for one row and results never repeat.

Limits: a filter is at most MAX_FILTER_LENGTH characters, MAX_NESTING levels of brackets and
MAX_COMPARISONS comparisons; beyond that it is refused, never truncated. Decoding `+` and `%22` is the
caller's (Django's QueryDict does it, R47); a literal `+` here is data. `not` needs parentheses, as in
the RFC grammar. SQLite's LOWER() folds ASCII only, so non-ASCII case-insensitivity holds on
PostgreSQL alone, and ordering comparisons follow each database's collation.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from operator import and_, or_

from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Left, Right, StrIndex
from django.db.models.lookups import Exact, GreaterThan

from directory.models import (
    Membership,
    UserAddress,
    UserEmail,
    UserEntitlement,
    UserIm,
    UserPhoneNumber,
    UserPhoto,
    UserX509Certificate,
)
from scim.errors import BadRequest, InvalidFilter

MAX_FILTER_LENGTH = 4096
MAX_NESTING = 20
MAX_COMPARISONS = 100

CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
# Entra's own sample request misspells the extension URN (entra-scim.md R40).
ENTERPRISE_USER_URN_MISSPELT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"

COMPARE_OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
OPERATORS = (*COMPARE_OPERATORS, "pr")

STRING = "string"
BOOLEAN = "boolean"
DATETIME = "dateTime"
IDENTIFIER = "identifier"

_ORDERING_LOOKUPS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_PATTERN_LOOKUPS = {"co": "contains", "sw": "startswith", "ew": "endswith"}
_NAME_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INSTANT_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2})?)?"
)
_WORD_STOP = frozenset('()[]"')


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "string" "word" "end"
    text: str  # decoded content of a string, as written otherwise
    pos: int  # 1-based character position, for error messages


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()[]":
            tokens.append(_Token(ch, ch, i + 1))
            i += 1
        elif ch == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise InvalidFilter(f"The string starting at character {i + 1} has no closing double quote.")
            tokens.append(_Token("string", _decode_string(text[i : end + 1], i + 1), i + 1))
            i = end + 1
        else:
            end = i
            while end < n and text[end] not in _WORD_STOP and not text[end].isspace():
                end += 1
            tokens.append(_Token("word", text[i:end], i + 1))
            i = end
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _decode_string(raw: str, pos: int) -> str:
    """RFC 7644 values are JSON strings (RFC 7159 §7), so `\\"`, `\\\\` and `\\uXXXX` are escapes."""
    try:
        value = json.loads(raw, strict=False)
        value.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise InvalidFilter(
            f'The string at character {pos} has an invalid escape; inside quotes write \\" for a '
            "double quote and \\\\ for a backslash."
        ) from None
    return value


# --------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class AttrPath:
    urn: str | None
    attr: str
    sub: str | None
    text: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A comparison value. `text` is what a string attribute is compared with: the decoded string,
    or an unquoted word, number or boolean exactly as written (Entra does not quote values, R45)."""

    kind: str  # "string", "number", "boolean" or "null"
    text: str


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Literal | None  # None for pr


@dataclass(frozen=True)
class ValuePath:
    path: AttrPath
    condition: Node
    tail: Compare | None  # `emails[type eq "work"].value eq "x"` keeps `value eq "x"` here


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Compare | ValuePath | And | Or | Not


def _word_is(token: _Token, keyword: str) -> bool:
    return token.kind == "word" and token.text.lower() == keyword


def parse_attr_path(text: str, pos: int = 1) -> AttrPath:
    """`[urn ":"] attr ["." sub]`; the URN is everything before the last colon."""
    urn: str | None = None
    rest = text
    if text[:4].lower() == "urn:":
        urn, _, rest = text.rpartition(":")
    parts = rest.split(".")
    if len(parts) > 2 or not all(_NAME_RE.fullmatch(p) for p in parts):
        raise InvalidFilter(
            f"{text!r} at character {pos} is not an attribute path; expected a name such as userName, "
            "name.familyName or a schema URN followed by ':' and a name."
        )
    return AttrPath(urn=urn, attr=parts[0], sub=parts[1] if len(parts) == 2 else None, text=text, pos=pos)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.nesting = 0
        self.comparisons = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.or_expression(in_value_filter=False)
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token, "'and', 'or' or the end of the filter")
        return node

    def or_expression(self, *, in_value_filter: bool) -> Node:
        parts = [self.and_expression(in_value_filter=in_value_filter)]
        while _word_is(self.peek(), "or"):
            self.take()
            parts.append(self.and_expression(in_value_filter=in_value_filter))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expression(self, *, in_value_filter: bool) -> Node:
        parts = [self.unary(in_value_filter=in_value_filter)]
        while _word_is(self.peek(), "and"):
            self.take()
            parts.append(self.unary(in_value_filter=in_value_filter))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self, *, in_value_filter: bool) -> Node:
        token = self.peek()
        if _word_is(token, "not"):
            self.take()
            if self.peek().kind != "(":
                raise InvalidFilter(
                    f"'not' at character {token.pos} must be followed by a parenthesised filter, "
                    'e.g. not (title eq "Intern").'
                )
            return Not(self.group(in_value_filter=in_value_filter))
        if token.kind == "(":
            return self.group(in_value_filter=in_value_filter)
        if token.kind == "word":
            return self.attribute_expression(in_value_filter=in_value_filter)
        raise self.unexpected(token, "an attribute name, 'not' or '('")

    def enter(self, token: _Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise InvalidFilter(
                f"The filter nests deeper than {MAX_NESTING} levels at character {token.pos}."
            )

    def group(self, *, in_value_filter: bool) -> Node:
        opening = self.take()
        self.enter(opening)
        node = self.or_expression(in_value_filter=in_value_filter)
        closing = self.peek()
        if closing.kind != ")":
            if closing.kind == "end":
                raise InvalidFilter(f"The '(' at character {opening.pos} is never closed; add ')'.")
            raise self.unexpected(closing, "')', 'and' or 'or'")
        self.take()
        self.nesting -= 1
        return node

    def attribute_expression(self, *, in_value_filter: bool) -> Node:
        token = self.take()
        path = parse_attr_path(token.text, token.pos)
        if self.peek().kind != "[":
            return self.comparison(path)
        opening = self.take()
        if in_value_filter:
            raise InvalidFilter(f"Value filters cannot be nested ('[' at character {opening.pos}).")
        self.enter(opening)
        condition = self.or_expression(in_value_filter=True)
        closing = self.peek()
        if closing.kind != "]":
            if closing.kind == "end":
                raise InvalidFilter(f"The '[' at character {opening.pos} is never closed; add ']'.")
            raise self.unexpected(closing, "']', 'and' or 'or'")
        self.take()
        self.nesting -= 1
        after = self.peek()
        if after.kind == "word" and after.text.startswith("."):
            self.take()
            sub = parse_attr_path(after.text[1:], after.pos + 1)
            if sub.urn is not None or sub.sub is not None:
                raise InvalidFilter(
                    f"After ']' at character {closing.pos} expected one sub-attribute such as .value, "
                    f"found {after.text!r}."
                )
            return ValuePath(path=path, condition=condition, tail=self.comparison(sub))
        if after.kind == "word" and after.text.lower() in OPERATORS:
            raise InvalidFilter(
                f"{path.text}[...] at character {path.pos} is a whole condition and takes no operator; "
                f'compare one of its sub-attributes instead, e.g. {path.text}[type eq "work"].value eq "x".'
            )
        return ValuePath(path=path, condition=condition, tail=None)

    def comparison(self, path: AttrPath) -> Compare:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise InvalidFilter(f"The filter has more than {MAX_COMPARISONS} comparisons.")
        token = self.peek()
        if token.kind != "word" or token.text.lower() not in OPERATORS:
            found = "the end of the filter" if token.kind == "end" else repr(token.text)
            raise InvalidFilter(
                f"Expected an operator ({', '.join(OPERATORS)}) after {path.text!r} at character "
                f"{token.pos}, found {found}."
            )
        self.take()
        op = token.text.lower()
        if op == "pr":
            return Compare(path=path, op=op, value=None)
        value = self.peek()
        if value.kind == "string":
            self.take()
            return Compare(path=path, op=op, value=Literal("string", value.text))
        if value.kind == "word":
            self.take()
            return Compare(path=path, op=op, value=_unquoted_literal(value.text))
        found = "the end of the filter" if value.kind == "end" else repr(value.text)
        raise InvalidFilter(
            f"Missing value after {path.text} {token.text} at character {value.pos} (found {found}); "
            'quote text values, e.g. userName eq "bjensen".'
        )

    def unexpected(self, token: _Token, expected: str) -> InvalidFilter:
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        hint = " Quote values that contain spaces." if token.kind == "word" else ""
        return InvalidFilter(f"Expected {expected} at character {token.pos}, found {found}.{hint}")


def _unquoted_literal(word: str) -> Literal:
    lowered = word.lower()
    if lowered in ("true", "false"):
        return Literal("boolean", word)
    if lowered == "null":
        return Literal("null", word)
    if _NUMBER_RE.fullmatch(word):
        return Literal("number", word)
    return Literal("string", word)


def parse_filter(filter_text: str) -> Node:
    """The syntax tree of a filter, or InvalidFilter saying where and why it cannot be read."""
    if not isinstance(filter_text, str) or not filter_text.strip():
        raise InvalidFilter("The filter is empty.")
    if len(filter_text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    if "\x00" in filter_text:
        raise InvalidFilter("The filter contains a NUL character.")
    return _Parser(filter_text).parse()


# ------------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class _Leaf:
    """A filterable value. `field` is an ORM path from the model being filtered (the resource, or
    the row model of a multi-valued attribute); `null_field` is set when absence is NULL there."""

    name: str
    kind: str
    field: str
    case_exact: bool = False
    null_field: str | None = None


@dataclass(frozen=True)
class _Rows:
    model: type[models.Model]
    owner: str


@dataclass(frozen=True)
class _Complex:
    name: str
    subs: Mapping[str, _Leaf]
    default_sub: str | None = None
    rows: _Rows | None = None


@dataclass(frozen=True)
class _Resource:
    name: str
    attributes: Mapping[str, _Leaf | _Complex]
    schemas: Mapping[str, frozenset[str]]  # lower-case URN -> lower-case attribute names it holds
    schema_urns: tuple[str, ...]  # as written in /Schemas, for error messages


def _text(name: str, field: str, *, case_exact: bool = False) -> _Leaf:
    return _Leaf(name=name, kind=STRING, field=field, case_exact=case_exact)


def _by_lower_name(*items: _Leaf | _Complex) -> dict[str, _Leaf | _Complex]:
    return {item.name.rsplit(".", 1)[-1].lower(): item for item in items}


def _subs(*leaves: _Leaf) -> dict[str, _Leaf]:
    return {leaf.name.rsplit(".", 1)[-1].lower(): leaf for leaf in leaves}


def _multi_value(
    name: str, model: type[models.Model], *extra: _Leaf, display: bool = True, value_case_exact: bool = False
) -> _Complex:
    leaves = [
        _text(f"{name}.value", "value", case_exact=value_case_exact),
        _text(f"{name}.type", "type"),
        _Leaf(name=f"{name}.primary", kind=BOOLEAN, field="primary"),
    ]
    if display:
        leaves.append(_text(f"{name}.display", "display"))
    return _Complex(name=name, subs=_subs(*leaves, *extra), default_sub="value", rows=_Rows(model, "user"))


def _meta() -> _Complex:
    return _Complex(
        name="meta",
        subs=_subs(
            _Leaf(name="meta.created", kind=DATETIME, field="created"),
            _Leaf(name="meta.lastModified", kind=DATETIME, field="last_modified"),
        ),
    )


_USER_CORE = _by_lower_name(
    _Leaf(name="id", kind=IDENTIFIER, field="scim_id", case_exact=True),
    _text("externalId", "external_id", case_exact=True),
    _meta(),
    _text("userName", "username"),
    _Complex(
        name="name",
        subs=_subs(
            _text("name.formatted", "formatted_name"),
            _text("name.familyName", "family_name"),
            _text("name.givenName", "given_name"),
            _text("name.middleName", "middle_name"),
            _text("name.honorificPrefix", "honorific_prefix"),
            _text("name.honorificSuffix", "honorific_suffix"),
        ),
    ),
    _text("displayName", "display_name"),
    _text("nickName", "nick_name"),
    _text("profileUrl", "profile_url"),
    _text("title", "title"),
    _text("userType", "user_type"),
    _text("preferredLanguage", "preferred_language"),
    _text("locale", "locale"),
    _text("timezone", "timezone"),
    _Leaf(name="active", kind=BOOLEAN, field="is_active"),
    _multi_value("emails", UserEmail),
    _multi_value("phoneNumbers", UserPhoneNumber),
    _multi_value("ims", UserIm),
    _multi_value("photos", UserPhoto),
    _multi_value("entitlements", UserEntitlement),
    _multi_value("x509Certificates", UserX509Certificate, value_case_exact=True),
    _Complex(
        name="addresses",
        subs=_subs(
            _text("addresses.formatted", "formatted"),
            _text("addresses.streetAddress", "street_address"),
            _text("addresses.locality", "locality"),
            _text("addresses.region", "region"),
            _text("addresses.postalCode", "postal_code"),
            _text("addresses.country", "country"),
            _text("addresses.type", "type"),
            _Leaf(name="addresses.primary", kind=BOOLEAN, field="primary"),
        ),
        rows=_Rows(UserAddress, "user"),
    ),
    _Complex(
        name="groups",
        subs=_subs(
            _Leaf(name="groups.value", kind=IDENTIFIER, field="group__scim_id"),
            _text("groups.display", "group__display_name"),
        ),
        default_sub="value",
        rows=_Rows(Membership, "user"),
    ),
)
_USER_ENTERPRISE = _by_lower_name(
    _text("employeeNumber", "employee_number"),
    _text("costCenter", "cost_center"),
    _text("organization", "organization"),
    _text("division", "division"),
    _text("department", "department"),
    _Complex(
        name="manager",
        subs=_subs(_text("manager.value", "manager_value", case_exact=True)),
        default_sub="value",
    ),
)
_USER = _Resource(
    name="User",
    attributes={**_USER_CORE, **_USER_ENTERPRISE},
    schemas={
        CORE_USER_URN.lower(): frozenset(_USER_CORE),
        ENTERPRISE_USER_URN.lower(): frozenset(_USER_ENTERPRISE),
        ENTERPRISE_USER_URN_MISSPELT.lower(): frozenset(_USER_ENTERPRISE),
    },
    schema_urns=(CORE_USER_URN, ENTERPRISE_USER_URN),
)

_GROUP_CORE = _by_lower_name(
    _Leaf(name="id", kind=IDENTIFIER, field="scim_id", case_exact=True),
    _text("externalId", "external_id", case_exact=True),
    _meta(),
    _text("displayName", "display_name"),
    _Complex(
        name="members",
        subs=_subs(_Leaf(name="members.value", kind=IDENTIFIER, field="user__scim_id")),
        default_sub="value",
        rows=_Rows(Membership, "group"),
    ),
)
_GROUP = _Resource(
    name="Group",
    attributes=_GROUP_CORE,
    schemas={CORE_GROUP_URN.lower(): frozenset(_GROUP_CORE)},
    schema_urns=(CORE_GROUP_URN,),
)


# ---------------------------------------------------------------------------------------- compiler


def _match_all() -> Q:
    """Always true, and never an empty `Q()`: `~Q()` is also empty and would match every row."""
    return Q(pk__isnull=False)


def _match_none() -> Q:
    """Always false; Django turns `pk IN ()` into an empty result, and its negation into all rows."""
    return Q(pk__in=[])


def _presence(leaf: _Leaf) -> Q:
    if leaf.null_field is not None:
        return Q(**{f"{leaf.null_field}__isnull": False})
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
    def __init__(self, resource: _Resource) -> None:
        self.resource = resource

    def compile(self, node: Node, scope: _Complex | None = None) -> Q:
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
    def rows_exist(rows: _Rows, condition: Q | None) -> Q:
        """EXISTS over the attribute's rows of this owner. Filtering the rows by the owner's tenant as
        well lets PostgreSQL use the (tenant, LOWER(value)) indexes and keeps the subquery inside the
        tenant even if a row were ever mis-attached."""
        matching = rows.model.objects.filter(tenant=OuterRef("tenant"), **{rows.owner: OuterRef("pk")})
        if condition is not None:
            matching = matching.filter(condition)
        return Q(Exists(matching))

    def compare(self, node: Compare, scope: _Complex | None) -> Q:
        if node.op == "ne":
            return ~self.compare(Compare(path=node.path, op="eq", value=node.value), scope)
        if scope is not None:
            return _leaf_q(self.sub_attribute(scope, node.path), node.op, node.value)
        attribute = self.attribute(node.path)
        if isinstance(attribute, _Leaf):
            if node.path.sub is not None:
                raise InvalidFilter(f"{attribute.name} has no sub-attributes (in {node.path.text!r}).")
            return _leaf_q(attribute, node.op, node.value)
        if node.path.sub is None and node.op == "pr":
            if attribute.rows is not None:
                return self.rows_exist(attribute.rows, None)
            return reduce(or_, (_presence(leaf) for leaf in attribute.subs.values()))
        leaf = self.member(attribute, node.path, node.path.sub)
        condition = _leaf_q(leaf, node.op, node.value)
        return condition if attribute.rows is None else self.rows_exist(attribute.rows, condition)

    def value_path(self, node: ValuePath) -> Q:
        if node.tail is not None and node.tail.op == "ne":
            positive = Compare(path=node.tail.path, op="eq", value=node.tail.value)
            return ~self.value_path(ValuePath(path=node.path, condition=node.condition, tail=positive))
        attribute = self.attribute(node.path)
        if isinstance(attribute, _Leaf) or node.path.sub is not None:
            raise InvalidFilter(
                f"{node.path.text!r} cannot take a value filter '[...]'; only multi-valued or complex "
                'attributes can, e.g. emails[type eq "work"].'
            )
        condition = self.compile(node.condition, attribute)
        if node.tail is not None:
            condition &= self.compare(node.tail, attribute)
        return condition if attribute.rows is None else self.rows_exist(attribute.rows, condition)

    def attribute(self, path: AttrPath) -> _Leaf | _Complex:
        name = path.attr.lower()
        if path.urn is not None:
            holds = self.resource.schemas.get(path.urn.lower())
            if holds is None:
                known = " or ".join(self.resource.schema_urns)
                raise InvalidFilter(
                    f"Unknown schema {path.urn!r} in {path.text!r}; {self.resource.name} attributes "
                    f"belong to {known}."
                )
            if name not in holds:
                raise InvalidFilter(f"{path.attr!r} is not an attribute of {path.urn}.")
        attribute = self.resource.attributes.get(name)
        if attribute is None:
            names = ", ".join(a.name for a in self.resource.attributes.values())
            raise InvalidFilter(
                f"Unsupported filter attribute {path.text!r}. {self.resource.name} filters can use: {names}."
            )
        return attribute

    def member(self, attribute: _Complex, path: AttrPath, name: str | None) -> _Leaf:
        """The sub-attribute `name` of a complex attribute, or its default (`emails` means
        `emails.value`, RFC 7644 §3.4.2.2)."""
        sub = name or attribute.default_sub
        names = ", ".join(leaf.name for leaf in attribute.subs.values())
        if sub is None:
            raise InvalidFilter(f"{attribute.name} is complex; compare one of its sub-attributes: {names}.")
        leaf = attribute.subs.get(sub.lower())
        if leaf is None:
            raise InvalidFilter(f"Unsupported filter attribute {path.text!r}; {attribute.name} has {names}.")
        return leaf

    def sub_attribute(self, scope: _Complex, path: AttrPath) -> _Leaf:
        """Inside `emails[...]` names are sub-attributes of one email (RFC 7644 §3.4.2.2 valFilter)."""
        if path.urn is not None or path.sub is not None:
            raise InvalidFilter(
                f"Inside {scope.name}[...] use its sub-attribute names, such as "
                f"{next(iter(scope.subs.values())).name.split('.', 1)[1]}, not {path.text!r}."
            )
        return self.member(scope, path, path.attr)


# -------------------------------------------------------------------------------------------- API


def user_filter_q(filter_text: str) -> Q:
    """A `Q` over `directory.models.User` for a SCIM filter. It does not scope to a tenant: callers
    filter by tenant first (the multi-valued subqueries correlate on the user's tenant)."""
    return _Compiler(_USER).compile(parse_filter(filter_text))


def group_filter_q(filter_text: str) -> Q:
    """A `Q` over `directory.models.Group`; tenant scoping is the caller's, as for users."""
    return _Compiler(_GROUP).compile(parse_filter(filter_text))


def _sort_field(resource: _Resource, sort_by: str) -> str:
    text = sort_by.strip() if isinstance(sort_by, str) else ""
    try:
        if not text:
            raise InvalidFilter("sortBy is empty.")
        path = parse_attr_path(text)
        compiler = _Compiler(resource)
        attribute = compiler.attribute(path)
        if isinstance(attribute, _Leaf):
            if path.sub is not None:
                raise InvalidFilter(f"{attribute.name} has no sub-attributes (in {text!r}).")
            return attribute.field
        if attribute.rows is not None:
            raise InvalidFilter(f"Sorting by the multi-valued attribute {text!r} is not supported.")
        return compiler.member(attribute, path, path.sub).field
    except InvalidFilter as exc:
        raise BadRequest(f"Invalid sortBy: {exc.detail}", scim_type="invalidValue") from None


def user_sort_field(sort_by: str) -> str:
    """The User model field that orders by a SCIM `sortBy` attribute (RFC 7644 §3.4.2.3)."""
    return _sort_field(_USER, sort_by)


def group_sort_field(sort_by: str) -> str:
    """The Group model field that orders by a SCIM `sortBy` attribute."""
    return _sort_field(_GROUP, sort_by)
