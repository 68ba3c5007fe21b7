"""Fuzz target: RFC 5322 bytes to a message.

``parse_message`` never raises and never reports ``internal-error`` (a bug
caught by its last-resort handler), at either detail level, and answers
within ``SECONDS``; given an arrival date, the message is never dated more
than ``MAX_DATE_AHEAD`` after it. The native parser runs in this process: a crash there
stops the fuzzer with the input that caused it.

    python tests/fuzz/fuzz_mail.py CORPUS_DIR tests/data/mail -max_len=16384
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from commlink.mime.parse import MAX_DATE_AHEAD, parse_message
from commlink.model import Detail

SECONDS = 1.0
ARRIVED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def check(data: bytes) -> None:
    # with the provider's arrival date, as providers call it; without, as a host may
    for detail, arrived in ((Detail.FULL, ARRIVED), (Detail.METADATA, None)):
        started = time.perf_counter()
        message = parse_message(data, provider_id="f", detail=detail, fallback_date=arrived)
        took = time.perf_counter() - started
        assert took < SECONDS, f"{took:.2f} s for {len(data)} bytes ({detail.name})"
        bugs = [w for w in message.warnings if w.startswith("internal-error")]
        assert not bugs, f"{bugs} ({detail.name})"
        if arrived is not None:
            assert message.date - arrived <= MAX_DATE_AHEAD, message.date


if __name__ == "__main__":
    from atheris_run import fuzz

    fuzz(check)
