"""Gmail through the Gmail REST API (google-api-python-client).

One scope for the whole mailbox: labels are folders, and the policy drops
messages by their labels. The scope covers every message whatever labels
exist or are selected, so a label appearing or disappearing changes no
cursor: its messages gain or lose it in the mailbox's history. When the
folder selection changes, ``label_page`` lists the ids under one label
(``users.messages.list`` with ``labelIds``) and the engine re-judges only
the labels whose selection changed. A full pass lists
``users.messages.list`` pages (newest first) from a ``historyId`` snapshot;
incremental passes read ``users.history.list``. Messages are fetched in
batch requests of 50 with ``format=metadata`` (only the headers the policy
needs) or ``format=raw``.
A full fetch reads the metadata first: its ``sizeEstimate`` decides which
messages are larger than ``Limits.max_message_bytes`` (kept with their
headers only) and how the rest are grouped within ``fetch_batch_bytes``.
Calls are paced within the per-user quota before they are sent.

Send-as aliases: ``aliases()`` lists them (``ports.AliasSource``); the sync
engine uses them with ``ChannelSettings.aliases``, so mail sent from an
alias counts as outgoing.

Push: the provider is a ``PushSource``. ``subscribe`` asks Gmail
(``users.watch``) to publish the mailbox's changes to the Pub/Sub topic
given as ``pubsub_topic``; renewing is watching again (Google advises
daily, a watch lasts seven days) and ``unsubscribe`` is ``users.stop``.
``GmailPushEndpoint`` (``commlink.providers.google.push``) receives the
pushes. ``watch()`` returns ``None``: nothing is held open here.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from datetime import datetime, timezone
from typing import Any

import attrs

from ...closing import Closing
from ...errors import (
    AuthError,
    ConfigError,
    CursorExpired,
    InvalidInput,
    NotFound,
    ProviderError,
)
from ...model import Attachment, Detail, Folder, FolderKind, FolderSelection, Limits
from ...ports import ChangeSet, FetchedMessage, IdPage, Scope
from ...records import PushSubscription
from ..header_names import METADATA_HEADERS
from ..sizing import DEFAULT_LIMITS, plan_fetch
from .client import BATCH_LIMIT, Call, GoogleClient, QuotaBucket, build_service
from .notifications import notification_history_id

__all__ = ["MAILBOX", "METADATA_HEADERS", "GmailProvider", "notification_history_id"]

#: google-api-python-client holds a batch response several times over (the
#: bytes, their text, the multipart parser's copy, each part's JSON) and
#: ``raw`` is base64: a batch of several raw messages is planned against
#: this share of ``fetch_batch_bytes``. A message alone is one plain request.
BATCH_SHARE = 8

READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"

_KINDS = {
    "INBOX": FolderKind.INBOX,
    "SENT": FolderKind.SENT,
    "DRAFT": FolderKind.DRAFTS,
    "SPAM": FolderKind.SPAM,
    "TRASH": FolderKind.TRASH,
    "IMPORTANT": FolderKind.IMPORTANT,
    "STARRED": FolderKind.STARRED,
}
#: System labels that are states, not places: never folders.
_NOT_FOLDERS = frozenset({"UNREAD", "CHAT"})
_COST = {"get": 5, "list": 5, "history": 2, "labels": 1, "profile": 1, "sendAs": 1}
_COST.update(watch=100, stop=50)

#: The push resource for the whole mailbox; ``labels:ID,ID`` names a few labels.
MAILBOX = "mailbox"
_LABELS = "labels:"


def _kind(label: Mapping[str, Any]) -> FolderKind:
    label_id = str(label.get("id", ""))
    if label_id in _KINDS:
        return _KINDS[label_id]
    if label_id.startswith("CATEGORY_"):
        return FolderKind.CATEGORY
    return FolderKind.CUSTOM


class GmailProvider(Closing):
    """A Gmail mailbox; ``credentials`` are google-auth credentials (user
    OAuth tokens, or a delegated service account: ``from_service_account``).

    ``api_endpoint`` points the client elsewhere (a local test server);
    ``quota_units_per_minute`` is the per-user ceiling calls are paced under;
    ``http`` is an ``httplib2.Http`` to send through (timeouts, proxies).
    ``limits`` bound the size of a message and of a fetch request.
    ``pubsub_topic`` (``projects/P/topics/T``) is where push goes;
    ``folder_selection`` (the channel's) narrows push to the labels it
    includes.
    """

    def __init__(
        self,
        credentials: Any,
        *,
        user_id: str = "me",
        api_endpoint: str | None = None,
        quota_units_per_minute: int | None = 15000,
        http: Any = None,
        page_size: int = 500,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        limits: Limits = DEFAULT_LIMITS,
        pubsub_topic: str | None = None,
        folder_selection: FolderSelection | None = None,
    ) -> None:
        self.user_id = user_id
        self.pubsub_topic = pubsub_topic
        self.folder_selection = folder_selection or FolderSelection()
        self._account: str | None = None
        self.limits = limits
        self.page_size = min(max(page_size, 1), 500)
        self.service = build_service("gmail", "v1", credentials, api_endpoint, http)
        root = (api_endpoint or "https://gmail.googleapis.com/").rstrip("/") + "/"
        self.bucket = QuotaBucket(quota_units_per_minute, sleep=sleep)
        self.client = GoogleClient(
            root + "batch/gmail/v1",
            self.bucket,
            max_retries=max_retries,
            base_delay=base_delay,
            max_wait=max_wait,
            sleep=sleep,
        )
        self._users = self.service.users()

    @classmethod
    def from_service_account(
        cls, info: Mapping[str, Any], subject: str, **kwargs: Any
    ) -> GmailProvider:
        """A provider for ``subject``'s mailbox through a service account with
        domain-wide delegation (``info``: the service account's JSON key)."""
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info), scopes=[READONLY_SCOPE], subject=subject
        )
        return cls(credentials, **kwargs)

    # -- MailProvider ---------------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """Labels as folders (``UNREAD`` and ``CHAT`` are not folders)."""
        found = self.client.execute(self._users.labels().list(userId=self.user_id), _COST["labels"])
        return [
            Folder(str(label["id"]), str(label.get("name") or label["id"]), _kind(label))
            for label in found.get("labels", [])
            if label.get("id") not in _NOT_FOLDERS
        ]

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """One scope for the mailbox, whatever is selected: its listing is
        the same for any selection (the policy judges messages by label)."""
        return [Scope("gmail")]

    def snapshot(self, scope: Scope) -> str:
        profile = self.client.execute(self._users.getProfile(userId=self.user_id), _COST["profile"])
        self._account = str(profile.get("emailAddress") or "") or self._account
        return str(profile["historyId"])

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        request = self._users.messages().list(
            userId=self.user_id,
            maxResults=self.page_size,
            includeSpamTrash=False,
            pageToken=page,
        )
        found = self.client.execute(request, _COST["list"])
        ids = tuple(str(m["id"]) for m in found.get("messages", []))
        return IdPage(ids, found.get("nextPageToken") or None)

    def label_page(self, scope: Scope, label_id: str, page: str | None) -> IdPage:
        """One page of the ids under a label, newest first (spam and trash
        left out, as in ``list_page``); none when the label no longer exists."""
        request = self._users.messages().list(
            userId=self.user_id,
            labelIds=[label_id],
            maxResults=self.page_size,
            includeSpamTrash=False,
            pageToken=page,
        )
        try:
            found = self.client.execute(request, _COST["list"])
        except ProviderError as exc:
            # a label deleted meanwhile is refused (400, 404): its messages lost it
            if type(exc) not in (ProviderError, NotFound) or any(
                f.id == label_id for f in self.folders()
            ):
                raise
            return IdPage(())
        ids = tuple(str(m["id"]) for m in found.get("messages", []))
        return IdPage(ids, found.get("nextPageToken") or None)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """History since ``cursor`` (a ``historyId``), every page of it.

        Added and relabelled messages are upserted (unless deleted later in
        the history); an expired history id (404) raises ``CursorExpired``.
        """
        upserted: dict[str, None] = {}
        deleted: dict[str, None] = {}
        page: str | None = None
        latest = cursor
        while True:
            request = self._users.history().list(
                userId=self.user_id,
                startHistoryId=cursor,
                historyTypes=["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"],
                maxResults=500,
                pageToken=page,
            )
            try:
                found = self.client.execute(request, _COST["history"])
            except NotFound as exc:
                raise CursorExpired(f"history {cursor} is no longer available") from exc
            for record in found.get("history", []):
                for key in ("messagesAdded", "labelsAdded", "labelsRemoved"):
                    for item in record.get(key, []):
                        message_id = str(item["message"]["id"])
                        if message_id not in deleted:
                            upserted[message_id] = None
                for item in record.get("messagesDeleted", []):
                    message_id = str(item["message"]["id"])
                    upserted.pop(message_id, None)
                    deleted[message_id] = None
            latest = str(found.get("historyId") or latest)
            page = found.get("nextPageToken")
            if not page:
                return ChangeSet(tuple(upserted), tuple(deleted), latest)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """Messages in batch requests; a 404 or an undecodable ``raw`` comes
        back as a ``FetchedMessage`` with ``error`` set.

        A full fetch asks for the metadata of up to 50 messages first; a
        message whose ``sizeEstimate`` is above ``max_message_bytes`` comes
        back with its headers only (``oversize``), the others in batches of
        ``format=raw`` within the byte budget."""
        unique = list(dict.fromkeys(ids))
        if detail is Detail.METADATA:
            for key, result in self.client.batch(self._calls(unique, Detail.METADATA)):
                yield _fetched(str(key), result, Detail.METADATA)
            return
        for start in range(0, len(unique), BATCH_LIMIT):
            heads: dict[str, Mapping[str, Any]] = {}
            chunk = unique[start : start + BATCH_LIMIT]
            for key, result in self.client.batch(self._calls(chunk, Detail.METADATA)):
                if isinstance(result, ProviderError):
                    yield _fetched(str(key), result, Detail.METADATA)
                else:
                    heads[str(key)] = result
            plan = plan_fetch(
                ((k, _size(v)) for k, v in heads.items()),
                self.limits,
                max_count=BATCH_LIMIT,
                budget=self.limits.fetch_batch_bytes // BATCH_SHARE,
            )
            for message_id, size in plan.oversize.items():
                head = _fetched(message_id, heads[message_id], Detail.METADATA)
                yield attrs.evolve(head, oversize=size) if head.error is None else head
            heads.clear()
            for batch in plan.batches:
                for key, result in self.client.batch(self._calls(batch, Detail.FULL)):
                    fetched = _fetched(str(key), result, Detail.FULL)
                    del result  # the base64 text goes before the message is parsed
                    yield fetched
                    del fetched  # and this message before the next is asked for

    def _calls(self, ids: Sequence[str], detail: Detail) -> list[Call]:
        return [Call(i, self._get(i, detail), _COST["get"]) for i in ids]

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """Push is wired by the host through Pub/Sub (see ``start_watch``)."""
        return None

    def close(self) -> None:
        close = getattr(self.service, "close", None)
        if close is not None:
            close()

    # -- Gmail extras ---------------------------------------------------------

    def aliases(self) -> tuple[str, ...]:
        """The mailbox's send-as addresses (the engine merges them with
        ``ChannelSettings.aliases``)."""
        request = self._users.settings().sendAs().list(userId=self.user_id)
        found = self.client.execute(request, _COST["sendAs"])
        return tuple(str(s["sendAsEmail"]) for s in found.get("sendAs", []) if s.get("sendAsEmail"))

    def start_watch(self, topic_name: str, label_ids: Sequence[str] = ()) -> Mapping[str, str]:
        """Ask Gmail to publish changes to a Pub/Sub topic
        (``projects/P/topics/T``); returns ``historyId`` and ``expiration``.
        Renew it at least every seven days."""
        body: dict[str, Any] = {"topicName": topic_name}
        if label_ids:
            body["labelIds"] = list(label_ids)
        found = self.client.execute(
            self._users.watch(userId=self.user_id, body=body), _COST["watch"]
        )
        return {k: str(v) for k, v in found.items()}

    def account(self) -> str:
        """The mailbox's address (``users.getProfile``, asked once)."""
        if not self._account:
            request = self._users.getProfile(userId=self.user_id)
            profile = self.client.execute(request, _COST["profile"])
            self._account = str(profile.get("emailAddress") or "")
            if not self._account:
                raise ProviderError("Gmail did not say whose mailbox this is")
        return self._account

    # -- PushSource -----------------------------------------------------------

    def push_resources(self, scopes: Sequence[Scope]) -> Sequence[str]:
        """One resource: the mailbox, or (when the channel includes only some
        folders) the labels it selects, as ``labels:ID,ID``."""
        if not scopes:
            return []
        selection = self.folder_selection
        if not selection.include:
            return [MAILBOX]
        labels = sorted(f.id for f in self.folders() if selection.selects(f))
        return [_LABELS + ",".join(labels)] if labels else []

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        """Watch the mailbox (``users.watch``); renewing is watching again.
        The subscription's id is ``gmail:<address>``: Gmail keeps one watch
        per mailbox and its notifications name the mailbox, not a watch."""
        if not self.pubsub_topic:
            raise ConfigError("Gmail push needs a Pub/Sub topic", field="pubsub_topic")
        body: dict[str, Any] = {"topicName": self.pubsub_topic}
        labels = _resource_labels(resource)
        if labels:
            body.update(labelIds=labels, labelFilterBehavior="include")
        request = self._users.watch(userId=self.user_id, body=body)
        try:
            found = self.client.execute(request, _COST["watch"])
        except AuthError as exc:
            if "pubsub" not in str(exc).lower():
                raise
            raise ConfigError(  # the mailbox's grant is fine: the topic's IAM is not
                "Gmail may not publish to the Pub/Sub topic: grant "
                "gmail-api-push@system.gserviceaccount.com the Publisher role on it",
                field="pubsub_topic",
            ) from exc
        account = self.account()
        expires = _internal_date(found.get("expiration"))
        if expires is None:
            raise ProviderError("Gmail answered a watch without its expiration")
        return PushSubscription(
            id=f"gmail:{account}",
            channel_id=channel_id,
            provider="gmail",
            resource=resource,
            expires_at=expires,
            account=account,
            data={"historyId": str(found.get("historyId", "")), "topic": self.pubsub_topic},
        )

    def unsubscribe(self, subscription: PushSubscription) -> None:
        """Stop the mailbox's watch (``users.stop``); none left is fine."""
        with suppress(NotFound):
            self.client.execute(self._users.stop(userId=self.user_id), _COST["stop"])

    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """One attachment's decoded content (``AttachmentSource``; see
        ``google.attachments``)."""
        from .attachments import open_gmail_attachment

        return open_gmail_attachment(
            self.client.execute,
            self._users.messages(),
            self.user_id,
            provider_id,
            attachments,
            index,
            max_bytes,
        )

    def _get(self, message_id: str, detail: Detail) -> Any:
        messages = self._users.messages()
        if detail is Detail.METADATA:
            return messages.get(
                userId=self.user_id,
                id=message_id,
                format="metadata",
                metadataHeaders=list(METADATA_HEADERS),
            )
        return messages.get(userId=self.user_id, id=message_id, format="raw")


