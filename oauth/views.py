"""The browser side of "Connect Entra" and the OAuth endpoints.

Entra's Authorization URL is the same for every customer (entra-scim.md §5.4), so the root host's
/oauth/authorize/ validates the request and sends the browser to the go-to-domain page (/login/ on
the root host). That page turns what the admin types into a tenant through stored data only and
forwards the unchanged authorize request to the tenant's stored host, where sign-in, consent and
the code all happen (session cookies are host-only). The token endpoint answers on any host.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import get_access_token_model
from oauth2_provider.views import AuthorizationView, IntrospectTokenView, RevokeTokenView, TokenView
from oauthlib.common import Request as OAuthlibRequest

from directory import selectors
from directory.models import Tenant, User
from oauth import services
from oauth.forms import GENERIC_DOMAIN_ERROR, GoToDomainForm, SignInForm
from oauth.models import Application
from oauth.security import (
    CLIENT_AUTH_FAILURES,
    GO_TO_DOMAIN_FAILURES,
    client_ip,
    harden_response,
    secure_page,
)
from oauth.validators import is_active_manager
from sso import policy as sso_policy
from sso import signin as sso_signin

ACCOUNT_PATH = "/account/"
SIGN_IN_PATH = "/login/"
TOO_MANY_ATTEMPTS = "Too many attempts from your network. Wait a few minutes and try again."


def authorize_path() -> str:
    return reverse("oauth:authorize")


def authorize_params_from_next(raw: str) -> list[tuple[str, str]] | None:
    """The authorize request carried in `next`, as parameters, or None. Only our own relative
    /oauth/authorize/ path qualifies; anything with a scheme, a host or another path is dropped,
    so `next` can never choose where the browser goes."""
    if not raw or not url_has_allowed_host_and_scheme(raw, allowed_hosts=set()):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or parts.fragment or parts.path != authorize_path():
        return None
    params = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "client_id" and value for key, value in params):
        return None
    return params


def tenant_url(request: HttpRequest, tenant: Tenant, path: str, params: list[tuple[str, str]] | None) -> str:
    """An absolute URL on the tenant's stored primary host. The scheme is this request's; the port
    too when the request named one (local runs on :8000), digits only; the host never comes from
    the request or the form."""
    host = selectors.tenant_primary_host(tenant=tenant)
    port = ""
    request_host = request.get_host()
    if request_host.count(":") == 1:
        candidate = request_host.rsplit(":", 1)[1]
        if candidate.isdigit() and candidate not in ("80", "443"):
            port = f":{candidate}"
    query = f"?{urlencode(params)}" if params else ""
    return f"{request.scheme}://{host}{port}{path}{query}"


def _render(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    return render(request, template, context or {}, status=status)


# --------------------------------------------------------------------------------- go to domain


class GoToDomainView(View):
    """The root host's /login/: "which organization are you?" (style-anchors convention 9)."""

    template_name = "oauth/go_to_domain.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        form = GoToDomainForm(initial={"next": request.GET.get("next", "")})
        return self._page(request, form)

    def _page(
        self, request: HttpRequest, form: GoToDomainForm, error: str = "", status: int = 200
    ) -> HttpResponse:
        context = {"form": form, "error": error, "base_domain": settings.SECURELOGIN_BASE_DOMAIN}
        return _render(request, self.template_name, context, status=status)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = GoToDomainForm(request.POST)
        address = client_ip(request)
        if GO_TO_DOMAIN_FAILURES.blocked(address):
            return self._page(
                request,
                GoToDomainForm(initial={"next": request.POST.get("next", "")}),
                TOO_MANY_ATTEMPTS,
                status=429,
            )
        location = self._location(request, form) if form.is_valid() else None
        if location is None:
            GO_TO_DOMAIN_FAILURES.record(address)
            form = GoToDomainForm(initial={"next": request.POST.get("next", "")})
            return self._page(request, form, GENERIC_DOMAIN_ERROR)
        return HttpResponseRedirect(location)

    @staticmethod
    def _client_may_go_to(tenant: Tenant, params: list[tuple[str, str]]) -> bool:
        """A tenant-bound client only goes to its own tenant (security.md check 4); unknown or
        disabled clients go nowhere. The answer looks the same as an unknown organization."""
        client_id = dict(params).get("client_id", "")
        application = Application.objects.select_related("tenant").filter(client_id=client_id).first()
        if application is None or not application.is_usable(None):
            return False
        return application.tenant_id is None or application.tenant_id == tenant.id

    def _location(self, request: HttpRequest, form: GoToDomainForm) -> str | None:
        tenant = selectors.tenant_for_domain_input(value=form.cleaned_data["domain"])
        if tenant is None:
            return None
        params = authorize_params_from_next(form.cleaned_data.get("next") or "")
        if params is not None and not self._client_may_go_to(tenant, params):
            return None
        path = authorize_path() if params is not None else SIGN_IN_PATH
        location = tenant_url(request, tenant, path, params)
        target = urlsplit(location).netloc
        if not url_has_allowed_host_and_scheme(
            location, allowed_hosts={target}, require_https=request.is_secure()
        ):
            return None
        if target.split(":")[0] != selectors.tenant_primary_host(tenant=tenant):
            return None
        return location


