"""OpenID Connect on a tenant host (mounted at /oidc/). The callback path is the redirect URI given
to Entra (sso.entra_values.OIDC_CALLBACK_PATH); the login path is the sign-in page's button
(sso.policy.OIDC_LOGIN_PATH)."""

from django.urls import path

from sso import oidc_views

app_name = "oidc"

urlpatterns = [
    path("login/", oidc_views.login_start, name="login"),
    path("callback/", oidc_views.callback, name="callback"),
]
