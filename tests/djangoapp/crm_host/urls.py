"""The test host's URLs: commlink's views under ``commlink/``."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("commlink/", include("commlink.contrib.django.urls")),
]
