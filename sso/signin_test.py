"""The console's "Test sign-in": a manager (or an operator) runs a real SP-initiated round trip
through the tenant's identity provider and sees what came back (the decoded claims and the user
they match), while nobody is signed in and the console session stays as it was.

Where the test lives, and why there. The console starts it (managers on the tenant host, operators
on the root host), but the answer reaches the tenant host's ACS as Entra's cross-site POST, with
no session cookie, or the OIDC callback, in a session that is not the operator's. So a test is a
record of its own, server-side: an entry of the session store (the database by default; whatever
SESSION_ENGINE names, which every worker already shares), under an unguessable key, expiring after
TEST_LIFETIME_SECONDS. The protocol's own server-side state points at it:

- SAML: the AuthnRequest's SamlRequest row has `next_path = "sso-test:<key>"` (never a local path,
  so sso.views.local_path would refuse it as a landing). The ACS asks `saml_trial_key` once the
  response passed every check a sign-in passes (signature, issuer, audience, Destination,
  Recipient, InResponseTo, replay cache) and hands over to `saml_answered`.
- OpenID Connect: `state` is "sso-test.<key>"; the callback hands it to `oidc_callback`, which
  redeems the code with the record's PKCE verifier and verifies the ID token with its nonce, as a
  sign-in does.

Either way the record gets the claims and the linking outcome, the protocol state is spent (the
SamlRequest row is deleted, so no /saml2/acs/complete/ can ever sign in with it; the record's
state is used once), an `sso.test_sign_in` event is written, and the browser is sent to the result
URL stored in the record at the start. The console shows a record only to the console session
that started it (`SESSION_KEYS`) and only on the page of its tenant.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from defusedxml import DefusedXmlException, ElementTree
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import SPConfig

from directory.models import Event, Tenant, User
from directory.services import Actor, event_record
from sso import entra_values, linking, services
from sso.models import SamlRequest, SsoSettings

logger = logging.getLogger("sso.test")

TEST_LIFETIME_SECONDS = 600
SAML_MARKER = "sso-test:"
OIDC_STATE_PREFIX = "sso-test."
SESSION_KEYS = "sso_test_sign_ins"
"""The console session's list of the tests it started (their keys), newest last."""
MAX_TESTS_PER_SESSION = 5
MAX_ATTRIBUTES = 60
MAX_VALUE_CHARS = 500
EVENT_ACTION = "sso.test_sign_in"

PENDING = "pending"
DONE = "done"


class TestUnavailable(Exception):
    """A test sign-in cannot start (the protocol is off or incomplete, the provider cannot be
    reached): shown on the console page as a form error."""

    __test__ = False  # not a pytest test class

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------------------------- the record


def _store(key: str | None = None) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key=key)


def _new_record(data: dict[str, Any]) -> str:
    store = _store()
    store.update(data)
    store.set_expiry(TEST_LIFETIME_SECONDS)
    store.create()
    return str(store.session_key)


def load(key: str) -> dict[str, Any] | None:
    """The test record under `key`, or None (unknown, expired, or not a test record)."""
    if not key or len(key) > 64:
        return None
    data = _store(key).load()
    return dict(data) if data.get("kind") == "sso-test" else None


def _save(key: str, data: dict[str, Any]) -> None:
    store = _store(key)
    store.clear()
    store.update(data)
    store.set_expiry(TEST_LIFETIME_SECONDS)
    store.save()


def _claim_once(key: str, tenant: Tenant, protocol: str) -> dict[str, Any] | None:
    """The pending record of `tenant` and `protocol` under `key`, marked answered so a second
    answer (a replayed callback, a second ACS POST) finds nothing."""
    record = load(key)
    if record is None or record.get("state") != PENDING:
        return None
    if record.get("tenant_id") != tenant.pk or record.get("protocol") != protocol:
        return None
    record["state"] = DONE
    _save(key, record)
    return record


def remember_in_session(session: SessionBase, key: str) -> None:
    keys = [k for k in session.get(SESSION_KEYS, []) if k != key]
    session[SESSION_KEYS] = [*keys, key][-MAX_TESTS_PER_SESSION:]


def result_for(session: SessionBase, tenant: Tenant, key: str) -> dict[str, Any] | None:
    """The record for the console page: only one this console session started, of `tenant`."""
    if key not in session.get(SESSION_KEYS, []):
        return None
    record = load(key)
    if record is None or record.get("tenant_id") != tenant.pk:
        return None
    return record


