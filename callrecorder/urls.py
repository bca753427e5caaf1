from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from recordings_app.views import accounts

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/verify/", accounts.verify_code, name="verify_code"),
    path("accounts/authenticator/", accounts.set_up_app, name="set_up_app"),
    path("accounts/security/", accounts.account_security, name="account_security"),
    path("api/v1/", include("recordings_app.api.urls")),
    path("", include("recordings_app.urls")),
]
