"""Numbers, sizes, durations and times as the portal shows them: the server's filters and the
browser's helper (format.js) give the same text, the full value is on hover, and times say
their zone: UTC from the server, the browser's own zone once the page has loaded, and the
CLI prints the same instant with its zone's name."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from headrace import Experiment, Workspace
from headrace.server.portal.formatting import count_text, number_text, seconds_text, size_text
from tests import shapes
from tests.servers import LiveServer

NUMBERS = [
    (0.912345678, "0.9123"),
    (1234567, "1,234,567"),
    (1234567.0, "1,234,567"),
    (12.3456, "12.35"),
    (1234.5678, "1,235"),
    (-0.125, "-0.125"),
    (0.5, "0.5"),
    (0.0123456, "0.01235"),
    (0.00001234567, "1.235e-5"),
    (1.2345e15, "1.235e15"),
    (99999.99, "100,000"),
    (0, "0"),
    (0.1 + 0.2, "0.3"),
]
COUNTS = [(999, "999"), (123456, "123,456"), (1234567, "1.23M"), (12345678901, "12.3B")]
SIZES = [(0, "0 B"), (512, "512 B"), (12345, "12.3 kB"), (12345678, "12.3 MB"), (2.5e9, "2.5 GB")]
DURATIONS = [(0.4234, "0.42 s"), (12.34, "12.3 s"), (72.3, "1 min 12 s"), (7380, "2 h 3 min")]
RULES = {"number": NUMBERS, "count": COUNTS, "size": SIZES, "seconds": DURATIONS}
SERVER = {"number": number_text, "count": count_text, "size": size_text, "seconds": seconds_text}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_numbers_sizes_and_durations_read_for_people(rule: str) -> None:
    assert [SERVER[rule](value) for value, _ in RULES[rule]] == [text for _, text in RULES[rule]]


@pytest.fixture
def finished_run(ws: Workspace, root: Path) -> Any:
    run = Experiment(ws, "formatting").submit(shapes.linear(ws, root, n=1))
    run.wait_for_completion(show_output=False)
    return run


def test_the_browser_formats_like_the_server_and_shows_times_in_its_zone(
    browser: Any, portal: LiveServer, finished_run: Any, root: Path
) -> None:
    context = browser.new_context(timezone_id="America/New_York", locale="en-US")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda m: errors.append(m.text) if "Content Security" in m.text else None)
    try:
        tab.goto(f"{portal.url}/ui/runs/{finished_run.id}")
        # The same text from format.js as from the server's filters, for every rule.
        cases = [[rule, value] for rule, pairs in RULES.items() for value, _ in pairs]
        shown = tab.evaluate(
            "cases => cases.map(([rule, v]) => window.headraceFormat[rule](v))", cases
        )
        assert shown == [SERVER[rule](value) for rule, value in cases]

        # The server writes UTC, says so, and keeps the instant in `datetime`.
        twin = httpx.get(f"{portal.url}/ui/runs/{finished_run.id}.json").json()
        submitted = datetime.fromisoformat(twin["run"]["created_at"])
        utc = submitted.strftime("%Y-%m-%d %H:%M:%S UTC")
        served = html.unescape(httpx.get(f"{portal.url}/ui/runs/{finished_run.id}").text)
        assert f'datetime="{submitted.strftime("%Y-%m-%dT%H:%M:%SZ")}"' in served
        assert utc in served

        # The browser shows it in its own zone, named, with the UTC text on hover.
        when = tab.locator("dt:text-is('Submitted') + dd time")
        local = submitted.astimezone(ZoneInfo("America/New_York"))
        assert when.inner_text() == local.strftime("%Y-%m-%d %H:%M:%S %Z")
        assert local.strftime("%Z") in ("EST", "EDT")
        assert when.get_attribute("title") == utc
        # Durations carry their seconds on hover.
        duration = tab.locator("#steps-table td.duration")
        assert re.fullmatch(r"\d+(\.\d+)? s", duration.inner_text())
        hover = duration.locator("[title]").get_attribute("title")
        assert re.fullmatch(r"[\d,]+\.\d{3} s", hover or "")

        # A step's combined log: each line's time in the browser's zone, to the millisecond.
        (step,) = finished_run.get_steps()
        tab.goto(f"{portal.url}/ui/steps/{step.id}")
        line = tab.locator("#log-log .ln-stdout time").first
        stamp = line.get_attribute("datetime") or ""
        logged = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        local_line = logged.astimezone(ZoneInfo("America/New_York"))
        millis = f".{logged.microsecond // 1000:03d}"
        assert line.inner_text() == (
            local_line.strftime("%Y-%m-%d %H:%M:%S") + millis + local_line.strftime(" %Z")
        )
        assert line.get_attribute("title") == logged.strftime("%Y-%m-%d %H:%M:%S") + millis + " UTC"
    finally:
        context.close()
    assert not errors, errors

    # The CLI prints the same instant in its machine's zone, with the zone's name.
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run(
        [
            Path(sys.executable).parent / "headrace",
            "run",
            "show",
            finished_run.id,
            "--workspace",
            root,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert local.strftime("%Y-%m-%d %H:%M:%S %Z") in out
