"""IMAP syncs leave file attachments on the server (Dovecot and Cyrus): a
message is fetched as its header and the sections that can hold text, and
reads exactly as the whole message does; the files' bytes are not
downloaded, their sizes come from the server, and they still open on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import attrs
import pytest

from attachment_samples import CHANNEL, big_content, big_message, read_all, rich_message, synced
from commlink.errors import NotFound
from commlink.model import Detail, Limits, Message
from commlink.ports import MailProvider, Scope
from commlink.providers.imap import bodystructure
from commlink.providers.imap.connection import refusal
from commlink.providers.imap.fetch_stream import Fetch
from commlink.providers.imap.responses import parse_uid_set
from commlink.records import Viewer
from commlink.sync.fetching import parse_fetched
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import BASE, OWNER

pytestmark = pytest.mark.integration

PDF = big_content(150_000)
PICTURE = big_content(90_000)
OWNER_VIEW = Viewer(CHANNEL.user_id)


def _message(n: int, subject: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Ann Client <ann@client.example>"
    m["To"] = OWNER
    m["Subject"] = subject
    m["Date"] = format_datetime(BASE)
    m["Message-ID"] = f"<nofiles-{n}@attachments>"
    return m


def _bytes(m: EmailMessage) -> bytes:
    return bytes(m).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def related_picture() -> bytes:
    """HTML with a large inline picture (multipart/related in an alternative)."""
    m = _message(1, "Newsletter with a picture")
    m.set_content("Plain version.\n")
    m.add_alternative('<p>Look: <img src="cid:pic@x"></p>', subtype="html")
    html = m.get_payload()[1]
    html.add_related(PICTURE, "image", "jpeg", cid="<pic@x>", filename="pic.jpg")
    return _bytes(m)


def only_a_file() -> bytes:
    """A message that is one PDF, no text at all."""
    m = _message(2, "Scan")
    m.set_content(PDF, "application", "pdf", filename="scan.pdf")
    return _bytes(m)


def invitation_with_a_file() -> bytes:
    """An invitation (text/calendar) and an agenda PDF: the calendar is read."""
    m = _message(3, "Invitation: review")
    m.set_content("You are invited.\n")
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nMETHOD:REQUEST\r\n"
        "BEGIN:VEVENT\r\nUID:review-1@x\r\nDTSTAMP:20260301T090000Z\r\n"
        "DTSTART:20260310T090000Z\r\nDTEND:20260310T100000Z\r\nSUMMARY:Review\r\n"
        "ORGANIZER:mailto:ann@client.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    m.add_attachment(ics.encode(), "application", "octet-stream", filename="invite.ics")
    m.add_attachment(PDF, "application", "pdf", filename="agenda.pdf")
    return _bytes(m)


def forward_with_a_file() -> bytes:
    """A forwarded message that carries a file of its own: fetched whole, as
    the forward is one part here."""
    inner = _message(40, "The original")
    inner.set_content("Original text.\n")
    inner.add_attachment(PDF, "application", "pdf", filename="inner.pdf")
    m = _message(4, "Fwd: the original")
    m.set_content("See below.\n")
    m.add_attachment(inner)
    m.add_attachment(PICTURE, "image", "png", filename="shot.png")
    return _bytes(m)


def delimiter_in_the_text() -> bytes:
    """A text that quotes its own message's delimiter in the middle of a line
    (no server splits there): the sections are not trusted, it comes whole."""
    m = _message(5, "Odd text")
    m.set_content("placeholder\n")
    m.add_attachment(PDF, "application", "pdf", filename="odd.pdf")
    raw = _bytes(m)
    boundary = m.get_boundary()
    assert boundary is not None
    return raw.replace(b"placeholder", b"the line is --" + boundary.encode() + b" ok")


SAMPLES = {
    "rich": rich_message(),
    "related": related_picture(),
    "only a file": only_a_file(),
    "invitation": invitation_with_a_file(),
    "forward": forward_with_a_file(),
    "delimiter": delimiter_in_the_text(),
}


def small() -> bytes:
    """Too small for its structure to matter: asked for nothing but itself."""
    m = _message(7, "Small")
    m.set_content("Just text.\n")
    m.add_attachment(b"tiny", "application", "pdf", filename="tiny.pdf")
    return _bytes(m)


def _inbox(provider: MailProvider) -> Scope:
    folders = [f for f in provider.folders() if f.kind.value == "inbox"]
    return provider.scopes(folders)[0]


def _fetch(provider: Any) -> dict[str, Message]:
    scope = _inbox(provider)
    ids = provider.list_page(scope, None).ids
    found = [parse_fetched(f, Detail.FULL) for f in provider.fetch(scope, ids, Detail.FULL)]
    return {m.subject: m for m in found}


#: What a test does to the answers of one command (its arguments given):
#: alter them as they pass, or raise instead of sending it.
Hook = Callable[[tuple[str, ...], Iterator[Any]], Iterator[Any]]


def _commands(provider: Any, hook: Hook | None = None) -> list[str]:
    """The arguments of each command the provider sends from now on; ``hook``
    stands in for the server's answers."""
    commands: list[str] = []
    stream_uid = provider.conn.stream_uid

    def wrapped(client: Any, command: str, *args: str, max_literal: int) -> Iterator[Any]:
        commands.append(" ".join(args))
        answers = stream_uid(client, command, *args, max_literal=max_literal)
        return answers if hook is None else hook(args, answers)

    provider.conn.stream_uid = wrapped
    return commands


