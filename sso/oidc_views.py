"""OpenID Connect endpoints on a tenant's host: /oidc/login/ and /oidc/callback/ (the redirect URI
registered on the tenant's Entra app, sso.entra_values.oidc_redirect_uri). The root host and
tenants without OpenID Connect get 404.

1. /oidc/login/ makes a fresh `state`, `nonce` and PKCE verifier, keeps them in this browser's
   session (at most MAX_PENDING_PER_SESSION sign-ins at a time, ten minutes each) and redirects to
   the authorization endpoint the issuer's discovery document names.
2. /oidc/callback/ is Entra's top-level GET redirect back (`response_mode=query`), so the Lax
   session cookie comes with it: the `state` must be one this session started on this tenant's
   host, and is used once. The code is redeemed with the verifier, the ID token checked
   (sso.oidc), the identity linked by sso.linking (the rule SAML uses), and the user signed in
   the way SAML signs in: `login()` with the SSO backend, a `user.sign_in` event with method
   "oidc", then the same landing page.

Every refusal is a branded page (sso/refused.html, or sso/not_provisioned.html for an identity
SCIM has not provisioned) and a `user.sign_in_refused` event; none goes near
`django.contrib.auth.authenticate`, so django-axes never counts it (security.md §1.6). A provider
that cannot be reached, or settings that cannot work, answer 502 with the same page.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from directory.models import Tenant, User
from oauth.security import client_ip, secure_page
from sso import entra_values, linking, oidc, services
from sso.backends import SSO_BACKEND
from sso.models import SsoSettings
from sso.views import (
    EXPIRED_PUBLIC,
    INACTIVE_PUBLIC,
    NOT_PROVISIONED_PAGE,
    REFUSED_PAGE,
    SESSION_METHOD,
    _landing,
    local_path,
)

logger = logging.getLogger("sso.oidc")

METHOD = "oidc"
SESSION_PENDING = "sso_oidc_pending"
SESSION_OIDC = "sso_oidc"
MAX_PENDING_PER_SESSION = 5
LOGIN_LIFETIME_SECONDS = 600
TEST_STATE_PREFIX = "sso-test."
"""sso.signin_test.OIDC_STATE_PREFIX: a console test's state, never one a sign-in makes (those are
letters and digits only)."""

STATE_UNKNOWN = "No sign-in with this state was started in this browser session (unknown, used or expired)."
STATE_MISSING = "The callback carries no state."
CODE_MISSING = "The callback carries neither a code nor an error."
PROVIDER_ERROR_PUBLIC = "Microsoft did not sign you in ({error}). Start again from the sign-in page."
CALLBACK_FAILED = "The callback could not be processed."


def oidc_settings_for(request: HttpRequest) -> SsoSettings:
    """The OpenID Connect settings of the request host's tenant; 404 on the root host, for an
    inactive tenant or while OpenID Connect is off or incomplete."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is None or tenant.is_platform or not tenant.is_active:
        raise Http404("No OpenID Connect client here.")
    sso = SsoSettings.objects.filter(tenant=tenant).first()
    if sso is None or not sso.oidc_enabled or not (sso.oidc_tenant_id and sso.oidc_client_id):
        raise Http404("OpenID Connect is not enabled for this tenant.")
    return sso


def _brand_name(request: HttpRequest) -> str:
    tenant: Tenant | None = getattr(request, "tenant", None)
    return tenant.name if tenant is not None else "SecureLogin"


def _refuse(
    request: HttpRequest, refusal: oidc.OidcRefused, *, user: User | None = None, subject: str = ""
) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    logger.warning("OpenID Connect sign-in refused for tenant %s: %s", tenant.slug, refusal.reason)
    services.sign_in_record(
        tenant=tenant,
        actor=services.sign_in_actor(user, METHOD),
        user=user,
        method=METHOD,
        address=client_ip(request),
        succeeded=False,
        reason=refusal.reason,
        subject=subject,
    )
    public = refusal.public
    if isinstance(refusal, oidc.OidcUnavailable):  # a fixed text; never format what a request sent
        public = public.format(brand=_brand_name(request))
    return render(request, REFUSED_PAGE, {"message": public}, status=refusal.status)


def _sign_in(request: HttpRequest, user: User, identity: oidc.Identity) -> None:
    """As sso.views._sign_in does for SAML, with the method "oidc"."""
    login(request, user, backend=SSO_BACKEND)
    request.session[SESSION_METHOD] = METHOD
    request.session[SESSION_OIDC] = {"oid": identity.object_id}
    services.sign_in_record(
        tenant=request.tenant,  # type: ignore[attr-defined]
        actor=services.sign_in_actor(user, METHOD),
        user=user,
        method=METHOD,
        address=client_ip(request),
        succeeded=True,
    )


def _pending(request: HttpRequest, now: float) -> dict[str, dict[str, Any]]:
    stored = request.session.get(SESSION_PENDING)
    if not isinstance(stored, dict):
        return {}
    return {
        state: entry
        for state, entry in stored.items()
        if isinstance(entry, dict) and now - float(entry.get("at", 0)) <= LOGIN_LIFETIME_SECONDS
    }


