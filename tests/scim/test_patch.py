"""The PATCH engine (scim/patch.py) against RFC 7644 §3.5.2 and both Entra dialects (entra-scim.md §2.6–2.11,
§3, checklist C33–C68). Pure functions over JSON dicts: no database, so no tenant fixtures are needed."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    SCIMError,
)
from scim.patch import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    USER_SCHEMA,
    MemberOperation,
    apply_group_patch,
    apply_user_patch,
    validate_patch_request,
)

ENT = ENTERPRISE_SCHEMA
CORE = USER_SCHEMA

USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
    "id": "6764549bef60420686bc",
    "externalId": "ext-1",
    "userName": "alice@contoso.com",
    "name": {"formatted": "Alice Smith", "familyName": "Smith", "givenName": "Alice"},
    "displayName": "Alice Smith",
    "title": "Engineer",
    "preferredLanguage": "en-US",
    "active": True,
    "emails": [
        {"value": "alice@contoso.com", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ],
    "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
    "addresses": [{"locality": "Seattle", "country": "US", "type": "work"}],
    ENTERPRISE_SCHEMA: {
        "employeeNumber": "42",
        "department": "R&D",
        "manager": {"value": "m-1", "$ref": "https://x/scim/v2/Users/m-1", "displayName": "Boss"},
    },
    "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z", "location": "https://x/Users/6764"},
}

BARE_USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA],
    "id": "5171a35d82074e068ce2",
    "userName": "bob@contoso.com",
    "active": True,
    "meta": {"resourceType": "User"},
}

GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "927fa2c08dcb4a7fae9e",
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {"resourceType": "Group"},
}


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def patch_user(document: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(document)
    result = apply_user_patch(document, validate_patch_request(body(*operations)))
    assert document == before, "the input document must never be modified"
    return result


def patch_group(
    document: dict[str, Any], *operations: dict[str, Any]
) -> tuple[dict[str, Any], list[MemberOperation]]:
    before = copy.deepcopy(document)
    result = apply_group_patch(document, validate_patch_request(body(*operations)))
    assert document == before
    return result


def without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in keys}


def email(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in document.get("emails", []) if e.get("type") == kind]


# ------------------------------------------------------------------------------ validate_patch_request


def test_validate_normalises_operations() -> None:
    operations = validate_patch_request(
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {"op": "Replace", "path": " userName ", "value": "x"},
                {"OP": "ADD", "Path": "", "Value": {"title": "t"}},
                {"op": "remove", "path": "title"},
                {"op": "replace", "path": "title", "value": None},
            ],
        }
    )
    assert operations == [
        {"op": "replace", "path": "userName", "value": "x"},
        {"op": "add", "path": None, "value": {"title": "t"}},
        {"op": "remove", "path": "title"},
        {"op": "replace", "path": "title", "value": None},
    ]


@pytest.mark.parametrize(
    "request_body",
    [
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": PATCH_SCHEMA, "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"SCHEMAS": [PATCH_SCHEMA.upper()], "operations": [{"op": "add", "path": "title", "value": "x"}]},
        {
            "schemas": [PATCH_SCHEMA, "urn:other"],
            "Operations": [{"op": "add", "path": "title", "value": "x"}],
        },
    ],
    ids=["schemas-missing", "schemas-string", "keys-any-case", "extra-schema"],
)
def test_validate_is_lenient_about_schemas_and_key_case(request_body: dict[str, Any]) -> None:
    assert validate_patch_request(request_body) == [{"op": "add", "path": "title", "value": "x"}]


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        (None, InvalidSyntax),
        ([], InvalidSyntax),
        ("Operations", InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA]}, InvalidSyntax),
        ({"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "a", "value": 1}]}, InvalidSyntax),
        ({"schemas": 5, "Operations": [{"op": "add", "path": "a", "value": 1}]}, InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA], "Operations": []}, InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA], "Operations": {"op": "add"}}, InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA], "Operations": ["add"]}, InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"path": "title", "value": "x"}]}, InvalidSyntax),
        (
            {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "merge", "path": "title", "value": 1}]},
            InvalidSyntax,
        ),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": 1, "path": "title", "value": 1}]}, InvalidSyntax),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "title"}]}, InvalidValue),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "title"}]}, InvalidValue),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": 5, "value": 1}]}, InvalidPath),
    ],
    ids=[
        "null",
        "array",
        "string",
        "no-operations",
        "wrong-schema",
        "schemas-number",
        "empty-operations",
        "operations-object",
        "operation-string",
        "op-missing",
        "op-unknown",
        "op-number",
        "add-without-value",
        "replace-without-value",
        "path-number",
    ],
)
def test_validate_rejects_malformed_bodies(request_body: Any, error: type[SCIMError]) -> None:
    with pytest.raises(error) as caught:
        validate_patch_request(request_body)
    assert type(caught.value) is error
    assert caught.value.detail


# ------------------------------------------------------------------------------ op case (R13, R70)


@pytest.mark.parametrize("op", ["Add", "add", "ADD", "Replace", "replace", "REPLACE", "rEpLaCe"])
def test_op_is_case_insensitive_for_add_and_replace(op: str) -> None:
    assert patch_user(USER, {"op": op, "path": "nickName", "value": "Babs"})["nickName"] == "Babs"


@pytest.mark.parametrize("op", ["Remove", "remove", "REMOVE"])
def test_op_is_case_insensitive_for_remove(op: str) -> None:
    assert "title" not in patch_user(USER, {"op": op, "path": "title"})


# ------------------------------------------------------------------------------ simple paths (R49)


@pytest.mark.parametrize(
    ("path", "value", "key", "expected"),
    [
        ("userName", "new@contoso.com", "userName", "new@contoso.com"),
        ("displayName", "Pvlo", "displayName", "Pvlo"),
        ("nickName", "Babs", "nickName", "Babs"),
        ("title", "Boss", "title", "Boss"),
        ("externalId", "Eqpj", "externalId", "Eqpj"),
        ("preferredLanguage", "fr-FR", "preferredLanguage", "fr-FR"),
        ("profileUrl", "https://p/alice", "profileUrl", "https://p/alice"),
        ("userType", "Employee", "userType", "Employee"),
        ("locale", "en-GB", "locale", "en-GB"),
        ("timezone", "Europe/Paris", "timezone", "Europe/Paris"),
        ("active", False, "active", False),
        ("USERNAME", "upper@contoso.com", "userName", "upper@contoso.com"),
        ("displayname", "lower", "displayName", "lower"),
        ("ExternalID", "mixed", "externalId", "mixed"),
        (f"{CORE}:userName", "urn@contoso.com", "userName", "urn@contoso.com"),
        (f"{CORE.upper()}:TITLE", "shouty", "title", "shouty"),
    ],
)
@pytest.mark.parametrize("op", ["Replace", "Add"])
def test_simple_paths_set_the_attribute_with_canonical_casing(
    op: str, path: str, value: Any, key: str, expected: Any
) -> None:
    result = patch_user(USER, {"op": op, "path": path, "value": value})
    assert result[key] == expected
    assert without(result, key) == without(USER, key)
    assert not any(k != key and k.lower() == key.lower() for k in result)


def test_replace_external_id_keeps_id() -> None:
    result = patch_user(USER, {"op": "Replace", "path": "externalId", "value": "new-ext"})
    assert result["id"] == USER["id"]
    assert result["externalId"] == "new-ext"


# ------------------------------------------------------------------------------ sub-attribute paths


@pytest.mark.parametrize(
    ("path", "sub"),
    [
        ("name.givenName", "givenName"),
        ("name.familyName", "familyName"),
        ("name.formatted", "formatted"),
        ("name.middleName", "middleName"),
        ("Name.GivenName", "givenName"),
        ("NAME.FAMILYNAME", "familyName"),
        (f"{CORE}:name.honorificPrefix", "honorificPrefix"),
    ],
)
def test_sub_attribute_paths_change_only_that_sub_attribute(path: str, sub: str) -> None:
    result = patch_user(USER, {"op": "Replace", "path": path, "value": "Changed"})
    assert result["name"] == {**USER["name"], sub: "Changed"}
    assert without(result, "name") == without(USER, "name")


def test_sub_attribute_add_creates_the_complex_attribute() -> None:
    result = patch_user(BARE_USER, {"op": "add", "path": "name.givenName", "value": "Bob"})
    assert result["name"] == {"givenName": "Bob"}


@pytest.mark.parametrize("op", ["add", "replace"])
def test_complex_value_merges_sub_attributes(op: str) -> None:
    result = patch_user(USER, {"op": op, "path": "name", "value": {"GivenName": "Al", "middleName": "J"}})
    assert result["name"] == {
        "formatted": "Alice Smith",
        "familyName": "Smith",
        "givenName": "Al",
        "middleName": "J",
    }


# ------------------------------------------------------------------------------ value-filter paths


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        (
            'emails[type eq "work"].value',
            "new@contoso.com",
            "emails",
            [
                {"value": "new@contoso.com", "type": "work", "primary": True},
                {"value": "alice@home.example", "type": "home"},
            ],
        ),
        (
            'emails[type eq "WORK"].value',
            "case@contoso.com",
            "emails",
            [
                {"value": "case@contoso.com", "type": "work", "primary": True},
                {"value": "alice@home.example", "type": "home"},
            ],
        ),
        (
            'EMAILS[TYPE EQ "home"].VALUE',
            "h@home.example",
            "emails",
            [
                {"value": "alice@contoso.com", "type": "work", "primary": True},
                {"value": "h@home.example", "type": "home"},
            ],
        ),
        (
            'emails[value eq "ALICE@home.example"].primary',
            "True",
            "emails",
            [
                {"value": "alice@contoso.com", "type": "work", "primary": False},
                {"value": "alice@home.example", "type": "home", "primary": True},
            ],
        ),
        (
            'phoneNumbers[type eq "work"].value',
            "+1 555 0199",
            "phoneNumbers",
            [{"value": "+1 555 0199", "type": "work"}],
        ),
        (
            'phoneNumbers[type eq "mobile"].value',
            "+1 555 0111",
            "phoneNumbers",
            [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0111", "type": "mobile"}],
        ),
        (
            'addresses[type eq "work"].locality',
            "Redmond",
            "addresses",
            [{"locality": "Redmond", "country": "US", "type": "work"}],
        ),
        (
            'addresses[type eq "other"].formatted',
            "18/2111",
            "addresses",
            [
                {"locality": "Seattle", "country": "US", "type": "work"},
                {"formatted": "18/2111", "type": "other"},
            ],
        ),
        (
            'emails[type eq "work"]',
            {"value": "whole@contoso.com", "display": "Alice"},
            "emails",
            [
                {"value": "whole@contoso.com", "type": "work", "primary": True, "display": "Alice"},
                {"value": "alice@home.example", "type": "home"},
            ],
        ),
        (
            'emails[type eq "other"]',
            {"value": "other@contoso.com"},
            "emails",
            [*USER["emails"], {"value": "other@contoso.com", "type": "other"}],
        ),
    ],
)
@pytest.mark.parametrize("op", ["Replace", "Add"])
def test_value_filter_paths_touch_only_matching_elements(
    op: str, path: str, value: Any, attribute: str, expected: list[dict[str, Any]]
) -> None:
    result = patch_user(USER, {"op": op, "path": path, "value": value})
    assert result[attribute] == expected
    assert without(result, attribute) == without(USER, attribute)


@pytest.mark.parametrize(
    ("path", "attribute", "created"),
    [
        ('emails[type eq "work"].value', "emails", {"value": "X", "type": "work"}),
        ('phoneNumbers[type eq "fax"].value', "phoneNumbers", {"value": "X", "type": "fax"}),
        ('addresses[type eq "work"].streetAddress', "addresses", {"streetAddress": "X", "type": "work"}),
        ('addresses[type eq "work"].postalCode', "addresses", {"postalCode": "X", "type": "work"}),
        ('roles[primary eq "True"].value', "roles", {"value": "X", "primary": True}),
        (
            'emails[type eq "work" and primary eq true].value',
            "emails",
            {"value": "X", "type": "work", "primary": True},
        ),
        ("emails.value", "emails", {"value": "X"}),
    ],
)
@pytest.mark.parametrize("op", ["Add", "Replace"])
def test_value_filter_path_creates_the_missing_element(
    op: str, path: str, attribute: str, created: dict
) -> None:
    """R50 / C35: no work email yet → one is created with `type` taken from the filter."""
    result = patch_user(BARE_USER, {"op": op, "path": path, "value": "X"})
    assert result[attribute] == [created]


def test_add_work_email_on_user_without_emails_exact_shape() -> None:
    result = patch_user(BARE_USER, {"op": "Add", "path": 'emails[type eq "work"].value', "value": "w@x.com"})
    assert result["emails"] == [{"type": "work", "value": "w@x.com"}]


@pytest.mark.parametrize(
    "path",
    [
        'emails[type ne "work"].value',
        'emails[type eq "work" or type eq "home"].value',
        'emails[value co "@"].value',
        "emails[type pr].value",
        'emails[not (type eq "work")].value',
    ],
)
def test_filter_that_names_no_single_element_and_matches_nothing_is_no_target(path: str) -> None:
    with pytest.raises(NoTarget):
        patch_user(BARE_USER, {"op": "replace", "path": path, "value": "x@y"})


@pytest.mark.parametrize(
    ("value_filter", "matched"),
    [
        ('type eq "work"', ["a@work.example"]),
        ('type eq "Work"', ["a@work.example"]),
        ('type ne "work"', ["b@home.example", "c@other.example"]),
        ('value co "HOME"', ["b@home.example"]),
        ('value sw "c@"', ["c@other.example"]),
        ('value ew ".EXAMPLE"', ["a@work.example", "b@home.example", "c@other.example"]),
        ("display pr", ["c@other.example"]),
        ('value gt "b"', ["b@home.example", "c@other.example"]),
        ('value ge "b@home.example"', ["b@home.example", "c@other.example"]),
        ('value lt "b"', ["a@work.example"]),
        ('value le "B@HOME.EXAMPLE"', ["a@work.example", "b@home.example"]),
        ('type eq "work" or type eq "home"', ["a@work.example", "b@home.example"]),
        ('type eq "work" and primary eq true', ["a@work.example"]),
        ('type eq "home" and primary eq true', []),
        ('not (type eq "work")', ["b@home.example", "c@other.example"]),
        ('(type eq "work" or type eq "home") and not (value sw "a")', ["b@home.example"]),
        ('type eq "other" OR primary EQ "True"', ["a@work.example", "c@other.example"]),
        ("type eq home", ["b@home.example"]),
        ("primary eq false", []),
        ("display eq null", ["a@work.example", "b@home.example"]),
        ('value eq "a@work.example" and type eq "home"', []),
    ],
)
def test_value_filter_grammar_selects_elements(value_filter: str, matched: list[str]) -> None:
    document = {
        **BARE_USER,
        "emails": [
            {"value": "a@work.example", "type": "work", "primary": True},
            {"value": "b@home.example", "type": "home"},
            {"value": "c@other.example", "type": "other", "display": "C"},
        ],
    }
    result = patch_user(document, {"op": "remove", "path": f"emails[{value_filter}]"})
    remaining = [e["value"] for e in result.get("emails", [])]
    assert sorted(set(e["value"] for e in document["emails"]) - set(remaining)) == matched


def test_filter_string_with_escaped_quote_and_bracket() -> None:
    document = {
        **BARE_USER,
        "emails": [{"value": 'odd"]@x', "type": "work"}, {"value": "n@x", "type": "home"}],
    }
    result = patch_user(document, {"op": "remove", "path": r'emails[value eq "odd\"]@x"]'})
    assert result["emails"] == [{"value": "n@x", "type": "home"}]


# ------------------------------------------------------------------------------ URN-qualified paths


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{ENT}:department", "department"),
        (f"{ENT}:employeeNumber", "employeeNumber"),
        (f"{ENT}:costCenter", "costCenter"),
        (f"{ENT}:organization", "organization"),
        (f"{ENT}:division", "division"),
        (f"{ENT}:DEPARTMENT", "department"),
        (f"{ENT.lower()}:department", "department"),
        ("department", "department"),
        ("employeeNumber", "employeeNumber"),
    ],
)
@pytest.mark.parametrize("op", ["Add", "Replace"])
def test_enterprise_paths(op: str, path: str, key: str) -> None:
    result = patch_user(BARE_USER, {"op": op, "path": path, "value": "Retail"})
    assert result[ENT] == {key: "Retail"}
    assert result["schemas"] == [USER_SCHEMA, ENTERPRISE_SCHEMA]
    assert path not in result


def test_enterprise_path_keeps_other_extension_attributes() -> None:
    result = patch_user(USER, {"op": "Add", "path": f"{ENT}:department", "value": "Retail"})
    assert result[ENT] == {**USER[ENT], "department": "Retail"}


def test_whole_extension_path_merges_and_removes() -> None:
    merged = patch_user(
        USER, {"op": "replace", "path": ENT, "value": {"costCenter": "CC1", "department": "Ops"}}
    )
    assert merged[ENT] == {**USER[ENT], "costCenter": "CC1", "department": "Ops"}
    removed = patch_user(USER, {"op": "remove", "path": ENT})
    assert ENT not in removed
    assert removed["schemas"] == [USER_SCHEMA]


@pytest.mark.parametrize("op", ["add", "replace"])
def test_extension_object_may_carry_its_schemas(op: str) -> None:
    """A client serialising the extension object whole (scim2-models does) includes `schemas` in it."""
    value = {"schemas": [ENTERPRISE_SCHEMA], "department": "Ops"}
    for operation in ({"op": op, "path": ENT, "value": value}, {"op": op, "value": {ENT: value}}):
        result = patch_user(BARE_USER, operation)
        assert result[ENT] == {"department": "Ops"}


@pytest.mark.parametrize("value", [None, "", []])
def test_replace_whole_extension_with_nothing_removes_it(value: Any) -> None:
    result = patch_user(USER, {"op": "replace", "path": ENT, "value": value})
    assert ENT not in result
    assert result["schemas"] == [USER_SCHEMA]


# ------------------------------------------------------------------------------ add semantics, idempotency


def test_add_on_single_valued_attribute_replaces() -> None:
    assert patch_user(USER, {"op": "add", "path": "title", "value": "CTO"})["title"] == "CTO"


def test_add_to_multi_valued_appends() -> None:
    result = patch_user(
        USER, {"op": "add", "path": "emails", "value": [{"value": "new@x.com", "type": "other"}]}
    )
    assert result["emails"] == [*USER["emails"], {"value": "new@x.com", "type": "other"}]


@pytest.mark.parametrize(
    "value",
    [
        [{"value": "alice@home.example", "type": "home"}],
        [{"value": "ALICE@HOME.EXAMPLE", "type": "Home"}],
        {"value": "alice@home.example", "type": "home"},
        [{"value": "alice@home.example", "type": "home"}, {"value": "alice@home.example", "type": "home"}],
    ],
)
def test_add_of_an_existing_value_does_not_duplicate(value: Any) -> None:
    result = patch_user(USER, {"op": "add", "path": "emails", "value": value})
    assert len(result["emails"]) == 2
    assert patch_user(result, {"op": "add", "path": "emails", "value": value}) == result


def test_add_with_primary_makes_other_values_non_primary() -> None:
    result = patch_user(
        USER,
        {"op": "add", "path": "emails", "value": [{"value": "p@x.com", "type": "other", "primary": "true"}]},
    )
    assert [e.get("primary") for e in result["emails"]] == [False, None, True]


def test_replace_multi_valued_without_filter_replaces_all() -> None:
    value = [{"value": "only@x.com", "type": "work", "primary": True}]
    assert patch_user(USER, {"op": "replace", "path": "emails", "value": value})["emails"] == value


def test_two_primaries_in_one_value_are_refused() -> None:
    value = [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}]
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "replace", "path": "emails", "value": value})


# ------------------------------------------------------------- RFC 7643 §4.1 attributes once refused


@pytest.mark.parametrize("op", ["add", "replace", "Add", "Replace"])
@pytest.mark.parametrize("path", ["password", "PASSWORD", f"{CORE}:password"])
def test_password_is_a_patchable_path(op: str, path: str) -> None:
    """RFC 7643 §4.1.1: password is writeOnly, so add and replace set it; the engine hands it on to
    be hashed (the document it patched never held one, returned "never")."""
    assert patch_user(USER, {"op": op, "path": path, "value": "n3w passw0rd"})["password"] == "n3w passw0rd"


def test_password_in_a_pathless_value() -> None:
    assert patch_user(USER, {"op": "replace", "value": {"password": "pw", "title": "T"}})["password"] == "pw"


def test_remove_password_never_fails() -> None:
    """A document read back never holds the password, so removing it is a no-op, not a noTarget."""
    assert "password" not in patch_user(USER, {"op": "remove", "path": "password"})


@pytest.mark.parametrize("attribute", ["ims", "photos", "entitlements", "x509Certificates"])
def test_rfc7643_multi_valued_attributes_take_add_replace_and_remove(attribute: str) -> None:
    """RFC 7643 §4.1.2: ims, photos, entitlements and x509Certificates patch like emails: add
    appends, a value filter path changes one element, replace without a filter replaces the list,
    remove with a filter removes the match and without one the attribute."""
    first = {"value": "first-value", "type": "work"}
    second = {"value": "second-value", "type": "work"}
    added = patch_user(BARE_USER, {"op": "add", "path": attribute, "value": [first, second]})
    assert added[attribute] == [first, second]
    changed = patch_user(
        added, {"op": "replace", "path": f'{attribute}[value eq "second-value"].value', "value": "changed"}
    )
    assert changed[attribute] == [first, {"value": "changed", "type": "work"}]
    replaced = patch_user(changed, {"op": "replace", "path": attribute, "value": [second]})
    assert replaced[attribute] == [second]
    removed_one = patch_user(changed, {"op": "remove", "path": f'{attribute}[value eq "first-value"]'})
    assert removed_one[attribute] == [{"value": "changed", "type": "work"}]
    assert attribute not in patch_user(changed, {"op": "remove", "path": attribute})


def test_certificates_compare_case_exactly_and_ims_do_not() -> None:
    """x509Certificates.value is binary, caseExact (RFC 7643 §2.3.6): a re-sent certificate in other
    case is another certificate. An im in other case is the same im, merged (caseExact false)."""
    document = patch_user(
        BARE_USER,
        {"op": "add", "path": "x509Certificates", "value": [{"value": "MIIabc"}]},
        {"op": "add", "path": "ims", "value": [{"value": "babs", "type": "skype"}]},
    )
    result = patch_user(
        document,
        {"op": "add", "path": "x509Certificates", "value": [{"value": "MIIABC"}]},
        {"op": "add", "path": "ims", "value": [{"value": "BABS", "type": "Skype"}]},
    )
    assert result["x509Certificates"] == [{"value": "MIIabc"}, {"value": "MIIABC"}]
    assert len(result["ims"]) == 1


def test_two_values_of_one_type_may_be_added() -> None:
    """RFC 7643 §2.4 limits only `primary`: a second work email is appended, not refused."""
    result = patch_user(
        USER, {"op": "add", "path": "emails", "value": [{"value": "second@contoso.com", "type": "work"}]}
    )
    assert [e["value"] for e in email(result, "work")] == ["alice@contoso.com", "second@contoso.com"]


SIX_OPERATIONS = [
    {"op": "Replace", "path": "displayName", "value": "Pvlo"},
    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
    {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
    {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
    {"op": "Replace", "path": "externalId", "value": "Eqpj"},
    {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "Eqpj"},
]


@pytest.mark.parametrize("document", [USER, BARE_USER], ids=["full-user", "bare-user"])
def test_six_operation_patch_is_applied_in_order_and_idempotent(document: dict[str, Any]) -> None:
    """C47/C48: the [COMPAT] "without flag" example, twice → identical documents."""
    once = patch_user(document, *SIX_OPERATIONS)
    twice = patch_user(once, *SIX_OPERATIONS)
    assert once == twice
    assert once["displayName"] == "Pvlo"
    assert email(once, "work")[0]["value"] == "TestBcwqnm@test.microsoft.com"
    assert len(email(once, "work")) == 1
    assert once["name"]["givenName"] == "Gtfd"
    assert once["name"]["familyName"] == "Pkqf"
    assert once["externalId"] == "Eqpj"
    assert once[ENT]["employeeNumber"] == "Eqpj"


def test_operations_apply_in_order() -> None:
    result = patch_user(
        BARE_USER,
        {"op": "add", "path": "title", "value": "first"},
        {"op": "replace", "path": "title", "value": "second"},
        {"op": "remove", "path": "title"},
        {"op": "add", "path": "title", "value": "third"},
    )
    assert result["title"] == "third"


@pytest.mark.parametrize(
    "add_operation",
    [
        {"op": "Add", "path": "roles", "value": [{"value": "Admin", "type": "T"}]},
        {"op": "Add", "path": "phoneNumbers", "value": [{"value": "+1", "type": "mobile"}]},
        {"op": "Add", "path": "addresses", "value": [{"locality": "Oslo", "type": "home"}]},
        {"op": "add", "value": {"emails": [{"value": "x@y", "type": "other"}]}},
        {"op": "Add", "path": 'emails[type eq "other"].value', "value": "o@x"},
    ],
)
def test_repeated_add_is_idempotent(add_operation: dict[str, Any]) -> None:
    once = patch_user(USER, add_operation)
    assert patch_user(once, add_operation) == once


# ------------------------------------------------------------------------------ path-less add/replace (R72)


@pytest.mark.parametrize("op", ["replace", "add", "Replace", "Add"])
@pytest.mark.parametrize(
    "value",
    [
        {"name.givenName": "Kkom", "title": "T", f"{ENT}:employeeNumber": "Aklq"},
        {"name": {"givenName": "Kkom"}, "TITLE": "T", ENT: {"employeeNumber": "Aklq"}},
        {"Name.GivenName": "Kkom", f"{CORE}:title": "T", "employeeNumber": "Aklq"},
        [{"name.givenName": "Kkom", "title": "T", f"{ENT}:employeeNumber": "Aklq"}],
    ],
    ids=["dotted-and-urn", "nested", "mixed-case-and-core-urn", "single-element-array"],
)
def test_pathless_value_keys_become_nested_attributes(op: str, value: Any) -> None:
    result = patch_user(USER, {"op": op, "value": value})
    assert result["name"] == {**USER["name"], "givenName": "Kkom"}
    assert result["title"] == "T"
    assert result[ENT] == {**USER[ENT], "employeeNumber": "Aklq"}
    assert not [key for key in result if "." in key and not key.startswith("urn:")]
    assert not [key for key in result if key.startswith(ENT + ":")]


def test_pathless_manager_key_and_extension_object_merge() -> None:
    result = patch_user(
        BARE_USER,
        {"op": "add", "value": {f"{ENT}:manager": "m-9"}},
        {"op": "add", "value": {ENT: {"department": "Ops", "manager": {"value": "m-9"}}}},
    )
    assert result[ENT] == {"manager": {"value": "m-9"}, "department": "Ops"}
    assert result["schemas"] == [USER_SCHEMA, ENTERPRISE_SCHEMA]


def test_pathless_value_ignores_schemas_meta_and_unchanged_id() -> None:
    value = {"schemas": [USER_SCHEMA], "meta": {"resourceType": "User"}, "id": USER["id"], "title": "T"}
    result = patch_user(USER, {"op": "replace", "value": value})
    assert result == {**USER, "title": "T"}


def test_pathless_value_may_use_value_filter_keys() -> None:
    result = patch_user(BARE_USER, {"op": "add", "value": {'emails[type eq "work"].value': "w@x"}})
    assert result["emails"] == [{"value": "w@x", "type": "work"}]


@pytest.mark.parametrize("value", ["x", 5, None, True, ["a", "b"]])
def test_pathless_value_must_be_an_object(value: Any) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "replace", "value": value})


# ------------------------------------------------------------------------------ booleans (R43, R71)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("False", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (" False ", False),
        ([{"value": "False"}], False),
        ({"value": "true"}, True),
        ([True], True),
    ],
)
@pytest.mark.parametrize("op", ["Replace", "add"])
def test_active_accepts_booleans_and_boolean_strings(op: str, value: Any, expected: bool) -> None:
    result = patch_user(USER, {"op": op, "path": "active", "value": value})
    assert result["active"] is expected


@pytest.mark.parametrize(("value", "expected"), [("False", False), ("true", True), (False, False)])
def test_active_in_pathless_object(value: Any, expected: bool) -> None:
    assert patch_user(USER, {"op": "replace", "value": {"active": value}})["active"] is expected


@pytest.mark.parametrize(
    "value", ["yes", "0", "1", "no", "Truee", 1, 0, 1.5, {"a": 1}, [{"value": "x"}], ["True", "False"]]
)
def test_active_rejects_non_booleans(value: Any) -> None:
    with pytest.raises(InvalidValue) as caught:
        patch_user(USER, {"op": "Replace", "path": "active", "value": value})
    assert "active" in caught.value.detail


@pytest.mark.parametrize("value", [None, "", []])
def test_active_cannot_be_cleared(value: Any) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "Replace", "path": "active", "value": value})
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "remove", "path": "active"})


@pytest.mark.parametrize("primary", ["True", "true", True])
def test_primary_string_booleans_in_values(primary: Any) -> None:
    value = [{"value": "n@x", "type": "other", "primary": primary}]
    result = patch_user(BARE_USER, {"op": "add", "path": "emails", "value": value})
    assert result["emails"] == [{"value": "n@x", "type": "other", "primary": True}]
    assert json.loads(json.dumps(result))["emails"][0]["primary"] is True


def test_primary_non_boolean_is_invalid() -> None:
    with pytest.raises(InvalidValue):
        patch_user(
            BARE_USER, {"op": "add", "path": "emails", "value": [{"value": "n@x", "primary": "maybe"}]}
        )


# ------------------------------------------------------------------------------ value shapes (R74)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Babs", "Babs"),
        ([{"value": "Babs"}], "Babs"),
        ({"value": "Babs"}, "Babs"),
        (["Babs"], "Babs"),
        ([{"$ref": None, "value": "Babs"}], "Babs"),
        (12345, "12345"),
    ],
)
def test_single_valued_attributes_accept_scalar_array_and_object(value: Any, expected: str) -> None:
    assert patch_user(USER, {"op": "Add", "path": "nickName", "value": value})["nickName"] == expected


@pytest.mark.parametrize("value", [True, {"x": 1}, ["a", "b"], [{"value": "a"}, {"value": "b"}], [[1]]])
def test_single_valued_string_rejects_wrong_types(value: Any) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "replace", "path": "title", "value": value})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "just a string"),
        ("name", 5),
        ("emails", [5.5, True]),
        ("emails", [["nested"]]),
        ('emails[type eq "work"].primary', "sometimes"),
        ("name.givenName", {"first": "x"}),
    ],
)
def test_wrong_value_types_are_invalid_value(path: str, value: Any) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "replace", "path": path, "value": value})


# ------------------------------------------------------------------------------ manager (R54, C43–C45)


@pytest.mark.parametrize("path", ["manager", f"{ENT}:manager", f"{ENT}:Manager", "MANAGER", "manager.value"])
@pytest.mark.parametrize(
    "value",
    [
        "00aa00aa-bb11",
        {"value": "00aa00aa-bb11"},
        [{"$ref": "http://x/scim/Users/00aa00aa-bb11", "value": "00aa00aa-bb11"}],
        {"value": "00aa00aa-bb11", "$ref": "http://x", "displayName": "Boss"},
        [{"value": "00aa00aa-bb11"}],
    ],
)
@pytest.mark.parametrize("op", ["Add", "replace"])
def test_manager_shapes(op: str, path: str, value: Any) -> None:
    for document in (USER, BARE_USER):
        result = patch_user(document, {"op": op, "path": path, "value": value})
        assert result[ENT]["manager"] == {"value": "00aa00aa-bb11"}
        assert "manager" not in result


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Replace", "path": f"{ENT}:manager", "value": ""},
        {"op": "Replace", "path": f"{ENT}:manager", "value": None},
        {"op": "Replace", "path": "manager", "value": {"value": ""}},
        {"op": "Replace", "path": "manager", "value": []},
        {"op": "Remove", "path": f"{ENT}:manager"},
        {"op": "remove", "path": "manager"},
        {"op": "remove", "path": "manager.value"},
        {"op": "replace", "value": {f"{ENT}:manager": ""}},
    ],
)
def test_manager_clear(operation: dict[str, Any]) -> None:
    result = patch_user(USER, operation)
    assert result[ENT] == {"employeeNumber": "42", "department": "R&D"}


def test_manager_clear_removes_empty_extension_and_schema() -> None:
    document = patch_user(BARE_USER, {"op": "add", "path": "manager", "value": "m-1"})
    cleared = patch_user(document, {"op": "Replace", "path": f"{ENT}:manager", "value": ""})
    assert cleared == BARE_USER


def test_manager_set_change_clear_sequence() -> None:
    """The Logic App SCIM_Update_Manager_Test: set (Add), change (Replace), remove (Replace with "")."""
    first = patch_user(BARE_USER, {"op": "Add", "path": f"{ENT}:manager", "value": "m-1"})
    second = patch_user(first, {"op": "Replace", "path": f"{ENT}:manager", "value": "m-2"})
    third = patch_user(second, {"op": "Replace", "path": f"{ENT}:manager", "value": ""})
    assert (first[ENT]["manager"], second[ENT]["manager"], third.get(ENT)) == (
        {"value": "m-1"},
        {"value": "m-2"},
        None,
    )


@pytest.mark.parametrize("value", [True, {"value": {"nested": 1}}, {"id": "x"}, ["a", "b"]])
def test_manager_rejects_unusable_values(value: Any) -> None:
    with pytest.raises(SCIMError) as caught:
        patch_user(USER, {"op": "replace", "path": "manager", "value": value})
    assert type(caught.value) in (InvalidValue, InvalidPath)


def test_manager_display_name_path_is_ignored() -> None:
    assert patch_user(USER, {"op": "replace", "path": "manager.displayName", "value": "X"}) == USER


# ------------------------------------------------------------------------------ clearing (C50)


@pytest.mark.parametrize("value", ["", None, []])
@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("title", lambda d: "title" not in d),
        ("externalId", lambda d: "externalId" not in d),
        ("displayName", lambda d: "displayName" not in d),
        ("preferredLanguage", lambda d: "preferredLanguage" not in d),
        ("name.givenName", lambda d: "givenName" not in d["name"] and d["name"]["familyName"] == "Smith"),
        ("name", lambda d: "name" not in d),
        (f"{ENT}:department", lambda d: "department" not in d[ENT]),
        ("emails", lambda d: "emails" not in d),
        (
            'emails[type eq "work"].value',
            lambda d: d["emails"] == [{"value": "alice@home.example", "type": "home"}],
        ),
        (
            'emails[type eq "work"]',
            lambda d: d["emails"] == [{"value": "alice@home.example", "type": "home"}],
        ),
        ('phoneNumbers[type eq "work"].value', lambda d: "phoneNumbers" not in d),
        (
            'addresses[type eq "work"].locality',
            lambda d: d["addresses"] == [{"country": "US", "type": "work"}],
        ),
    ],
)
def test_replace_with_empty_or_null_clears(path: str, check: Any, value: Any) -> None:
    result = patch_user(USER, {"op": "Replace", "path": path, "value": value})
    assert check(result)


@pytest.mark.parametrize("value", ["", None])
def test_pathless_empty_values_clear(value: Any) -> None:
    result = patch_user(USER, {"op": "replace", "value": {"title": value, "name.givenName": value}})
    assert "title" not in result
    assert result["name"] == {"formatted": "Alice Smith", "familyName": "Smith"}


@pytest.mark.parametrize("value", ["", None, []])
def test_user_name_cannot_be_cleared(value: Any) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "replace", "path": "userName", "value": value})


def test_clearing_an_absent_attribute_is_a_no_op() -> None:
    assert patch_user(BARE_USER, {"op": "replace", "path": "title", "value": ""}) == BARE_USER
    assert (
        patch_user(BARE_USER, {"op": "replace", "path": 'emails[type eq "work"].value', "value": ""})
        == BARE_USER
    )


# ------------------------------------------------------------------------------ roles (R55, C46)


ENTRA_ROLE_TEXT = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([{"value": ENTRA_ROLE_TEXT}], [{"value": "25", "display": "Role1234"}]),
        (
            [{"value": '{"id":"x","value":"Admin","displayName":"Admin"}'}],
            [{"value": "Admin", "display": "Admin"}],
        ),
        (
            [{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}],
            [{"value": "Admin", "type": "WindowsAzureActiveDirectoryRole", "primary": True}],
        ),
        (
            [{"value": ENTRA_ROLE_TEXT, "primary": "True"}],
            [{"value": "25", "display": "Role1234", "primary": True}],
        ),
        ("Reader", [{"value": "Reader"}]),
        (ENTRA_ROLE_TEXT, [{"value": "25", "display": "Role1234"}]),
        ([{"value": "{not json"}], [{"value": "{not json"}]),
        ([{"value": "{}"}], [{"value": "{}"}]),
        ([{"displayName": "OnlyName", "id": "x"}], [{"value": "OnlyName", "display": "OnlyName"}]),
        ([{"value": 7, "primary": "maybe", "odd": [1]}], [{"value": "7"}]),
        ([None, [], {"id": "no value"}, True], []),
    ],
)
@pytest.mark.parametrize("op", ["Add", "replace"])
def test_roles_are_decoded_and_never_fail(op: str, value: Any, expected: list[dict[str, Any]]) -> None:
    result = patch_user(BARE_USER, {"op": op, "path": "roles", "value": value})
    assert result.get("roles", []) == expected


def test_roles_assertive_replace_then_filter_path() -> None:
    full = [
        {"primary": True, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin", "value": "Admin"},
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "User", "value": "User"},
    ]
    replaced = patch_user(BARE_USER, {"op": "replace", "path": "roles", "value": full})
    assert replaced["roles"] == [
        {"value": "Admin", "display": "Admin", "type": "WindowsAzureActiveDirectoryRole", "primary": True},
        {"value": "User", "display": "User", "type": "WindowsAzureActiveDirectoryRole", "primary": False},
    ]
    changed = patch_user(
        replaced, {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": ENTRA_ROLE_TEXT}
    )
    assert changed["roles"][0]["value"] == "25"
    ignored = patch_user(
        replaced, {"op": "Replace", "path": 'roles[primary eq "True"].primary', "value": "perhaps"}
    )
    assert ignored == replaced


# ------------------------------------------------------------------------------ remove


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("title", lambda d: "title" not in d),
        ("nickName", lambda d: d == USER),
        ("name.givenName", lambda d: d["name"] == {"formatted": "Alice Smith", "familyName": "Smith"}),
        ("name", lambda d: "name" not in d),
        ("emails", lambda d: "emails" not in d),
        (
            'emails[type eq "work"]',
            lambda d: d["emails"] == [{"value": "alice@home.example", "type": "home"}],
        ),
        ('emails[type eq "nothing"]', lambda d: d == USER),
        (
            'emails[type eq "work"].value',
            lambda d: d["emails"] == [{"value": "alice@home.example", "type": "home"}],
        ),
        (
            'emails[type eq "work"].primary',
            lambda d: d["emails"] == [{"value": "alice@contoso.com", "type": "work"}, USER["emails"][1]],
        ),
        (
            "emails.type",
            lambda d: (
                d["emails"]
                == [{"value": "alice@contoso.com", "primary": True}, {"value": "alice@home.example"}]
            ),
        ),
        (
            'addresses[type eq "work"].locality',
            lambda d: d["addresses"] == [{"country": "US", "type": "work"}],
        ),
        ("addresses", lambda d: "addresses" not in d),
        ('phoneNumbers[type eq "work"]', lambda d: "phoneNumbers" not in d),
        (f"{ENT}:department", lambda d: d[ENT] == {"employeeNumber": "42", "manager": USER[ENT]["manager"]}),
        ("externalId", lambda d: "externalId" not in d),
    ],
)
def test_remove(path: str, check: Any) -> None:
    assert check(patch_user(USER, {"op": "remove", "path": path}))


def test_remove_drops_element_left_without_content() -> None:
    document = {**BARE_USER, "addresses": [{"locality": "Oslo", "type": "work"}]}
    result = patch_user(document, {"op": "remove", "path": 'addresses[type eq "work"].locality'})
    assert "addresses" not in result


@pytest.mark.parametrize(
    ("value", "remaining"),
    [
        ([{"value": "ALICE@home.example"}], ["alice@contoso.com"]),
        ({"value": "alice@contoso.com", "type": "work"}, ["alice@home.example"]),
        ("alice@contoso.com", ["alice@home.example"]),
        ([{"value": "nobody@x"}], ["alice@contoso.com", "alice@home.example"]),
        ([], None),
    ],
)
def test_remove_multi_valued_with_value_list_removes_only_those(
    value: Any, remaining: list[str] | None
) -> None:
    result = patch_user(USER, {"op": "remove", "path": "emails", "value": value})
    assert ([e["value"] for e in result["emails"]] if "emails" in result else None) == remaining


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(NoTarget):
        patch_user(USER, {"op": "remove"})
    with pytest.raises(NoTarget):
        patch_user(USER, {"op": "Remove", "path": "", "value": {"title": "x"}})


@pytest.mark.parametrize("path", ["userName", "USERNAME", f"{CORE}:userName"])
def test_remove_user_name_is_refused(path: str) -> None:
    with pytest.raises(InvalidValue):
        patch_user(USER, {"op": "remove", "path": path})


def test_remove_is_idempotent() -> None:
    operation = {"op": "remove", "path": 'emails[type eq "home"]'}
    once = patch_user(USER, operation)
    assert patch_user(once, operation) == once


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("path", "error", "mentions"),
    [
        ("favouriteColour", InvalidPath, "favouriteColour"),
        ("name.nickname", InvalidPath, "nickname"),
        ('emails[type eq "work"].colour', InvalidPath, "colour"),
        ('emails[colour eq "red"].value', InvalidPath, "colour"),
        ("userName.first", InvalidPath, "userName"),
        ('name[givenName eq "x"]', InvalidPath, "multi-valued"),
        ("members", InvalidPath, "members"),
        ("urn:ietf:params:scim:schemas:extension:custom:2.0:User:badge", InvalidPath, "URN"),
        (f"{GROUP_SCHEMA}:displayName", InvalidPath, GROUP_SCHEMA),
        (f"{CORE}:department", InvalidPath, "department"),
        (f"{ENT}:userName", InvalidPath, "userName"),
        (f"{ENT}:", InvalidPath, ""),
        (CORE, InvalidPath, ""),
        ("emails[", InvalidPath, "["),
        ('emails[type eq "work"', InvalidPath, "["),
        ("emails[]", InvalidPath, "empty"),
        ('emails[type eq "work"]]', InvalidPath, ""),
        ('emails[type eq "work"][x]', InvalidPath, ""),
        ('emails[type[x] eq "a"]', InvalidPath, "Nested"),
        ('emails[type xx "work"]', InvalidPath, "xx"),
        ("emails[type eq]", InvalidPath, "end"),
        ('emails[type eq "work" and]', InvalidPath, ""),
        ('emails[(type eq "work"]', InvalidPath, ""),
        ('emails[type eq "unterminated]', InvalidPath, ""),
        ('emails[type eq "bad \\q escape"]', InvalidPath, ""),
        ('emails[not type eq "work"]', InvalidPath, ""),
        ("emails[" + "(" * 40 + 'type eq "w"' + ")" * 40 + "]", InvalidPath, "deeply"),
        ("x" * 3000, InvalidPath, "longer"),
        ("name..givenName", InvalidPath, ""),
        ("name.", InvalidPath, ""),
        (".name", InvalidPath, ""),
        ("1name", InvalidPath, ""),
        ("na me", InvalidPath, ""),
        ("id", Mutability, "id"),
        ("ID", Mutability, "ID"),
        ("meta", Mutability, "meta"),
        ("meta.lastModified", Mutability, "meta"),
        ("schemas", Mutability, "schemas"),
        ("groups", Mutability, "groups"),
        (f"{CORE}:id", Mutability, "id"),
    ],
)
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_bad_paths(op: str, path: str, error: type[SCIMError], mentions: str) -> None:
    operation = {"op": op, "path": path, "value": "x"}
    with pytest.raises(error) as caught:
        apply_user_patch(USER, [operation])
    assert type(caught.value) is error
    assert mentions in caught.value.detail
    assert caught.value.detail.startswith(f"Operations[0] ({op} ")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"favouriteColour": "blue"}, InvalidPath),
        ({"name": {"nickname": "x"}}, InvalidPath),
        ({"emails": [{"value": "a@b", "colour": "red"}]}, InvalidPath),
        ({"id": "another-id"}, Mutability),
        ({"groups": [{"value": "g"}]}, Mutability),
        ({"urn:ietf:params:scim:schemas:extension:custom:2.0:User:badge": "x"}, InvalidPath),
        ({ENT: {"userName": "x"}}, InvalidPath),
        ({ENT: "not an object"}, InvalidValue),
    ],
)
def test_bad_pathless_values(value: dict[str, Any], error: type[SCIMError]) -> None:
    with pytest.raises(error):
        patch_user(USER, {"op": "add", "value": value})


def test_failing_operation_leaves_nothing_applied() -> None:
    """R51: op 3 fails → the caller gets the exception, the input is untouched, nothing is returned."""
    document = copy.deepcopy(USER)
    operations = [
        {"op": "replace", "path": "title", "value": "changed"},
        {"op": "add", "path": "emails", "value": [{"value": "n@x"}]},
        {"op": "replace", "path": "nonsense", "value": "x"},
    ]
    with pytest.raises(InvalidPath) as caught:
        apply_user_patch(document, operations)
    assert caught.value.detail.startswith("Operations[2] (replace nonsense)")
    assert document == USER


def test_apply_accepts_raw_operations_and_rejects_non_lists() -> None:
    result = apply_user_patch(USER, [{"OP": "Replace", "PATH": "title", "VALUE": "raw"}])
    assert result["title"] == "raw"
    with pytest.raises(InvalidSyntax):
        apply_user_patch(USER, {"op": "add"})  # type: ignore[arg-type]


def test_result_is_a_deep_copy() -> None:
    document = copy.deepcopy(USER)
    result = apply_user_patch(document, [{"op": "replace", "path": "nickName", "value": "n"}])
    result["name"]["givenName"] = "mutated"
    result["emails"][0]["value"] = "mutated"
    assert document == USER


def test_errors_carry_scim_type_and_status() -> None:
    with pytest.raises(InvalidPath) as caught:
        apply_user_patch(USER, [{"op": "add", "path": "nope", "value": 1}])
    assert caught.value.to_dict()["scimType"] == "invalidPath"
    assert caught.value.to_dict()["status"] == "400"


# ------------------------------------------------------------------------------ verbatim Entra examples


def test_entra_2_6_update_multi_and_single_valued() -> None:
    request_body = json.loads(
        r"""{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
        {"op": "Replace","path": "emails[type eq \"work\"].value","value": "updatedEmail@microsoft.com"},
        {"op": "Replace","path": "name.familyName","value": "updatedFamilyName"}
    ]
}"""
    )
    result = apply_user_patch(USER, validate_patch_request(request_body))
    assert result["emails"] == [
        {"value": "updatedEmail@microsoft.com", "type": "work", "primary": True},
        USER["emails"][1],
    ]
    assert result["name"] == {**USER["name"], "familyName": "updatedFamilyName"}


def test_entra_2_6_replace_user_name() -> None:
    request_body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "Replace",
                "path": "userName",
                "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com",
            }
        ],
    }
    result = apply_user_patch(BARE_USER, validate_patch_request(request_body))
    assert result == {**BARE_USER, "userName": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}


def test_entra_2_6_mixed_replace_and_add_from_real_traffic() -> None:
    request_body = json.loads(
        r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
 {"op":"Replace","path":"emails[type eq \"work\"].value","value":"AdeleV2@REDACTED.onmicrosoft.com"},
 {"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"18/2111"},
 {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}]}"""
    )
    result = apply_user_patch(BARE_USER, validate_patch_request(request_body))
    assert result["emails"] == [{"value": "AdeleV2@REDACTED.onmicrosoft.com", "type": "work"}]
    assert result["addresses"] == [{"formatted": "18/2111", "type": "work"}]
    assert result[ENT] == {"department": "Retail"}
    assert result["schemas"] == [USER_SCHEMA, ENTERPRISE_SCHEMA]


