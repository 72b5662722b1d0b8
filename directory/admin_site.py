"""The admin site: managers on their tenant host, operators on the root host."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class SecureLoginAdminSite(admin.AdminSite):
    site_header = "SecureLogin"
    site_title = "SecureLogin"
    index_title = "Directory"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        tenant = getattr(request, "tenant", None)
        if not (user.is_authenticated and user.is_active and user.is_staff and tenant is not None):
            return False
        return user.tenant_id == tenant.id and (tenant.is_active or tenant.is_platform)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not tenant.is_platform:
            context["site_header"] = f"{tenant.brand_name} · SecureLogin"
        return context


class SecureLoginAdminConfig(AdminConfig):
    default_site = "directory.admin_site.SecureLoginAdminSite"
