"""What RFC 7643/7644 allow and the SCIM service used to refuse (commit 8be58c5). One section per
removed refusal:

1. externalId has no uniqueness (RFC 7643 §3.1);
2. several values of one `type` in a multi-valued attribute; only `primary` is limited (§2.4);
3. `manager.value` naming no user here (yet) is kept as sent and linked later, inside the tenant
   only (§4.3);
4. endpoint names match in any case (RFC 7644 §3.2), Bulk paths too;
5. PATCH answers 204, or 200 with the projected resource when asked for attributes (§3.5.2);
6. the whole User schema: ims, photos, entitlements, x509Certificates (RFC 7643 §4.1.2) and a
   write-only password (§4.1.1);
7. /Schemas says all of the above.

Every test seeds the second tenant (`witness`) with the same userName, externalId, ims,
entitlement and a password, and shows its rows stay untouched and out of every response.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from directory.models import Event, Group, Tenant, User
from directory.services import PASSWORD_SET
from directory.tenancy import tenant_primary_host
from tests.clients import Client
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    BULK_REQUEST,
    BULK_RESPONSE,
    ENTERPRISE,
    GROUP,
    SEARCH_REQUEST,
    SHARED_ENTITLEMENT,
    SHARED_EXTERNAL_ID,
    SHARED_GROUP,
    SHARED_IM,
    SHARED_PASSWORD,
    SHARED_USERNAME,
    USER,
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    enterprise,
    group_body,
    ids_of,
    listed,
    user_body,
    user_row,
)

# A base64 DER prefix: x509Certificates.value is binary, compared case-exactly (RFC 7643 §2.3.6).
CERTIFICATE = "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"
PASSWORD = "Tr0ub4dor&3-contoso"
NEW_PASSWORD = "c0rrect-h0rse-battery"


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def find(scim: SCIMClient, filter_text: str, **params: str) -> dict[str, Any]:
    return listed(scim.get("/Users", filter=filter_text, **params))


def search(scim: SCIMClient, filter_text: str, path: str = "/Users/.search") -> dict[str, Any]:
    return listed(scim.post(path, {"schemas": [SEARCH_REQUEST], "filter": filter_text}))


def bulk(scim: SCIMClient, *operations: dict[str, Any]) -> Any:
    response = scim.post("/Bulk", {"schemas": [BULK_REQUEST], "Operations": list(operations)})
    assert response.status_code == 200, response.content
    assert response.json()["schemas"] == [BULK_RESPONSE]
    return response


def sign_in(tenant: Tenant, username: str, password: str) -> Client:
    """The tenant's sign-in form as a browser sends it (tests/oauth/test_sign_in.py): a client that
    holds a session when the password was right."""
    http = Client(HTTP_HOST=tenant_primary_host(tenant.slug))
    response = http.submit("/login/", {"username": username, "password": password, "next": ""})
    assert response.status_code in (200, 302), response.status_code
    return http


def signed_in_as(http: Client) -> str | None:
    return http.session.get("_auth_user_id")


def events_text(tenant: Tenant) -> str:
    """Every Event row of the tenant, every column, as one JSON text."""
    return json.dumps(list(Event.objects.filter(tenant=tenant).values()), default=str)


# ------------------------------------------------------------------- 1. externalId is not unique


def test_external_id_may_be_shared_by_two_users_and_by_two_groups(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §3.1 gives externalId no uniqueness: two users, and two groups, of one tenant may
    carry the same one, and `externalId eq` finds both, never the other tenant's look-alike."""
    first = create_user(scim, "first@contoso.com", externalId=SHARED_EXTERNAL_ID)
    second = create_user(scim, "second@contoso.com", externalId=SHARED_EXTERNAL_ID)
    third = create_user(scim, "third@contoso.com", externalId="before")
    moved = scim.patch(
        f"/Users/{third['id']}",
        patch_op({"op": "replace", "path": "externalId", "value": SHARED_EXTERNAL_ID}),
    )
    assert moved.status_code == 204, moved.content
    users = [first["id"], second["id"], third["id"]]

    found = find(scim, f'externalId eq "{SHARED_EXTERNAL_ID}"')
    assert (found["totalResults"], sorted(ids_of(found))) == (3, sorted(users))
    assert sorted(ids_of(search(scim, f'externalId eq "{SHARED_EXTERNAL_ID}"'))) == sorted(users)
    assert find(scim, f'externalId eq "{SHARED_EXTERNAL_ID.upper()}"')["totalResults"] == 0
    witness.assert_not_in(scim.get("/Users", filter=f'externalId eq "{SHARED_EXTERNAL_ID}"'))

    groups = [
        create_group(scim, "Sales", externalId="shared-group")["id"],
        create_group(scim, SHARED_GROUP, externalId="shared-group")["id"],
    ]
    by_external_id = scim.get("/Groups", filter='externalId eq "shared-group"')
    assert sorted(ids_of(listed(by_external_id))) == sorted(groups)
    witness.assert_not_in(by_external_id)
    assert Group.objects.filter(tenant=tenant, external_id="shared-group").count() == 2
    witness.assert_untouched()