def test_entra_2_7_disable_user() -> None:
    request_body = {
        "Operations": [{"op": "Replace", "path": "active", "value": False}],
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    }
    assert apply_user_patch(USER, validate_patch_request(request_body))["active"] is False


def test_entra_2_9_manager_legacy_array() -> None:
    request_body = json.loads(
        """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Add","path":"manager","value":[{"$ref":"http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee","value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}"""
    )
    result = apply_user_patch(USER, validate_patch_request(request_body))
    assert result[ENT]["manager"] == {"value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}


def test_entra_2_9_manager_plain_string() -> None:
    request_body = json.loads(
        """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}]}"""
    )
    result = apply_user_patch(BARE_USER, validate_patch_request(request_body))
    assert result[ENT] == {"manager": {"value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}}


def test_entra_2_10_roles_stringified_json() -> None:
    request_body = json.loads(
        r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]}]}"""
    )
    result = apply_user_patch(BARE_USER, validate_patch_request(request_body))
    assert result["roles"] == [{"value": "25", "display": "Role1234"}]


def test_entra_2_11_group_display_name() -> None:
    request_body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "Replace",
                "path": "displayName",
                "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName",
            }
        ],
    }
    document, members = apply_group_patch(GROUP, validate_patch_request(request_body))
    assert document == {**GROUP, "displayName": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}
    assert members == []


def test_entra_2_11_add_and_remove_members() -> None:
    add = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
        ],
    }
    remove = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
        ],
    }
    assert apply_group_patch(GROUP, validate_patch_request(add)) == (
        GROUP,
        [MemberOperation("add", ["f648f8d5ea4e4cd38e9c"])],
    )
    assert apply_group_patch(GROUP, validate_patch_request(remove)) == (
        GROUP,
        [MemberOperation("remove", ["f648f8d5ea4e4cd38e9c"])],
    )


@pytest.mark.parametrize(
    "raw",
    [
        '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
        '"Operations":[{"op":"Replace","path":"active","value":"False"}]}',
        '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
        '"Operations":[{"op":"replace","path":"active","value":false}]}',
    ],
    ids=["without-flag", "with-flag"],
)
def test_compat_disable_user_both_dialects(raw: str) -> None:
    result = apply_user_patch(USER, validate_patch_request(json.loads(raw)))
    assert result == {**USER, "active": False}


@pytest.mark.parametrize(
    "operation",
    [{"op": "Add", "path": "nickName", "value": "Babs"}, {"op": "add", "path": "nickName", "value": "Babs"}],
    ids=["without-flag", "with-flag"],
)
def test_compat_add_single_value_string_both_dialects(operation: dict[str, Any]) -> None:
    assert patch_user(USER, operation) == {**USER, "nickName": "Babs"}


def test_compat_replace_multiple_attributes_without_flag() -> None:
    request_body = json.loads(
        r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
 {"op":"Replace","path":"displayName","value":"Pvlo"},
 {"op":"Replace","path":"emails[type eq \"work\"].value","value":"TestBcwqnm@test.microsoft.com"},
 {"op":"Replace","path":"name.givenName","value":"Gtfd"},
 {"op":"Replace","path":"name.familyName","value":"Pkqf"},
 {"op":"Replace","path":"externalId","value":"Eqpj"},
 {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}]}"""
    )
    result = apply_user_patch(USER, validate_patch_request(request_body))
    assert result == {
        **USER,
        "displayName": "Pvlo",
        "emails": [
            {"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": True},
            USER["emails"][1],
        ],
        "name": {**USER["name"], "givenName": "Gtfd", "familyName": "Pkqf"},
        "externalId": "Eqpj",
        ENT: {**USER[ENT], "employeeNumber": "Eqpj"},
    }


