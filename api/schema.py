"""How the OpenAPI document describes the API's credential: OAuth 2.0 client credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TenantApiAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.TenantApiAuthentication"
    name = "oauth2ClientCredentials"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        scopes = settings.OAUTH2_PROVIDER["SCOPES"]
        return {
            "type": "oauth2",
            "description": "A tenant's API client (console → API clients, or manage.py create_api_client).",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/oauth/token/",
                    "scopes": {name: scopes[name] for name in ("directory:read", "events:read")},
                }
            },
        }

    def get_security_requirement(self, auto_schema: Any) -> dict[str, list[str]]:
        return {self.name: [auto_schema.view.required_scope]}
