"""The URLs the OpenAPI document describes: /api/v1/ only, not SCIM or OAuth."""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("api.urls"))]
