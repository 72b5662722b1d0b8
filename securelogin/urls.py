from django.contrib import admin
from django.urls import include, path

from api.docs import ApiDocsView, ApiSchemaView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("scim/v2/", include("scim.urls")),
    path("api/v1/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/v1/", include("api.urls")),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("oauth/", include("oauth.urls")),
    path("saml2/", include("sso.urls")),
    path("oidc/", include("sso.oidc_urls")),
    path("", include("oauth.site_urls")),
]