def _take_pending(request: HttpRequest, tenant: Tenant, state: str) -> dict[str, Any] | None:
    """The sign-in this session started with `state` on this tenant, removed (one use)."""
    now = time.time()
    pending = _pending(request, now)
    entry = pending.pop(state, None) if state else None
    request.session[SESSION_PENDING] = pending
    if entry is None or entry.get("tenant") != tenant.pk:
        return None
    return entry


# ----------------------------------------------------------------------------------------- login


@secure_page
@require_GET
def login_start(request: HttpRequest) -> HttpResponse:
    """Start the authorization code flow: redirect to the tenant's Entra authorization endpoint."""
    sso = oidc_settings_for(request)
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    next_path = local_path(request.GET.get("next"))
    if request.user.is_authenticated:
        return HttpResponseRedirect(_landing(request.user, tenant, next_path))  # type: ignore[arg-type]
    try:
        provider = oidc.provider_metadata(sso)
    except oidc.OidcRefused as exc:
        return _refuse(request, exc)
    attempt = oidc.LoginRequest.new()
    now = time.time()
    pending = _pending(request, now)
    pending[attempt.state] = {
        "nonce": attempt.nonce,
        "verifier": attempt.code_verifier,
        "next": next_path,
        "tenant": tenant.pk,
        "at": now,
    }
    request.session[SESSION_PENDING] = dict(list(pending.items())[-MAX_PENDING_PER_SESSION:])
    redirect_uri = entra_values.oidc_redirect_uri(tenant, request)
    return HttpResponseRedirect(oidc.authorization_url(provider, sso, attempt, redirect_uri=redirect_uri))


# -------------------------------------------------------------------------------------- callback


@secure_page
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Entra's redirect back with `code` and `state` (or `error`)."""
    sso = oidc_settings_for(request)
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    state = request.GET.get("state", "")
    if not state:
        return _refuse(request, oidc.OidcRefused(STATE_MISSING, public=EXPIRED_PUBLIC, status=400))
    if state.startswith(TEST_STATE_PREFIX):
        # The console's "Test sign-in" (sso.signin_test): its own server-side record, nobody
        # signs in; a state naming no pending test of this tenant is refused like any other.
        from sso import signin_test

        tested = signin_test.oidc_callback(request, sso, state)
        if tested is not None:
            return tested
        return _refuse(request, oidc.OidcRefused(STATE_UNKNOWN, public=EXPIRED_PUBLIC, status=400))
    entry = _take_pending(request, tenant, state)
    if entry is None:
        return _refuse(request, oidc.OidcRefused(STATE_UNKNOWN, public=EXPIRED_PUBLIC, status=400))
    error = request.GET.get("error", "")
    if error:
        code = "".join(c for c in error[:64] if c.isascii() and (c.isalnum() or c in "_-.")) or "error"
        description = oidc.first_line(request.GET.get("error_description", ""))
        return _refuse(
            request,
            oidc.OidcRefused(
                f"Entra answered {code}: {description}".strip().rstrip(":"),
                public=PROVIDER_ERROR_PUBLIC.format(error=code),
                status=403,
            ),
        )
    code = request.GET.get("code", "")
    if not code:
        return _refuse(request, oidc.OidcRefused(CODE_MISSING, status=400))
    attempt = oidc.LoginRequest(
        state=state, nonce=str(entry.get("nonce", "")), code_verifier=str(entry.get("verifier", ""))
    )
    try:
        identity = oidc.sign_in_identity(
            sso, code=code, redirect_uri=entra_values.oidc_redirect_uri(tenant, request), login=attempt
        )
    except oidc.OidcRefused as exc:
        return _refuse(request, exc)
    except Exception:
        # Never a 500 for a bad answer from the provider: log it with its trace for us.
        logger.exception("OpenID Connect callback could not be processed")
        return _refuse(request, oidc.OidcRefused(CALLBACK_FAILED, status=400))
    return _link_and_sign_in(request, sso, identity, next_path=str(entry.get("next", "")))


def _link_and_sign_in(
    request: HttpRequest, sso: SsoSettings, identity: oidc.Identity, *, next_path: str
) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    link = linking.sso_link(tenant, upn=identity.upn, object_id=identity.object_id, sso=sso)
    if link.refusal in (linking.NOT_PROVISIONED, linking.AMBIGUOUS, linking.NO_IDENTIFIER):
        logger.info("OpenID Connect sign-in for tenant %s: %s", tenant.slug, link.refusal)
        services.sign_in_record(
            tenant=tenant,
            actor=services.sign_in_actor(None, METHOD),
            user=None,
            method=METHOD,
            address=client_ip(request),
            succeeded=False,
            reason=linking.REASONS[link.refusal],
            subject=identity.subject,
        )
        return render(request, NOT_PROVISIONED_PAGE, {"subject": identity.subject}, status=403)
    if link.refusal == linking.INACTIVE or link.user is None:
        return _refuse(
            request,
            oidc.OidcRefused(linking.REASONS[linking.INACTIVE], public=INACTIVE_PUBLIC, status=403),
            user=link.user,
            subject=identity.subject,
        )
    user = link.user
    _sign_in(request, user, identity)
    request.session.pop(SESSION_PENDING, None)
    return HttpResponseRedirect(_landing(user, tenant, local_path(next_path)))