def _size(found: Mapping[str, Any]) -> int | None:
    try:
        size = int(found.get("sizeEstimate"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return size if size >= 0 else None


def _fetched(
    message_id: str, found: Mapping[str, Any] | ProviderError, detail: Detail
) -> FetchedMessage:
    if isinstance(found, NotFound):
        return FetchedMessage(message_id, error="not found")
    if isinstance(found, ProviderError):
        return FetchedMessage(message_id, error=f"could not fetch: {found}"[:500])
    folders = tuple(str(f) for f in found.get("labelIds", []) if f not in _NOT_FOLDERS)
    thread = str(found["threadId"]) if found.get("threadId") else None
    date = _internal_date(found.get("internalDate"))
    if detail is Detail.METADATA:
        raw = _header_block(found.get("payload", {}).get("headers", []))
    else:
        try:
            raw = _decode_raw(found.get("raw"))
        except ValueError as exc:
            return FetchedMessage(message_id, error=f"unreadable raw message: {exc}")
    return FetchedMessage(message_id, raw=raw, folders=folders, thread_hint=thread, date=date)


def _header_block(headers: Sequence[Mapping[str, Any]]) -> bytes:
    """RFC 5322 header bytes from Gmail's header list, for the mail parser."""
    lines = []
    for header in headers:
        name = str(header.get("name", "")).strip()
        if not name or ":" in name or not name.isprintable():
            continue
        value = " ".join(str(header.get("value", "")).split())
        lines.append(f"{name}: {value}\r\n".encode())
    return b"".join(lines) + b"\r\n"


def _decode_raw(raw: object) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise ValueError("no raw content")
    text = raw.strip()
    if len(text) % 4:
        text += "=" * (-len(text) % 4)
    try:  # one translated copy, not one per replaced character
        data = base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url ({exc})") from None
    if not data.strip():
        raise ValueError("empty message")
    return data


def _internal_date(value: object) -> datetime | None:
    try:
        millis = int(str(value))
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _resource_labels(resource: str) -> list[str]:
    """The label ids a push resource names (none: the whole mailbox)."""
    if resource == MAILBOX:
        return []
    if resource.startswith(_LABELS):
        labels = [label for label in resource[len(_LABELS) :].split(",") if label]
        if labels:
            return labels
    raise InvalidInput(f"not a Gmail push resource: {resource[:100]!r}")
