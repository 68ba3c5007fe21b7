"""The parser never takes the process down: fuzzing in a child process.

fast-mail-parser is native code: a stack overflow there is a SIGSEGV, not an
exception, and would kill pytest itself. So hostile messages are written to
a file and parsed by a child Python process, in a worker thread with a
512 KiB stack (smaller than a default thread's, as some hosts give). Any
signal (a negative return code) or exception fails the test.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from commlink.testing.mail_strategies import mutated, raw_messages

_CHILD = r"""
import os, struct, sys, threading, traceback

from commlink.mime.parse import parse_message
from commlink.model import Detail

failed = []

def main(path):
    try:
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (size,) = struct.unpack_from("<I", data, pos)
            raw = data[pos + 4 : pos + 4 + size]
            pos += 4 + size
            print(pos, flush=True)  # where a crash happened
            for detail in Detail:
                parse_message(raw, provider_id="fuzz", detail=detail)
    except BaseException:
        traceback.print_exc()
        failed.append(True)

threading.stack_size(512 * 1024)
worker = threading.Thread(target=main, args=(sys.argv[1],))
worker.start()
worker.join()
sys.stdout.flush()
os._exit(3 if failed else 0)
"""


def _parse_in_child(messages: Sequence[bytes], tmp: Path) -> None:
    path = tmp / "messages.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(m)) + m for m in messages))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, timeout=300, check=False
    )
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        done = proc.stdout.split()
        end = int(done[-1]) if done else 0
        crashed = path.read_bytes()[end - _size_before(path, end) : end] if end else b""
        raise AssertionError(
            f"the parser killed its process with {name} on a message of {len(crashed)} "
            f"bytes starting {crashed[:200]!r}"
        )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]


def _size_before(path: Path, end: int) -> int:
    """The size of the message that ends at ``end`` in the file."""
    data = path.read_bytes()
    pos = 0
    while pos < end:
        size = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4 + size
        if pos == end:
            return size
    return 0


def _nest(depth: int, style: int, eol: bytes, close: bool, inner: bytes) -> bytes:
    """``depth`` nested multiparts, declared in one of several spellings."""
    spellings = (
        'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n',
        "content-type:MULTIPART/alternative;boundary=b{i}\r\n\r\n--b{i}\r\n",
        "Content-Type:\r\n multipart/related;\r\n boundary=b{i}\r\n\r\n--b{i}\r\n",
        "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        "Content-Type: message/rfc822\r\n\r\nFrom: x{i}@y.example\r\n",
    )
    head = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: deep\r\nMessage-ID: <d@x>\r\n"
    body = "".join(spellings[style].format(i=i) for i in range(depth)).encode() + inner
    if close:
        body += "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth))).encode()
    return (head + body).replace(b"\r\n", eol)


_NESTS = st.builds(
    _nest,
    depth=st.one_of(st.integers(1, 400), st.sampled_from([255, 256, 257, 1000, 3000])),
    style=st.integers(0, 3),
    eol=st.sampled_from([b"\r\n", b"\n", b"\r"]),
    close=st.booleans(),
    inner=st.sampled_from([b"text", b"Content-Type: text/html\r\n\r\n<div>" * 50, b""]),
)
_HOSTILE = st.one_of(
    mutated(raw_messages(multipart=True, forwarded=True)),
    mutated(_NESTS),
    _NESTS,
    st.binary(max_size=500),
)


# No shrinking: each try costs a child process, and the report names the message.
@settings(
    max_examples=4,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_HOSTILE, min_size=15, max_size=25))
def test_hostile_messages_never_kill_the_process(messages: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _parse_in_child(messages, Path(tmp))


def test_forty_thousand_nested_multiparts_never_kill_the_process(tmp_path: Path) -> None:
    """About 2 MB each: the native parser overflows its stack at ~30,000 levels."""
    messages = [
        _nest(40_000, 0, b"\r\n", True, b"text"),
        _nest(40_000, 1, b"\n", False, b"text"),
        _nest(40_000, 2, b"\r\n", True, b""),
        _nest(40_000, 0, b"\r", True, b"text"),
        _nest(12_000, 3, b"\r\n", True, b"text"),
    ]
    _parse_in_child(messages, tmp_path)
