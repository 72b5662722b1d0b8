"""Credentials in the console, scoped like the directory: a manager sees their tenant's
applications, secret tokens and client secrets; OAuth tokens are listed through the service
principal they act for. DOT's own unscoped registrations are replaced."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from directory.admin import ReadOnlyTenantAdmin, is_operator
from oauth.models import Application, ClientSecret, SecretToken

for model in (
    Application,
    get_access_token_model(),
    get_refresh_token_model(),
    get_grant_model(),
    get_id_token_model(),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class ApplicationAdmin(ReadOnlyTenantAdmin):
    list_display = (
        "name",
        "client_id",
        "authorization_grant_type",
        "tenant",
        "disabled",
        "created",
        "last_used",
    )
    search_fields = ("name", "client_id")
    fields = (
        "name",
        "client_id",
        "authorization_grant_type",
        "client_type",
        "redirect_uris",
        "tenant",
        "disabled",
    )
    list_select_related = ("tenant",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = Application.objects.select_related("tenant")
        return queryset if is_operator(request) else queryset.filter(tenant=request.tenant)  # type: ignore[attr-defined]


class SecretTokenAdmin(ReadOnlyTenantAdmin):
    list_display = ("name", "prefix", "created", "created_by", "expires", "revoked", "last_used")
    list_select_related = ("tenant", "created_by")
    fields = ("name", "prefix", "created", "created_by", "expires", "revoked", "last_used")


class ClientSecretAdmin(ReadOnlyTenantAdmin):
    tenant_field = "application__tenant"
    list_display = ("application", "prefix", "created", "expires", "revoked", "last_used")
    list_select_related = ("application",)


class OAuthTokenAdmin(ReadOnlyTenantAdmin):
    tenant_field = "user__tenant"
    list_display = ("__str__", "application", "user", "created")
    list_select_related = ("application", "user")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request)


admin.site.register(Application, ApplicationAdmin)
admin.site.register(SecretToken, SecretTokenAdmin)
admin.site.register(ClientSecret, ClientSecretAdmin)
for token_model in (get_access_token_model(), get_refresh_token_model(), get_grant_model()):
    admin.site.register(token_model, OAuthTokenAdmin)
