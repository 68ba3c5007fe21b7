"""Fuzz target: a server's answer to a FETCH, read as a sync reads it.

Every ``FETCH`` response is read within its bounds (a ``ProviderError`` is
the only way out); a ``BODYSTRUCTURE`` is read or refused, never raising; a
message planned from it, assembled from the sections the answer holds (or
from stand-ins), is read by ``parse_message`` without an internal error.
All within ``SECONDS``.

    python tests/fuzz/fuzz_imap_fetch.py CORPUS_DIR tests/data/imap -max_len=8192
"""

from __future__ import annotations

import io
import time

from commlink.errors import ProviderError
from commlink.mime.parse import parse_message
from commlink.providers.imap.bodystructure import assemble, plan, read_structure
from commlink.providers.imap.fetch_stream import Fetch, ResponseReader, command_responses
from commlink.providers.imap.responses import from_sections

SECONDS = 1.0
_STANDIN = b"Content-Type: text/plain\r\n\r\nstand-in\r\n"


def check(data: bytes) -> None:
    started = time.perf_counter()
    stream = io.BufferedReader(io.BytesIO(data + b"\r\nt1 OK done\r\n"))
    reader = ResponseReader(stream, max_literal=64 * 1024, max_line=16 * 1024)
    try:
        responses = list(command_responses(reader, b"t1"))
    except ProviderError:
        return
    for response in responses:
        if not isinstance(response, Fetch):
            continue
        root = read_structure(response.items.get("BODYSTRUCTURE"))
        if root is None:
            continue
        for size in (0, 10**7):
            lean = plan(root, size)
            if lean is None:
                continue
            assemble(lean, dict.fromkeys(lean.sections, _STANDIN))
            fetched = from_sections(1, response.uid or 1, response.items, lean)
            if fetched is not None and fetched.raw is not None:
                message = parse_message(fetched.raw, provider_id="f")
                bugs = [w for w in message.warnings if w.startswith("internal-error")]
                assert not bugs, bugs
    took = time.perf_counter() - started
    assert took < SECONDS, f"{took:.2f} s for {len(data)} bytes"


if __name__ == "__main__":
    from atheris_run import fuzz

    fuzz(check)
