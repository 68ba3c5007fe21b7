"""Fuzz target: HTML from mail, stored and shown.

Nothing ``sanitize_html``, ``safe_html`` or ``render_html`` returns can run
or load anything unasked (``tests/unit/html_checks.py``, read with an HTML5
parser); with remote images blocked, an image keeps only the host's own
URL; every call answers within ``SECONDS``; ``html_cost`` never counts the
tree builder's stack shallower than lexbor's tree is deep.

    python tests/fuzz/fuzz_html.py CORPUS_DIR tests/data/html -max_len=8192
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from html_checks import assert_inert, deepest_allowed, tree_depth
from selectolax.lexbor import LexborHTMLParser

from commlink.mime.html import capture_html, render_html, safe_html, sanitize_html
from commlink.mime.html_cost import cost_hazard
from commlink.mime.text import html_to_text

SECONDS = 2.0
_HOST_URL = "/att/1"


def check(data: bytes) -> None:
    html = data.decode("utf-8", "replace")
    started = time.perf_counter()
    clean = sanitize_html(html, 2**20, [])
    if clean:
        assert_inert(clean)
    stored = capture_html(html, 2**20, [])
    shown = safe_html(stored)
    if shown:
        assert_inert(shown)
    for source in (html, shown or ""):
        page = render_html(source, cid_url=lambda _cid: _HOST_URL)
        assert_inert(page, (_HOST_URL,))
        sources = {img.attributes.get("src") for img in LexborHTMLParser(page).css("img")}
        assert sources <= {None, _HOST_URL}, page
    html_to_text(html)
    took = time.perf_counter() - started
    assert took < SECONDS, f"{took:.2f} s for {len(data)} bytes"
    depth = tree_depth(html)
    if depth:
        with deepest_allowed(depth - 1):
            assert cost_hazard(html) is not None, f"the walk stayed under {depth}"


if __name__ == "__main__":
    from atheris_run import fuzz

    fuzz(check)
