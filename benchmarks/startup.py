"""Start-up cost of the ``commlink`` command and of ``import commlink``.

Runs each in fresh processes (default 15) and prints the median and best
wall time and the peak RSS, against the target for ``commlink --help``
(<= 0.15 s). For comparison it also times a bare interpreter start, the
floor no command can go below.

    python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time

TARGET_HELP = 0.15


def _measure(command: list[str], runs: int) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return statistics.median(times), min(times), rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    command = shutil.which("commlink") or ""
    cases = [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"], None),
        ("python -c 'import commlink'", [sys.executable, "-c", "import commlink"], None),
        ("commlink --help", [command, "--help"] if command else [], TARGET_HELP),
        ("python -m commlink --version", [sys.executable, "-m", "commlink", "--version"], None),
    ]
    for name, cmd, target in cases:
        if not cmd:
            print(f"{name:<32} skipped: the commlink script is not on PATH")
            continue
        median, best, rss = _measure(cmd, args.runs)
        verdict = ""
        if target is not None:
            verdict = f"  (target <= {target:.2f} s: {'ok' if median <= target else 'MISSED'})"
        print(
            f"{name:<32} median {median * 1000:6.1f} ms, best {best * 1000:6.1f} ms, "
            f"peak RSS so far {rss:5.1f} MB{verdict}"
        )


if __name__ == "__main__":
    main()
