"""What the unmodified-import launcher (`python -m headrace.v1 script.py`) adds to start-up.

Four commands, interleaved, each repeated: `python empty.py` (starting Python itself, the
floor), `python -m headrace.v1 empty.py` (the launcher: it loads only the alias until the
script imports azureml, so this is what it adds), an SDK v1 script ported by the sed
one-liner (`from headrace.compat.azureml.core import Run, Workspace`) under plain `python`,
and the same script unmodified (`from azureml.core import Run, Workspace`) under the
launcher: both import the same headrace modules, one through the alias. What is added is
the median of the differences within each repetition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import PYTHON, Context, Outcome, Row, median, spread, time_command

TARGET_MS = 50.0


def run(ctx: Context) -> Outcome:
    outcome = Outcome("v1launcher", "Unmodified-import launcher start-up (headrace.v1)")
    reps = ctx.reps(21, 5)
    folder = Path(tempfile.mkdtemp(prefix="headrace-bench-v1-"))
    (folder / "empty.py").write_text("")
    (folder / "ported.py").write_text("from headrace.compat.azureml.core import Run, Workspace\n")
    (folder / "unmodified.py").write_text("from azureml.core import Run, Workspace\n")
    commands = {
        "python": [PYTHON, "empty.py"],
        "launcher_empty": [PYTHON, "-m", "headrace.v1", "empty.py"],
        "ported": [PYTHON, "ported.py"],
        "launcher_sdk": [PYTHON, "-m", "headrace.v1", "unmodified.py"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():
        time_command(argv, cwd=folder)  # warm the page cache and the bytecode
    for _ in range(reps):
        for name, argv in commands.items():
            times[name].append(time_command(argv, cwd=folder))
    ms = {name: median(values) * 1000 for name, values in times.items()}

    def added(run: str, base: str) -> float:
        # Each repetition runs the four back to back, so the median of the paired
        # differences is steadier on a shared machine than the difference of the medians.
        pairs = zip(times[run], times[base], strict=True)
        return median([(a - b) * 1000 for a, b in pairs])

    alone = added("launcher_empty", "python")
    to_script = added("launcher_sdk", "ported")
    outcome.rows.append(
        Row(
            "`python -m headrace.v1 empty.py` (the launcher, what it adds to start-up)",
            ms["launcher_empty"],
            "ms",
            ms["python"],
            "python empty.py",
            f"adds < {TARGET_MS:.0f} ms",
            alone < TARGET_MS,
            ms["launcher_empty"] / ms["python"],
        )
    )
    outcome.rows.append(
        Row(
            "SDK v1 script `from azureml.core import Run, Workspace` under the launcher",
            ms["launcher_sdk"],
            "ms",
            ms["ported"],
            "the sed-ported script under python",
            "report",
            None,
            ms["launcher_sdk"] / ms["ported"],
        )
    )
    labels = {
        "python": "`python empty.py` (floor)",
        "launcher_empty": "`python -m headrace.v1 empty.py`",
        "ported": "`python ported.py` (`from headrace.compat.azureml.core import ...`)",
        "launcher_sdk": "`python -m headrace.v1 unmodified.py` (`from azureml.core import ...`)",
    }
    for name, label in labels.items():
        outcome.details.append(f"{label}: {spread(times[name], 1000, ' ms')}")
    outcome.details.append(
        f"the launcher adds {alone:.1f} ms to starting Python, and {to_script:.1f} ms to the "
        "SDK v1 script against the same script ported by sed (medians of the differences "
        "within each repetition)"
    )
    return outcome