def _start_record(*, tenant: Tenant, protocol: str, user: User, result_url: str) -> str:
    return _new_record(
        {
            "kind": "sso-test",
            "state": PENDING,
            "tenant_id": tenant.pk,
            "protocol": protocol,
            "started_by": user.username,
            "started_by_pk": user.pk,
            "started_at": timezone.now().isoformat(),
            "result_url": result_url,
        }
    )


def _set_result_url(key: str, result_url: str) -> None:
    record = load(key)
    if record is not None:
        record["result_url"] = result_url
        _save(key, record)


# ------------------------------------------------------------------------------------------ start


def start(
    request: HttpRequest,
    *,
    tenant: Tenant,
    protocol: str,
    result_url: Any,
    force_authn: bool = True,
) -> str:
    """Open a test and return where to send the manager's browser (the IdP). `result_url(key)` is
    the absolute console URL the answer is sent to. The console session remembers the key."""
    sso = SsoSettings.objects.filter(tenant=tenant).first()
    user: User = request.user  # type: ignore[assignment]
    if protocol == "saml":
        if sso is None or not sso.saml_enabled:
            raise TestUnavailable("Switch SAML sign-in on (and save) before testing it.")
        key = _start_record(tenant=tenant, protocol=protocol, user=user, result_url="")
        location = _saml_begin(request, tenant=tenant, sso=sso, key=key, force_authn=force_authn)
    elif protocol == "oidc":
        if sso is None or not sso.oidc_enabled:
            raise TestUnavailable("Switch OpenID Connect sign-in on (and save) before testing it.")
        key = _start_record(tenant=tenant, protocol=protocol, user=user, result_url="")
        location = _oidc_begin(request, tenant=tenant, sso=sso, key=key, force_authn=force_authn)
    else:
        raise TestUnavailable("Choose SAML or OpenID Connect.")
    _set_result_url(key, result_url(key))
    remember_in_session(request.session, key)
    return location


def _saml_begin(
    request: HttpRequest, *, tenant: Tenant, sso: SsoSettings, key: str, force_authn: bool
) -> str:
    """An AuthnRequest of the tenant's SP, exactly as /saml2/login/ sends it (built from the same
    config, so the ACS and entity id are the tenant host's even when an operator starts the test
    on the root host), with the request's SamlRequest row marking it as this test."""
    from djangosaml2.overrides import Saml2Client
    from djangosaml2.views import get_namespace_prefixes

    from sso.saml import sp_config_dict

    config = SPConfig()
    config.load(sp_config_dict(tenant, sso, request))
    client = Saml2Client(config)
    request_id, info = client.prepare_for_authenticate(
        entityid=sso.idp_entity_id,
        relay_state="",
        binding=BINDING_HTTP_REDIRECT,
        nsprefix=get_namespace_prefixes(),
        force_authn="true" if force_authn else "",
    )
    services.saml_request_open(tenant=tenant, request_id=request_id, next_path=f"{SAML_MARKER}{key}")
    record = load(key) or {}
    _save(key, {**record, "request_id": request_id})
    return str(dict(info["headers"])["Location"])


def _oidc_begin(
    request: HttpRequest, *, tenant: Tenant, sso: SsoSettings, key: str, force_authn: bool
) -> str:
    from sso import oidc

    try:
        provider = oidc.provider_metadata(sso)
    except oidc.OidcRefused as exc:
        raise TestUnavailable(f"The OpenID Connect provider cannot be used: {exc.reason}") from exc
    attempt = oidc.LoginRequest.new()
    login = oidc.LoginRequest(
        state=f"{OIDC_STATE_PREFIX}{key}", nonce=attempt.nonce, code_verifier=attempt.code_verifier
    )
    redirect_uri = entra_values.oidc_redirect_uri(tenant, request)
    record = load(key) or {}
    _save(
        key,
        {**record, "nonce": login.nonce, "verifier": login.code_verifier, "redirect_uri": redirect_uri},
    )
    url = oidc.authorization_url(provider, sso, login, redirect_uri=redirect_uri)
    return f"{url}&prompt=login" if force_authn else url


# ------------------------------------------------------------------------------------- the answer