def test_compat_replace_multiple_attributes_with_flag() -> None:
    request_body = json.loads(
        r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
 {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
 {"op":"replace","value":{
   "displayName":"Bjfe",
   "name.givenName":"Kkom",
   "name.familyName":"Unua",
   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}"""
    )
    result = apply_user_patch(USER, validate_patch_request(request_body))
    assert result == {
        **USER,
        "displayName": "Bjfe",
        "emails": [
            {"value": "TestMhvaes@test.microsoft.com", "type": "work", "primary": True},
            USER["emails"][1],
        ],
        "name": {**USER["name"], "givenName": "Kkom", "familyName": "Unua"},
        ENT: {**USER[ENT], "employeeNumber": "Aklq"},
    }


def test_compat_remove_group_member_without_flag() -> None:
    request_body = json.loads(
        """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Remove","path":"members","value":[{"value":"u1091"}]}]}"""
    )
    assert apply_group_patch(GROUP, validate_patch_request(request_body)) == (
        GROUP,
        [MemberOperation("remove", ["u1091"])],
    )


def test_compat_remove_group_member_with_flag() -> None:
    request_body = json.loads(
        r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"remove","path":"members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]}"""
    )
    assert apply_group_patch(GROUP, validate_patch_request(request_body)) == (
        GROUP,
        [MemberOperation("remove", ["7f4bc1a3-285e-48ae-8202-5accb43efb0e"])],
    )


# ------------------------------------------------------------------------------ groups


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ({"op": "Replace", "path": "displayName", "value": "New"}, {**GROUP, "displayName": "New"}),
        ({"op": "add", "path": "DISPLAYNAME", "value": "New"}, {**GROUP, "displayName": "New"}),
        ({"op": "replace", "value": {"displayName": "New"}}, {**GROUP, "displayName": "New"}),
        (
            {"op": "replace", "value": {"DisplayName": "New", "externalId": "e"}},
            {**GROUP, "displayName": "New", "externalId": "e"},
        ),
        ({"op": "Replace", "path": "externalId", "value": "e2"}, {**GROUP, "externalId": "e2"}),
        (
            {"op": "Replace", "path": f"{GROUP_SCHEMA}:displayName", "value": "U"},
            {**GROUP, "displayName": "U"},
        ),
        ({"op": "remove", "path": "externalId"}, without(GROUP, "externalId")),
        ({"op": "replace", "path": "externalId", "value": ""}, without(GROUP, "externalId")),
        (
            {"op": "replace", "path": "displayName", "value": [{"value": "Arr"}]},
            {**GROUP, "displayName": "Arr"},
        ),
    ],
)
def test_group_attributes(operation: dict[str, Any], expected: dict[str, Any]) -> None:
    assert patch_group(GROUP, operation) == (expected, [])


