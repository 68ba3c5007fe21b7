"""Settings of the example CRM: SQLite, commlink's Django app, two demo users.

``CRM_DATA_DIR`` (default ``examples/django_crm/var``) holds the SQLite
database (the CRM's tables and commlink's); tests point it at a temporary
folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import commlink

from . import local_google

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CRM_DATA_DIR", BASE_DIR / "var"))

# A development-only key: the example is not meant to be deployed as is.
SECRET_KEY = os.environ.get("CRM_SECRET_KEY", "django-insecure-example-crm-only")
DEBUG = os.environ.get("CRM_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    # first, so that its ``runserver`` (which sets the demo up) wins
    "crm",
    "commlink.contrib.django",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crm_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "crm.sqlite3",
        # Sync runs channels in threads and pages read while it writes: take
        # the write lock when a transaction starts (no lock upgrade to fail
        # on), wait for it, and let readers work beside the writer (WAL).
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}

STATIC_URL = "static/"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

#: threads per page on a record's Emails tab, messages per page of a thread
CRM_PAGE_SIZE = 4

DATA_DIR.mkdir(parents=True, exist_ok=True)

# The demo mailboxes and calendars: Alice's come with commlink (the data of
# ``commlink demo``), the others with this example.
COMMLINK_DEMO_DATA = Path(commlink.__file__).parent / "cli" / "demo_data"
CRM_DEMO_DATA = BASE_DIR / "crm" / "demo_data"
_NORTHWIND = {"org_domains": ["northwind.example"], "contact_policy": "sent"}

COMMLINK: dict[str, Any] = {
    "STORE": "orm",
    "DIRECTORY": {
        "person": {
            "model": "crm.Person",
            "name": ["first_name", "last_name"],
            "company": "company",
            "addresses": [{"path": "emails__address", "key": "emails__key"}],
        },
        "company": {"model": "crm.Company", "name": "name", "domains": "domains__name"},
        "opportunity": {
            "model": "crm.Opportunity",
            "name": "title",
            "company": "company",
            "contacts": "contacts",
            "open": {"status": "open"},
        },
        "create_contacts": True,
    },
    # Channel user ids are the CRM users' usernames (see crm.access.viewer_for).
    "CHANNELS": [
        {
            "id": "alice-mail",
            "user": "alice",
            "provider": "mbox",
            "path": str(COMMLINK_DEMO_DATA / "demo.mbox"),
            "owner": "alice@northwind.example",
            "visibility": "subject",
            "blocklist": ["@headhunters.example"],
            **_NORTHWIND,
        },
        {
            "id": "alice-calendar",
            "user": "alice",
            "provider": "ics",
            "path": str(COMMLINK_DEMO_DATA / "demo.ics"),
            "owner": "alice@northwind.example",
            "visibility": "subject",
            **_NORTHWIND,
        },
        {
            "id": "alice-legal",
            "user": "alice",
            "provider": "mbox",
            "path": str(CRM_DEMO_DATA / "legal.mbox"),
            "owner": "legal@northwind.example",
            "visibility": "metadata",
            **_NORTHWIND,
        },
        {
            "id": "bob-mail",
            "user": "bob",
            "provider": "mbox",
            "path": str(CRM_DEMO_DATA / "bob.mbox"),
            "owner": "bob@northwind.example",
            "visibility": "full",
            **_NORTHWIND,
        },
        {
            "id": "bob-calendar",
            "user": "bob",
            "provider": "ics",
            "path": str(CRM_DEMO_DATA / "bob.ics"),
            "owner": "bob@northwind.example",
            "visibility": "full",
            **_NORTHWIND,
        },
    ],
}

# While ``manage.py local_accounts`` runs local Google sign-in and Gmail
# servers (crm/local_accounts.py), it writes where they listen to a file in
# the data folder, and Bob gets a Gmail channel to connect on the accounts page.
LOCAL_ACCOUNTS = DATA_DIR / local_google.SETTINGS_FILE
if LOCAL_ACCOUNTS.is_file():
    _endpoints = json.loads(LOCAL_ACCOUNTS.read_text(encoding="utf-8"))
    COMMLINK["CHANNELS"].append(local_google.local_gmail_channel(_endpoints, _NORTHWIND))
    COMMLINK["TOKENS"] = {"key": local_google.token_key(DATA_DIR)}
    COMMLINK["OAUTH"] = {"DONE_URL": "/accounts/"}  # back to the accounts page