# --------------------------------------------------------- 2. several values of one type


def test_two_work_emails_and_two_mobile_numbers_are_kept_in_the_order_sent(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §2.4 limits only `primary` to one value: two work emails and two mobile numbers
    are stored and returned in the order sent, and a value filter finds either of them."""
    emails = [
        {"value": "first@contoso.com", "type": "work", "primary": True},
        {"value": "second@contoso.com", "type": "work"},
        {"value": SHARED_USERNAME, "type": "home"},
    ]
    phones = [{"value": "+1 555 0102", "type": "mobile"}, {"value": "+1 555 0101", "type": "mobile"}]
    user = create_user(scim, "twice@contoso.com", emails=emails, phoneNumbers=phones)
    assert (user["emails"], user["phoneNumbers"]) == (emails, phones)
    fetched = scim.get(f"/Users/{user['id']}").json()
    assert (fetched["emails"], fetched["phoneNumbers"]) == (emails, phones)

    for text in (
        'emails[type eq "work"].value eq "second@contoso.com"',
        'emails[type eq "work"].value eq "FIRST@contoso.com"',
        'phoneNumbers[type eq "mobile"].value eq "+1 555 0101"',
    ):
        response = scim.get("/Users", filter=text)
        assert ids_of(listed(response)) == [user["id"]], text
        witness.assert_not_in(response)
    assert find(scim, f'emails[type eq "work"].value eq "{SHARED_USERNAME}"')["totalResults"] == 0

    reversed_emails = [emails[1], {"value": "first@contoso.com", "type": "work"}]
    put = scim.put(f"/Users/{user['id']}", user_body("twice@contoso.com", emails=reversed_emails))
    assert put.status_code == 200, put.content
    assert put.json()["emails"] == reversed_emails
    third = {"value": "third@contoso.com", "type": "work"}
    added = scim.patch(f"/Users/{user['id']}", patch_op({"op": "add", "path": "emails", "value": [third]}))
    assert added.status_code == 204, added.content
    assert scim.get(f"/Users/{user['id']}").json()["emails"] == [*reversed_emails, third]
    witness.assert_untouched()


def test_two_primary_values_are_still_refused(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """The one limit RFC 7643 §2.4 keeps: `primary` is true at most once, on POST and PUT alike,
    for the new attributes too; nothing is written."""
    two = [{"value": "a@contoso.com", "primary": True}, {"value": "b@contoso.com", "primary": True}]
    for attribute in ("emails", "phoneNumbers", "ims", "entitlements"):
        response = scim.post("/Users", user_body("primaries@contoso.com", **{attribute: two}))
        assert_scim_error(response, 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant, username="primaries@contoso.com").exists()
    user = create_user(scim, "one@contoso.com", emails=[{"value": "one@contoso.com", "primary": True}])
    assert_scim_error(
        scim.put(f"/Users/{user['id']}", user_body("one@contoso.com", emails=two)), 400, "invalidValue"
    )
    assert scim.get(f"/Users/{user['id']}").json()["emails"] == user["emails"]
    witness.assert_untouched()


# ------------------------------------------------------------- 3. manager references kept as sent


def test_an_unknown_manager_is_kept_as_sent_and_linked_once_that_user_is_created(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §4.3: `manager.value` is the id of the manager's resource, which may not exist
    yet (Entra and Okta create reports before managers). It is stored and returned as sent, without
    `$ref`; creating the user whose externalId it names links it, and the report's ETag moves so a
    cached copy is not served as current."""
    report = create_user(scim, "report@contoso.com", **{ENTERPRISE: {"manager": {"value": "boss-ext-42"}}})
    assert enterprise(report)["manager"] == {"value": "boss-ext-42"}
    fetched = scim.get(f"/Users/{report['id']}")
    assert enterprise(fetched.json())["manager"] == {"value": "boss-ext-42"}
    assert ids_of(find(scim, 'manager eq "boss-ext-42"')) == [report["id"]]

    boss = create_user(scim, "boss@contoso.com", externalId="boss-ext-42", displayName="The Boss")

    linked = scim.get(f"/Users/{report['id']}")
    assert enterprise(linked.json())["manager"] == {
        "value": "boss-ext-42",
        "$ref": f"http://testserver/scim/v2/Users/{boss['id']}",
        "displayName": "The Boss",
    }
    assert linked["ETag"] == 'W/"2"' != fetched["ETag"]
    assert scim.get(f"/Users/{report['id']}", headers={"If-None-Match": fetched["ETag"]}).status_code == 200
    assert user_row(report["id"]).manager == user_row(boss["id"])
    assert ids_of(find(scim, 'manager.value eq "boss-ext-42"')) == [report["id"]]
    assert find(scim, 'manager.value eq "BOSS-EXT-42"')["totalResults"] == 0
    witness.assert_not_in(linked)
    witness.assert_untouched()


def test_a_manager_given_by_id_is_linked_at_once(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """An id of a user of this tenant links immediately: `$ref` and displayName come back."""
    boss = create_user(scim, "boss@contoso.com", displayName="Boss")
    report = create_user(scim, "report@contoso.com", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    assert enterprise(report)["manager"] == {
        "value": boss["id"],
        "$ref": f"http://testserver/scim/v2/Users/{boss['id']}",
        "displayName": "Boss",
    }
    assert user_row(report["id"]).manager == user_row(boss["id"])
    witness.assert_untouched()


def test_a_manager_naming_the_other_tenants_user_is_kept_as_sent_and_never_linked(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """References never resolve across tenants: the other tenant's user's id, or its externalId,
    is stored as sent but links to nothing, though that user exists over there."""
    for n, value in enumerate((str(witness.manager.scim_id), witness.manager.external_id)):
        report = create_user(scim, f"report{n}@contoso.com", **{ENTERPRISE: {"manager": {"value": value}}})
        assert enterprise(report)["manager"] == {"value": value}
        fetched = scim.get(f"/Users/{report['id']}")
        assert enterprise(fetched.json())["manager"] == {"value": value}
        assert "Fabrikam" not in fetched.content.decode()
        assert (user_row(report["id"]).manager_value, user_row(report["id"]).manager) == (value, None)
    assert not User.objects.filter(tenant=tenant, manager__tenant=witness.tenant).exists()
    witness.assert_untouched()


def test_a_user_the_other_tenant_creates_never_links_this_tenants_pending_reports(
    tenant: Tenant, scim: SCIMClient, other_scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """The other tenant creating the user a pending reference names (same externalId) links
    nothing here: the report stays unresolved and its version does not move."""
    report = create_user(scim, "report@contoso.com", **{ENTERPRISE: {"manager": {"value": "cross-7"}}})
    theirs = other_scim.post("/Users", user_body("boss@fabrikam.example", externalId="cross-7"))
    assert theirs.status_code == 201, theirs.content

    fetched = scim.get(f"/Users/{report['id']}")
    assert enterprise(fetched.json())["manager"] == {"value": "cross-7"}
    assert fetched["ETag"] == report["meta"]["version"] == 'W/"1"'
    assert user_row(report["id"]).manager is None
    assert not user_row(theirs.json()["id"]).reports.exists()
    witness.assert_not_in(fetched)


# ------------------------------------------------------------------ 4. endpoint names in any case


def test_endpoint_names_match_in_any_case_without_a_redirect(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.2 names the endpoints without promising a letter case and clients differ, so
    every spelling answers as the canonical one does, never with a 3xx (a redirected POST or
    PATCH would be lost)."""
    user = create_user(scim, "case@contoso.com", title="Case")
    group = create_group(scim, "Case Group", members=[{"value": user["id"]}])
    for odd, canonical in (
        ("/users", "/Users"),
        ("/USERS/", "/Users"),
        (f"/USERS/{user['id']}", f"/Users/{user['id']}"),
        (f"/users/{user['id']}/", f"/Users/{user['id']}"),
        ("/groups", "/Groups"),
        (f"/gRoUpS/{group['id']}", f"/Groups/{group['id']}"),
        ("/serviceproviderconfig", "/ServiceProviderConfig"),
        ("/SERVICEPROVIDERCONFIG/", "/ServiceProviderConfig"),
        ("/schemas", "/Schemas"),
        (f"/schemas/{USER}", f"/Schemas/{USER}"),
        ("/resourcetypes", "/ResourceTypes"),
    ):
        response = scim.get(odd)
        assert response.status_code == 200, (odd, response.status_code)
        assert response.json() == scim.get(canonical).json(), odd
        witness.assert_not_in(response)

    canonical_search = search(scim, 'userName eq "case@contoso.com"')
    for path in ("/Users/.SEARCH", "/users/.search", "/USERS/.Search/", "/.SEARCH"):
        assert ids_of(search(scim, 'userName eq "case@contoso.com"', path)) == ids_of(canonical_search), path
    groups_search = scim.post("/GROUPS/.search", {"schemas": [SEARCH_REQUEST]})
    assert ids_of(listed(groups_search)) == [group["id"]]

    created = scim.post("/users", user_body("lower@contoso.com"))
    assert created.status_code == 201, created.content
    assert created["Location"] == f"http://testserver/scim/v2/Users/{created.json()['id']}"
    patched = scim.patch(f"/USERS/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "X"}))
    assert patched.status_code == 204
    assert scim.put(f"/users/{created.json()['id']}", user_body("lower@contoso.com")).status_code == 200

    operations = bulk(
        scim,
        {"method": "POST", "path": "/users", "bulkId": "u", "data": user_body("bulk@contoso.com")},
        {"method": "POST", "path": "/GROUPS", "bulkId": "g", "data": group_body("Bulk Group")},
        {
            "method": "PATCH",
            "path": f"/uSeRs/{user['id']}",
            "data": patch_op({"op": "replace", "path": "title", "value": "Y"}),
        },
        {"method": "DELETE", "path": f"/groups/{group['id']}"},
    ).json()["Operations"]
    assert [op["status"] for op in operations] == ["201", "201", "204", "204"]
    assert scim.get("/bulk").status_code == 405
    assert user_row(user["id"]).title == "Y"
    witness.assert_untouched()


# ------------------------------------------------------------------------------ 5. PATCH answers 204


def test_patch_answers_204_without_a_body_but_with_an_etag(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.5.2: a PATCH that asks for no attributes answers 204 No Content, users and
    groups alike; the ETag header still carries the new version (§3.14)."""
    user = create_user(scim, "patch@contoso.com")
    group = create_group(scim, "Patched")
    for path, operation, version in (
        (f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "T"}, 'W/"2"'),
        (
            f"/Groups/{group['id']}",
            {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
            'W/"2"',
        ),
        (f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "Renamed"}, 'W/"3"'),
    ):
        response = scim.patch(path, patch_op(operation))
        assert (response.status_code, response.content) == (204, b""), response.content
        assert response["ETag"] == version == scim.get(path)["ETag"]
    assert scim.get(f"/Groups/{group['id']}").json()["displayName"] == "Renamed"
    operations = bulk(
        scim,
        {
            "method": "PATCH",
            "path": f"/Users/{user['id']}",
            "data": patch_op({"op": "replace", "path": "title", "value": "Bulk"}),
        },
    ).json()["Operations"]
    assert operations[0]["status"] == "204"
    assert operations[0]["version"] == 'W/"3"'
    assert "response" not in operations[0]
    witness.assert_untouched()


def test_patch_with_attributes_or_excluded_attributes_answers_200_with_the_projection(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.5.2: with `attributes` or `excludedAttributes` the PATCH answers 200 and the
    resource projected as a GET with the same parameters would be (§3.9)."""
    user = create_user(scim, "proj@contoso.com", emails=[{"value": "proj@contoso.com", "type": "work"}])
    group = create_group(scim, "Projected", members=[{"value": user["id"]}])

    only = scim.patch(
        f"/Users/{user['id']}?attributes=title", patch_op({"op": "replace", "path": "title", "value": "T"})
    )
    assert only.status_code == 200, only.content
    assert only.json() == {"schemas": [USER], "id": user["id"], "title": "T"}
    assert only["ETag"] == 'W/"2"'
    without = scim.patch(
        f"/Users/{user['id']}?excludedAttributes=emails,groups",
        patch_op({"op": "replace", "path": "displayName", "value": "Projected"}),
    )
    assert without.status_code == 200
    assert without.json() == scim.get(f"/Users/{user['id']}", excludedAttributes="emails,groups").json()
    assert "emails" not in without.json() and without.json()["displayName"] == "Projected"

    group_only = scim.patch(
        f"/Groups/{group['id']}?attributes=displayName",
        patch_op({"op": "replace", "path": "displayName", "value": "Renamed"}),
    )
    assert group_only.status_code == 200
    assert group_only.json() == {"schemas": [GROUP], "id": group["id"], "displayName": "Renamed"}
    no_members = scim.patch(
        f"/Groups/{group['id']}?excludedAttributes=members",
        patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
    )
    assert no_members.status_code == 200
    assert "members" not in no_members.json()
    assert no_members.json()["displayName"] == "Renamed"
    assert no_members["ETag"] == no_members.json()["meta"]["version"]
    witness.assert_not_in(no_members)
    witness.assert_untouched()


def test_a_204_patch_reads_nothing_back(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """A 204 has no body, so the changed resource is not read again: fewer queries than the same
    change answered with 200, which reads the user's groups, and no read of a group's members. Neither
    reads the email table: the values come from the row's own copy."""
    user = create_user(scim, "cheap@contoso.com", emails=[{"value": "cheap@contoso.com", "type": "work"}])
    member = create_user(scim, "member@contoso.com")
    group = create_group(scim, "Cheap")

    def run(path: str, operation: dict[str, Any]) -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            response = scim.patch(path, patch_op(operation))
        return response.status_code, [q["sql"] for q in queries.captured_queries]

    status, silent = run(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "A"})
    answered_status, answered = run(
        f"/Users/{user['id']}?attributes=title", {"op": "replace", "path": "title", "value": "B"}
    )
    assert (status, answered_status) == (204, 200)
    assert len(silent) < len(answered)
    groups_read = [
        sum("FROM directory_membership" in sql.replace('"', "") for sql in statements)
        for statements in (silent, answered)
    ]
    assert groups_read == [0, 1]
    assert not any('FROM "directory_useremail"' in sql for sql in [*silent, *answered])

    status, silent = run(f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "A"})
    answered_status, answered = run(
        f"/Groups/{group['id']}?attributes=displayName,members",
        {"op": "add", "path": "members", "value": [{"value": member["id"]}]},
    )
    assert (status, answered_status) == (204, 200)
    assert len(silent) < len(answered)
    assert not any("FROM directory_membership" in sql.replace('"', "") for sql in silent)
    witness.assert_untouched()


# ------------------------------------------------------ 6. ims, photos, entitlements, certificates

RICH = {
    "ims": [
        {"value": SHARED_IM, "type": "skype", "primary": True},
        {"value": "rich@jabber.example", "type": "xmpp", "display": "Jabber"},
    ],
    "photos": [
        {"value": "https://photos.example.com/rich.jpg", "type": "photo"},
        {"value": "https://photos.example.com/rich-small.jpg", "type": "thumbnail"},
    ],
    "entitlements": [{"value": SHARED_ENTITLEMENT, "type": "licence", "display": "E5"}, {"value": "Parking"}],
    "x509Certificates": [{"value": CERTIFICATE, "display": "Signing"}],
}


def test_ims_photos_entitlements_and_certificates_are_stored_and_returned_as_sent(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §4.1.2: the rest of the User schema's multi-valued attributes, once refused, come
    back exactly as sent on POST, GET, lists and searches."""
    user = create_user(scim, "rich@contoso.com", **RICH)
    assert {name: user[name] for name in RICH} == RICH
    fetched = scim.get(f"/Users/{user['id']}").json()
    assert {name: fetched[name] for name in RICH} == RICH
    listed_user = listed(scim.get("/Users"))["Resources"][0]
    assert {name: listed_user[name] for name in RICH} == RICH
    projected = scim.get(f"/Users/{user['id']}", attributes="ims.value,x509Certificates").json()
    assert projected["ims"] == [{"value": SHARED_IM}, {"value": "rich@jabber.example"}]
    assert projected["x509Certificates"] == RICH["x509Certificates"]
    witness.assert_not_in(scim.get("/Users"))
    witness.assert_untouched()


@pytest.mark.parametrize(
    ("filter_text", "matches"),
    [
        (f'ims[type eq "skype"].value eq "{SHARED_IM}"', True),
        (f'ims[type eq "xmpp"].value eq "{SHARED_IM}"', False),
        ('ims.value eq "RICH@JABBER.EXAMPLE"', True),
        (f'entitlements.value eq "{SHARED_ENTITLEMENT.lower()}"', True),
        ('entitlements[type eq "licence" and display eq "e5"]', True),
        ('photos[type eq "thumbnail"].value ew "small.jpg"', True),
        (f'x509Certificates.value eq "{CERTIFICATE}"', True),
        (f'x509Certificates.value eq "{CERTIFICATE.lower()}"', False),
        ('x509Certificates.display eq "signing"', True),
    ],
)
def test_ims_photos_entitlements_and_certificates_filter_like_emails(
    scim: SCIMClient, witness: OtherTenantWitness, filter_text: str, matches: bool
) -> None:
    """Value paths work on the new attributes as on emails (RFC 7644 §3.4.2.2); caseExact=false
    except x509Certificates.value (binary). The other tenant's user holds the same im and
    entitlement and is never found."""
    user = create_user(scim, "rich@contoso.com", **RICH)
    create_user(scim, "plain@contoso.com")
    for response in (
        scim.get("/Users", filter=filter_text),
        scim.post("/Users/.search", {"filter": filter_text}),
    ):
        assert ids_of(listed(response)) == ([user["id"]] if matches else [])
        witness.assert_not_in(response)
    witness.assert_untouched()


def test_patch_adds_replaces_and_removes_ims_photos_entitlements_and_certificates(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.5.2.1–3 on the new attributes: add appends, a value-filter replace changes one
    element, remove with a filter drops the match and without one the attribute."""
    user = create_user(scim, "rich@contoso.com", **RICH)
    response = scim.patch(
        f"/Users/{user['id']}",
        patch_op(
            {"op": "add", "path": "ims", "value": [{"value": "rich.aim", "type": "aim"}]},
            {
                "op": "replace",
                "path": 'photos[type eq "photo"].value',
                "value": "https://photos.example.com/new.jpg",
            },
            {"op": "remove", "path": 'entitlements[value eq "Parking"]'},
            {"op": "remove", "path": "x509Certificates"},
        ),
    )
    assert response.status_code == 204, response.content
    fetched = scim.get(f"/Users/{user['id']}").json()
    assert fetched["ims"] == [*RICH["ims"], {"value": "rich.aim", "type": "aim"}]
    assert fetched["photos"] == [
        {"value": "https://photos.example.com/new.jpg", "type": "photo"},
        RICH["photos"][1],
    ]
    assert fetched["entitlements"] == RICH["entitlements"][:1]
    assert "x509Certificates" not in fetched
    replaced = scim.patch(
        f"/Users/{user['id']}?attributes=x509Certificates,entitlements",
        patch_op(
            {"op": "add", "path": "x509Certificates", "value": [{"value": CERTIFICATE.lower()}]},
            {"op": "replace", "path": "entitlements", "value": [{"value": "Only"}]},
        ),
    )
    assert replaced.status_code == 200
    assert replaced.json()["x509Certificates"] == [{"value": CERTIFICATE.lower()}]
    assert replaced.json()["entitlements"] == [{"value": "Only"}]
    witness.assert_untouched()


def test_put_replaces_ims_photos_entitlements_and_certificates(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.5.1: PUT replaces the lists it sends and clears the ones it leaves out."""
    user = create_user(scim, "rich@contoso.com", **RICH)
    new = {"ims": [{"value": "new.im", "type": "qq"}], "photos": [{"value": "https://p.example/x.png"}]}
    put = scim.put(f"/Users/{user['id']}", user_body("rich@contoso.com", **new))
    assert put.status_code == 200, put.content
    for document in (put.json(), scim.get(f"/Users/{user['id']}").json()):
        assert {name: document.get(name) for name in RICH} == {
            **new,
            "entitlements": None,
            "x509Certificates": None,
        }
    witness.assert_untouched()


# ------------------------------------------------------------------------- 6. a write-only password


def test_a_password_is_never_returned_nor_logged(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 7643 §4.1.1: password is writeOnly and returned "never". Not in the POST answer, a GET
    (even one asking for it), a list, a search, a Bulk answer or a PATCH projection; the Events
    record only that one was set, and no log line carries it."""
    caplog.set_level(logging.DEBUG)
    created = scim.post("/Users", user_body("pw@contoso.com", password=PASSWORD))
    assert created.status_code == 201, created.content
    user_id = created.json()["id"]
    bulk_response = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "b",
            "data": user_body("bulk@contoso.com", password=PASSWORD),
        },
        {
            "method": "PATCH",
            "path": f"/Users/{user_id}",
            "data": patch_op({"op": "replace", "path": "password", "value": NEW_PASSWORD}),
        },
    )
    responses = [
        created,
        bulk_response,
        scim.get(f"/Users/{user_id}"),
        scim.get(f"/Users/{user_id}", attributes="password,userName"),
        scim.get("/Users"),
        scim.get("/Users", attributes="password"),
        scim.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "attributes": ["password"]}),
        scim.post("/.search", {"schemas": [SEARCH_REQUEST]}),
        scim.patch(
            f"/Users/{user_id}?attributes=password,userName",
            patch_op({"op": "replace", "path": "password", "value": PASSWORD}),
        ),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.content
        text = response.content.decode()
        assert "password" not in text.lower()
        assert PASSWORD not in text and NEW_PASSWORD not in text
        witness.assert_not_in(response)
    assert responses[3].json() == {"schemas": [USER], "id": user_id, "userName": "pw@contoso.com"}

    events = events_text(tenant)
    assert PASSWORD not in events and NEW_PASSWORD not in events
    for user in User.objects.filter(tenant=tenant, username__in=["pw@contoso.com", "bulk@contoso.com"]):
        assert user.password not in events
        assert user.password.startswith(("pbkdf2_", "md5$", "argon2", "bcrypt", "scrypt"))
    created_event = Event.objects.get(tenant=tenant, action="user.create", resource_id=user_id)
    assert created_event.changes["password"] == [None, PASSWORD_SET]
    assert PASSWORD not in caplog.text and NEW_PASSWORD not in caplog.text
    assert User.objects.get(pk=witness.user.pk).check_password(SHARED_PASSWORD)
    witness.assert_untouched()


def test_a_provisioned_password_signs_in_on_the_tenants_sign_in_page_only(
    tenant: Tenant, other_tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """The password POSTed over SCIM is the user's password for this tenant's /login/; a wrong
    one fails, and neither tenant's password opens the same userName at the other tenant."""
    user = create_user(scim, SHARED_USERNAME, password=PASSWORD)
    row = user_row(user["id"])
    assert signed_in_as(sign_in(tenant, SHARED_USERNAME, PASSWORD)) == str(row.pk)
    assert signed_in_as(sign_in(tenant, SHARED_USERNAME, PASSWORD.upper())) is None
    assert signed_in_as(sign_in(tenant, SHARED_USERNAME, SHARED_PASSWORD)) is None
    assert signed_in_as(sign_in(other_tenant, SHARED_USERNAME, PASSWORD)) is None
    witness.assert_rows_untouched()
    assert signed_in_as(sign_in(other_tenant, SHARED_USERNAME, SHARED_PASSWORD)) == str(witness.user.pk)


def test_patch_and_put_set_the_password_and_put_without_one_keeps_it(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """PATCH add/replace sets a new password (the old one stops working); a PUT that leaves the
    password out keeps it, since a client cannot send back what it never reads (returned never)."""
    user = create_user(scim, "change@contoso.com", password=PASSWORD)
    for operation in ("replace", "add"):
        password = f"{NEW_PASSWORD}-{operation}"
        response = scim.patch(
            f"/Users/{user['id']}", patch_op({"op": operation, "path": "password", "value": password})
        )
        assert response.status_code == 204, response.content
        assert signed_in_as(sign_in(tenant, "change@contoso.com", password)) is not None
    assert signed_in_as(sign_in(tenant, "change@contoso.com", PASSWORD)) is None
    assert Event.objects.filter(tenant=tenant, changes__password=[PASSWORD_SET, PASSWORD_SET]).count() == 2

    put = scim.put(f"/Users/{user['id']}", user_body("change@contoso.com", title="Kept"))
    assert put.status_code == 200, put.content
    assert user_row(user["id"]).check_password(f"{NEW_PASSWORD}-add")
    put = scim.put(f"/Users/{user['id']}", user_body("change@contoso.com", password=PASSWORD))
    assert put.status_code == 200
    assert signed_in_as(sign_in(tenant, "change@contoso.com", PASSWORD)) is not None
    assert PASSWORD not in events_text(tenant) and NEW_PASSWORD not in events_text(tenant)
    witness.assert_untouched()


def test_password_cannot_be_filtered_or_sorted_on(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """A filter on the password would let a client test guesses (returned never, RFC 7643 §7):
    it is an invalidFilter, never an unfiltered list or a match."""
    create_user(scim, "pw@contoso.com", password=PASSWORD)
    for text in (f'password eq "{PASSWORD}"', "password pr", f'userName pr and password eq "{PASSWORD}"'):
        body = assert_scim_error(scim.get("/Users", filter=text), 400, "invalidFilter")
        assert "Resources" not in body
        assert_scim_error(scim.post("/Users/.search", {"filter": text}), 400, "invalidFilter")
    assert_scim_error(scim.get("/Users", sortBy="password"), 400, "invalidValue")
    witness.assert_untouched()


def test_a_malformed_password_is_never_echoed_nor_logged(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """A refused password must not end up in the error detail or the provisioning log."""
    user = create_user(scim, "pw@contoso.com")
    response = scim.patch(
        f"/Users/{user['id']}", patch_op({"op": "replace", "path": "password", "value": {"new": PASSWORD}})
    )
    assert_scim_error(response, 400, "invalidValue")
    assert PASSWORD not in events_text(tenant)
    assert PASSWORD not in response.content.decode()
    witness.assert_untouched()


# --------------------------------------------------------------------------------- 7. /Schemas


def _attribute(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in schema["attributes"] if a["name"] == name)


def test_schemas_describe_what_is_now_accepted(
    scim: SCIMClient, other_scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """/Schemas (RFC 7643 §7, §8.7.1) tells clients the new rules: active is required, password
    writeOnly and returned never, externalId without uniqueness, manager.value a case-exact
    string, and the four attributes described with their sub-attributes."""
    response = scim.get("/Schemas")
    schemas = {schema["id"]: schema for schema in listed(response)["Resources"]}
    user, group, extension = schemas[USER], schemas[GROUP], schemas[ENTERPRISE]

    active = _attribute(user, "active")
    assert (active["type"], active["required"], active["mutability"]) == ("boolean", True, "readWrite")
    password = _attribute(user, "password")
    assert (password["mutability"], password["returned"], password["multiValued"]) == (
        "writeOnly",
        "never",
        False,
    )
    for schema in (user, group):
        external_id = _attribute(schema, "externalId")
        assert (external_id["uniqueness"], external_id["caseExact"]) == ("none", True)
    assert _attribute(user, "userName")["uniqueness"] == "server"
    manager_value = next(s for s in _attribute(extension, "manager")["subAttributes"] if s["name"] == "value")
    assert (manager_value["type"], manager_value["caseExact"]) == ("string", True)

    for name in ("ims", "photos", "entitlements", "x509Certificates"):
        attribute = _attribute(user, name)
        assert (attribute["type"], attribute["multiValued"], attribute["mutability"]) == (
            "complex",
            True,
            "readWrite",
        ), name
        subs = {sub["name"]: sub for sub in attribute["subAttributes"]}
        assert set(subs) == {"value", "display", "type", "primary"}, name
        assert subs["primary"]["type"] == "boolean"
    photo_value = next(s for s in _attribute(user, "photos")["subAttributes"] if s["name"] == "value")
    assert (photo_value["type"], photo_value["referenceTypes"]) == ("reference", ["external"])
    certificate_value = next(
        s for s in _attribute(user, "x509Certificates")["subAttributes"] if s["name"] == "value"
    )
    assert (certificate_value["type"], certificate_value["caseExact"]) == ("binary", True)
    assert (
        "skype"
        in next(s for s in _attribute(user, "ims")["subAttributes"] if s["name"] == "type")["canonicalValues"]
    )
    assert scim.get(f"/Schemas/{USER}").json() == user
    assert other_scim.get("/Schemas").json() == response.json()
    witness.assert_not_in(response)
