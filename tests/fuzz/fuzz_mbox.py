"""Fuzz target: finding the messages of an mbox file.

``iter_separators`` finds exactly the From lines a naive line-by-line scan
of the whole file finds (``tests/unit/mbox_reference.py``), whatever its
chunk size, and a scan resumed at any offset (as incremental passes resume
at the old end of the file) finds exactly those at or after it. Every message found reads back
(``read_message``) without raising.

    python tests/fuzz/fuzz_mbox.py CORPUS_DIR tests/data/takeout -max_len=4096
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from mbox_reference import reference_offsets

from commlink.providers.files import mbox_format


def check(data: bytes) -> None:
    if len(data) < 3:
        return
    chunk = data[0] % 64 + 1  # the first bytes choose the chunk size and the offset
    body = data[3:]
    resume = int.from_bytes(data[1:3], "little") % (len(body) + 1)
    expected = reference_offsets(body)
    found = list(mbox_format.iter_separators(io.BytesIO(body), first_chunk=chunk))
    assert found == expected, (chunk, found, expected)
    resumed = list(mbox_format.iter_separators(io.BytesIO(body), resume, len(body)))
    assert resumed == [o for o in expected if o >= resume], (resume, resumed, expected)
    for offset in found:
        assert mbox_format.read_message(io.BytesIO(body), offset, False) is not None


if __name__ == "__main__":
    from atheris_run import fuzz

    fuzz(check)