# ------------------------------------------------------------------------------ tenant sign-in


class TenantSignInView(auth_views.LoginView):
    """The tenant host's /login/: branded, CSRF-protected, axes-limited; login() rotates the
    session key (ASVS 7.2.4). Managers continue to `next`; everyone else to "My account"."""

    template_name = "oauth/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        """Only a relative path on this host, never an absolute URL, even to this host."""
        redirect_to = self.request.POST.get("next", self.request.GET.get("next", ""))
        if (
            redirect_to.startswith("/")
            and not redirect_to.startswith(("//", "/\\"))
            and url_has_allowed_host_and_scheme(redirect_to, allowed_hosts=set())
        ):
            return redirect_to
        return ""

    def get_success_url(self) -> str:
        if not is_active_manager(self.request.user, self.request.tenant):  # type: ignore[attr-defined]
            return ACCOUNT_PATH
        return self.get_redirect_url() or ACCOUNT_PATH

    # --- single sign-on (sso/): the "Sign in with Microsoft" button, enforcement, sign-in events
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(sso_policy.sign_in_page_context(self.request, self.get_redirect_url()))
        context["sso_password_refused"] = getattr(self.request, "sso_password_refused", False)
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        sso_signin.password_sign_in_recorded(self.request, form.get_user())
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        if getattr(self.request, "sso_password_refused", False):
            username = getattr(form, "cleaned_data", {}).get("username", "")
            sso_signin.password_sign_in_refused(self.request, username)
        return super().form_invalid(form)


go_to_domain_view = GoToDomainView.as_view()
tenant_sign_in_view = TenantSignInView.as_view()


@secure_page
def sign_in(request: HttpRequest) -> HttpResponse:
    """/login/ is the go-to-domain page on the root host and the tenant's sign-in elsewhere."""
    if request.tenant.is_platform:  # type: ignore[attr-defined]
        return go_to_domain_view(request)
    return tenant_sign_in_view(request)


@method_decorator(secure_page, name="dispatch")
class SignOutView(auth_views.LogoutView):
    next_page = SIGN_IN_PATH


@secure_page
@login_required(login_url=SIGN_IN_PATH)
def account(request: HttpRequest) -> HttpResponse:
    """A member's own profile and groups, read inside the tenant of the host."""
    user = request.user
    groups = (
        selectors.group_list(tenant=request.tenant)  # type: ignore[attr-defined]
        .filter(memberships__user=user)
        .order_by("display_name")
    )
    context = {
        "account": user,
        "groups": groups,
        "emails": list(user.emails.all()),  # type: ignore[union-attr]
        "is_manager": is_active_manager(user, request.tenant),  # type: ignore[attr-defined]
        # sso/: recent sign-ins, and single logout for a SAML session
        "sign_ins": sso_signin.recent_sign_ins(request, user),
        "sign_out_path": sso_signin.sign_out_path(request),
    }
    return _render(request, "oauth/account.html", context)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' answer once a (tenant, username) pair is locked: a branded page, status 429."""
    response = render(request, "oauth/locked_out.html", {}, status=429)
    response["Retry-After"] = "900"
    return harden_response(request, response)


# -------------------------------------------------------------------------- authorize + consent