def _text(value: Any) -> str:
    return str(value if value is not None else "")[:MAX_VALUE_CHARS]


def _match(tenant: Tenant, sso: SsoSettings, *, upn: str, object_id: str) -> dict[str, Any]:
    """Which user a sign-in with this identity would be: the linking rule itself, no side effect."""
    link = linking.sso_link(tenant, upn=upn, object_id=object_id, sso=sso)
    found = {
        "matched_by": link.matched_by,
        "looked_up": object_id if link.matched_by == "externalId" else upn,
        "allowed": link.allowed,
        "refusal": linking.REASONS.get(link.refusal, "") if link.refusal else "",
        "user": None,
    }
    if link.user is not None:
        found["user"] = {
            "pk": link.user.pk,
            "username": link.user.username,
            "display_name": link.user.display_name,
            "active": link.user.is_active,
        }
    return found


def _refused(reason: str) -> dict[str, Any]:
    return {"accepted": False, "reason": reason, "claims": {}, "match": {}}


def _finish(
    request: HttpRequest, key: str, record: dict[str, Any], tenant: Tenant, result: dict[str, Any]
) -> HttpResponse:
    result = {**result, "finished_at": timezone.now().isoformat()}
    _save(key, {**record, "state": DONE, "result": result})
    match = result.get("match") or {}
    user = (match.get("user") or {}).get("username", "")
    outcome = "accepted" if result.get("accepted") else "refused"
    starter = User.objects.filter(pk=record.get("started_by_pk")).first()
    actor = Actor.manager(starter) if starter is not None else Actor.system("test sign-in")
    with transaction.atomic():
        event_record(
            tenant=tenant,
            actor=actor,
            action=EVENT_ACTION,
            resource_type="SsoSettings",
            resource_label="Single sign-on",
            changes={
                "method": record.get("protocol", ""),
                "outcome": outcome,
                "subject": _text(result.get("subject"))[:200],
                "matched_user": user,
            },
            result=Event.Result.SUCCESS if result.get("accepted") else Event.Result.FAILURE,
            detail=_text(result.get("reason") or match.get("refusal") or ""),
        )
    logger.info("Test sign-in for tenant %s (%s): %s", tenant.slug, record.get("protocol"), outcome)
    return HttpResponseRedirect(str(record.get("result_url") or "/"), status=303)


# ------------------------------------------------------------------------------------------- SAML


def saml_trial_key(tenant: Tenant, request_id: str) -> str:
    """The test key when the AuthnRequest `request_id` was sent by a console test, else ''."""
    if not request_id:
        return ""
    row = SamlRequest.objects.filter(tenant=tenant, request_id=request_id).only("next_path").first()
    if row is None or not row.next_path.startswith(SAML_MARKER):
        return ""
    return row.next_path[len(SAML_MARKER) :]


def _saml_attributes(response: Any) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []
    assertion = response.assertion
    for statement in getattr(assertion, "attribute_statement", None) or []:
        for attribute in statement.attribute or []:
            name = attribute.friendly_name or attribute.name or ""
            values = [_text(v.text) for v in attribute.attribute_value or []]
            rows.append((_text(name), values[:20]))
    if not rows:
        rows = [(_text(k), [_text(v) for v in vs][:20]) for k, vs in (response.ava or {}).items()]
    return rows[:MAX_ATTRIBUTES]


def _saml_claims(response: Any, identity: Any) -> dict[str, Any]:
    assertion = response.assertion
    conditions = assertion.conditions
    audiences = [_text(a.text) for r in (conditions.audience_restriction or []) for a in (r.audience or [])]
    name_id = response.name_id
    statements = assertion.authn_statement or []
    return {
        "issuer": _text(getattr(assertion.issuer, "text", "")).strip(),
        "audience": audiences,
        "destination": _text(response.response.destination),
        "in_response_to": _text(identity.in_response_to),
        "name_id": _text(getattr(name_id, "text", "")).strip(),
        "name_id_format": _text(getattr(name_id, "format", "")),
        "session_index": _text(identity.session_index),
        "authn_instant": _text(statements[0].authn_instant) if statements else "",
        "not_on_or_after": identity.not_on_or_after.isoformat(),
        "attributes": _saml_attributes(response),
        "upn": identity.upn,
        "object_id": identity.object_id,
    }


