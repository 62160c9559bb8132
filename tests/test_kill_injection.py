"""The kill-injection check of issue 13 item 3, short: benchmarks/bench_kill.py's trials (the
agent SIGKILLed at random moments and right after an output commit, then resumed), four of
them here, twenty in `make bench`. No step may run twice, no metric be recorded twice."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_step_runs_twice_when_the_agent_is_killed_at_random_moments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setenv("HEADRACE_BENCH_DIR", str(tmp_path / "bench"))
    sys.modules.pop("benchmarks.common", None)  # BENCH_ROOT is read on import
    from benchmarks import bench_kill
    from benchmarks.common import Context

    outcome = bench_kill.run(Context(quick=True))
    (row,) = outcome.rows
    assert row.result == 0, outcome.details
    assert row.passed, outcome.details
    # One trial kills right after a commit on purpose; a random kill may land there too.
    found = re.search(
        r"Kills between an output commit and its record: (\d+) of 4", outcome.details[2]
    )
    assert found is not None and int(found.group(1)) >= 1, outcome.details
