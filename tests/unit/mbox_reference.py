"""The obvious, slow way to find an mbox file's messages: the reference the
scanner is checked against (unit tests and tests/fuzz/fuzz_mbox.py)."""

from __future__ import annotations

from commlink.providers.files import mbox_format


def reference_offsets(data: bytes) -> list[int]:
    """Separator offsets found line by line; the file starts after a blank line."""
    offsets: list[int] = []
    position = 0
    prev_blank = True
    for line in data.split(b"\n"):
        content = line[:-1] if line.endswith(b"\r") else line
        if mbox_format._is_separator(content, prev_blank):
            offsets.append(position)
        prev_blank = content == b""
        position += len(line) + 1
    return offsets
