"""Microsoft 365 (Graph) and Exchange Server (EWS) side by side: an initial
sync of the same number of messages through each local server into SQLite,
then a no-change pass.

    .venv/bin/python benchmarks/microsoft_sync.py [--messages 5000]

Targets: Graph at most 60 HTTP requests per 1,000 messages, EWS at most 30,
and one request per folder for a no-change pass. ``graph_sync.py`` and
``ews_sync.py`` run one side alone with more detail.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ews_sync
import graph_sync

TARGETS = {"Graph": 60.0, "EWS": 30.0}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args(argv)
    graph = graph_sync.run(args.messages)
    ews = ews_sync.run(args.messages)
    rows = [
        (
            "Graph",
            float(graph["requests"]),
            float(graph["requests_per_1000"]),
            float(graph["seconds"]),
            float(graph["quiet_requests"]),
            float(graph["folders"]),
        ),
        (
            "EWS",
            float(ews["requests"]),
            float(ews["requests_per_1000"]),
            float(ews["seconds"]),
            float(ews["quiet_pass_requests"]),
            float(ews["folders"]),
        ),
    ]
    print(f"initial sync of {args.messages} messages (full content) into SQLite, then a quiet pass")
    print(
        f"{'':6} {'requests':>9} {'per 1,000':>10} {'target':>7} {'seconds':>8} "
        f"{'msg/s':>7} {'quiet':>6} {'folders':>8}"
    )
    for name, requests, per_1000, seconds, quiet, folders in rows:
        print(
            f"{name:6} {requests:9.0f} {per_1000:10.1f} {TARGETS[name]:7.0f} {seconds:8.2f} "
            f"{args.messages / seconds:7.0f} {quiet:6.0f} {folders:8.0f}"
        )


if __name__ == "__main__":
    main()
