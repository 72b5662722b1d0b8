"""SAML 2.0 endpoints on a tenant's host: /saml2/metadata/, /saml2/login/, /saml2/acs/ (and its
same-site completion), /saml2/logout/ and /saml2/ls/. The root host and tenants without SAML get
404.

Every refusal is a branded 4xx page and a `user.sign_in_refused` event; none reaches
`django.contrib.auth.authenticate`, so django-axes never counts it (security.md §1.6).

SP-initiated sign-in, and why it takes two steps. Entra POSTs the response cross-site, so the
SameSite=Lax session cookie is not sent with it (and djangosaml2's SameSite=None `saml_session`
cookie, which would be, is dropped by browsers whenever it is not Secure). So:

1. /saml2/login/ stores the AuthnRequest id server-side (SamlRequest) *and* in the browser's
   session, then redirects to Entra;
2. /saml2/acs/ validates the response against the stored id (pysaml2 + sso.saml's checks + the
   replay cache), links the user, marks the request answered, and 303-redirects to
3. /saml2/acs/complete/, a same-site top-level GET that carries the Lax session cookie: it signs
   in only if this session started an answered request, so a response planted in another
   browser (login CSRF) signs nobody in.

IdP-initiated sign-in (the My Apps tile, only when the tenant allows it) has no request to bind
to; it signs in on the ACS POST itself, guarded by the replay cache.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import login, logout
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from djangosaml2.views import get_namespace_prefixes
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import SPConfig
from saml2.ident import decode
from saml2.metadata import entity_descriptor

from directory.models import Tenant, User
from oauth.security import client_ip, secure_page
from oauth.validators import is_active_manager
from sso import entra_values, linking, services, signin_test
from sso.backends import SSO_BACKEND
from sso.models import SsoSettings
from sso.saml import (
    OutstandingRequests,
    SamlRefused,
    decode_response,
    precheck_response,
    saml_client,
    saml_settings_for,
    sp_config_dict,
    validate_response,
)

logger = logging.getLogger("sso.saml")

ACCOUNT_PATH = "/account/"
SIGN_IN_PATH = "/login/"
COMPLETE_PATH = "/saml2/acs/complete/"
SESSION_REQUESTS = "sso_saml_requests"
SESSION_SAML = "sso_saml"
SESSION_METHOD = "sso_method"
MAX_PENDING_PER_SESSION = 5

NOT_PROVISIONED_PAGE = "sso/not_provisioned.html"
REFUSED_PAGE = "sso/refused.html"
EXPIRED_PUBLIC = "This sign-in expired or was started in another browser. Start again from the sign-in page."
INACTIVE_PUBLIC = "Your account is deactivated. Ask your administrator for access."
REPLAY_PUBLIC = "This sign-in response was already used. Start again from the sign-in page."


def local_path(value: str | None) -> str:
    """`value` when it is a path on this host (`/…`, not `//…` or `/\\…`), else ''. RelayState
    and `next` never choose another host."""
    value = (value or "").strip()
    if (
        value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(value, allowed_hosts=set())
    ):
        return value
    return ""


def _landing(user: User, tenant: Tenant, next_path: str) -> str:
    """Managers continue to `next`; everyone else lands on their account, as after a password
    sign-in (oauth.views.TenantSignInView)."""
    if is_active_manager(user, tenant):
        return local_path(next_path) or ACCOUNT_PATH
    return ACCOUNT_PATH


def _refused_page(request: HttpRequest, *, public: str, status: int) -> HttpResponse:
    return render(request, REFUSED_PAGE, {"message": public}, status=status)


def _refuse(
    request: HttpRequest,
    refusal: SamlRefused,
    *,
    user: User | None = None,
    subject: str = "",
) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    tested = signin_test.saml_refused(request, refusal.reason)  # a console test: its result page
    if tested is not None:
        return tested
    logger.warning("SAML sign-in refused for tenant %s: %s", tenant.slug, refusal.reason)
    services.sign_in_record(
        tenant=tenant,
        actor=services.sign_in_actor(user, "saml"),
        user=user,
        method="saml",
        address=client_ip(request),
        succeeded=False,
        reason=refusal.reason,
        subject=subject,
    )
    return _refused_page(request, public=refusal.public, status=refusal.status)


def _sign_in(request: HttpRequest, user: User, *, name_id: str, session_index: str) -> None:
    login(request, user, backend=SSO_BACKEND)
    request.session[SESSION_METHOD] = "saml"
    request.session[SESSION_SAML] = {"name_id": name_id, "session_index": session_index}
    services.sign_in_record(
        tenant=request.tenant,  # type: ignore[attr-defined]
        actor=services.sign_in_actor(user, "saml"),
        user=user,
        method="saml",
        address=client_ip(request),
        succeeded=True,
    )


# -------------------------------------------------------------------------------------- metadata


@require_GET
def metadata(request: HttpRequest) -> HttpResponse:
    """This SP's metadata for Entra's "Upload metadata file"; served before SAML is switched on
    (the IdP is configured after the SP), never on the root host."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is None or tenant.is_platform or not tenant.is_active:
        raise Http404("No SAML service provider here.")
    sso = SsoSettings.objects.filter(tenant=tenant).first() or SsoSettings(tenant=tenant)
    config = sp_config_dict(tenant, sso, request)
    if not (sso.idp_entity_id and sso.idp_certificates and sso.idp_sso_url):
        config.pop("metadata")
    conf = SPConfig()
    conf.load(config)
    return HttpResponse(str(entity_descriptor(conf)).encode("utf-8"), content_type="text/xml; charset=utf-8")


