"""commlink's loggers scrub credentials from messages and tracebacks by themselves."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import commlink  # noqa: F401  (installs the guards)
from commlink.credentials import COMMLINK_LOGGERS, MASK, Secret

SRC = Path(__file__).resolve().parents[2] / "src" / "commlink"
_LOGGER_NAME = re.compile(r"""getLogger\(\s*["'](commlink[^"']*)["']""")


def test_every_commlink_logger_is_guarded() -> None:
    used = {
        name
        for path in SRC.rglob("*.py")
        for name in _LOGGER_NAME.findall(path.read_text(encoding="utf-8"))
    }
    assert used, "no commlink loggers found: the pattern is stale"
    # a guard filters only its own logger's records: every name must be literal and listed
    unnamed = [p.name for p in SRC.rglob("*.py") if "getLogger(__name__)" in p.read_text("utf-8")]
    assert not unnamed, unnamed
    assert used <= set(COMMLINK_LOGGERS), sorted(used - set(COMMLINK_LOGGERS))


def test_traceback_is_scrubbed_without_a_host_filter() -> None:
    secret = Secret("hunter2-password-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a host's plain handler: no RedactingFilter
    logger = logging.getLogger("commlink.sync")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        try:
            raise OSError(f"connect to https://ana:{secret.reveal()}@dav.example.com failed")
        except OSError:
            logger.warning("sync of %s failed", "ch1", exc_info=True)
        logger.debug("sent Authorization: Bearer abc.def.ghi to the server")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text = stream.getvalue()
    assert "sync of ch1 failed" in text
    assert "Traceback" in text
    assert "OSError" in text
    assert "hunter2-password-value" not in text
    assert "abc.def.ghi" not in text
    assert MASK in text
