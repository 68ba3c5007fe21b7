"""The connect flow and the push endpoints, as Django views.

- ``connect/<channel id>/`` (signed-in users): starts the OAuth sign-in for a
  channel of ``COMMLINK["CHANNELS"]`` the user owns, with PKCE and a state
  kept in the user's session, and redirects to the identity provider;
  ``oauth/callback/`` finishes it and saves the grant through the token
  store (the ORM one with ``STORE = "orm"``).
- ``push/gmail``, ``push/google-calendar``, ``push/graph`` and
  ``push/graph/lifecycle``: the webhook endpoints of
  ``commlink.contrib.webhooks`` (the same checks and limits: Pub/Sub token,
  channel token, Graph ``clientState`` and ``validationToken``), exempt
  from CSRF since providers call them; a notification wakes the channel
  (``wake.flag_wake``, or the callable ``COMMLINK["WAKE"]`` names).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from django.contrib.auth.decorators import login_required
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from ...auth.flow import authorization_url, exchange_code
from ...auth.identity import AuthorizationRequest, redirect_params
from ...auth.options import identity_of, oauth_client, token_key
from ...auth.scopes import scopes_for_channels
from ...credentials import Secret
from ...errors import CommlinkError, ConfigError, InvalidInput
from ...model import Channel
from ...records import ChannelStatus
from .channels import PUSH_PATHS, ChannelsConfig, ConfiguredChannel
from .conf import commlink_settings, get_config, get_store

__all__ = ["connect", "oauth_callback", "push"]

#: sign-ins in progress kept per session (the oldest is dropped beyond it)
MAX_PENDING_SIGN_INS = 5
#: how long a sign-in may take, from the redirect to the callback
SIGN_IN_SECONDS = 15 * 60
_SESSION_KEY = "commlink_sign_ins"
_RELAYED = "commlink_relayed"
#: what an authorization response may carry (RFC 6749 §4.1.2, OpenID Connect)
_ANSWER_FIELDS = frozenset(
    {"code", "state", "error", "error_description", "error_uri", "session_state", "id_token"}
)


# -- connect -----------------------------------------------------------------


@never_cache
@login_required
@require_GET
def connect(request: HttpRequest, channel_id: str) -> HttpResponse:
    """Send the user to sign in to the account of one of their channels."""
    config = get_config()
    item = _channel_of(config, channel_id)
    if item is None or not _may_connect(request, item):
        return _failed(request, "There is no such channel to connect.", 404)
    identity = identity_of(item.options)
    if identity is None:
        return _failed(request, "This channel does not sign in with OAuth.", 400)
    key = token_key(item.channel.id, item.options)
    sharing = [
        other
        for other in config.channels
        if identity_of(other.options) == identity
        and token_key(other.channel.id, other.options) == key
    ]
    scopes = scopes_for_channels(
        ((c.channel.provider, c.channel.settings.visibility) for c in sharing), identity=identity
    )
    sign_in = authorization_url(
        oauth_client(item.options),
        scopes,
        _redirect_uri(request),
        login_hint=item.channel.settings.owner,
    )
    _remember(request, item.channel.id, sign_in)
    return HttpResponseRedirect(sign_in.url)


@never_cache
@csrf_exempt  # the sign-in's state, bound to the session, is the check
@require_http_methods(["GET", "POST"])
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Finish a sign-in: check the state, trade the code, save the grant.

    Google answers with a redirect (GET); Microsoft POSTs a form from its
    own site, which browsers send without the session cookie (``SameSite``):
    that POST gets a page re-posting the form from this site, with the cookie.
    """
    cross_site = request.method == "POST" and _RELAYED not in request.POST
    if cross_site and not request.user.is_authenticated:
        fields = [(k, v) for k, v in request.POST.items() if k in _ANSWER_FIELDS]
        return render(request, "commlink/relay.html", {"fields": fields, "relayed": _RELAYED})
    if not request.user.is_authenticated:
        from django.contrib.auth.views import redirect_to_login  # loads auth's models

        return redirect_to_login(request.get_full_path())
    try:
        params = _answer(request)
    except CommlinkError:
        return _failed(request, "The sign-in answer is malformed.", 400)
    pending = _recall(request, params.get("state", ""))
    if pending is None:
        return _failed(request, "This sign-in is unknown or has expired: start it again.", 400)
    channel_id, sign_in = pending
    item = _channel_of(get_config(), channel_id)
    if item is None or not _may_connect(request, item):
        return _failed(request, "There is no such channel to connect.", 404)
    try:
        token = exchange_code(oauth_client(item.options), sign_in, params)
    except CommlinkError as exc:
        return _failed(request, f"The account was not connected: {exc}", 400)
    tokens = item.options.get("token_store")
    if tokens is None:
        raise ConfigError("the channel has no token store", field="token_store")
    tokens.save_token(token_key(item.channel.id, item.options), token)
    _reconnected(item.channel)
    done = _oauth_settings().get("DONE_URL")
    if isinstance(done, str) and done:
        return HttpResponseRedirect(done)
    context = {"channel": item.channel, "account": token.account}
    return render(request, "commlink/connected.html", context)


