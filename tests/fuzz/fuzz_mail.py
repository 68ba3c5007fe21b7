"""Fuzz target: RFC 5322 bytes to a message.

``parse_message`` never raises and never reports ``internal-error`` (a bug
caught by its last-resort handler), at either detail level, and answers
within ``SECONDS``. The native parser runs in this process: a crash there
stops the fuzzer with the input that caused it.

    python tests/fuzz/fuzz_mail.py CORPUS_DIR tests/data/mail -max_len=16384
"""

from __future__ import annotations

import sys
import time

from commlink.mime.parse import parse_message
from commlink.model import Detail

SECONDS = 1.0


def check(data: bytes) -> None:
    for detail in (Detail.FULL, Detail.METADATA):
        started = time.perf_counter()
        message = parse_message(data, provider_id="f", detail=detail)
        took = time.perf_counter() - started
        assert took < SECONDS, f"{took:.2f} s for {len(data)} bytes ({detail.name})"
        bugs = [w for w in message.warnings if w.startswith("internal-error")]
        assert not bugs, f"{bugs} ({detail.name})"


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
