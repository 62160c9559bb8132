"""A step's combined log, `user_logs/std_log.txt` (SDK v1's name for it): one line per line
the step printed, in the order it happened, each with its time and stream:

    2026-12-08T00:11:30.123Z stdout loading 1,000 rows
    2026-12-08T00:11:30.125Z stderr UserWarning: ...
    2026-12-08T00:11:31.002Z headrace ===== attempt 2 of 3 (attempt 1 failed: exit code 1) =====

The step's logger writes it (engine/steplog.py); headrace's own lines (an attempt's heading)
have the stream `headrace`. This module reads and writes lines of it; the separate
`stdout.txt` and `stderr.txt` stay as the step wrote them.
"""

from __future__ import annotations

import time

__all__ = ["COMBINED_LOG", "STREAMS", "combined_lines", "split_line"]

COMBINED_LOG = "user_logs/std_log.txt"
STREAMS = ("stdout", "stderr", "headrace")


def combined_lines(stream: str, text: str, when: float | None = None) -> bytes:
    """`text` as lines of the combined log, stamped with `when` (now) and `stream`."""
    when = time.time() if when is None else when
    seconds = int(when)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    head = f"{stamp}.{int((when - seconds) * 1000):03d}Z {stream} "
    return "".join(head + line + "\n" for line in text.splitlines()).encode()


def split_line(line: str) -> tuple[str, str, str]:
    """(time, stream, text) of a line of the combined log; ("", "", line) for a line that
    is not one (a log cut short, or written by something else)."""
    stamp, _, rest = line.partition(" ")
    stream, _, text = rest.partition(" ")
    if len(stamp) != 24 or not stamp.endswith("Z") or stream not in STREAMS:
        return "", "", line
    return stamp, stream, text
