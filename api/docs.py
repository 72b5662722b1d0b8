"""The API's OpenAPI 3 document (drf-spectacular) and its Swagger UI page.

The schema is public (it describes, it holds no data). The browsable docs live on the root host
only, where the platform documents its API; tenant hosts answer 404 there.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


class ApiSchemaView(SpectacularAPIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    urlconf = "api.schema_urls"


class ApiDocsView(SpectacularSwaggerView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is None or not tenant.is_platform:
            raise Http404
        return super().dispatch(request, *args, **kwargs)
