"""commlink's URLs: ``path("commlink/", include("commlink.contrib.django.urls"))``.

The push paths match ``commlink.contrib.webhooks.PushPaths``' defaults, so
``COMMLINK["PUSH"]["public_url"]`` ending in the mount point (for example
``https://crm.example.com/commlink``) gives each channel the right URL.
"""

from __future__ import annotations

from django.urls import path

from . import views

__all__ = ["app_name", "urlpatterns"]

app_name = "commlink"

urlpatterns = [
    path("connect/<str:channel_id>/", views.connect, name="connect"),
    path("oauth/callback/", views.oauth_callback, name="oauth_callback"),
    path("push/gmail", views.push, {"route": "gmail"}, name="push_gmail"),
    path("push/google-calendar", views.push, {"route": "google-calendar"}, name="push_calendar"),
    path("push/graph", views.push, {"route": "graph"}, name="push_graph"),
    path(
        "push/graph/lifecycle",
        views.push,
        {"route": "graph-lifecycle"},
        name="push_graph_lifecycle",
    ),
]
