from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("scim/v2/", include("scim.urls")),
    path("oauth/", include("oauth.urls")),
    path("", include("oauth.site_urls")),
]
