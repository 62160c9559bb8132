"""What a step script pays to import headrace (`from headrace import Run`), and the compat tree.

Wall time of `python -c "<import>"` against `python -c pass` (interleaved), and
`python -X importtime` broken down by top-level package (self time summed over each
package's modules; median of 3 runs) to show where the time goes.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from collections import defaultdict

from benchmarks.common import PYTHON, Context, Outcome, Row, median, spread, time_command

IMPORTS = {
    "headrace": "from headrace import Run",
    "compat": "from headrace.compat.azureml.core import Run",
    "agent": "import headrace.engine.agent",
}

LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def importtime(statement: str) -> dict[str, float]:
    """Self time (ms) per top-level package for one `python -X importtime` run."""
    err = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", statement], check=True, capture_output=True, text=True
    ).stderr
    per_package: dict[str, float] = defaultdict(float)
    for match in LINE.finditer(err):
        per_package[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return per_package


def importable(statement: str) -> bool:
    return (
        subprocess.run(
            [PYTHON, "-c", statement],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def run(ctx: Context) -> Outcome:
    outcome = Outcome("imports", "Import time a step script pays")
    reps = ctx.reps(15, 5)
    names = [name for name, stmt in IMPORTS.items() if importable(stmt)]
    missing = [name for name in IMPORTS if name not in names]
    floors: list[float] = []
    walls: dict[str, list[float]] = {name: [] for name in names}
    time_command([PYTHON, "-c", IMPORTS["headrace"]])  # warm the page cache
    for _ in range(reps):
        floors.append(time_command([PYTHON, "-c", "pass"]))
        for name in names:
            walls[name].append(time_command([PYTHON, "-c", IMPORTS[name]]))
    floor = median(floors)
    for name in names:
        wall = median(walls[name])
        outcome.rows.append(
            Row(
                f'`python -c "{IMPORTS[name]}"`',
                wall * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                "report (scripts pay it)",
                None,
                wall / floor,
            )
        )
        outcome.details.append(
            f"`{IMPORTS[name]}`: {spread(walls[name], 1000, ' ms')}; above the floor "
            f"{(wall - floor) * 1000:.0f} ms"
        )
    outcome.details.append(f"floor `python -c pass`: {spread(floors, 1000, ' ms')}")
    for name in names:
        runs = [importtime(IMPORTS[name]) for _ in range(3)]
        packages = {p for r in runs for p in r}
        medians = {p: statistics.median([r.get(p, 0.0) for r in runs]) for p in packages}
        top = sorted(medians.items(), key=lambda kv: -kv[1])[:8]
        total = sum(medians.values())
        listing = ", ".join(f"{p} {ms:.1f}" for p, ms in top)
        outcome.details.append(
            f"`-X importtime` of `{IMPORTS[name]}`, self ms by top-level package "
            f"(total {total:.0f} ms, importtime inflates it): {listing}"
        )
    for name in missing:
        outcome.details.append(f"`{IMPORTS[name]}` is not importable in this tree (skipped)")
    return outcome