@pytest.mark.parametrize(
    ("operation", "members"),
    [
        (
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}]},
            [MemberOperation("add", ["u1"])],
        ),
        (
            {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]},
            [MemberOperation("add", ["u1", "u2", "u3"])],
        ),
        (
            {
                "op": "ADD",
                "path": "Members",
                "value": ["u1", {"VALUE": "u2", "display": "Two"}, "u1", {"value": "u2"}],
            },
            [MemberOperation("add", ["u1", "u2"])],
        ),
        ({"op": "add", "path": "members", "value": {"value": "u1"}}, [MemberOperation("add", ["u1"])]),
        ({"op": "add", "path": "members", "value": "u1"}, [MemberOperation("add", ["u1"])]),
        ({"op": "add", "path": "members", "value": [{"value": 42}]}, [MemberOperation("add", ["42"])]),
        ({"op": "add", "path": "members", "value": []}, []),
        (
            {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1"}, {"value": "u2"}]},
            [MemberOperation("remove", ["u1", "u2"])],
        ),
        ({"op": "remove", "path": 'members[value eq "u1"]'}, [MemberOperation("remove", ["u1"])]),
        ({"op": "remove", "path": 'MEMBERS[VALUE EQ "u1"]'}, [MemberOperation("remove", ["u1"])]),
        (
            {"op": "remove", "path": 'members[value eq "u1" or value eq "u2"]'},
            [MemberOperation("remove", ["u1", "u2"])],
        ),
        ({"op": "remove", "path": "members"}, [MemberOperation("remove", [])]),
        ({"op": "remove", "path": "members", "value": None}, [MemberOperation("remove", [])]),
        ({"op": "remove", "path": "members", "value": []}, []),
        (
            {"op": "replace", "path": "members", "value": [{"value": "u1"}]},
            [MemberOperation("replace", ["u1"])],
        ),
        ({"op": "replace", "path": "members", "value": []}, [MemberOperation("replace", [])]),
        ({"op": "add", "value": {"members": [{"value": "u1"}]}}, [MemberOperation("add", ["u1"])]),
        ({"op": "replace", "value": {"members": [{"value": "u9"}]}}, [MemberOperation("replace", ["u9"])]),
        ({"op": "add", "path": f"{GROUP_SCHEMA}:members", "value": ["u1"]}, [MemberOperation("add", ["u1"])]),
    ],
)
def test_group_member_operations(operation: dict[str, Any], members: list[MemberOperation]) -> None:
    document, member_operations = patch_group(GROUP, operation)
    assert document == GROUP
    assert "members" not in document
    assert member_operations == members