def _reconnected(channel: Channel) -> None:
    """Save the channel; one stopped on refused credentials syncs again soon
    (a new grant is what it was waiting for)."""
    store = get_store()
    store.save_channel(channel)
    state = store.channel_state(channel.id)
    if state is not None and state.status is ChannelStatus.FAILED_AUTH:
        store.save_channel_state(
            attrs.evolve(
                state,
                status=ChannelStatus.ONGOING,
                failures=0,
                last_error="",
                next_attempt=None,
            )
        )
    _wake()(channel.id)


def _answer(request: HttpRequest) -> dict[str, str]:
    """The authorization response: the query of a GET, the form of a POST
    (a parameter given twice is refused either way)."""
    if request.method != "POST":
        return redirect_params(request.get_full_path())
    found: dict[str, str] = {}
    for name, values in request.POST.lists():
        if len(values) != 1:
            raise InvalidInput("a parameter appears twice in the authorization response")
        if name != _RELAYED:
            found[name] = values[0]
    return found


def _channel_of(config: ChannelsConfig, channel_id: str) -> ConfiguredChannel | None:
    return next((c for c in config.channels if c.channel.id == channel_id), None)


def _may_connect(request: HttpRequest, item: ConfiguredChannel) -> bool:
    """The channel's user, by primary key or user name (``OAUTH["MAY_CONNECT"]``
    names a callable ``(request, channel) -> bool`` to decide otherwise)."""
    rule = _oauth_settings().get("MAY_CONNECT")
    if isinstance(rule, str):
        decide: Callable[[HttpRequest, Any], bool] = import_string(rule)
        return bool(decide(request, item.channel))
    user: Any = request.user
    return item.channel.user_id in {str(user.pk), user.get_username()}


def _redirect_uri(request: HttpRequest) -> str:
    configured = _oauth_settings().get("REDIRECT_URI")
    if isinstance(configured, str) and configured:
        return configured
    return request.build_absolute_uri(reverse("commlink:oauth_callback"))


def _oauth_settings() -> Mapping[str, Any]:
    found = commlink_settings().get("OAUTH", {})
    return found if isinstance(found, Mapping) else {}


def _remember(request: HttpRequest, channel_id: str, sign_in: AuthorizationRequest) -> None:
    pending = dict(request.session.get(_SESSION_KEY, {}))
    pending[sign_in.state] = {
        "channel": channel_id,
        "started": time.time(),
        "url": sign_in.url,
        "code_verifier": sign_in.code_verifier.reveal(),
        "redirect_uri": sign_in.redirect_uri,
        "scopes": list(sign_in.scopes),
        "provider": sign_in.provider,
        "flow": dict(sign_in.flow),
    }
    newest = sorted(pending.items(), key=lambda kv: kv[1]["started"])[-MAX_PENDING_SIGN_INS:]
    request.session[_SESSION_KEY] = dict(newest)


