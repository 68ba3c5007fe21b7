"""The headers a metadata-only fetch must carry, for every provider.

A METADATA channel never downloads bodies, so what the mail parser and the
import policy read has to come with the headers: the participants, the
threading ids, every header a group-mail rule looks at, and the receiving
server's Authentication-Results. A header left
out here would let such a channel import mail a FULL channel skips (a
newsletter without its ``List-Unsubscribe``). ``tests/unit/test_metadata_headers.py``
checks the list against what the parser reads.
"""

from __future__ import annotations

__all__ = ["AUTH_HEADERS", "GROUP_HEADERS", "METADATA_HEADERS", "THREAD_HEADERS"]

#: What the group-mail rules of ``commlink.policy.filters`` read.
GROUP_HEADERS = ("List-Id", "List-Unsubscribe", "Precedence", "Auto-Submitted")
#: What threading reads besides the Message-ID.
THREAD_HEADERS = ("In-Reply-To", "References")
#: The receiving server's checks of the sender (``commlink.mime.authres``).
AUTH_HEADERS = ("Authentication-Results",)
#: Every header the parser and the policy read from a header block.
METADATA_HEADERS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    *THREAD_HEADERS,
    *GROUP_HEADERS,
    *AUTH_HEADERS,
)
