"""The SCIM filter grammar (RFC 7644 §3.4.2.2) and attribute paths (RFC 7644 §3.10, §3.5.2): one
tokenizer, one parser, one syntax tree, shared by `?filter=` (compiled to SQL by scim.filters) and by
PATCH paths such as `emails[type eq "work"].value` (evaluated in memory by scim.patch).

A hand-written recursive-descent parser, because the grammar is small and what clients really send
is looser than the RFC's ABNF: Entra leaves values unquoted (`externalId eq jyoung`, bare GUIDs),
writes booleans as `True`, misspells the enterprise URN, and an attribute may start like a literal
(`trueName`). So the tokenizer only splits words, strings and brackets, and the parser decides from
position whether a word is an attribute, an operator or a value.

Grammar (case-insensitive keywords; `not` binds tighter than `and`, which binds tighter than `or`)::

    filter     = or
    or         = and *("or" and)
    and        = unary *("and" unary)
    unary      = "not" "(" filter ")" / "(" filter ")" / attrExp
    attrExp    = attrPath "pr"
               / attrPath compareOp compValue
               / attrPath "[" valFilter "]" [ "." subAttr ( "pr" / compareOp compValue ) ]
    valFilter  = the same grammar over the sub-attributes of one value, without nested "[...]"
    patchPath  = attrPath [ "[" valFilter "]" [ "." subAttr ] ]
    attrPath   = [ schemaURN ":" ] attrName [ "." subAttr ]   (or a bare schemaURN, in PATCH)
    compareOp  = eq / ne / co / sw / ew / gt / ge / lt / le
    compValue  = JSON string / true / false / null / number / an unquoted word (read as text)

Every error is `InvalidFilter` naming the character position; PATCH re-raises it as `invalidPath`.
Limits are refused, never truncated: MAX_FILTER_LENGTH characters (MAX_PATH_LENGTH for a path),
MAX_NESTING levels of brackets, MAX_COMPARISONS comparisons; the parser is recursive, so nesting is
capped far below Python's recursion limit rather than trusted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from scim.attribute_model import SCHEMA_ALIASES
from scim.errors import InvalidFilter

MAX_FILTER_LENGTH = 4096
MAX_PATH_LENGTH = 2048
MAX_NESTING = 20
MAX_COMPARISONS = 100

COMPARE_OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
OPERATORS = (*COMPARE_OPERATORS, "pr")

_NAME_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD_STOP = frozenset('()[]"')


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "(" ")" "[" "]" "string" "word" "end"
    text: str  # decoded content of a string, as written otherwise
    pos: int  # 1-based character position, for error messages


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()[]":
            tokens.append(Token(ch, ch, i + 1))
            i += 1
        elif ch == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise InvalidFilter(f"The string starting at character {i + 1} has no closing double quote.")
            tokens.append(Token("string", _decode_string(text[i : end + 1], i + 1), i + 1))
            i = end + 1
        else:
            end = i
            while end < n and text[end] not in _WORD_STOP and not text[end].isspace():
                end += 1
            tokens.append(Token("word", text[i:end], i + 1))
            i = end
    tokens.append(Token("end", "", n + 1))
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
    """`urn` is the canonical schema URN when the path names a known one (the misspelt Entra form
    included), as written otherwise; `attr is None` when the path is a bare schema URN. `text` and
    `pos` only serve error messages, so two paths written alike compare equal wherever they stand."""

    urn: str | None
    attr: str | None
    sub: str | None
    text: str = field(compare=False)
    pos: int = field(compare=False, default=1)


@dataclass(frozen=True)
class Literal:
    """A comparison value. `text` is what a string attribute is compared with: the decoded string,
    or an unquoted word, number or boolean exactly as written (Entra does not quote values)."""

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


@dataclass(frozen=True)
class PatchPath:
    """RFC 7644 §3.5.2 `PATH = attrPath / valuePath [subAttr]`: `condition` is the bracketed value
    filter, the same tree `?filter=` gives for it; `sub` the sub-attribute written after `]`."""

    path: AttrPath
    condition: Node | None = None
    sub: str | None = None


def parse_attr_path(text: str, pos: int = 1) -> AttrPath:
    """`[urn ":"] attr ["." sub]`. A known schema URN is matched whole, so a bare extension URN is
    a path too; an unknown one is everything before the last colon, kept for the error message."""
    urn: str | None = None
    rest = text
    if text[:4].lower() == "urn:":
        lowered = text.lower()
        for alias, canonical in SCHEMA_ALIASES.items():
            if lowered == alias:
                return AttrPath(urn=canonical, attr=None, sub=None, text=text, pos=pos)
            if lowered.startswith(alias + ":"):
                urn, rest = canonical, text[len(alias) + 1 :]
                break
        else:
            urn, _, rest = text.rpartition(":")
    parts = rest.split(".")
    if len(parts) > 2 or not all(_NAME_RE.fullmatch(p) for p in parts):
        raise InvalidFilter(
            f"{text!r} at character {pos} is not an attribute path; expected a name such as userName, "
            "name.familyName or a schema URN followed by ':' and a name."
        )
    return AttrPath(urn=urn, attr=parts[0], sub=parts[1] if len(parts) == 2 else None, text=text, pos=pos)


def _word_is(token: Token, keyword: str) -> bool:
    return token.kind == "word" and token.text.lower() == keyword


def _found(token: Token) -> str:
    return "the end of the filter" if token.kind == "end" else repr(token.text)


def _unquoted_literal(word: str) -> Literal:
    lowered = word.lower()
    if lowered in ("true", "false"):
        return Literal("boolean", word)
    if lowered == "null":
        return Literal("null", word)
    if _NUMBER_RE.fullmatch(word):
        return Literal("number", word)
    return Literal("string", word)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.nesting = 0
        self.comparisons = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def filter(self) -> Node:
        node = self.or_expression(in_value_filter=False)
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token, "'and', 'or' or the end of the filter")
        return node

    def patch_path(self) -> PatchPath:
        token = self.take()
        if token.kind != "word":
            raise self.unexpected(token, "an attribute name")
        path = parse_attr_path(token.text, token.pos)
        condition = sub = None
        if self.peek().kind == "[":
            condition, closing = self.value_filter()
            sub = self.sub_attribute(closing)
        end = self.peek()
        if end.kind != "end":
            raise self.unexpected(end, "the end of the path")
        return PatchPath(path=path, condition=condition, sub=None if sub is None else sub.attr)

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

    def enter(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise InvalidFilter(
                f"The filter nests deeper than {MAX_NESTING} levels at character {token.pos}; "
                "nesting this deeply is refused."
            )

    def group(self, *, in_value_filter: bool) -> Node:
        opening = self.take()
        self.enter(opening)
        node = self.or_expression(in_value_filter=in_value_filter)
        self.close(opening, ")")
        return node

    def close(self, opening: Token, closer: str) -> Token:
        closing = self.peek()
        if closing.kind != closer:
            if closing.kind == "end":
                raise InvalidFilter(
                    f"The '{opening.text}' at character {opening.pos} is never closed; add '{closer}'."
                )
            raise self.unexpected(closing, f"'{closer}', 'and' or 'or'")
        self.nesting -= 1
        return self.take()

    def value_filter(self) -> tuple[Node, Token]:
        """`[valFilter]`, the next token being `[`; returns the condition and the closing `]`."""
        opening = self.take()
        if self.peek().kind == "]":
            raise InvalidFilter(f"The value filter '[]' at character {opening.pos} is empty.")
        self.enter(opening)
        condition = self.or_expression(in_value_filter=True)
        return condition, self.close(opening, "]")

    def sub_attribute(self, closing: Token) -> AttrPath | None:
        """The `.subAttr` right after a value filter's `]`, if written."""
        after = self.peek()
        if after.kind != "word" or not after.text.startswith("."):
            return None
        self.take()
        sub = parse_attr_path(after.text[1:], after.pos + 1)
        if sub.urn is not None or sub.sub is not None:
            raise InvalidFilter(
                f"After ']' at character {closing.pos} expected one sub-attribute such as .value, "
                f"found {after.text!r}."
            )
        return sub

    def attribute_expression(self, *, in_value_filter: bool) -> Node:
        token = self.take()
        path = parse_attr_path(token.text, token.pos)
        if self.peek().kind != "[":
            return self.comparison(path)
        if in_value_filter:
            raise InvalidFilter(f"Nested '[' at character {self.peek().pos}: value filters cannot be nested.")
        condition, closing = self.value_filter()
        sub = self.sub_attribute(closing)
        if sub is not None:
            return ValuePath(path=path, condition=condition, tail=self.comparison(sub))
        after = self.peek()
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
            raise InvalidFilter(
                f"Expected an operator ({', '.join(OPERATORS)}) after {path.text!r} at character "
                f"{token.pos}, found {_found(token)}."
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
        found = "the end of the value filter" if value.kind == "]" else _found(value)
        raise InvalidFilter(
            f"Missing value after {path.text} {token.text} at character {value.pos} (found {found}); "
            'quote text values, e.g. userName eq "bjensen".'
        )

    def unexpected(self, token: Token, expected: str) -> InvalidFilter:
        hint = " Quote values that contain spaces." if token.kind == "word" else ""
        return InvalidFilter(f"Expected {expected} at character {token.pos}, found {_found(token)}.{hint}")


def _checked(text: object, what: str, limit: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilter(f"The {what} is empty.")
    if len(text) > limit:
        raise InvalidFilter(f"The {what} is longer than {limit} characters.")
    if "\x00" in text:
        raise InvalidFilter(f"The {what} contains a NUL character.")
    return text


def parse_filter(filter_text: str) -> Node:
    """The syntax tree of a filter, or InvalidFilter saying where and why it cannot be read."""
    return _Parser(_checked(filter_text, "filter", MAX_FILTER_LENGTH)).filter()


def parse_path(path_text: str) -> PatchPath:
    """A PATCH path, or a key of a path-less PATCH value (Entra writes those the same way)."""
    return _Parser(_checked(path_text, "path", MAX_PATH_LENGTH).strip()).patch_path()
