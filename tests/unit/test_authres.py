"""The receiving server's Authentication-Results: read as RFC 8601 writes
them, only the topmost believed, only a failure acted on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from commlink.mime import authres
from commlink.mime.authres import MAX_RESULTS_CHARS, failed_sender_check, method_results
from commlink.mime.parse import parse_message
from commlink.model import Detail, Limits
from commlink.stores.common import stored_warnings

GMAIL = (
    "mx.google.com;\r\n       dkim=pass header.i=@globex.example header.s=s1 header.b=Zm9v;\r\n"
    "       spf=pass (google.com: domain of hank@globex.example designates 192.0.2.1 as"
    " permitted sender) smtp.mailfrom=hank@globex.example;\r\n"
    "       dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=globex.example"
)
EXCHANGE_ONLINE = (
    "spf=fail (sender IP is 192.0.2.9) smtp.mailfrom=evil.example; dkim=none (message not"
    " signed) header.d=none;dmarc=fail action=none header.from=globex.example;compauth=fail"
    " reason=001"
)


def test_gmail_and_exchange_online_verdicts() -> None:
    assert method_results(GMAIL) == {"dkim": ["pass"], "spf": ["pass"], "dmarc": ["fail"]}
    assert failed_sender_check([GMAIL]) == "dmarc"
    assert method_results(EXCHANGE_ONLINE) == {
        "spf": ["fail"],
        "dkim": ["none"],
        "dmarc": ["fail"],
        "compauth": ["fail"],
    }
    assert failed_sender_check([EXCHANGE_ONLINE]) == "dmarc"
    assert failed_sender_check(["spf=pass smtp.mailfrom=x; compauth=fail reason=601"]) == (
        "compauth"
    )


def test_comments_quotes_versions_and_case() -> None:
    value = (
        'example.org 1; dmarc=pass reason="a; dmarc=fail" header.from=x.example;'
        " (dmarc=fail; (nested) still a comment) spf = pass;"
        ' DKIM/1 = FAIL header.d="quoted \\" ;x"; auth=pass smtp.auth=user'
    )
    assert method_results(value) == {
        "dmarc": ["pass"],
        "spf": ["pass"],
        "dkim": ["fail"],
        "auth": ["pass"],
    }
    assert failed_sender_check([value]) is None


def test_no_result_and_nonsense_say_nothing() -> None:
    for value in ("", "mx.example.org; none", "garbage", ";;;", "((((", '"', "dmarc=", "=fail"):
        assert failed_sender_check([value]) is None


def test_only_the_topmost_header_is_believed() -> None:
    passed = "mx.home.example; dmarc=pass header.from=globex.example"
    failed = "mx.home.example; dmarc=fail header.from=globex.example"
    assert failed_sender_check([failed, passed]) == "dmarc"
    assert failed_sender_check([passed, failed]) is None
    assert failed_sender_check([]) is None


def test_softfail_and_other_failures_do_not_count() -> None:
    value = "mx.example; spf=softfail smtp.mailfrom=x.example; dkim=fail; dmarc=none"
    assert failed_sender_check([value]) is None


def test_a_long_value_is_read_only_so_far() -> None:
    late = "mx.example; " + "x=y; " * (MAX_RESULTS_CHARS // 5) + "dmarc=fail"
    assert failed_sender_check([late]) is None
    assert failed_sender_check(["mx.example; dmarc=fail; " + "x" * 10**6]) == "dmarc"


_METHODS = st.sampled_from(["dmarc", "spf", "dkim", "compauth", "arc", "auth", "iprev"])
_RESULTS = st.sampled_from(["pass", "fail", "none", "softfail", "neutral", "temperror"])
_COMMENT = st.text(st.characters(exclude_characters="()\\\r\n"), max_size=20).map(
    lambda t: f"({t})"
)
_QUOTED = st.text(st.characters(exclude_characters='"\\\r\n'), max_size=20).map(lambda t: f'"{t}"')
_SPACE = st.sampled_from(["", " ", "  ", "\r\n\t", " \r\n "])


@st.composite
def _header(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A well-formed value and the (method, result) pairs it states."""
    pairs = draw(st.lists(st.tuples(_METHODS, _RESULTS), max_size=6))
    parts = [draw(st.sampled_from(["mx.example.org", "mx.example.org 1", "a.b"]))]
    for method, result in pairs:
        text = method.upper() if draw(st.booleans()) else method
        text += (
            draw(_SPACE) + "=" + draw(_SPACE) + (result.upper() if draw(st.booleans()) else result)
        )
        if draw(st.booleans()):
            text += " " + draw(_COMMENT)
        if draw(st.booleans()):
            text += " reason=" + draw(_QUOTED)
        if draw(st.booleans()):
            text += " header.from=" + draw(st.sampled_from(["x.example", '"q;x=fail"']))
        parts.append(draw(_SPACE) + text)
    if not pairs and draw(st.booleans()):
        parts.append(" none")
    return ";".join(parts), pairs


