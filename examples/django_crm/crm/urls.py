"""The CRM's pages."""

from __future__ import annotations

from django.urls import path

from . import mail_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("people/", views.record_list, {"kind": "person"}, name="people"),
    path("people/<int:pk>/", views.record, {"kind": "person"}, name="person"),
    path("companies/", views.record_list, {"kind": "company"}, name="companies"),
    path("companies/<int:pk>/", views.record, {"kind": "company"}, name="company"),
    path("opportunities/", views.record_list, {"kind": "opportunity"}, name="opportunities"),
    path("opportunities/<int:pk>/", views.record, {"kind": "opportunity"}, name="opportunity"),
    path("thread/", mail_views.thread, name="thread"),
    path("thread/attachment/", mail_views.attachment, name="attachment"),
    path("missing/", mail_views.missing, name="missing"),
    path("accounts/", mail_views.accounts, name="accounts"),
    path("accounts/<str:channel_id>/visibility/", mail_views.set_visibility, name="set_visibility"),
    path("accounts/<str:channel_id>/sync/", mail_views.sync_now, name="sync_now"),
]
