"""The console's "Single sign-on" page: what to paste into Entra, the IdP this tenant trusts (SAML
metadata from a file or Entra's App Federation Metadata URL), the OpenID Connect client, SSO
enforcement with its break-glass managers, and a "Test sign-in" that runs a real round trip.

Managers reach their tenant's page on its host (`/admin/sso/ssosettings/`); platform operators pick
a tenant on the root host (`/admin/sso/ssosettings/tenant/<slug>/`). Another tenant's slug answers
404 like one that does not exist. Every write goes through sso.services (an Event each); a refusal
of a service comes back as a form error on the same page, never as a 500. The OIDC client secret
is write-only: the page says whether one is set and never renders it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from directory.admin import is_operator, request_actor
from directory.exceptions import DirectoryError
from directory.models import Tenant, User
from sso import entra_values, services, signin_test
from sso.metadata import METADATA_MAX_BYTES, METADATA_TOO_LARGE
from sso.models import SsoSettings

logger = logging.getLogger("sso.console")

CERTIFICATE_WARNING_DAYS = 30
OPERATOR_TENANT_ROWS = 500
PROTOCOLS = {"saml": "SAML", "oidc": "OpenID Connect"}
TEST_FAILED_TO_START = "The test sign-in could not be started; the server log says why."


# ------------------------------------------------------------------------------------------- forms


class SsoSettingsForm(forms.Form):
    saml_enabled = forms.BooleanField(
        label="SAML sign-in", required=False, help_text="Shows “Sign in with Microsoft” on the sign-in page."
    )
    name_id_policy = forms.ChoiceField(
        label="NameID", choices=SsoSettings.NameIdPolicy.choices, widget=forms.RadioSelect
    )
    match_object_id_to_external_id = forms.BooleanField(
        label="Match Entra object id to externalId",
        required=False,
        help_text="When your provisioning maps objectId to externalId: the object id claim is matched "
        "to externalId instead of the UPN to userName.",
    )
    allow_idp_initiated = forms.BooleanField(
        label="Allow IdP-initiated sign-in", required=False, help_text="Sign-in from the My Apps tile."
    )
    oidc_enabled = forms.BooleanField(label="OpenID Connect sign-in", required=False)
    oidc_tenant_id = forms.CharField(
        label="Entra tenant id", max_length=64, required=False, help_text="The Directory (tenant) ID."
    )
    oidc_client_id = forms.CharField(
        label="Client id", max_length=255, required=False, help_text="The Application (client) ID."
    )
    oidc_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the stored one.",
    )
    oidc_client_secret_clear = forms.BooleanField(label="Remove the stored client secret", required=False)
    oidc_issuer = forms.CharField(
        label="Issuer",
        max_length=2048,
        required=False,
        help_text="Empty: https://login.microsoftonline.com/<tenant id>/v2.0.",
    )
    enforce_sso = forms.BooleanField(
        label="Require single sign-on",
        required=False,
        help_text="Password sign-in is refused to everyone but the break-glass managers below.",
    )
    break_glass = forms.ModelMultipleChoiceField(
        label="Break-glass managers",
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Emergency accounts that may still sign in with a password while SSO is required.",
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        managers = User.objects.filter(tenant=tenant, role=User.Role.MANAGER, is_active=True)
        self.fields["break_glass"].queryset = managers.order_by("username")  # type: ignore[attr-defined]

    @classmethod
    def initial_of(cls, sso: SsoSettings) -> dict[str, Any]:
        names = [n for n in cls.base_fields if n not in ("oidc_client_secret", "oidc_client_secret_clear")]
        initial = {name: getattr(sso, name) for name in names if name != "break_glass"}
        initial["break_glass"] = list(sso.break_glass.all()) if sso.pk else []
        return initial

    def service_arguments(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        secret = data.pop("oidc_client_secret")
        clear = data.pop("oidc_client_secret_clear")
        data["break_glass"] = list(data["break_glass"])
        if secret:
            data["oidc_client_secret"] = secret
        elif clear:
            data["oidc_client_secret"] = ""
        return data


class MetadataUploadForm(forms.Form):
    metadata_file = forms.FileField(
        label="Federation Metadata XML",
        help_text="The file Entra offers under SAML Certificates (at most 1 MiB).",
    )

    def clean_metadata_file(self) -> bytes:
        upload = self.cleaned_data["metadata_file"]
        if upload.size > METADATA_MAX_BYTES:
            raise forms.ValidationError(METADATA_TOO_LARGE)
        return upload.read()


class MetadataUrlForm(forms.Form):
    idp_metadata_url = forms.CharField(
        label="App Federation Metadata URL",
        max_length=2048,
        help_text="Fetched now and daily after, so a new Entra signing certificate is picked up.",
    )


class TestSignInForm(forms.Form):
    protocol = forms.ChoiceField(choices=list(PROTOCOLS.items()))
    force_authn = forms.BooleanField(
        label="Ask for the account's credentials",
        required=False,
        initial=True,
        help_text="So you can sign in as a test user rather than with your own Entra session.",
    )


def add_service_error(form: forms.Form, exc: DirectoryError, default_field: str | None = None) -> None:
    field = exc.field if exc.field in form.fields else default_field
    form.add_error(field, exc.message)


# ------------------------------------------------------------------------------------ page pieces


@dataclass(frozen=True)
class Certificate:
    subject: str
    sha256: str
    not_after: datetime
    days_left: int

    @property
    def level(self) -> str:
        if self.days_left < 0:
            return "error"
        return "warning" if self.days_left <= CERTIFICATE_WARNING_DAYS else "ok"


def certificates(sso: SsoSettings, now: datetime) -> list[Certificate]:
    rows = []
    for entry in sso.idp_certificates or []:
        not_after = datetime.fromisoformat(entry["not_after"])
        rows.append(
            Certificate(
                subject=entry.get("subject", ""),
                sha256=entry["sha256"],
                not_after=not_after,
                days_left=(not_after - now) // timedelta(days=1),
            )
        )
    return rows


def warnings(sso: SsoSettings, certs: list[Certificate]) -> list[tuple[str, str]]:
    lines = []
    for cert in certs:
        if cert.level == "error":
            lines.append(("error", f"The IdP signing certificate {cert.sha256[:16]}… has expired."))
        elif cert.level == "warning":
            lines.append(
                (
                    "warning",
                    f"The IdP signing certificate {cert.sha256[:16]}… expires in {cert.days_left} days "
                    f"({cert.not_after:%Y-%m-%d}). Add a new certificate in Entra and make it active, "
                    "then refresh or upload the metadata again.",
                )
            )
    if sso.enforce_sso and not (sso.pk and sso.break_glass.exists()):
        lines.append(
            (
                "warning",
                "Single sign-on is required and no break-glass manager is chosen: if Entra cannot sign "
                "anyone in, nobody can sign in with a password either.",
            )
        )
    return lines


def summary(sso: SsoSettings) -> list[tuple[str, str, bool]]:
    password = "break-glass managers only" if sso.enforce_sso else "everyone"
    return [
        ("SAML", "on" if sso.saml_enabled else "off", sso.saml_enabled),
        ("OpenID Connect", "on" if sso.oidc_enabled else "off", sso.oidc_enabled),
        ("Password sign-in", password, not sso.enforce_sso),
    ]


# --------------------------------------------------------------------------------------- the admin


class SsoSettingsAdmin(admin.ModelAdmin):
    """One page per tenant instead of Django's change list and change form: the settings row is
    created on the first write (sso.services), so there is nothing to add or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        def view(name: str, route: str, func: Any) -> Any:
            return path(route, self.admin_site.admin_view(func), name=f"sso_ssosettings_{name}")

        return [
            view("changelist", "", self.changelist_view),
            view("tenant", "tenant/<slug:slug>/", self.settings_view),
            view("metadata", "tenant/<slug:slug>/metadata/", self.metadata_view),
            view("refresh", "tenant/<slug:slug>/refresh/", self.refresh_view),
            view("test", "tenant/<slug:slug>/test/", self.test_view),
            view("test_result", "tenant/<slug:slug>/test/<str:key>/", self.test_result_view),
        ]

    # -------------------------------------------------------------------------------- scoping

    def console_tenant(self, request: HttpRequest, slug: str) -> Tenant:
        """The tenant whose page this is: a manager's own tenant only, any tenant for operators
        (never the platform tenant). Anything else is a 404, as if the slug did not exist."""
        tenant: Tenant = request.tenant  # type: ignore[attr-defined]
        if is_operator(request):
            found = Tenant.objects.filter(slug=slug, is_platform=False).first()
        else:
            found = tenant if tenant.slug == slug and not tenant.is_platform else None
        if found is None:
            raise Http404("No such tenant.")
        return found

    def page_url(self, tenant: Tenant) -> str:
        return reverse("admin:sso_ssosettings_tenant", args=[tenant.slug])

    # ---------------------------------------------------------------------------------- pages

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        tenant: Tenant = request.tenant  # type: ignore[attr-defined]
        if not tenant.is_platform:
            return HttpResponseRedirect(self.page_url(tenant))
        rows = []
        if is_operator(request):
            tenants: QuerySet[Tenant] = Tenant.objects.filter(is_platform=False).order_by("slug")
            chosen = list(tenants[:OPERATOR_TENANT_ROWS])
            found = {s.tenant_id: s for s in SsoSettings.objects.filter(tenant__in=chosen)}
            now = timezone.now()
            for each in chosen:
                sso = found.get(each.pk) or SsoSettings(tenant=each)
                certs = certificates(sso, now)
                rows.append(
                    {
                        "tenant": each,
                        "sso": sso,
                        "soonest": min(certs, key=lambda c: c.not_after) if certs else None,
                        "url": self.page_url(each),
                    }
                )
        context = {**self.admin_site.each_context(request), "title": "Single sign-on", "rows": rows}
        return TemplateResponse(request, "admin/sso/tenants.html", context)

    def settings_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        tenant = self.console_tenant(request, slug)
        sso = services.sso_settings_for(tenant)
        if request.method != "POST":
            return self.render(request, tenant, sso)
        form = SsoSettingsForm(request.POST, tenant=tenant)
        if form.is_valid():
            before = sso.updated
            try:
                saved = services.sso_settings_update(
                    tenant=tenant, actor=request_actor(request), **form.service_arguments()
                )
            except DirectoryError as exc:
                add_service_error(form, exc)
            else:
                if saved.updated == before:
                    messages.info(request, "Nothing changed.")
                else:
                    messages.success(request, "Single sign-on settings saved.")
                return HttpResponseRedirect(self.page_url(tenant))
        return self.render(request, tenant, sso, settings_form=form)

    def metadata_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        tenant = self.console_tenant(request, slug)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = MetadataUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                sso = services.saml_metadata_set(
                    tenant=tenant, actor=request_actor(request), xml=form.cleaned_data["metadata_file"]
                )
            except DirectoryError as exc:
                add_service_error(form, exc, "metadata_file")
            else:
                messages.success(request, f"Metadata saved: this tenant trusts {sso.idp_entity_id}.")
                return HttpResponseRedirect(self.page_url(tenant))
        return self.render(request, tenant, services.sso_settings_for(tenant), upload_form=form)

    def refresh_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        tenant = self.console_tenant(request, slug)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = MetadataUrlForm(request.POST)
        if form.is_valid():
            try:
                sso = services.saml_metadata_fetch(
                    tenant=tenant, actor=request_actor(request), url=form.cleaned_data["idp_metadata_url"]
                )
            except DirectoryError as exc:
                add_service_error(form, exc, "idp_metadata_url")
            else:
                messages.success(request, f"Metadata fetched: this tenant trusts {sso.idp_entity_id}.")
                return HttpResponseRedirect(self.page_url(tenant))
        return self.render(request, tenant, services.sso_settings_for(tenant), url_form=form)

    def test_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Start a test sign-in: off to the IdP in this browser; the answer comes back to
        test_result_view. The console session is not touched beyond remembering the test."""
        tenant = self.console_tenant(request, slug)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = TestSignInForm(request.POST)
        if form.is_valid():

            def result_url(key: str) -> str:
                route = reverse("admin:sso_ssosettings_test_result", args=[tenant.slug, key])
                return request.build_absolute_uri(route)

            try:
                location = signin_test.start(
                    request,
                    tenant=tenant,
                    protocol=form.cleaned_data["protocol"],
                    result_url=result_url,
                    force_authn=form.cleaned_data["force_authn"],
                )
            except (signin_test.TestUnavailable, DirectoryError) as exc:
                form.add_error(None, exc.message)
            except Exception:
                # pysaml2 or the provider failed in a way no setting explains: the page, not a 500.
                logger.exception("Test sign-in for tenant %s could not start", tenant.slug)
                form.add_error(None, TEST_FAILED_TO_START)
            else:
                return HttpResponseRedirect(location)
        return self.render(request, tenant, services.sso_settings_for(tenant), test_form=form)

    def test_result_view(self, request: HttpRequest, slug: str, key: str) -> HttpResponse:
        tenant = self.console_tenant(request, slug)
        record = signin_test.result_for(request.session, tenant, key)
        if record is None:
            raise Http404("No test sign-in of yours with that id.")
        result = record.get("result") or {}
        context = {
            **self.admin_site.each_context(request),
            "title": "Test sign-in",
            "tenant": tenant,
            "page_url": self.page_url(tenant),
            "record": record,
            "protocol": PROTOCOLS.get(record.get("protocol", ""), ""),
            "result": result,
            "claims": result.get("claims") or {},
            "match": result.get("match") or {},
            "user_url": self.user_url(result),
            "is_operator": is_operator(request),
        }
        response = TemplateResponse(request, "admin/sso/test_result.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def user_url(self, result: dict[str, Any]) -> str:
        user = (result.get("match") or {}).get("user")
        return reverse("admin:directory_user_change", args=[user["pk"]]) if user else ""

    # ------------------------------------------------------------------------------ rendering

    def render(
        self,
        request: HttpRequest,
        tenant: Tenant,
        sso: SsoSettings,
        *,
        settings_form: SsoSettingsForm | None = None,
        upload_form: MetadataUploadForm | None = None,
        url_form: MetadataUrlForm | None = None,
        test_form: TestSignInForm | None = None,
    ) -> HttpResponse:
        saml = entra_values.saml_values(tenant, request)
        certs = certificates(sso, timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "title": "Single sign-on",
            "subtitle": tenant.name if is_operator(request) else "",
            "tenant": tenant,
            "sso": sso,
            "is_operator": is_operator(request),
            "summary": summary(sso),
            "warnings": warnings(sso, certs),
            "certificates": certs,
            "saml_values": [
                ("entity-id", "Identifier (Entity ID)", saml.entity_id),
                ("reply-url", "Reply URL (Assertion Consumer Service URL)", saml.reply_url),
                ("sign-on-url", "Sign on URL", saml.sign_on_url),
                ("logout-url", "Logout Url", saml.logout_url),
            ],
            "sp_metadata_url": saml.metadata_url,
            "oidc_values": [
                ("redirect-uri", "Redirect URI (Web)", entra_values.oidc_redirect_uri(tenant, request))
            ],
            "secret_set": bool(sso.oidc_client_secret_encrypted),
            "settings_form": settings_form
            or SsoSettingsForm(initial=SsoSettingsForm.initial_of(sso), tenant=tenant),
            "upload_form": upload_form or MetadataUploadForm(),
            "url_form": url_form or MetadataUrlForm(initial={"idp_metadata_url": sso.idp_metadata_url}),
            "test_form": test_form or TestSignInForm(),
            "testable": [(k, v) for k, v in PROTOCOLS.items() if getattr(sso, f"{k}_enabled")],
            "urls": {
                "page": self.page_url(tenant),
                "metadata": reverse("admin:sso_ssosettings_metadata", args=[tenant.slug]),
                "refresh": reverse("admin:sso_ssosettings_refresh", args=[tenant.slug]),
                "test": reverse("admin:sso_ssosettings_test", args=[tenant.slug]),
                "list": reverse("admin:sso_ssosettings_changelist"),
            },
            "media": forms.Media(js=["sso/console.js"], css={"all": ["sso/console.css"]}),
        }
        response = TemplateResponse(request, "admin/sso/settings.html", context)
        response["Cache-Control"] = "no-store"
        return response


admin.site.register(SsoSettings, SsoSettingsAdmin)