def _recall(request: HttpRequest, state: str) -> tuple[str, AuthorizationRequest] | None:
    """The sign-in ``state`` names, taken out of the session (used once)."""
    pending = dict(request.session.get(_SESSION_KEY, {}))
    # the state is checked again in constant time by exchange_code
    found = pending.pop(state, None) if isinstance(state, str) else None
    request.session[_SESSION_KEY] = pending
    if not isinstance(found, dict) or time.time() - found["started"] > SIGN_IN_SECONDS:
        return None
    sign_in = AuthorizationRequest(
        url=found["url"],
        state=state,
        code_verifier=Secret(found["code_verifier"]),
        redirect_uri=found["redirect_uri"],
        scopes=tuple(found["scopes"]),
        provider=found["provider"],
        flow=found["flow"],
    )
    return found["channel"], sign_in


def _failed(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    return render(request, "commlink/connect_failed.html", {"reason": reason}, status=status)


# -- push --------------------------------------------------------------------

_ROUTES = {
    "gmail": "gmail",
    "google-calendar": "google_calendar",
    "graph": "graph",
    "graph-lifecycle": "graph_lifecycle",
}
_app_lock = threading.Lock()
_app: list[tuple[ChannelsConfig, Any]] = []  # the push app and the settings it was built from


@csrf_exempt
def push(request: HttpRequest, route: str) -> HttpResponse:
    """Answer one provider notification through ``commlink.contrib.webhooks``."""
    app = _push_app()
    name = _ROUTES.get(route)
    if name is None:
        return HttpResponse(b"not found", status=404, content_type="text/plain")
    environ = dict(request.META)
    environ["PATH_INFO"] = getattr(app.paths, name)
    environ["REQUEST_METHOD"] = request.method or "GET"
    environ["wsgi.input"] = request  # read through Django's own bounded stream
    environ.pop("wsgi.input_terminated", None)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"] = int(status.split(" ", 1)[0])
        answer["headers"] = headers

    body = b"".join(app(environ, start_response))
    response = HttpResponse(body, status=answer["status"])
    for name, value in answer["headers"]:
        if name.lower() != "content-length":
            response[name] = value
    return response


def _push_app() -> Any:
    """The push app for the current settings (rebuilt when they change)."""
    config = get_config()
    with _app_lock:
        if _app and _app[0][0] is config:
            return _app[0][1]
        app = _build_push_app(config)
        for _, old in _app:
            old.close()
        _app[:] = [(config, app)]
        return app


def _build_push_app(config: ChannelsConfig) -> Any:
    from ...contrib.webhooks import PushPaths, push_app
    from ...providers.google.push import GOOGLE_CERTS_URL
    from .conf import get_subscription_store

    push = config.push
    return push_app(
        get_subscription_store(),
        _wake(),
        gmail_audience=push.gmail_audience if push else None,
        gmail_service_accounts=push.gmail_service_accounts if push else (),
        paths=PushPaths(**PUSH_PATHS),
        gmail_certs_url=push.gmail_certs_url if push else GOOGLE_CERTS_URL,
    )


def _forget_push_app(*, setting: str, **_: Any) -> None:
    if setting == "COMMLINK":
        with _app_lock:
            for _config, old in _app:
                old.close()
            _app.clear()


setting_changed.connect(_forget_push_app, dispatch_uid="commlink.views.push_app")


def _wake() -> Callable[[str], None]:
    configured = commlink_settings().get("WAKE")
    if isinstance(configured, str):
        wake: Callable[[str], None] = import_string(configured)
        return wake
    from .wake import flag_wake

    return lambda channel_id: flag_wake(get_store(), channel_id)
