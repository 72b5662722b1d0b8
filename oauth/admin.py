"""Credentials in the manager console: secret tokens, OAuth applications with their client secrets,
and the authorizations managers gave. Scoped like the directory: a manager sees and changes their
tenant's credentials only; operators on the root host see all of them.

Every change goes through oauth.services (an Event each). A new secret or token is rendered once,
in the response to the POST that created it, with `Cache-Control: no-store`; it is never put in the
session, a message or a URL, and only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from directory.admin import ReadOnlyTenantAdmin, acting_tenant, is_operator, request_actor
from directory.exceptions import DirectoryError
from directory.models import Tenant
from oauth import services
from oauth.models import Application, ClientSecret, Consent, SecretToken, api_client_q

for model in (
    Application,
    get_access_token_model(),
    get_refresh_token_model(),
    get_grant_model(),
    get_id_token_model(),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

EXPIRY_CHOICES = [
    ("", "Never"),
    ("90", "90 days"),
    ("180", "180 days"),
    ("365", "1 year"),
    ("730", "2 years"),
]
SECRET_EXPIRY_CHOICES = [("365", "1 year"), ("730", "2 years"), ("1095", "3 years")]


def status_badge(*, revoked: Any, expires: Any, disabled: bool = False) -> SafeString:
    if disabled:
        return format_html('<span class="sl-badge sl-badge-fail">{}</span>', "disabled")
    if revoked is not None:
        return format_html('<span class="sl-badge sl-badge-fail">{}</span>', "revoked")
    if expires is not None and expires <= timezone.now():
        return format_html('<span class="sl-badge sl-badge-fail">{}</span>', "expired")
    return format_html('<span class="sl-badge sl-badge-ok">{}</span>', "active")


def shown_once(
    request: HttpRequest, *, title: str, secrets: list[tuple[str, str]], back_url: str
) -> HttpResponse:
    """The only page that ever shows a raw secret. Not cached, not framed, no Referer."""
    context = {
        **admin.site.each_context(request),
        "title": title,
        "secrets": secrets,
        "back_url": back_url,
    }
    response = TemplateResponse(request, "admin/oauth/secret_once.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Frame-Options"] = "DENY"
    return response


def issue_form(
    request: HttpRequest, opts: Any, *, form: forms.Form, title: str, extra_context: dict | None, **links: str
) -> HttpResponse:
    """The create page of a credential: its form, and the URL Entra will need next to it."""
    context = {
        **admin.site.each_context(request),
        "title": title,
        "form": form,
        "opts": opts,
        **links,
        **(extra_context or {}),
    }
    return TemplateResponse(request, "admin/oauth/issue_form.html", context)


def operator_tenants() -> QuerySet[Tenant]:
    return Tenant.objects.filter(is_platform=False, is_active=True).order_by("slug")


# ----------------------------------------------------------------------------------- secret tokens


class SecretTokenIssueForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False)
    name = forms.CharField(
        max_length=200, initial="Entra provisioning", help_text="To recognise the token later."
    )
    expires_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        initial="365",
        label="Expires",
        help_text="Entra keeps using the token until it expires or is revoked.",
    )


@admin.action(description="Revoke selected tokens")
def revoke_secret_tokens(modeladmin: SecretTokenAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for token in queryset.filter(revoked__isnull=True).select_related("tenant"):
        try:
            services.secret_token_revoke(
                tenant=acting_tenant(request, token.tenant), actor=request_actor(request), token=token
            )
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Revoked {done} token(s).", messages.SUCCESS)


class SecretTokenAdmin(ReadOnlyTenantAdmin):
    list_display = ("name", "token_prefix", "state", "created", "approver", "expires", "last_used")
    list_select_related = ("tenant", "created_by")
    fields = ("name", "token_prefix", "state", "created", "approver", "expires", "revoked", "last_used")
    readonly_fields = fields
    ordering = ("-created",)
    actions = (revoke_secret_tokens,)
    search_fields = ("name", "prefix")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def get_urls(self) -> list[Any]:
        revoke = path(
            "<path:object_id>/revoke/",
            self.admin_site.admin_view(self.revoke_view),
            name="oauth_secrettoken_revoke",
        )
        return [revoke, *super().get_urls()]

    @admin.display(description="token")
    def token_prefix(self, obj: SecretToken) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="status")
    def state(self, obj: SecretToken) -> SafeString:
        return status_badge(revoked=obj.revoked, expires=obj.expires)

    @admin.display(description="approved by", ordering="created_by__username")
    def approver(self, obj: SecretToken) -> str:
        return obj.created_by.username if obj.created_by_id else "—"

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        form = SecretTokenIssueForm(request.POST or None)
        if is_operator(request):
            form.fields["tenant"].queryset = operator_tenants()
            form.fields["tenant"].required = True
        else:
            del form.fields["tenant"]
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tenant = data["tenant"] if is_operator(request) else request.tenant  # type: ignore[attr-defined]
            try:
                token, raw = services.secret_token_issue(
                    tenant=tenant,
                    actor=request_actor(request),
                    name=data["name"],
                    expires_days=data["expires_days"],
                )
            except DirectoryError as exc:
                form.add_error(None, exc.message)
            else:
                return shown_once(
                    request,
                    title="Secret token created",
                    secrets=[("Secret token", raw)],
                    back_url=reverse("admin:oauth_secrettoken_change", args=[token.pk]),
                )
        return issue_form(
            request,
            self.opts,
            form=form,
            title="New secret token",
            extra_context=extra_context,
            scim_base_url=request.build_absolute_uri("/scim/v2/"),
        )

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        token = self.get_object(request, object_id)
        try:
            services.secret_token_revoke(
                tenant=acting_tenant(request, token.tenant), actor=request_actor(request), token=token
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(request, f"Revoked {token}. Entra can no longer use it.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:oauth_secrettoken_change", args=[token.pk]))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Secret tokens", **(extra_context or {})})


# ------------------------------------------------------------------------------ OAuth applications


class ApplicationCreateForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        help_text="Empty for a platform-wide client, such as the Entra gallery registration.",
    )
    name = forms.CharField(max_length=255, initial="Microsoft Entra provisioning")
    authorization_grant_type = forms.ChoiceField(
        label="Grant",
        choices=[
            (Application.GRANT_CLIENT_CREDENTIALS, "Client credentials (Entra gallery apps)"),
            (Application.GRANT_AUTHORIZATION_CODE, "Authorization code (Entra's Authorize button)"),
        ],
    )
    redirect_uris = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Authorization code only: one https:// URI per line.",
    )
    secret_expires_days = forms.TypedChoiceField(
        choices=SECRET_EXPIRY_CHOICES, coerce=int, initial="730", label="Secret expires"
    )


class ClientSecretInline(admin.TabularInline):
    model = ClientSecret
    fields = ("secret_prefix", "state", "created", "created_by", "expires", "last_used", "revoke")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "additional client secret"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="secret")
    def secret_prefix(self, obj: ClientSecret) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="status")
    def state(self, obj: ClientSecret) -> SafeString:
        return status_badge(revoked=obj.revoked, expires=obj.expires)

    @admin.display(description="")
    def revoke(self, obj: ClientSecret) -> SafeString:
        if obj.revoked is not None:
            return format_html("{}", "")
        url = reverse("admin:oauth_application_revoke_secret", args=[obj.application_id, obj.pk])
        return format_html(
            '<button type="submit" form="sl-action-form" formaction="{}" class="button">Revoke</button>', url
        )


class ApplicationAdmin(ReadOnlyTenantAdmin):
    list_display = ("name", "client_id", "grant", "state", "secret_expires", "created", "last_used")
    list_select_related = ("tenant",)
    search_fields = ("name", "client_id")
    fields = (
        "name",
        "client_id",
        "grant",
        "client_type",
        "redirect_uris",
        "state",
        "secret_expires",
        "created",
        "last_used",
    )
    readonly_fields = fields
    inlines = (ClientSecretInline,)
    ordering = ("-created",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Provisioning clients only: API clients have their own page (oauth/admin_api_clients.py)."""
        return super().get_queryset(request).exclude(api_client_q())

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def get_urls(self) -> list[Any]:
        def view(name: str, suffix: str, func: Any) -> Any:
            return path(suffix, self.admin_site.admin_view(func), name=f"oauth_application_{name}")

        return [
            view("new_secret", "<path:object_id>/new-secret/", self.new_secret_view),
            view(
                "revoke_secret", "<path:object_id>/secrets/<int:secret_id>/revoke/", self.revoke_secret_view
            ),
            view("revoke_own_secret", "<path:object_id>/revoke-own-secret/", self.revoke_own_secret_view),
            view("disable", "<path:object_id>/disable/", self.disable_view),
            *super().get_urls(),
        ]

    @admin.display(description="grant")
    def grant(self, obj: Application) -> str:
        return {
            Application.GRANT_CLIENT_CREDENTIALS: "client credentials",
            Application.GRANT_AUTHORIZATION_CODE: "authorization code",
        }.get(obj.authorization_grant_type, obj.authorization_grant_type)

    @admin.display(description="status")
    def state(self, obj: Application) -> SafeString:
        return status_badge(revoked=None, expires=None, disabled=obj.disabled)

    @admin.display(description="own secret expires")
    def secret_expires(self, obj: Application) -> SafeString:
        if not obj.own_secret_is_valid():
            return format_html('<span class="sl-muted">{}</span>', "revoked or expired")
        return format_html(
            "{}", obj.client_secret_expires.strftime("%Y-%m-%d") if obj.client_secret_expires else "never"
        )

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        form = ApplicationCreateForm(request.POST or None)
        if is_operator(request):
            form.fields["tenant"].queryset = operator_tenants()
        else:
            del form.fields["tenant"]
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tenant = data.get("tenant") if is_operator(request) else request.tenant  # type: ignore[attr-defined]
            try:
                application, raw = services.application_create(
                    tenant=tenant,
                    actor=request_actor(request),
                    name=data["name"],
                    grant_type=data["authorization_grant_type"],
                    redirect_uris=data["redirect_uris"].split(),
                    secret_expires_days=data["secret_expires_days"],
                )
            except DirectoryError as exc:
                form.add_error(None, exc.message)
            else:
                return shown_once(
                    request,
                    title="Application created",
                    secrets=[("Client ID", application.client_id), ("Client secret", raw)],
                    back_url=reverse("admin:oauth_application_change", args=[application.pk]),
                )
        return issue_form(
            request,
            self.opts,
            form=form,
            title="New OAuth application",
            extra_context=extra_context,
            token_url=request.build_absolute_uri("/oauth/token/"),
        )

    def _post_only(self, request: HttpRequest, object_id: str) -> Application:
        if request.method != "POST":
            raise Http404("POST only.")
        return self.get_object(request, object_id)

    def _back(self, application: Application) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:oauth_application_change", args=[application.pk]))

    def _tenant(self, request: HttpRequest, application: Application) -> Tenant:
        if is_operator(request):
            return application.tenant or request.tenant  # type: ignore[attr-defined]
        return request.tenant  # type: ignore[attr-defined]

    def new_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self._post_only(request, object_id)
        try:
            _secret, raw = services.client_secret_create(
                tenant=self._tenant(request, application),
                actor=request_actor(request),
                application=application,
            )
        except DirectoryError as exc:
            self.report(request, exc)
            return self._back(application)
        return shown_once(
            request,
            title="Client secret created",
            secrets=[("Client ID", application.client_id), ("Client secret", raw)],
            back_url=reverse("admin:oauth_application_change", args=[application.pk]),
        )

    def revoke_secret_view(self, request: HttpRequest, object_id: str, secret_id: int) -> HttpResponse:
        application = self._post_only(request, object_id)
        secret = ClientSecret.objects.filter(pk=secret_id, application=application).first()
        if secret is None:
            raise Http404("No such secret.")
        try:
            services.client_secret_revoke(
                tenant=self._tenant(request, application),
                actor=request_actor(request),
                application=application,
                secret=secret,
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(request, f"Revoked client secret {secret}.", messages.SUCCESS)
        return self._back(application)

    def revoke_own_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self._post_only(request, object_id)
        try:
            services.client_secret_revoke(
                tenant=self._tenant(request, application),
                actor=request_actor(request),
                application=application,
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(request, "Revoked the application's original secret.", messages.SUCCESS)
        return self._back(application)

    def disable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self._post_only(request, object_id)
        try:
            services.application_disable(
                tenant=self._tenant(request, application),
                actor=request_actor(request),
                application=application,
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(
                request, f"Disabled {application.name}; its tokens stop working now.", messages.SUCCESS
            )
        return self._back(application)


@admin.action(description="Revoke selected client secrets")
def revoke_client_secrets(modeladmin: ClientSecretAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for secret in queryset.filter(revoked__isnull=True).select_related("application", "application__tenant"):
        application = secret.application
        tenant = (application.tenant or request.tenant) if is_operator(request) else request.tenant  # type: ignore[attr-defined]
        try:
            services.client_secret_revoke(
                tenant=tenant, actor=request_actor(request), application=application, secret=secret
            )
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Revoked {done} client secret(s).", messages.SUCCESS)


class ClientSecretAdmin(ReadOnlyTenantAdmin):
    tenant_field = "application__tenant"
    list_display = ("application", "secret_prefix", "state", "created", "approver", "expires", "last_used")
    list_select_related = ("application", "created_by")
    fields = (
        "application",
        "secret_prefix",
        "state",
        "created",
        "approver",
        "expires",
        "revoked",
        "last_used",
    )
    readonly_fields = fields
    actions = (revoke_client_secrets,)
    ordering = ("-created",)

    @admin.display(description="secret")
    def secret_prefix(self, obj: ClientSecret) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="status")
    def state(self, obj: ClientSecret) -> SafeString:
        return status_badge(revoked=obj.revoked, expires=obj.expires)

    @admin.display(description="created by")
    def approver(self, obj: ClientSecret) -> str:
        return obj.created_by.username if obj.created_by_id else "—"


@admin.action(description="Revoke selected authorizations")
def revoke_consents(modeladmin: ConsentAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for consent in queryset.filter(revoked__isnull=True).select_related("tenant", "application"):
        try:
            services.consent_revoke(
                tenant=acting_tenant(request, consent.tenant), actor=request_actor(request), consent=consent
            )
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Revoked {done} authorization(s).", messages.SUCCESS)


class ConsentAdmin(ReadOnlyTenantAdmin):
    """The "Authorize" approvals: which manager connected which application, and when it was last
    used. Revoking one stops its tokens at once."""

    list_display = ("application", "approver", "state", "created", "last_used")
    list_select_related = ("application", "tenant")
    fields = (
        "application",
        "approver",
        "scope",
        "state",
        "created",
        "exchanged",
        "last_used",
        "revoked_reason",
    )
    readonly_fields = fields
    actions = (revoke_consents,)
    ordering = ("-created", "-id")

    @admin.display(description="approved by", ordering="approver_label")
    def approver(self, obj: Consent) -> str:
        return obj.approver_label or "a former manager"

    @admin.display(description="status")
    def state(self, obj: Consent) -> SafeString:
        if obj.revoked is None and obj.exchanged is None:
            return format_html('<span class="sl-badge">{}</span>', "pending")
        return status_badge(revoked=obj.revoked, expires=None)


class OAuthTokenAdmin(ReadOnlyTenantAdmin):
    tenant_field = "user__tenant"
    list_display = ("__str__", "application", "user", "created")
    list_select_related = ("application", "user")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request)


admin.site.register(SecretToken, SecretTokenAdmin)
admin.site.register(Application, ApplicationAdmin)
admin.site.register(ClientSecret, ClientSecretAdmin)
admin.site.register(Consent, ConsentAdmin)
for token_model in (get_access_token_model(), get_refresh_token_model(), get_grant_model()):
    admin.site.register(token_model, OAuthTokenAdmin)

# API clients (the directory API's client-credentials clients) have a page of their own.
from oauth import admin_api_clients  # noqa: E402, F401
