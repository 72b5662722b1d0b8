"""Errors at the SCIM edge (entra-scim.md R76, R77; C71, C72): every 4xx is a SCIM Error body, a
failed request leaves nothing half-written, and no malformed input ever gets a 5xx."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from directory.models import Event, Group, Membership, Tenant, User, UserEmail, UserPhoneNumber
from tests.clients import Client
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    BULK_REQUEST,
    ENTERPRISE,
    SEARCH_REQUEST,
    UNKNOWN_ID,
    USER,
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    group_body,
    is_scim_json,
    user_body,
)


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def test_c71_every_4xx_is_a_scim_error(scim: SCIMClient, witness: OtherTenantWitness, settings: Any) -> None:
    """One request per kind of client error, each with the status, scimType and media type the RFC
    defines (RFC 7644 §3.12 table 9)."""
    user = create_user(scim, "taken@contoso.com")
    group = create_group(scim, "Taken")
    settings.SCIM_BULK_MAX_OPERATIONS = 1
    cases: list[tuple[Any, int, str | None]] = [
        (scim.post("/Users", "{"), 400, "invalidSyntax"),
        (scim.post("/Users", {"schemas": [USER]}), 400, "invalidValue"),
        (scim.get("/Users", filter='nickName xx "a"'), 400, "invalidFilter"),
        (scim.get("/Users", startIndex="one"), 400, "invalidValue"),
        (scim.patch(f"/Users/{user['id']}", patch_op({"op": "move", "path": "title"})), 400, "invalidSyntax"),
        (
            scim.patch(f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title[", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            scim.patch(f"/Users/{user['id']}", patch_op({"op": "replace", "path": "id", "value": "x"})),
            400,
            "mutability",
        ),
        (SCIMClient(None).get("/Users"), 401, None),
        (scim.get(f"/Users/{UNKNOWN_ID}"), 404, None),
        (scim.get("/Nope"), 404, None),
        (scim.post(f"/Users/{user['id']}", user_body("x@contoso.com")), 405, None),
        (scim.send("PUT", "/Users", user_body("x@contoso.com")), 405, None),
        (scim.post("/Users", user_body("TAKEN@contoso.com")), 409, "uniqueness"),
        (scim.post("/Groups", group_body("taken")), 409, "uniqueness"),
        (
            scim.patch(
                f"/Users/{user['id']}",
                patch_op({"op": "add", "path": "title", "value": "x"}),
                headers={"If-Match": 'W/"999"'},
            ),
            412,
            None,
        ),
        (
            scim.post(
                "/Bulk",
                {"schemas": [BULK_REQUEST], "Operations": [{"method": "DELETE", "path": "/Users/x"}] * 2},
            ),
            413,
            None,
        ),
    ]
    for response, status, scim_type in cases:
        assert_scim_error(response, status, scim_type)
    assert cases[10][0]["Allow"] == "GET, PUT, PATCH, DELETE"
    assert cases[11][0]["Allow"] == "GET, POST"
    assert scim.send("DELETE", "/Schemas")["Allow"] == "GET"
    assert scim.get("/Bulk")["Allow"] == "POST"
    assert scim.get(f"/Groups/{group['id']}").status_code == 200
    witness.assert_untouched()


def test_failed_requests_are_logged_for_the_callers_tenant_only(
    tenant: Tenant, other_tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    scim.get(f"/Users/{UNKNOWN_ID}")
    scim.post("/Users", {"schemas": [USER]})
    failures = Event.objects.filter(tenant=tenant, result=Event.Result.FAILURE).order_by("id")
    assert [(e.status, e.request_method) for e in failures] == [(404, "GET"), (400, "POST")]
    assert all(e.actor_user is not None and e.actor_user.role == User.Role.SERVICE for e in failures)
    assert failures[1].scim_type == "invalidValue"
    witness.assert_untouched()


def test_post_with_a_manager_of_the_wrong_type_creates_nothing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """`manager.value` is a string (RFC 7643 §4.3). Any string is kept as sent, even one naming no
    user here, but a number, a boolean, two managers or a value too long for the column is a 400
    that creates nothing. An object without `value` means "no manager" (entra-scim.md R54)."""
    for manager in (17, {"value": 17}, True, 1.5, [{"value": "a"}, {"value": "b"}], "m" * 256):
        response = scim.post("/Users", user_body("orphan@contoso.com", **{ENTERPRISE: {"manager": manager}}))
        assert_scim_error(response, 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant, username="orphan@contoso.com").exists()
    assert not Event.objects.filter(tenant=tenant, action="user.create").exists()
    response = scim.post(
        "/Users", user_body("orphan@contoso.com", **{ENTERPRISE: {"manager": {"displayName": "Nobody"}}})
    )
    assert response.status_code == 201, response.content
    orphan = User.objects.get(tenant=tenant, username="orphan@contoso.com")
    assert (orphan.manager_value, orphan.manager_id) == ("", None)
    assert "manager" not in response.json().get(ENTERPRISE, {})
    witness.assert_untouched()


def test_post_with_two_primary_emails_after_valid_attributes_creates_nothing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """One request is one transaction: a value refused after valid ones (RFC 7643 §2.4, `primary`
    is true at most once) leaves no user, no email row and no event behind."""
    response = scim.post(
        "/Users",
        user_body(
            "half@contoso.com",
            name={"givenName": "Half"},
            phoneNumbers=[{"type": "work", "value": "+1 555 0100"}],
            emails=[
                {"type": "work", "value": "half@contoso.com", "primary": True},
                {"type": "home", "value": "x@contoso.com", "primary": True},
            ],
        ),
    )
    assert_scim_error(response, 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant, username="half@contoso.com").exists()
    assert not UserEmail.objects.filter(tenant=tenant).exists()
    assert not UserPhoneNumber.objects.filter(tenant=tenant).exists()
    assert not Event.objects.filter(tenant=tenant, action="user.create").exists()
    witness.assert_untouched()


def test_values_too_long_are_400_not_500(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    for body in (
        user_body("x" * 300),
        user_body("ok@contoso.com", title="t" * 5000),
        user_body("ok@contoso.com", emails=[{"type": "work", "value": "e" * 400}]),
        user_body("ok@contoso.com", phoneNumbers=[{"type": "work", "value": "1" * 100}]),
    ):
        assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert_scim_error(scim.post("/Groups", group_body("g" * 300)), 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).exists()
    witness.assert_untouched()


def test_nul_characters_are_refused_as_400(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """PostgreSQL text cannot hold NUL: it must be a client error on every route, not a 5xx."""
    user = create_user(scim, "nul@contoso.com")
    responses = [
        scim.post("/Users", user_body("a\x00b@contoso.com")),
        scim.post("/Groups", group_body("nul\x00group")),
        scim.patch(f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "a\x00"})),
        scim.get("/Users", filter='userName eq "a\x00b"'),
        scim.get("/Groups", filter='displayName eq "\x00"'),
        scim.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "filter": 'externalId eq "\x00"'}),
    ]
    for response in responses:
        assert_scim_error(response, 400, "invalidValue" if response.status_code == 400 else None)
    assert scim.get(f"/Users/{user['id']}").json().get("title") is None
    witness.assert_untouched()


def test_deeply_nested_json_is_400(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """Too deep for the JSON parser, and (500 levels) parseable but too deep for anything that walks
    it afterwards, such as bulkId substitution."""
    deep = "[" * 100_000 + "]" * 100_000
    assert_scim_error(scim.post("/Users", deep), 400, "invalidSyntax")
    assert_scim_error(scim.post("/Bulk", deep), 400, "invalidSyntax")
    nested: Any = "bulkId:a"
    for _ in range(500):
        nested = [nested]
    user = create_user(scim, "deep@contoso.com")
    operation = {
        "method": "POST",
        "path": "/Users",
        "bulkId": "b",
        "data": user_body("b@contoso.com", title=nested),
    }
    requests = [
        scim.post("/Bulk", {"schemas": [BULK_REQUEST], "Operations": [operation]}),
        scim.post("/Users", user_body("deeper@contoso.com", emails=nested)),
        scim.patch(f"/Users/{user['id']}", patch_op({"op": "add", "value": {"title": nested}})),
        scim.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "attributes": nested}),
    ]
    for response in requests:
        assert "nested" in assert_scim_error(response, 400, "invalidSyntax")["detail"]
    witness.assert_untouched()


def test_oversized_body_is_413(scim: SCIMClient, settings: Any, witness: OtherTenantWitness) -> None:
    huge = json.dumps(user_body("big@contoso.com", title="x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)))
    assert_scim_error(scim.post("/Users", huge), 413)
    assert not User.objects.filter(username="big@contoso.com").exists()
    witness.assert_untouched()


def test_search_request_with_wrong_types_is_400(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for body in (
        {"schemas": [SEARCH_REQUEST], "attributes": [1, 2]},
        {"schemas": [SEARCH_REQUEST], "excludedAttributes": {"a": 1}},
        {"schemas": [SEARCH_REQUEST], "filter": ["userName eq 1"]},
        {"schemas": [SEARCH_REQUEST], "startIndex": {"x": 1}},
        {"schemas": [SEARCH_REQUEST], "count": [5]},
        {"schemas": [SEARCH_REQUEST], "sortBy": 7},
        {"schemas": "not a list"},
        [],
    ):
        for path in ("/Users/.search", "/Groups/.search", "/.search"):
            response = scim.post(path, body)
            assert 400 <= response.status_code < 500, (path, body, response.content)
            assert_scim_error(response, response.status_code, response.json().get("scimType"))
    witness.assert_untouched()


# ----------------------------------------------------------------------------------------------- fuzz

FUZZ_SEED = 72
FUZZ_ROUNDS = 700
SCIM_NAMES = [
    "userName",
    "externalId",
    "active",
    "name",
    "name.givenName",
    "emails",
    'emails[type eq "work"].value',
    "phoneNumbers",
    "addresses",
    "roles",
    "members",
    "displayName",
    "title",
    "manager",
    f"{ENTERPRISE}:manager",
    ENTERPRISE,
    "meta",
    "id",
    "schemas",
    "groups",
    "Operations",
    "op",
    "path",
    "value",
    "method",
    "bulkId",
    "data",
    "failOnErrors",
    "filter",
    "startIndex",
    "count",
    "attributes",
    "excludedAttributes",
    "sortBy",
    "sortOrder",
    "$ref",
    "primary",
    "type",
]
FILTER_WORDS = [
    "userName",
    "displayName",
    "emails",
    "emails[type",
    "members",
    "manager",
    "meta.lastModified",
    "id",
    "eq",
    "ne",
    "co",
    "sw",
    "gt",
    "pr",
    "and",
    "or",
    "not",
    "(",
    ")",
    "[",
    "]",
    '"x"',
    '"',
    "true",
    "null",
    "1e999",
    "-0",
    '"2024-13-45T99:99:99Z"',
    "\\",
    "\x00",
    "é",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    ".",
    "value",
]


class Fuzzer:
    """Seeded junk: structure-aware where that reaches deeper code (valid envelopes with junk
    inside), plain junk elsewhere."""

    def __init__(self, seed: int, ids: list[str]) -> None:
        self.random = random.Random(seed)
        self.ids = ids

    def text(self, *, in_url: bool = False) -> str:
        """`in_url` leaves out lone surrogates, which no client can put into a URL or header."""
        r = self.random
        choice = r.randrange(10)
        if choice == 0:
            return ""
        if choice == 1:
            return "x" * r.choice([255, 256, 1025, 5000])
        if choice == 2:
            return r.choice(self.ids)
        if choice == 3:
            return f"bulkId:{r.choice(['a', 'b', 'missing'])}"
        if choice == 4:
            junk = ["True", "FALSE", "null", "{", '{"value": "x"}', "\x00", "💥", " "]
            return r.choice(junk if in_url else [*junk, "\ud800"])
        if choice == 5:
            return " ".join(r.choice(FILTER_WORDS) for _ in range(r.randrange(1, 7)))
        return "".join(r.choice(string.printable) for _ in range(r.randrange(1, 20)))

    def value(self, depth: int = 0) -> Any:
        r = self.random
        kinds = (
            ["text", "int", "float", "bool", "null", "list", "dict"] if depth < 4 else ["text", "int", "null"]
        )
        kind = r.choice(kinds)
        if kind == "text":
            return self.text()
        if kind == "int":
            return r.choice([0, -1, 1, 2**31, 2**64, -(2**70), 10**30])
        if kind == "float":
            return r.choice([0.5, -1.5, 1e308, float("nan"), float("inf")])
        if kind == "bool":
            return r.choice([True, False])
        if kind == "null":
            return None
        if kind == "list":
            return [self.value(depth + 1) for _ in range(r.randrange(0, 4))]
        return {self.key(): self.value(depth + 1) for _ in range(r.randrange(0, 5))}

    def key(self) -> str:
        r = self.random
        name = r.choice(SCIM_NAMES) if r.random() < 0.8 else self.text()
        return name.upper() if r.random() < 0.1 else name

    def user_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schemas": [USER, ENTERPRISE],
            "userName": f"fuzz{self.random.randrange(10**6)}@contoso.com",
            "emails": [{"type": "work", "value": "fuzz@contoso.com"}],
            ENTERPRISE: {"department": "x", "manager": {"value": self.random.choice(self.ids)}},
        }
        for _ in range(self.random.randrange(1, 4)):
            extension = document.get(ENTERPRISE)
            target = extension if isinstance(extension, dict) and self.random.random() < 0.3 else document
            target[self.key()] = self.value()
        return document

    def patch_document(self) -> dict[str, Any]:
        r = self.random
        operations = []
        for _ in range(r.randrange(1, 4)):
            operation: dict[str, Any] = {}
            if r.random() < 0.9:
                operation["op"] = r.choice(["add", "Replace", "REMOVE", "move", "", None, 1])
            if r.random() < 0.8:
                operation["path"] = r.choice([self.key(), self.text(), 'members[value eq "x"]', None, 5])
            if r.random() < 0.8:
                operation["value"] = self.value()
            operations.append(operation if r.random() < 0.95 else self.value())
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}

    def bulk_document(self) -> dict[str, Any]:
        r = self.random
        operations = []
        for _ in range(r.randrange(0, 4)):
            operations.append(
                {
                    "method": r.choice(["POST", "PUT", "PATCH", "DELETE", "GET", "post", None]),
                    "path": r.choice(
                        [
                            "/Users",
                            "/Groups",
                            f"/Users/{r.choice(self.ids)}",
                            "/Users/bulkId:a",
                            "/",
                            self.text(),
                        ]
                    ),
                    "bulkId": r.choice(["a", "b", None, 3]),
                    "data": r.choice([self.user_document(), self.patch_document(), self.value()]),
                    "version": r.choice([None, 'W/"1"', self.text()]),
                }
            )
        body: dict[str, Any] = {"schemas": [BULK_REQUEST], "Operations": operations}
        if r.random() < 0.5:
            body["failOnErrors"] = self.value()
        return body

    def body(self, path: str, method: str) -> Any:
        r = self.random
        choice = r.randrange(10)
        if choice == 0:
            return r.choice(["", "{", "null", "[]", "1", '"x"', "\xff\xfe", "{" * 50, '{"a":1}' * 2])
        if choice == 1:
            return self.value()
        if "/Bulk" in path:
            return self.bulk_document()
        if "search" in path:
            return {"schemas": [SEARCH_REQUEST], **{self.key(): self.value() for _ in range(3)}}
        if method == "PATCH":
            return self.patch_document()
        return (
            self.user_document() if "Users" in path else {"displayName": self.text(), "members": self.value()}
        )

    def params(self) -> dict[str, str]:
        r = self.random
        names = ["filter", "startIndex", "count", "attributes", "excludedAttributes", "sortBy", "sortOrder"]
        params = {}
        for name in r.sample(names, r.randrange(0, len(names))):
            params[name] = self.text(in_url=True)
        return params

    def endpoint(self) -> tuple[str, str]:
        """Mostly a method the route serves, so the junk reaches the handlers; sometimes any method."""
        r = self.random
        user_id, group_id, junk = r.choice(self.ids), r.choice(self.ids), self.text(in_url=True)
        collection, member, search, discovery = (
            ["GET", "POST"],
            ["GET", "PUT", "PATCH", "DELETE"],
            ["POST"],
            ["GET"],
        )
        path, methods = r.choice(
            [
                ("/Users", collection),
                ("/Users/", collection),
                (f"/Users/{user_id}", member),
                (f"/Users/{junk}", member),
                ("/Users/.search", search),
                ("/Groups", collection),
                (f"/Groups/{group_id}", member),
                (f"/Groups/{junk}", member),
                ("/Groups/.search", search),
                ("/.search", search),
                ("/Bulk", search),
                ("/Schemas", discovery),
                (f"/Schemas/{junk}", discovery),
                ("/ResourceTypes", discovery),
                ("/ResourceTypes/User", discovery),
                (f"/ResourceTypes/{junk}", discovery),
                ("/ServiceProviderConfig", discovery),
                ("/Me", discovery),
                (f"/{junk}", discovery),
            ]
        )
        if r.random() < 0.15:
            methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return r.choice(methods), path.replace("?", "%3F").replace("#", "%23")


def test_c72_fuzzed_requests_never_get_a_5xx(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    user = create_user(scim, "fuzz-target@contoso.com")
    boss = create_user(scim, "fuzz-boss@contoso.com")
    group = create_group(scim, "Fuzz group", members=[{"value": user["id"]}])
    ids = [
        user["id"],
        boss["id"],
        group["id"],
        UNKNOWN_ID,
        str(witness.user.scim_id),
        str(witness.group.scim_id),
    ]
    fuzzer = Fuzzer(FUZZ_SEED, ids)
    statuses: dict[int, int] = {}
    scim = SCIMClient(scim.token)
    scim.client = Client(enforce_csrf_checks=True)
    for round_number in range(FUZZ_ROUNDS):
        method, path = fuzzer.endpoint()
        params = fuzzer.params()
        query = "&".join(f"{k}={v}" for k, v in params.items())
        headers = {}
        if fuzzer.random.random() < 0.2:
            headers[fuzzer.random.choice(["If-Match", "If-None-Match"])] = fuzzer.text(in_url=True)
        content_type = fuzzer.random.choice(
            [
                "application/scim+json; charset=utf-8",
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
            ]
        )
        if method == "GET":
            response = scim.get(path, headers=headers, **params)
        else:
            body = fuzzer.body(path, method)
            raw = body if isinstance(body, str) else json.dumps(body, allow_nan=True)
            target = f"{path}?{query}" if query and fuzzer.random.random() < 0.3 else path
            meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
            response = scim.client.generic(
                method,
                f"/scim/v2{target}",
                raw.encode("utf-8", "surrogatepass"),
                content_type=content_type,
                HTTP_AUTHORIZATION=f"Bearer {scim.token}",
                **meta,
            )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        context = (round_number, method, path, params, response.content[:300])
        assert response.status_code < 500, context
        if response.status_code >= 400 and method != "HEAD":
            assert is_scim_json(response), context
            body = response.json()
            assert body["status"] == str(response.status_code), context
            assert body["detail"], context
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and statuses.get(404, 0) > 0
    witness.assert_untouched()
    assert not Membership.objects.filter(tenant=witness.tenant).exclude(group=witness.group).exists()
    assert Group.objects.filter(tenant=witness.tenant).count() == 1