def saml_answered(
    request: HttpRequest, *, sso: SsoSettings, key: str, response: Any, identity: Any
) -> HttpResponse:
    """The ACS's hand-over for a validated response to a console test: nobody signs in."""
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    SamlRequest.objects.filter(tenant=tenant, request_id=identity.in_response_to).delete()
    record = _claim_once(key, tenant, "saml")
    if record is None:
        from sso.saml import SamlRefused

        raise SamlRefused("A console test sign-in that is unknown, expired or already answered.", status=403)
    claims = _saml_claims(response, identity)
    match = _match(tenant, sso, upn=identity.upn, object_id=identity.object_id)
    subject = identity.upn or identity.object_id or identity.name_id
    return _finish(
        request,
        key,
        record,
        tenant,
        {"accepted": True, "claims": claims, "match": match, "subject": subject},
    )


def _in_response_to(encoded: str) -> str:
    from sso.saml import SamlRefused, decode_response

    try:
        root = ElementTree.fromstring(decode_response(encoded), forbid_dtd=True)
    except (SamlRefused, ElementTree.ParseError, DefusedXmlException, ValueError):
        return ""
    return str(root.get("InResponseTo") or "")[:128]


def saml_refused(request: HttpRequest, reason: str) -> HttpResponse | None:
    """The ACS's hand-over for a refused response that names a console test's AuthnRequest: the
    tester sees the reason on the result page instead of the sign-in refusal page. None when the
    POST is not an answer to a test."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    encoded = request.POST.get("SAMLResponse", "") if request.method == "POST" else ""
    if tenant is None or not encoded:
        return None
    request_id = _in_response_to(encoded)
    key = saml_trial_key(tenant, request_id)
    if not key:
        return None
    SamlRequest.objects.filter(tenant=tenant, request_id=request_id).delete()
    record = _claim_once(key, tenant, "saml")
    if record is None:
        return None
    return _finish(request, key, record, tenant, _refused(reason))


# ------------------------------------------------------------------------------ OpenID Connect


def is_oidc_test_state(state: str) -> bool:
    return state.startswith(OIDC_STATE_PREFIX)


def oidc_callback(request: HttpRequest, sso: SsoSettings, state: str) -> HttpResponse | None:
    """The callback's hand-over for a console test's `state`: redeem, verify (the same checks as a
    sign-in, with the record's verifier and nonce), link, record; nobody signs in. None when the
    state names no pending test of this tenant (the caller refuses it as an unknown state)."""
    from sso import oidc

    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    key = state[len(OIDC_STATE_PREFIX) :]
    record = _claim_once(key, tenant, "oidc")
    if record is None:
        return None
    error = request.GET.get("error", "")
    if error:
        reason = f"Entra answered {error[:64]}: {oidc.first_line(request.GET.get('error_description', ''))}"
        return _finish(request, key, record, tenant, _refused(reason))
    try:
        provider = oidc.provider_metadata(sso)
        id_token = oidc.redeem_code(
            provider,
            sso,
            code=request.GET.get("code", ""),
            redirect_uri=str(record.get("redirect_uri", "")),
            code_verifier=str(record.get("verifier", "")),
        )
        claims = oidc.verify_id_token(
            id_token, provider=provider, sso=sso, nonce=str(record.get("nonce", ""))
        )
    except oidc.OidcRefused as exc:
        return _finish(request, key, record, tenant, _refused(exc.reason))
    except Exception:
        logger.exception("OpenID Connect test sign-in could not be processed")
        reason = "The callback could not be processed."
        return _finish(request, key, record, tenant, _refused(reason))
    identity = oidc.Identity.of(claims)
    audience = claims.get("aud")
    shown = {
        "issuer": _text(claims.get("iss")),
        "audience": [_text(a) for a in (audience if isinstance(audience, list) else [audience])],
        "attributes": [(_text(k), [_text(v)]) for k, v in sorted(claims.items()) if k != "nonce"][
            :MAX_ATTRIBUTES
        ],
        "upn": identity.upn,
        "object_id": identity.object_id,
    }
    match = _match(tenant, sso, upn=identity.upn, object_id=identity.object_id)
    return _finish(
        request,
        key,
        record,
        tenant,
        {"accepted": True, "claims": shown, "match": match, "subject": identity.subject},
    )
