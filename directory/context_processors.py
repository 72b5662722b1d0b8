from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def tenant_branding(request: HttpRequest) -> dict[str, Any]:
    """Branding as typed values; templates autoescape them (never `|safe`)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return {}
    return {
        "tenant": tenant,
        "brand": {
            "name": tenant.brand_name,
            "logo_url": tenant.logo_url,
            "color": tenant.primary_color,
        },
    }
