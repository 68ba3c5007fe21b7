"""The loopback listener of terminal sign-ins: only the awaited answer ends
the wait, whatever else reaches the port."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.auth import LoopbackReceiver
from commlink.errors import AuthError, InvalidInput


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post(url: str, form: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_it_listens_on_loopback_only_and_takes_the_awaited_answer() -> None:
    with LoopbackReceiver("/cb") as receiver:
        uri = receiver.redirect_uri
        assert uri.startswith("http://127.0.0.1:")
        assert uri.endswith("/cb")
        receiver.expect("the-state")
        assert _get(uri + "?code=x&state=other")[0] == 400
        assert _get(uri.replace("/cb", "/favicon.ico"))[0] == 404
        assert _get(uri + "?code=x&state=the-state&state=again")[0] == 400
        status, page = _get(uri + "?code=abc&state=the-state")
        assert status == 200
        assert "close this window" in page
        assert receiver.wait(1) == {"code": "abc", "state": "the-state"}
        # one answer per sign-in: a second one is not taken
        assert _get(uri + "?code=def&state=the-state")[0] == 400


def test_a_form_post_answer_and_an_error_are_taken() -> None:
    with LoopbackReceiver() as receiver:
        receiver.expect("s1")
        assert _post(receiver.redirect_uri, {"code": "c", "state": "s1"})[0] == 200
        assert receiver.wait(1)["code"] == "c"
        receiver.expect("s2")
        status, page = _get(receiver.redirect_uri + "?error=<script>&state=s2")
        assert status == 200
        assert "<script>" not in page
        assert receiver.wait(1)["error"] == "<script>"


def test_no_answer_in_time_is_an_auth_error() -> None:
    with LoopbackReceiver() as receiver:
        receiver.expect("s")
        with pytest.raises(AuthError, match=r"no answer from the browser within 0\.2 s"):
            receiver.wait(0.2)


def test_paths_with_queries_are_refused() -> None:
    with pytest.raises(InvalidInput):
        LoopbackReceiver("cb")
    with pytest.raises(InvalidInput):
        LoopbackReceiver("/cb?x=1")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=120))
def test_hostile_requests_never_end_the_wait(target: str) -> None:
    receiver = LoopbackReceiver()
    receiver.expect("awaited-state")
    status, page = receiver._receive("/?" + target)
    assert status in (200, 400)
    assert isinstance(page, str)
    if status == 200:
        assert receiver.wait(0)["state"] == "awaited-state"


def test_concurrent_answers_end_the_wait_once() -> None:
    with LoopbackReceiver() as receiver:
        receiver.expect("s")
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=lambda n=n: statuses.append(
                    _get(f"{receiver.redirect_uri}?code={n}&state=s")[0]
                )
            )
            for n in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 400, 400, 400, 400, 400]
        assert receiver.wait(1)["state"] == "s"