@given(_header())
def test_the_stated_results_are_read_back_exactly(case: tuple[str, list[tuple[str, str]]]) -> None:
    value, pairs = case
    expected: dict[str, list[str]] = {}
    for method, result in pairs:
        expected.setdefault(method, []).append(result)
    assert method_results(value) == expected
    failed = [m for m in ("dmarc", "compauth") if "fail" in expected.get(m, ())]
    assert failed_sender_check([value]) == (failed[0] if failed else None)


@given(st.text(max_size=2000), st.lists(st.text(max_size=200), max_size=3))
def test_any_text_is_read_without_error(value: str, lower: list[str]) -> None:
    method_results(value)
    assert failed_sender_check([value, *lower]) in (None, "dmarc", "compauth")


def _message(*results: str, sender: str = "ceo@globex.example") -> bytes:
    head = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return (
        f"{head}From: {sender}\r\nTo: bob@northwind.example\r\nSubject: Wire the money\r\n"
        "Date: Mon, 05 Oct 2026 13:30:00 +0000\r\nMessage-ID: <spoof@x.example>\r\n\r\nNow.\r\n"
    ).encode()


def test_parse_message_reports_a_forged_sender_at_both_levels_and_in_every_reader() -> None:
    raw = _message(GMAIL, "mx.evil.example; dmarc=pass header.from=globex.example")
    for detail in (Detail.FULL, Detail.METADATA):
        assert (
            "sender-unverified:dmarc" in parse_message(raw, provider_id="1", detail=detail).warnings
        )
    # a header section over 64 KiB is read by commlink's own header reader
    padded = raw.replace(b"Subject:", b"X-Pad: " + b"y" * 70_000 + b"\r\nSubject:")
    found = parse_message(padded, provider_id="1")
    assert "fallback-parser:large-header" in found.warnings
    assert found.sender_unverified
    genuine = parse_message(_message("mx.google.com; dmarc=pass", GMAIL), provider_id="1")
    assert not genuine.sender_unverified
    assert not parse_message(_message(), provider_id="1", limits=Limits()).sender_unverified


def test_the_warning_comes_first_so_a_store_always_keeps_it() -> None:
    raw = _message(GMAIL).replace(b"\r\n", b"\r")  # CR-only line ends: one more warning
    raw = raw.replace(b"To: bob@northwind.example", b"To: <<<, bob@@x, \x00")
    raw = raw.replace(b"Message-ID: <spoof@x.example>\r", b"")
    found = parse_message(raw, provider_id="1")
    assert len(found.warnings) >= 3
    assert found.warnings[0] == "sender-unverified:dmarc"
    noisy = (*found.warnings[:1], *(f"other-{n}" for n in range(40)))
    assert stored_warnings(noisy)[0] == "sender-unverified:dmarc"


@given(st.text(st.sampled_from('()((;;= aAd"\\')) | st.text(max_size=300))
def test_the_quick_reading_agrees_with_the_character_scan(value: str) -> None:
    assert authres._statements(value) == authres._scanned(value)