def _no_sizes(message: Message) -> Message:
    return attrs.evolve(
        message, size=0, attachments=tuple(attrs.evolve(a, size=0) for a in message.attachments)
    )


def test_messages_read_as_when_fetched_whole(
    imap: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    for raw in [*SAMPLES.values(), small()]:  # UIDs 1-7
        imap.add("INBOX", raw)
    lean_provider = imap.new_provider()
    commands = _commands(lean_provider)
    lean = _fetch(lean_provider)
    monkeypatch.setattr(bodystructure, "LEAN_MIN_BYTES", 10**18)
    whole_provider = imap.new_provider()
    whole = _fetch(whole_provider)

    assert set(lean) == set(whole)
    assert len(lean) == len(SAMPLES) + 1
    for subject, message in lean.items():
        assert _no_sizes(message) == _no_sizes(whole[subject]), subject
        assert message.size == whole[subject].size, subject
        for mine, theirs in zip(message.attachments, whole[subject].attachments, strict=True):
            assert abs(mine.size - theirs.size) <= 2, (subject, mine, theirs)
    invitation = lean["Invitation: review"]
    assert invitation.calendar_parts
    assert "UID:review-1@x" in invitation.calendar_parts[0]
    # the files stayed on the server (base64: a third more bytes than these),
    # all but the PDF inside the forward and the odd message's
    left = 2 * len(PDF) + 2 * len(PICTURE) + 200_000 + 10_240
    assert whole_provider.bytes_fetched - lean_provider.bytes_fetched > left
    # one FETCH of sizes, one of the structures of the large messages, the
    # small one whole, one FETCH of sections per shape (the invitation and
    # the forward share theirs), then the odd message whole
    assert commands[:3] == [
        "1:7 (RFC822.SIZE)",
        "1:6 (BODYSTRUCTURE)",
        "7 (BODY.PEEK[] INTERNALDATE)",
    ]
    assert sum("BODY.PEEK[HEADER]" in c for c in commands) == 5
    assert commands[-1] == "6 (BODY.PEEK[] INTERNALDATE)"
    assert len(commands) == 9


def test_a_message_large_only_for_its_files_keeps_its_body(imap: ImapAccount) -> None:
    imap.add("INBOX", big_message(400_000))
    provider = imap.new_provider(limits=Limits(max_message_bytes=100_000))
    store, thread_id = synced(provider, CHANNEL)
    view = store.thread(thread_id, OWNER_VIEW)
    assert view is not None
    (message,) = view.messages
    assert message.body is not None
    assert "A big file." in message.body
    assert not any(w.startswith("too-large") for w in message.warnings)
    (attachment,) = message.attachments
    assert abs(attachment.size - 400_000) <= 2
    assert attachment.part == "2"
    assert provider.bytes_fetched < 10_000
    # and the file itself still comes, from the server, on demand
    found = read_all(store, provider, thread_id)
    assert found["big.bin"] == big_content(400_000)


def test_a_message_over_the_limit_in_its_text_is_still_headers_only(imap: ImapAccount) -> None:
    m = _message(6, "Long text and a file")
    m.set_content("word " * 40_000)
    m.add_attachment(PDF, "application", "pdf", filename="a.pdf")
    imap.add("INBOX", _bytes(m))
    provider = imap.new_provider(limits=Limits(max_message_bytes=100_000))
    scope = _inbox(provider)
    (fetched,) = provider.fetch(scope, provider.list_page(scope, None).ids, Detail.FULL)
    assert fetched.oversize is not None
    assert fetched.oversize > 300_000
    assert fetched.raw is not None
    assert b"word word" not in fetched.raw


def test_a_section_the_server_leaves_out_means_the_whole_message(imap: ImapAccount) -> None:
    imap.add("INBOX", only_a_file())
    imap.add("INBOX", invitation_with_a_file())
    provider = imap.new_provider()

    def forgetful(args: tuple[str, ...], answers: Iterator[Any]) -> Iterator[Any]:
        """A server that never sends the MIME header of part 2."""
        for response in answers:
            if isinstance(response, Fetch):
                response.items.pop("BODY[2.MIME]", None)
            yield response

    commands = _commands(provider, forgetful)
    found = _fetch(provider)
    assert set(found) == {"Scan", "Invitation: review"}
    invitation = found["Invitation: review"]
    assert [a.filename for a in invitation.attachments] == ["invite.ics", "agenda.pdf"]
    assert invitation.calendar_parts
    assert commands[-1] == "2 (BODY.PEEK[] INTERNALDATE)"


def test_a_message_that_is_one_file_opens_it_on_demand(imap: ImapAccount) -> None:
    imap.add("INBOX", only_a_file())
    provider = imap.new_provider()
    store, thread_id = synced(provider, CHANNEL)
    assert provider.bytes_fetched < 2_000  # its header
    assert read_all(store, provider, thread_id) == {"scan.pdf": PDF}


@pytest.mark.parametrize("refused", ["(BODYSTRUCTURE)", "BODY.PEEK[1.MIME]"])
def test_a_refused_structure_or_sections_fetch_means_whole_messages(
    imap: ImapAccount, refused: str
) -> None:
    imap.add("INBOX", rich_message())
    imap.add("INBOX", invitation_with_a_file())
    provider = imap.new_provider()

    def refusing(args: tuple[str, ...], answers: Iterator[Any]) -> Iterator[Any]:
        """A server that answers NO to one kind of FETCH (as for a message
        it cannot describe)."""
        if refused in args[-1]:
            raise refusal("NO [SERVERBUG] Internal error occurred", "INBOX")
        return answers

    commands = _commands(provider, refusing)
    found = _fetch(provider)
    assert set(found) == {"Files 1", "Invitation: review"}
    assert found["Files 1"].body == "See the files.\n"
    assert len(found["Files 1"].attachments) == 5
    assert found["Invitation: review"].calendar_parts
    assert commands[-1].endswith("(BODY.PEEK[] INTERNALDATE)")


def test_a_lost_folder_during_a_structure_fetch_is_not_hidden(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    provider = imap.new_provider()

    def gone(args: tuple[str, ...], answers: Iterator[Any]) -> Iterator[Any]:
        if "(BODYSTRUCTURE)" in args[-1]:
            raise NotFound("folder 'INBOX' does not exist")
        return answers

    _commands(provider, gone)
    with pytest.raises(NotFound):
        _fetch(provider)


def _six_notes(imap: ImapAccount) -> None:
    """Six short messages (UIDs 1-6), each fetched whole."""
    for n in range(1, 7):
        m = _message(100 + n, f"Note {n}")
        m.set_content(f"Note number {n}.\n")
        imap.add("INBOX", _bytes(m))


def test_a_message_the_server_will_not_send_holds_up_no_other(imap: ImapAccount) -> None:
    _six_notes(imap)
    provider = imap.new_provider()

    def gmail_like(args: tuple[str, ...], answers: Iterator[Any]) -> Iterator[Any]:
        """Gmail's answer when one message cannot be read: the others, then
        ``NO Some messages could not be FETCHed (Failure)``."""
        if "BODY.PEEK[]" not in args[-1] or 3 not in parse_uid_set(args[0]):
            yield from answers
            return
        for response in answers:
            if not (isinstance(response, Fetch) and response.uid == 3):
                yield response
        raise refusal("Some messages could not be FETCHed (Failure)", "INBOX")

    commands = _commands(provider, gmail_like)
    scope = _inbox(provider)
    fetched = list(provider.fetch(scope, provider.list_page(scope, None).ids, Detail.FULL))
    errors = {f.provider_id.rpartition(":")[2]: f.error for f in fetched if f.error}
    assert errors == {
        "3": "the server refused to send it: IMAP command refused: "
        "Some messages could not be FETCHed (Failure)"
    }
    assert sorted(f.provider_id.rpartition(":")[2] for f in fetched if f.raw) == [
        "1",
        "2",
        "4",
        "5",
        "6",
    ]
    # the five arrived in the one answer; the one left is the one refused
    assert [c for c in commands if "BODY.PEEK[]" in c] == ["1:6 (BODY.PEEK[] INTERNALDATE)"]


def test_a_refused_fetch_is_asked_again_in_halves(imap: ImapAccount) -> None:
    _six_notes(imap)
    provider = imap.new_provider()

    def strict(args: tuple[str, ...], answers: Iterator[Any]) -> Iterator[Any]:
        """A server that refuses any FETCH of bodies that includes UID 5."""
        if "BODY.PEEK[]" in args[-1] and 5 in parse_uid_set(args[0]):
            raise refusal("NO [SERVERBUG] Internal error occurred", "INBOX")
        return answers

    commands = _commands(provider, strict)
    scope = _inbox(provider)
    fetched = list(provider.fetch(scope, provider.list_page(scope, None).ids, Detail.FULL))
    assert [f.provider_id.rpartition(":")[2] for f in fetched if f.error] == ["5"]
    assert len([f for f in fetched if f.raw]) == 5
    assert [c.partition(" ")[0] for c in commands if "BODY.PEEK[]" in c] == [
        "1:6",
        "1:3",
        "4:6",
        "4",
        "5:6",
        "5",
        "6",
    ]
