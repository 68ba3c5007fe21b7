"""Properties of parse_message: it never raises, and what goes in comes out."""

from __future__ import annotations

from datetime import timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.addresses import parse_address
from commlink.mime.headers import header_block, split_addresses
from commlink.mime.parse import parse_message
from commlink.mime.text import html_to_text
from commlink.model import Detail, Message, Role
from commlink.testing.mail_strategies import (
    FORWARDED_DOMAIN,
    MailSpec,
    mail_specs,
    mutated,
    raw_messages,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Generating realistic messages costs more than parsing them.
SPEC_SETTINGS = settings(SETTINGS, max_examples=100)


def assert_sound(m: Message, raw: bytes) -> None:
    """What every parse result must satisfy, whatever the input."""
    assert m.message_id
    assert m.message_id == m.message_id.strip()
    assert m.date.tzinfo is not None
    assert m.date.utcoffset() == timezone.utc.utcoffset(None)
    assert m.size == len(raw)
    assert m.subject == " ".join(m.subject.split())
    assert len(m.snippet) <= 200
    assert all(w and " " not in w for w in m.warnings)
    for p in m.participants:
        assert p.address.valid == bool(p.address.key)
    pairs = [(p.address.key or "!" + p.address.raw, p.role) for p in m.participants]
    assert len(pairs) == len(set(pairs))  # deduped per role
    for text in (m.subject, m.body or "", m.snippet, *(a.filename for a in m.attachments)):
        text.encode("utf-8")  # no lone surrogates


@SETTINGS
@given(st.binary(max_size=2000), st.sampled_from(Detail))
def test_arbitrary_bytes_never_raise(raw: bytes, detail: Detail) -> None:
    m = parse_message(raw, provider_id="p", detail=detail)
    assert_sound(m, raw)
    assert (m.body is None) == (detail is Detail.METADATA)


@SETTINGS
@given(st.lists(st.sampled_from([b"From: ", b"To: ", b"a@b.c", b"<", b">", b'"', b",", b";",
                                 b":", b"(", b")", b"=?utf-8?q?", b"?=", b"\r\n", b"\n", b" ",
                                 b"\xe9", b"\xc3", b"--b", b"Content-Type: multipart/mixed; "
                                 b'boundary="b"', b"base64", b"Content-Transfer-Encoding: "]),
                max_size=60).map(b"".join))  # fmt: skip
def test_header_shaped_noise_never_raises(raw: bytes) -> None:
    assert_sound(parse_message(raw, provider_id="p"), raw)


@SPEC_SETTINGS
@given(mail_specs())
def test_realistic_messages_round_trip(spec: MailSpec) -> None:
    m = parse_message(spec.raw, provider_id="p")
    assert_sound(m, spec.raw)
    for role, sent in ((Role.FROM, spec.from_), (Role.TO, spec.to), (Role.CC, spec.cc)):
        found = {a.key: a.name for a in m.addresses(role)}
        for _, text in sent:
            assert parse_address(text).key in found, (role, text, found)
        # Names of unique addresses come back decoded (duplicates keep the first name).
        keys = [parse_address(text).key for _, text in sent]
        for name, text in sent:
            if keys.count(parse_address(text).key) == 1:
                assert found[parse_address(text).key] == name
    assert m.subject == " ".join(spec.subject.split())
    if spec.message_id is None:
        assert m.synthetic_id
    else:
        assert (m.message_id, m.synthetic_id) == (spec.message_id, False)
    if spec.date is not None:
        assert m.date == spec.date
    assert m.body is not None
    expected = html_to_text(f"<p>{spec.body}</p>") if spec.html_only else spec.body
    assert " ".join(m.body.split()) == " ".join(expected.split())
    names = [a.filename for a in m.attachments if a.content_type != "message/rfc822"]
    assert names == list(spec.attachment_names)


@SPEC_SETTINGS
@given(mail_specs(forwarded=True, multipart=True))
def test_forwarded_participants_never_appear(spec: MailSpec) -> None:
    m = parse_message(spec.raw, provider_id="p")
    assert not any(a.domain == FORWARDED_DOMAIN for a in m.addresses())
    assert "inner@forwarded.invalid" not in (m.message_id, *m.references)
    assert [a.filename for a in m.attachments if a.content_type == "message/rfc822"] == [
        "inner.eml"
    ]


@SPEC_SETTINGS
@given(mail_specs(message_id=False))
def test_synthesised_ids_are_stable(spec: MailSpec) -> None:
    full = parse_message(spec.raw, provider_id="a")
    again = parse_message(spec.raw, provider_id="b", folders=("X",))
    head = header_block(spec.raw)
    meta = parse_message(head, provider_id="c", detail=Detail.METADATA)
    meta_full = parse_message(spec.raw, provider_id="d", detail=Detail.METADATA)
    assert full.synthetic_id
    assert full.message_id == again.message_id == meta.message_id == meta_full.message_id
    assert full.message_id.endswith("@synthetic.commlink.invalid")


@SPEC_SETTINGS
@given(mail_specs())
def test_metadata_agrees_with_full_on_headers(spec: MailSpec) -> None:
    full = parse_message(spec.raw, provider_id="a")
    meta = parse_message(header_block(spec.raw), provider_id="a", detail=Detail.METADATA)
    for field in ("message_id", "date", "subject", "participants", "references", "list_id"):
        assert getattr(meta, field) == getattr(full, field), field
    assert meta.body is None


@SPEC_SETTINGS
@given(mutated(raw_messages()), st.sampled_from(Detail))
def test_mutated_messages_never_raise(raw: bytes, detail: Detail) -> None:
    m = parse_message(raw, provider_id="p", detail=detail)
    assert_sound(m, raw)


@SETTINGS
@given(st.text(max_size=200))
def test_address_list_splitting_never_raises(value: str) -> None:
    entries = split_addresses(value)
    assert all(isinstance(a, str) and isinstance(n, str) for a, n in entries)
    if "@" not in value and "<" not in value:
        assert all("@" not in a for a, _ in entries)
    for address, name in entries:
        parse_address(address, name)  # every entry can be validated


_NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")))


@SETTINGS
@given(
    st.lists(st.tuples(_NAME.map(lambda s: " ".join(s.split())), st.integers(0, 999)), max_size=6)
)
def test_quoted_names_and_addresses_split_back(people: list[tuple[str, int]]) -> None:
    def mailbox(name: str, n: int) -> str:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <user{n}@example.com>' if name else f"user{n}@example.com"

    value = ", ".join(mailbox(name, n) for name, n in people)
    expected = tuple((f"user{n}@example.com", name) for name, n in people)
    if "=?" not in value:  # encoded words would be decoded
        assert split_addresses(value) == expected


@SETTINGS
@given(st.text(max_size=500))
def test_html_to_text_never_raises(html: str) -> None:
    text = html_to_text(html)
    assert "\x01" not in text
    assert "\x02" not in text
    assert "\n\n\n" not in text


_LIST_HEADERS = st.lists(
    st.sampled_from(
        [
            ("List-Id", "Team News <news.list.example>"),
            ("Precedence", "Bulk"),
            ("Auto-Submitted", "auto-replied"),
            ("List-Unsubscribe", "<mailto:leave@list.example>"),
        ]
    ),
    unique=True,
)


@SPEC_SETTINGS
@given(
    mail_specs(
        max_recipients=12,
        address=st.sampled_from(["Ann@Corp.example", "bob@corp.example", "x@bücher.de"]),
        extra_headers=_LIST_HEADERS,
    )
)
def test_configured_participants_and_headers(spec: MailSpec) -> None:
    m = parse_message(spec.raw, provider_id="p")
    expected = {parse_address(a).key for _, a in spec.to}
    assert {a.key for a in m.addresses(Role.TO)} == expected
    assert len(m.addresses(Role.TO)) == len(expected)  # repeated addresses collapse
    head = spec.raw.split(b"\r\n\r\n", 1)[0]
    assert (m.list_id == "news.list.example") == (b"List-Id:" in head)
    assert (m.precedence == "bulk") == (b"Precedence:" in head)
    assert (m.auto_submitted == "auto-replied") == (b"Auto-Submitted:" in head)