# ----------------------------------------------------------------------------------------- login


@secure_page
@require_GET
def login_start(request: HttpRequest) -> HttpResponse:
    """SP-initiated sign-in: an AuthnRequest to Entra over HTTP-Redirect."""
    sso = saml_settings_for(request)
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    next_path = local_path(request.GET.get("next"))
    if request.user.is_authenticated:
        return HttpResponseRedirect(_landing(request.user, tenant, next_path))  # type: ignore[arg-type]
    services.saml_state_prune()
    client = saml_client(request)
    request_id, info = client.prepare_for_authenticate(
        entityid=sso.idp_entity_id,
        relay_state="",
        binding=BINDING_HTTP_REDIRECT,
        nsprefix=get_namespace_prefixes(),
    )
    services.saml_request_open(tenant=tenant, request_id=request_id, next_path=next_path)
    pending = [*request.session.get(SESSION_REQUESTS, []), request_id][-MAX_PENDING_PER_SESSION:]
    request.session[SESSION_REQUESTS] = pending
    location = dict(info["headers"])["Location"]
    return HttpResponseRedirect(location)


# ------------------------------------------------------------------------------------------- ACS


@csrf_exempt
@secure_page
def acs(request: HttpRequest) -> HttpResponse:
    """The Assertion Consumer Service (HTTP-POST binding). CSRF-exempt by nature: the form is
    Entra's, posted cross-site; the signature, the stored request id and the replay cache stand
    in for the token."""
    sso = saml_settings_for(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    subject = ""
    user: User | None = None
    try:
        encoded = request.POST.get("SAMLResponse", "")
        if not encoded:
            raise SamlRefused("The request carries no SAMLResponse.")
        precheck_response(decode_response(encoded))
        return _consume(request, sso, encoded)
    except _Refusal as exc:
        return _refuse(request, exc.refusal, user=exc.user, subject=exc.subject)
    except SamlRefused as exc:
        return _refuse(request, exc, user=user, subject=subject)
    except Exception:
        # Never a 500 to the browser for a bad message: log it with its trace for us.
        logger.exception("SAML response could not be processed")
        return _refuse(request, SamlRefused("The response could not be processed."))


class _Refusal(Exception):
    def __init__(self, refusal: SamlRefused, *, user: User | None, subject: str) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal
        self.user = user
        self.subject = subject


def _consume(request: HttpRequest, sso: SsoSettings, encoded: str) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    services.saml_state_prune()
    client = saml_client(request)
    acs_url = entra_values.saml_values(tenant, request).reply_url
    outstanding = OutstandingRequests(tenant)
    try:
        response = client.parse_authn_request_response(encoded, BINDING_HTTP_POST, outstanding)
    except Exception as exc:
        # pysaml2 refuses with many exception types (signature, audience, time, destination,
        # status, unsolicited); djangosaml2 would crash on some. All mean "not accepted".
        raise SamlRefused(f"{type(exc).__name__}: {str(exc)[:300]}", status=403) from exc
    if response is None:
        raise SamlRefused("The response could not be parsed.")
    identity = validate_response(response, sso=sso, acs_url=acs_url, outstanding=outstanding)
    subject = identity.upn or identity.object_id or identity.name_id
    if not services.saml_assertion_remember(
        tenant=tenant, assertion_id=identity.assertion_id, not_on_or_after=identity.not_on_or_after
    ):
        raise _Refusal(
            SamlRefused("Assertion replayed.", public=REPLAY_PUBLIC, status=403), user=None, subject=subject
        )
    test_key = signin_test.saml_trial_key(tenant, identity.in_response_to)
    if test_key:  # the console's "Test sign-in": show the claims, sign nobody in
        return signin_test.saml_answered(request, sso=sso, key=test_key, response=response, identity=identity)
    link = linking.sso_link(tenant, upn=identity.upn, object_id=identity.object_id, sso=sso)
    if link.refusal in (linking.NOT_PROVISIONED, linking.AMBIGUOUS, linking.NO_IDENTIFIER):
        logger.info("SAML sign-in for tenant %s: %s", tenant.slug, link.refusal)
        services.sign_in_record(
            tenant=tenant,
            actor=services.sign_in_actor(None, "saml"),
            user=None,
            method="saml",
            address=client_ip(request),
            succeeded=False,
            reason=linking.REASONS[link.refusal],
            subject=subject,
        )
        return render(request, NOT_PROVISIONED_PAGE, {"subject": subject}, status=403)
    if link.refusal == linking.INACTIVE or link.user is None:
        raise _Refusal(
            SamlRefused(linking.REASONS[linking.INACTIVE], public=INACTIVE_PUBLIC, status=403),
            user=link.user,
            subject=subject,
        )
    user = link.user
    if identity.in_response_to:
        if not services.saml_request_answer(
            tenant=tenant,
            request_id=identity.in_response_to,
            user=user,
            name_id=identity.name_id_coded,
            session_index=identity.session_index,
        ):
            raise _Refusal(
                SamlRefused("The request was already answered.", public=REPLAY_PUBLIC, status=403),
                user=user,
                subject=subject,
            )
        return HttpResponseRedirect(COMPLETE_PATH, status=303)
    _sign_in(request, user, name_id=identity.name_id_coded, session_index=identity.session_index)
    return HttpResponseRedirect(
        _landing(user, tenant, local_path(request.POST.get("RelayState"))), status=303
    )


@secure_page
@require_GET
def acs_complete(request: HttpRequest) -> HttpResponse:
    """Step 3 of SP-initiated sign-in: only the session that sent the request signs in."""
    saml_settings_for(request)
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    pending = list(request.session.get(SESSION_REQUESTS, []))
    row = services.saml_request_take(tenant=tenant, request_ids=pending)
    if row is None or row.user is None:
        return _refuse(
            request,
            SamlRefused("No answered sign-in for this browser session.", public=EXPIRED_PUBLIC, status=403),
        )
    user = row.user
    if not linking.user_may_sign_in(user, tenant):
        return _refuse(
            request,
            SamlRefused(linking.REASONS[linking.INACTIVE], public=INACTIVE_PUBLIC, status=403),
            user=user,
        )
    request.session[SESSION_REQUESTS] = [rid for rid in pending if rid != row.request_id]
    _sign_in(request, user, name_id=row.name_id, session_index=row.session_index)
    request.session.pop(SESSION_REQUESTS, None)
    return HttpResponseRedirect(_landing(user, tenant, row.next_path))


# ---------------------------------------------------------------------------------------- logout


@secure_page
@require_POST
def logout_start(request: HttpRequest) -> HttpResponse:
    """Sign out here and, for a SAML session with an IdP logout URL, at Entra too (SP-initiated
    single logout). CSRF-protected: a POST from the account page."""
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    saml_state = request.session.get(SESSION_SAML) if request.user.is_authenticated else None
    sso = SsoSettings.objects.filter(tenant=tenant).first() if not tenant.is_platform else None
    logout(request)
    if not saml_state or sso is None or not sso.saml_enabled or not sso.idp_slo_url:
        return HttpResponseRedirect(SIGN_IN_PATH)
    try:
        client = saml_client(request)
        _request_id, logout_request = client.create_logout_request(
            sso.idp_slo_url,
            sso.idp_entity_id,
            name_id=decode(saml_state["name_id"]),
            session_indexes=[saml_state["session_index"]] if saml_state.get("session_index") else None,
        )
        info = client.apply_binding(BINDING_HTTP_REDIRECT, str(logout_request), sso.idp_slo_url, "")
    except Exception:
        logger.exception("SAML logout request could not be built; signed out locally only")
        return HttpResponseRedirect(SIGN_IN_PATH)
    return HttpResponseRedirect(dict(info["headers"])["Location"])


@csrf_exempt
@secure_page
def logout_service(request: HttpRequest) -> HttpResponse:
    """The SingleLogoutService: Entra's answer to our LogoutRequest, or Entra's own LogoutRequest
    when the user signs out elsewhere (IdP-initiated single logout)."""
    sso = saml_settings_for(request)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    data = request.GET if request.method == "GET" else request.POST
    binding = BINDING_HTTP_REDIRECT if request.method == "GET" else BINDING_HTTP_POST
    client = saml_client(request)
    if "SAMLResponse" in data:
        try:
            client.parse_logout_request_response(data["SAMLResponse"], binding)
        except Exception:  # the local session ends either way
            logger.warning("SAML logout response not accepted", exc_info=True)
        logout(request)
        return HttpResponseRedirect(SIGN_IN_PATH)
    if "SAMLRequest" not in data:
        return _refused_page(request, public="This is not a sign-out request.", status=400)
    return _idp_logout(request, sso, client, data, binding)


def _idp_logout(request: HttpRequest, sso: SsoSettings, client: Any, data: Any, binding: str) -> HttpResponse:
    try:
        parsed = client.parse_logout_request(
            data["SAMLRequest"],
            binding,
            relay_state=data.get("RelayState"),
            sigalg=data.get("SigAlg"),
            signature=data.get("Signature"),
        )
    except Exception:
        logger.warning("SAML logout request not accepted", exc_info=True)
        return _refused_page(request, public="This sign-out request could not be accepted.", status=400)
    message = parsed.message if parsed is not None else None
    if message is None or getattr(message.issuer, "text", "").strip() != sso.idp_entity_id:
        return _refused_page(request, public="This sign-out request could not be accepted.", status=400)
    saml_state = request.session.get(SESSION_SAML) or {}
    ours = saml_state.get("name_id")
    if ours and message.name_id is not None and decode(ours).text == message.name_id.text:
        logout(request)
    response = client.create_logout_response(message, [BINDING_HTTP_REDIRECT], status=None)
    info = client.apply_binding(
        BINDING_HTTP_REDIRECT, str(response), sso.idp_slo_url or "", data.get("RelayState", ""), response=True
    )
    if not sso.idp_slo_url:
        return HttpResponseRedirect(SIGN_IN_PATH)
    return HttpResponseRedirect(dict(info["headers"])["Location"])