def test_group_patch_with_attributes_and_members_in_order() -> None:
    document, member_operations = patch_group(
        GROUP,
        {"op": "Replace", "path": "displayName", "value": "Renamed"},
        {"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
        {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
        {"op": "replace", "value": {"displayName": "Final", "members": [{"value": "u3"}]}},
    )
    assert document == {**GROUP, "displayName": "Final"}
    assert member_operations == [
        MemberOperation("add", ["u1", "u2"]),
        MemberOperation("remove", ["u2"]),
        MemberOperation("replace", ["u3"]),
    ]


def test_group_large_member_add_is_passed_through_without_loss() -> None:
    ids = [f"user-{i}" for i in range(5000)]
    _, member_operations = patch_group(
        GROUP, {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
    )
    assert member_operations == [MemberOperation("add", ids)]


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ({"op": "add", "path": "members", "value": [{"display": "no value"}]}, InvalidValue),
        ({"op": "add", "path": "members", "value": [{"value": ""}]}, InvalidValue),
        ({"op": "add", "path": "members", "value": [{"value": None}]}, InvalidValue),
        ({"op": "add", "path": "members", "value": [{"value": True}]}, InvalidValue),
        ({"op": "add", "path": "members", "value": [["u1"]]}, InvalidValue),
        ({"op": "add", "path": 'members[value eq "u1"]', "value": "x"}, InvalidPath),
        ({"op": "remove", "path": "members.value"}, InvalidPath),
        ({"op": "remove", "path": 'members[display eq "Alice"]'}, InvalidFilter),
        ({"op": "remove", "path": 'members[value ne "u1"]'}, InvalidFilter),
        ({"op": "remove", "path": 'members[value eq "u1" and type eq "User"]'}, InvalidFilter),
        ({"op": "remove", "path": 'members[colour eq "u1"]'}, InvalidPath),
        ({"op": "remove"}, NoTarget),
        ({"op": "replace", "path": "displayName", "value": ""}, InvalidValue),
        ({"op": "remove", "path": "displayName"}, InvalidValue),
        ({"op": "replace", "path": "displayName", "value": {"a": 1}}, InvalidValue),
        ({"op": "replace", "path": "id", "value": "x"}, Mutability),
        ({"op": "replace", "path": "meta", "value": {}}, Mutability),
        ({"op": "replace", "path": "schemas", "value": []}, Mutability),
        ({"op": "replace", "value": {"id": "other"}}, Mutability),
        ({"op": "replace", "path": "userName", "value": "x"}, InvalidPath),
        ({"op": "replace", "path": f"{ENT}:department", "value": "x"}, InvalidPath),
        ({"op": "replace", "path": f"{USER_SCHEMA}:displayName", "value": "x"}, InvalidPath),
    ],
)
def test_group_errors(operation: dict[str, Any], error: type[SCIMError]) -> None:
    with pytest.raises(error) as caught:
        apply_group_patch(GROUP, [operation])
    assert type(caught.value) is error


def test_group_patch_is_atomic() -> None:
    with pytest.raises(InvalidPath):
        apply_group_patch(
            GROUP,
            [
                {"op": "add", "path": "members", "value": ["u1"]},
                {"op": "replace", "path": "displayName", "value": "X"},
                {"op": "replace", "path": "nope", "value": "x"},
            ],
        )


# ------------------------------------------------------------------------------ fuzz (C72: no 5xx)


PATH_POOL = [
    None,
    "",
    "userName",
    "USERNAME",
    "active",
    "title",
    "name",
    "name.givenName",
    "name.nope",
    "emails",
    'emails[type eq "work"].value',
    'emails[type eq "work"]',
    'emails[value eq "a@b"].primary',
    "emails[type pr].display",
    'phoneNumbers[type eq "mobile"].value',
    'addresses[type eq "work"].locality',
    'roles[primary eq "True"].value',
    "roles",
    "manager",
    "manager.value",
    f"{ENT}:manager",
    f"{ENT}:department",
    ENT,
    CORE,
    f"{CORE}:userName",
    "members",
    'members[value eq "x"]',
    "id",
    "meta",
    "schemas",
    "displayName",
    "externalId",
]
GROUP_PATH_POOL = [
    None,
    "displayName",
    "DISPLAYNAME",
    "externalId",
    "members",
    "Members",
    'members[value eq "u1"]',
    'members[value eq "u1" or value eq "u2"]',
    'members[display eq "x"]',
    "members.value",
    f"{GROUP_SCHEMA}:displayName",
    f"{GROUP_SCHEMA}:members",
    "id",
    "userName",
]
FRAGMENTS = [
    "[",
    "]",
    '"',
    "(",
    ")",
    ".",
    ":",
    " eq ",
    " and ",
    " or ",
    "not",
    "\\",
    "$ref",
    "urn:",
    "\x00",
    "é",
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 7, 1.5, 10**20, float("inf")])
    if choice == 3:
        return rng.choice(["", "True", "false", "x", "{", '{"value": "r"}', "[]", " ", "a@b", "null"])
    if choice == 4:
        return "".join(rng.choice([*FRAGMENTS, "a", "b"]) for _ in range(rng.randrange(6)))
    if choice == 5:
        return rng.choice(PATH_POOL) or "value"
    if choice in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [p for p in PATH_POOL if p] + [
        "value",
        "type",
        "primary",
        "display",
        "$ref",
        "VALUE",
        "givenName",
        1,
    ]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_path(rng: random.Random, pool: list[str | None]) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(pool)
    if roll < 0.9:
        base = rng.choice([p for p in pool if p])
        cut = rng.randrange(len(base) + 1)
        return base[:cut] + "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(3))) + base[cut:]
    return random_json(rng)


