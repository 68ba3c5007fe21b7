"""URLs: the CRM's pages, sign-in, and commlink's connect and push views."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("commlink/", include("commlink.contrib.django.urls")),
    path("", include("crm.urls")),
]
