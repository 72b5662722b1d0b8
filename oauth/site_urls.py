"""Pages at the site root: /login/ (go-to-domain on the root host, the tenant's sign-in on a
tenant host), /logout/ and /account/."""

from django.urls import path

from oauth import views

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
]
