"""The process plumbing the local test servers share."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from commlink.testing.server_process import (
    Startup,
    accepts,
    free_port,
    launch,
    stop_process,
    wait_ready,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_free_port_accepts_nothing_until_something_listens() -> None:
    port = free_port()
    assert not accepts("127.0.0.1", port, timeout=0.2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert accepts("127.0.0.1", port, timeout=0.2)


def test_a_process_that_exits_is_reported_and_its_output_logged(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    process = launch(command, log)
    assert wait_ready(process, lambda: False, timeout=30) is Startup.EXITED
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_readiness_and_time_running_out(tmp_path: Path) -> None:
    process = launch(SLEEPER, tmp_path / "server.log", own_session=True)
    try:
        assert wait_ready(process, lambda: True, timeout=5) is Startup.READY
        assert wait_ready(process, lambda: False, timeout=0.2) is Startup.TIMED_OUT
    finally:
        stop_process(process, group=True)
    assert process.returncode is not None
    stop_process(process)  # stopping again is harmless
    stop_process(None)
