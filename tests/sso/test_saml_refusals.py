"""SAML responses that must sign nobody in (security.md checks 36–38 and §1.6). Each refusal is a
branded 4xx page (never a 500), a `user.sign_in_refused` event, and no session; Fabrikam's own,
genuine IdP never signs anyone into Contoso."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from directory import services
from directory.models import Event, Tenant, User
from sso import services as sso_services
from sso.models import SamlAssertionSeen
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.sso.conftest import ALICE, FRANK
from tests.sso.flows import complete, post_response, signed_in_user_id, sp_sign_in, start
from tests.sso.support import (
    DIGEST_SHA1,
    SIG_RSA_SHA1,
    FakeEntra,
    KeyPair,
    SpUrls,
    chain,
    encode,
    replace_text,
    saml_time,
    set_attribute,
    tenant_http,
)


def assert_refused(
    response, http: Client, *, status: int | None = None, text: bytes = b"", reason: str = ""
) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:400])
    if status is not None:
        assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert b"SecureLogin" in response.content  # the branded page, not a bare error
    if text:
        assert text in response.content
    assert signed_in_user_id(http) is None
    if reason:
        event = Event.objects.filter(action="user.sign_in_refused").latest("id")
        assert reason in event.detail, event.detail


def refused_events(tenant: Tenant) -> list[Event]:
    return list(Event.objects.filter(tenant=tenant, action="user.sign_in_refused").order_by("id"))


def sp_post(http: Client, entra: FakeEntra, sp: SpUrls, upn: str = ALICE, **kwargs):
    request_id = start(http, entra)
    return post_response(http, entra.response_xml(sp=sp, upn=upn, in_response_to=request_id, **kwargs))


# ------------------------------------------------------------------------- check 36: who signed it


def test_the_other_tenants_real_idp_cannot_sign_into_this_tenant(
    http: Client,
    contoso_entra: FakeEntra,
    fabrikam_entra: FakeEntra,
    contoso_sp: SpUrls,
    alice: User,
    frank: User,
    tenant: Tenant,
) -> None:
    """Fabrikam's Entra, correctly configured at Fabrikam, answers Contoso's request for Alice
    and for Frank: refused both times (its key is not trusted here)."""
    for upn in (ALICE, FRANK):
        request_id = start(http, contoso_entra)
        xml = fabrikam_entra.response_xml(sp=contoso_sp, upn=upn, in_response_to=request_id)
        assert_refused(post_response(http, xml), http, status=403)
    assert len(refused_events(tenant)) == 2


def test_an_attacker_key_naming_the_right_issuer_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, keys: dict[str, KeyPair]
) -> None:
    forged = FakeEntra(
        tid="11111111-1111-4111-8111-111111111111",
        keys=keys["contoso"],
        sign_keys=keys["attacker"],
        sp_metadata=contoso_entra.sp_metadata,
    )
    assert forged.entity_id == contoso_entra.entity_id
    assert_refused(sp_post(http, forged, contoso_sp), http, status=403, reason="SignatureError")


def test_a_name_id_edited_after_signing_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, manager: User
) -> None:
    request_id = start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    tampered = xml.replace(f">{ALICE}</saml:NameID>", f">{manager.username}</saml:NameID>")
    assert tampered != xml
    assert_refused(post_response(http, tampered), http, status=403, reason="SignatureError")


def test_an_unsigned_assertion_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, sign=False), http, status=400, reason="not signed"
    )


def test_a_user_of_the_other_tenant_is_not_found_here(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, frank: User, tenant: Tenant
) -> None:
    """Contoso's own IdP asserting Fabrikam's Frank: nobody of that name was provisioned here."""
    response = sp_post(http, contoso_entra, contoso_sp, upn=FRANK)
    assert_refused(response, http, status=403, text=b"has not been provisioned yet")
    assert not User.objects.filter(tenant=tenant, username=FRANK).exists()


def test_the_issuer_must_be_the_tenants_idp(
    http: Client, contoso_entra: FakeEntra, fabrikam_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    """Contoso's key, but the issuer rewritten to Fabrikam's IdP before signing."""
    mutate = replace_text(contoso_entra.entity_id, fabrikam_entra.entity_id)
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate), http, status=403, reason="MissingKey"
    )


# ---------------------------------------------------------------- check 37: replay, algorithms, time


def test_a_replayed_sp_initiated_response_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant
) -> None:
    request_id = start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    assert post_response(http, xml).status_code == 303
    assert complete(http)["Location"] == "/account/"
    again = tenant_http(tenant)
    start(again, contoso_entra)
    assert_refused(post_response(again, xml), again, status=403)


def test_a_replayed_idp_initiated_response_is_refused(
    contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    """security.md §0 6(b): with IdP-initiated sign-in on, the same response used to sign in
    twice in fresh sessions. The replay cache (a table, so every worker sees it) refuses it."""
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, allow_idp_initiated=True)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE)
    first, second = tenant_http(tenant), tenant_http(tenant)
    assert post_response(first, xml).status_code == 303
    assert signed_in_user_id(first) == str(alice.pk)
    assert_refused(post_response(second, xml), second, status=403, text=b"already used", reason="replayed")
    seen = SamlAssertionSeen.objects.get(tenant=tenant)
    assert seen.not_on_or_after > timezone.now() + timedelta(minutes=10)


def test_the_replay_cache_is_per_tenant_and_pruned_after_not_on_or_after(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    until = timezone.now() + timedelta(minutes=5)
    assert sso_services.saml_assertion_remember(tenant=tenant, assertion_id="id-1", not_on_or_after=until)
    assert not sso_services.saml_assertion_remember(tenant=tenant, assertion_id="id-1", not_on_or_after=until)
    assert sso_services.saml_assertion_remember(
        tenant=other_tenant, assertion_id="id-1", not_on_or_after=until
    )
    assert sso_services.saml_state_prune(now=until + timedelta(minutes=4)) == 0
    assert sso_services.saml_state_prune(now=until + timedelta(minutes=6)) == 2


def test_rsa_sha1_signatures_are_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant
) -> None:
    response = sp_post(http, contoso_entra, contoso_sp, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    assert_refused(response, http, status=400)
    assert "rsa-sha1" in refused_events(tenant)[0].detail


def test_a_sha1_digest_under_a_sha256_signature_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, digest_alg=DIGEST_SHA1),
        http,
        status=400,
        reason="Digest algorithm",
    )


def _shift_times(delta: timedelta, *, not_before: timedelta | None = None):
    when = saml_time(timezone.now() + delta)
    mutations = [set_attribute("NotOnOrAfter", when)]
    if not_before is not None:
        mutations.append(set_attribute("NotBefore", saml_time(timezone.now() + not_before)))
    return chain(*mutations)


def test_an_expired_assertion_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    mutate = _shift_times(timedelta(minutes=-3), not_before=timedelta(minutes=-20))
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate),
        http,
        status=403,
        reason="ResponseLifetimeExceed",
    )


def test_clock_skew_of_up_to_two_minutes_is_tolerated(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    mutate = _shift_times(timedelta(seconds=-60), not_before=timedelta(minutes=-20))
    assert sp_post(http, contoso_entra, contoso_sp, mutate=mutate).status_code == 303


def test_an_assertion_not_yet_valid_beyond_the_skew_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    mutate = set_attribute("NotBefore", saml_time(timezone.now() + timedelta(minutes=3)))
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate), http, status=403, reason="ToEarly"
    )


def test_a_deactivated_user_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    assert_refused(sp_post(http, contoso_entra, contoso_sp), http, status=403, text=b"deactivated")
    event = refused_events(tenant)[0]
    assert event.resource_id == str(alice.scim_id) and event.detail == "The user is deactivated."


# ------------------------------------------------------------ where the response says it is going


def test_a_response_for_another_audience_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, fabrikam_sp: SpUrls, alice: User
) -> None:
    mutate = replace_text(
        f"<saml:Audience>{contoso_sp.entity_id}</saml:Audience>",
        f"<saml:Audience>{fabrikam_sp.entity_id}</saml:Audience>",
    )
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate),
        http,
        status=403,
        reason="AudienceRestrictions",
    )


def test_a_response_for_another_destination_is_refused_not_a_500(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, fabrikam_sp: SpUrls, alice: User
) -> None:
    """djangosaml2 crashes on this one (security.md §1.6)."""
    mutate = set_attribute("Destination", fabrikam_sp.acs, element="samlp:Response")
    assert_refused(sp_post(http, contoso_entra, contoso_sp, mutate=mutate), http, reason="Destination")


def test_a_response_without_destination_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    mutate = replace_text(f' Destination="{contoso_sp.acs}"', "")
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate), http, status=400, reason="Destination"
    )


def test_an_assertion_for_another_recipient_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, fabrikam_sp: SpUrls, alice: User
) -> None:
    """pysaml2 accepts any Recipient by default (security.md §1.6)."""
    mutate = set_attribute("Recipient", fabrikam_sp.acs)
    assert_refused(
        sp_post(http, contoso_entra, contoso_sp, mutate=mutate), http, status=400, reason="Recipient"
    )


def test_a_response_to_a_request_nobody_made_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to="id-made-up")
    assert_refused(post_response(http, xml), http, status=403, reason="Unsolicited")


def test_a_response_to_the_other_tenants_request_is_refused(
    contoso_entra: FakeEntra,
    fabrikam_entra: FakeEntra,
    contoso_sp: SpUrls,
    alice: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    fabrikam_request = start(tenant_http(other_tenant), fabrikam_entra)
    http = tenant_http(tenant)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=fabrikam_request)
    assert_refused(post_response(http, xml), http, status=403, reason="Unsolicited")


def test_an_unknown_in_response_to_is_refused_even_when_idp_initiated_is_allowed(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    """pysaml2 treats an unknown InResponseTo as unsolicited once unsolicited is allowed."""
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, allow_idp_initiated=True)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to="id-made-up")
    assert_refused(post_response(http, xml), http, status=400, reason="unknown, expired or answered")


def test_unsolicited_responses_are_refused_unless_the_tenant_allows_them(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    response = post_response(http, contoso_entra.response_xml(sp=contoso_sp, upn=ALICE))
    assert_refused(response, http, status=403, reason="Unsolicited")


# --------------------------------------------------------------------------- signature wrapping


def _wrap(xml: str, evil_upn: str, where: str) -> str:
    """XSW: keep the signed assertion (so a naive check finds a valid signature) but add an
    unsigned copy naming someone else where a naive consumer would read it."""
    head, rest = xml.split("<saml:Assertion ", 1)
    signed = "<saml:Assertion " + rest[: rest.index("</saml:Assertion>") + len("</saml:Assertion>")]
    tail = rest[rest.index("</saml:Assertion>") + len("</saml:Assertion>") :]
    start_sig = signed.index("<ds:Signature")
    end_sig = signed.index("</ds:Signature>") + len("</ds:Signature>")
    evil = (signed[:start_sig] + signed[end_sig:]).replace(f">{ALICE}<", f">{evil_upn}<")
    evil = evil.replace('ID="', 'ID="evil-', 1)
    if where == "extensions":
        return f"{head}<samlp:Extensions>{signed}</samlp:Extensions>{evil}{tail}".replace(
            "<samlp:Extensions>", "<samlp:Extensions>", 1
        )
    if where == "before":
        return f"{head}{evil}{signed}{tail}"
    if where == "inside":
        return f"{head}{evil.replace('</saml:Assertion>', signed + '</saml:Assertion>')}{tail}"
    return f"{head}{signed}{evil}{tail}"


@pytest.mark.parametrize("where", ["extensions", "before", "after", "inside"])
def test_signature_wrapping_is_refused(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, manager: User, where: str
) -> None:
    request_id = start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    wrapped = _wrap(xml, manager.username, where)
    assert wrapped.count("<saml:Assertion ") == 2
    assert_refused(post_response(http, wrapped), http, status=400, reason="2 assertions")


def test_the_signature_must_cover_the_assertion_it_sits_in(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    request_id = start(http, contoso_entra)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    moved = xml.replace('<ds:Reference URI="#', '<ds:Reference URI="#other-', 1)
    assert_refused(post_response(http, moved), http, status=400, reason="does not cover")


# -------------------------------------------------------------------- malformed and hostile input


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"SAMLResponse": ""},
        {"SAMLResponse": "not base64 !!"},
        {"SAMLResponse": encode("not xml")},
        {"SAMLResponse": encode('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')},
        {"SAMLResponse": encode("<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol'/>")},
        {"SAMLResponse": "A" * 600_000},
    ],
)
def test_malformed_posts_get_a_branded_400(
    http: Client, contoso_entra: FakeEntra, alice: User, payload: dict[str, str]
) -> None:
    response = http.post("/saml2/acs/", payload, secure=True)
    assert_refused(response, http, status=400)


def test_an_idp_error_status_is_a_clear_refusal(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    """Entra answers with an error status when the user is not assigned to the application."""
    request_id = start(http, contoso_entra)
    error = contoso_entra.server.create_error_response(
        request_id,
        contoso_sp.acs,
        ("urn:oasis:names:tc:SAML:2.0:status:Requester", "AADSTS50105: not assigned"),
        sign=False,
    )
    response = post_response(http, str(error))
    assert_refused(response, http, status=403, text=b"assign you to this application", reason="AADSTS50105")


def test_get_on_the_acs_is_not_allowed(http: Client, contoso_entra: FakeEntra) -> None:
    assert http.get("/saml2/acs/", secure=True).status_code == 405


# ------------------------------------------------------------------------------- axes and the log


def test_refusals_are_never_counted_as_password_failures(
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
    alice: User,
    manager: User,
    tenant: Tenant,
    keys: dict[str, KeyPair],
) -> None:
    """security.md §1.6: through `authenticate`, axes counted every refused assertion on one key
    (the tenant with an empty username) and locked the tenant's SSO after five."""
    forged = FakeEntra(
        tid="11111111-1111-4111-8111-111111111111",
        keys=keys["contoso"],
        sign_keys=keys["attacker"],
        sp_metadata=contoso_entra.sp_metadata,
    )
    for _ in range(8):
        browser = tenant_http(tenant)
        assert sp_post(browser, forged, contoso_sp).status_code == 403
    for _ in range(3):
        browser = tenant_http(tenant)
        assert sp_post(browser, contoso_entra, contoso_sp, upn="nobody@contoso.com").status_code == 403
    assert AccessAttempt.objects.count() == 0
    assert sp_sign_in(tenant_http(tenant), contoso_entra, contoso_sp, ALICE)["Location"] == "/account/"
    password = tenant_http(tenant).submit("/login/", {"username": manager.username, "password": PASSWORD})
    assert password.status_code == 302


def test_refusal_events_say_why_and_never_hold_the_assertion(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant
) -> None:
    response = sp_post(http, contoso_entra, contoso_sp, upn="ghost@contoso.com")
    assert response.status_code == 403
    (event,) = refused_events(tenant)
    assert event.result == Event.Result.FAILURE
    assert event.resource_label == "ghost@contoso.com" and event.resource_id == ""
    assert event.changes == {"method": "saml", "address": "127.0.0.1"}
    assert event.detail == "No user with this identity has been provisioned in this tenant."
    assert "Signature" not in event.detail and "SAMLResponse" not in event.detail