def plausible_value(rng: random.Random) -> Any:
    element = {
        rng.choice(["value", "type", "primary", "display", "$ref"]): rng.choice(
            ["work", "a@b", "True", "false", None]
        )
        for _ in range(rng.randrange(1, 4))
    }
    return rng.choice(
        ["x", "True", "false", False, "", None, ["m-2"], [element], element, [element, element], "u1"]
    )


def random_operation(rng: random.Random, pool: list[str | None]) -> Any:
    if rng.random() < 0.03:
        return random_json(rng)
    operation: dict[Any, Any] = {}
    if rng.random() < 0.97:
        valid = ["add", "Add", "REPLACE", "replace", "Remove", "remove"]
        invalid = ["merge", "", 1, None]
        operation[rng.choice(["op", "OP", "Op"])] = rng.choice(valid if rng.random() < 0.9 else invalid)
    if rng.random() < 0.85:
        operation[rng.choice(["path", "Path"])] = (
            random_path(rng, pool) if rng.random() < 0.5 else rng.choice(pool)
        )
    if rng.random() < 0.9:
        operation["value"] = random_json(rng) if rng.random() < 0.4 else plausible_value(rng)
    return operation


def check_user_invariants(document: dict[str, Any]) -> None:
    allowed = {
        "schemas", "id", "externalId", "userName", "name", "displayName", "nickName", "profileUrl",
        "title", "userType", "preferredLanguage", "locale", "timezone", "active", "emails",
        "phoneNumbers", "addresses", "roles", ENT, "meta",
    }  # fmt: skip
    assert set(document) <= allowed, set(document) - allowed
    assert isinstance(document["userName"], str) and document["userName"]
    assert document["active"] in (True, False)
    for attribute in ("emails", "phoneNumbers", "addresses", "roles"):
        elements = document.get(attribute, [])
        assert isinstance(elements, list) and all(isinstance(e, dict) and e for e in elements)
        assert sum(1 for e in elements if e.get("primary") is True) <= 1
        assert all(isinstance(e.get("primary", False), bool) for e in elements)
    if ENT in document:
        assert document[ENT] and isinstance(document[ENT], dict)
        assert ENT in document["schemas"]
        manager = document[ENT].get("manager")
        assert manager is None or (isinstance(manager, dict) and isinstance(manager.get("value"), str))
    json.dumps(document)


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_only_scim_errors(seed: int) -> None:
    rng = random.Random(seed)
    outcomes = {(resource, outcome): 0 for resource in ("user", "group") for outcome in ("ok", "error")}
    for _ in range(400):
        for resource, document, pool in (("user", USER, PATH_POOL), ("group", GROUP, GROUP_PATH_POOL)):
            operations = [random_operation(rng, pool) for _ in range(rng.randrange(1, 3))]
            request_body: Any = body(*operations) if rng.random() < 0.95 else random_json(rng)
            snapshot = copy.deepcopy(document)
            try:
                normalised = validate_patch_request(request_body)
                if resource == "user":
                    result = apply_user_patch(document, normalised)
                    check_user_invariants(result)
                    assert apply_user_patch(document, operations) == result
                else:
                    group, member_operations = apply_group_patch(document, normalised)
                    assert set(group) <= set(GROUP) and group["displayName"]
                    assert apply_group_patch(document, operations) == (group, member_operations)
                    assert all(isinstance(i, str) and i for op in member_operations for i in op.ids)
                outcomes[resource, "ok"] += 1
            except SCIMError as exc:
                assert exc.detail and exc.status == 400
                outcomes[resource, "error"] += 1
            assert document == snapshot
    assert all(count > 20 for count in outcomes.values()), outcomes
