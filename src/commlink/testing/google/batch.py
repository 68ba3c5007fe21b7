"""The batch endpoint's multipart/mixed wire format, as googleapiclient
sends and parses it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from http.client import responses

__all__ = ["Reply", "answer_batch"]

#: One answered call: status, extra headers, body.
Reply = tuple[int, dict[str, str], bytes]
Call = Callable[[str, str, dict[str, str], bytes], Reply]


def answer_batch(content_type: str, body: bytes, call: Call) -> tuple[str, bytes]:
    """Run each part of a batch request through ``call``; returns the
    response's content type and body."""
    envelope = BytesParser(policy=compat32).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not envelope.is_multipart():
        raise ValueError("a batch request must be multipart/mixed")
    boundary = f"batch_{uuid.uuid4().hex}"
    out: list[bytes] = []
    for part in envelope.get_payload():
        assert isinstance(part, Message)
        content_id = str(part.get("Content-ID", "<+0>")).strip()
        inner = part.get_payload(decode=False)
        text = inner if isinstance(inner, str) else str(inner)
        request_line, _, rest = text.replace("\r\n", "\n").partition("\n")
        method, target, _ = [*request_line.split(" "), "", ""][:3]
        head, _, inner_body = rest.partition("\n\n")
        headers = {}
        for line in head.split("\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status, extra, payload = call(method, target, headers, inner_body.encode("utf-8"))
        reply_id = "<response-" + content_id.strip("<>") + ">"
        lines = [f"HTTP/1.1 {status} {responses.get(status, 'Unknown')}"]
        lines += ["Content-Type: application/json; charset=UTF-8"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        lines += [f"Content-Length: {len(payload)}", ""]
        head_part = f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {reply_id}"
        out.append(
            (head_part + "\r\n\r\n").encode()
            + "\r\n".join(lines).encode()
            + b"\r\n"
            + payload
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(out)