@method_decorator(secure_page, name="dispatch")
class TenantAuthorizationView(AuthorizationView):
    """DOT's authorization endpoint, split by host: the root host forwards to go-to-domain; a
    tenant host signs in, then shows consent to the tenant's managers only. The same rules are
    enforced again in oauth.validators when the code is made."""

    template_name = "oauth2_provider/authorize.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.oauth2_data = {}
        if request.tenant.is_platform:  # type: ignore[attr-defined]
            return self._forward_to_go_to_domain(request)
        return super().dispatch(request, *args, **kwargs)

    def _forward_to_go_to_domain(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        try:
            self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        return redirect_to_login(request.get_full_path(), login_url=SIGN_IN_PATH)

    def handle_no_permission(self) -> HttpResponse:
        """Validate before sending anyone to sign in: an unknown client or a bad redirect_uri gets
        the error page here (RFC 6749 §4.1.2.1), not after a password was typed."""
        try:
            self.validate_authorization_request(self.request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        return super().handle_no_permission()

    def _refusal(self, client_id: str | None) -> HttpResponse | None:
        request = self.request
        tenant: Tenant = request.tenant  # type: ignore[attr-defined]
        application = (
            Application.objects.select_related("tenant").filter(client_id=client_id).first()
            if client_id
            else None
        )
        user = request.user
        if not is_active_manager(user, tenant):
            reason = "Only an active manager of the tenant may authorize provisioning."
        elif application is not None and application.tenant_id not in (None, tenant.id):
            reason = "The application belongs to another tenant."
        else:
            return None
        services.authorization_refused(
            tenant=tenant,
            user=user if isinstance(user, User) else None,
            application=application,
            reason=reason,
        )
        return _render(request, "oauth/denied.html", {"application": application}, status=403)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self._refusal(request.GET.get("client_id")) or super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        client_id = request.POST.get("client_id", "")
        refusal = self._refusal(client_id)
        if refusal is not None:
            return refusal
        if not Application.objects.filter(client_id=client_id).exists():
            return HttpResponseBadRequest("Unknown client.", content_type="text/plain")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        if not form.cleaned_data.get("allow"):
            application = Application.objects.filter(client_id=form.cleaned_data["client_id"]).first()
            services.authorization_refused(
                tenant=self.request.tenant,  # type: ignore[attr-defined]
                user=self.request.user,  # type: ignore[arg-type]
                application=application,
                reason="The manager declined.",
            )
        return super().form_valid(form)


# -------------------------------------------------------------------- token, revoke, introspect


def presented_client_id(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return "-"
        return unquote_plus(decoded.partition(":")[0])[:255] or "-"
    return (request.POST.get("client_id") or "-")[:255]


def too_many_client_failures() -> JsonResponse:
    response = JsonResponse(
        {
            "error": "temporarily_unavailable",
            "error_description": "Too many failed client authentications. Try again later.",
        },
        status=429,
    )
    response["Retry-After"] = str(CLIENT_AUTH_FAILURES.window_seconds)
    response["Cache-Control"] = "no-store"
    return response


class ClientAuthLimitMixin:
    """Failed client authentications count per (client_id, address); past the limit the endpoint
    answers 429 even to a correct secret (security.md check 19).

    The endpoints this guards authenticate the client, not a browser session, so they are exempt
    from CSRF like DOT's own views. Overriding `dispatch` drops the `csrf_exempt` mark DOT put on
    its own `dispatch`, which is why the mark is set again here: without it every token request
    from Entra or curl met Django's CSRF 403 page."""

    @method_decorator(csrf_exempt)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = f"{presented_client_id(request)}|{client_ip(request)}"
        if request.method == "POST" and CLIENT_AUTH_FAILURES.blocked(key):
            return too_many_client_failures()
        response = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        if response.status_code == 401:
            CLIENT_AUTH_FAILURES.record(key)
        return response


class TenantTokenView(ClientAuthLimitMixin, TokenView):
    """DOT's token endpoint in one transaction, so the grant row is locked while a code is
    redeemed: of two concurrent redemptions one wins and the other revokes its tokens."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with transaction.atomic():
            return super().post(request, *args, **kwargs)


class TenantRevokeTokenView(ClientAuthLimitMixin, RevokeTokenView):
    pass


@method_decorator(csrf_exempt, name="dispatch")
class ClientIntrospectTokenView(IntrospectTokenView):
    """RFC 7662 for clients, about their own tokens only: another client's token, even a valid
    one, is `{"active": false}`, so a tenant's client learns nothing about other tenants' tokens.
    POST only (a token in a query string ends up in logs)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        key = f"{presented_client_id(request)}|{client_ip(request)}"
        if CLIENT_AUTH_FAILURES.blocked(key):
            return too_many_client_failures()
        core = self.get_oauthlib_core()
        uri, http_method, body, headers = core._extract_params(request)
        oauthlib_request = OAuthlibRequest(uri, http_method, body, headers)
        if not core.server.request_validator.authenticate_client(oauthlib_request):
            CLIENT_AUTH_FAILURES.record(key)
            response = JsonResponse({"error": "invalid_client"}, status=401)
            response["WWW-Authenticate"] = 'Basic realm="oauth"'
            response["Cache-Control"] = "no-store"
            return response
        response = self._describe(oauthlib_request.client, request.POST.get("token"))
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _describe(client: Application, raw_token: str | None) -> JsonResponse:
        if not raw_token:
            return JsonResponse(
                {"error": "invalid_request", "error_description": "token is missing."}, status=400
            )
        checksum = hashlib.sha256(raw_token.encode("utf-8")).hexdigest()
        token = (
            get_access_token_model()
            .objects.select_related("user", "application")
            .filter(token_checksum=checksum, application=client)
            .first()
        )
        if token is None or not token.is_valid():
            return JsonResponse({"active": False})
        data: dict[str, Any] = {
            "active": True,
            "scope": token.scope,
            "client_id": client.client_id,
            "token_type": "Bearer",
            "exp": int(calendar.timegm(token.expires.utctimetuple())),
        }
        if token.user is not None:
            data["username"] = token.user.get_username()
        return JsonResponse(data)
