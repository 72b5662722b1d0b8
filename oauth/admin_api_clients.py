"""API clients in the manager console: the tenant's own software reading the directory API
(/api/v1/) with OAuth client credentials.

They are Application rows like the provisioning clients, shown on their own page through the
`ApiClient` proxy; the OAuth applications page leaves them out. A manager creates one with a name
and its scopes (oauth.services.api_client_create), sees its client id and secret once, sees when it
was last used, and disables it (application_disable, which also revokes its tokens). Operators on
the root host see every tenant's API clients, with a tenant column.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from directory.admin import ReadOnlyTenantAdmin, acting_tenant, is_operator, request_actor
from directory.exceptions import DirectoryError
from directory.models import Tenant
from oauth import services
from oauth.admin import issue_form, operator_tenants, shown_once, status_badge
from oauth.models import API_SCOPES, ApiClient, api_client_q

DEFAULT_NAME = "Directory sync"


def scope_choices() -> list[tuple[str, str]]:
    descriptions = settings.OAUTH2_PROVIDER.get("SCOPES", {})
    return [(scope, f"{scope}: {descriptions.get(scope, '')}".rstrip(": ")) for scope in API_SCOPES]


class ApiClientCreateForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False)
    name = forms.CharField(
        max_length=255, initial=DEFAULT_NAME, help_text="The software that will call the API."
    )
    scopes = forms.MultipleChoiceField(
        choices=scope_choices,
        initial=list(API_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
        help_text="Read access only: an API client can never write, and never gets a SCIM token.",
    )


@admin.action(description="Disable selected API clients")
def disable_api_clients(modeladmin: ApiClientAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for client in queryset.filter(disabled=False).select_related("tenant"):
        try:
            services.application_disable(
                tenant=acting_tenant(request, client.tenant), actor=request_actor(request), application=client
            )
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Disabled {done} API client(s).", messages.SUCCESS)


class ApiClientAdmin(ReadOnlyTenantAdmin):
    changelist_title = "API clients"
    list_display = ("name", "client_id", "scopes", "state", "secret_expires", "created", "last_used")
    list_select_related = ("tenant",)
    search_fields = ("name", "client_id")
    fields = ("name", "client_id", "scopes", "state", "secret_expires", "created", "last_used")
    readonly_fields = fields
    ordering = ("-created",)
    actions = (disable_api_clients,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(api_client_q())

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def get_urls(self) -> list[Any]:
        disable = path(
            "<path:object_id>/disable/",
            self.admin_site.admin_view(self.disable_view),
            name="oauth_apiclient_disable",
        )
        return [disable, *super().get_urls()]

    @admin.display(description="scopes")
    def scopes(self, obj: ApiClient) -> SafeString:
        return format_html_join(" ", "<code>{}</code>", ((scope,) for scope in obj.scope_list))

    @admin.display(description="status")
    def state(self, obj: ApiClient) -> SafeString:
        return status_badge(revoked=None, expires=None, disabled=obj.disabled)

    @admin.display(description="secret expires")
    def secret_expires(self, obj: ApiClient) -> SafeString:
        if not obj.own_secret_is_valid():
            return format_html('<span class="sl-muted">{}</span>', "revoked or expired")
        return format_html(
            "{}", obj.client_secret_expires.strftime("%Y-%m-%d") if obj.client_secret_expires else "never"
        )

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        form = ApiClientCreateForm(request.POST or None)
        if is_operator(request):
            form.fields["tenant"].queryset = operator_tenants()
            form.fields["tenant"].required = True
        else:
            del form.fields["tenant"]
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tenant = data["tenant"] if is_operator(request) else request.tenant  # type: ignore[attr-defined]
            try:
                client, raw = services.api_client_create(
                    tenant=tenant, actor=request_actor(request), name=data["name"], scopes=data["scopes"]
                )
            except DirectoryError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return shown_once(
                    request,
                    title="API client created",
                    secrets=[("Client ID", client.client_id), ("Client secret", raw)],
                    back_url=reverse("admin:oauth_apiclient_change", args=[client.pk]),
                )
        return issue_form(
            request,
            self.opts,
            form=form,
            title="New API client",
            extra_context=extra_context,
            api_token_url=request.build_absolute_uri("/oauth/token/"),
            api_base_url=request.build_absolute_uri("/api/v1/"),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra = {
            "api_token_url": request.build_absolute_uri("/oauth/token/"),
            "api_base_url": request.build_absolute_uri("/api/v1/"),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def disable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        client = self.get_object(request, object_id)
        try:
            services.application_disable(
                tenant=acting_tenant(request, client.tenant), actor=request_actor(request), application=client
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(
                request, f"Disabled {client.name}; its tokens stop working now.", messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:oauth_apiclient_change", args=[client.pk]))


admin.site.register(ApiClient, ApiClientAdmin)
