"""The pipeline run page (its graph, live) and the step run page, as a user meets them: a run
drawn and recoloured while it goes on, a failed step's error and stderr, metrics charted,
cancelling (submitters only), reuse links, JSON twins, errors as pages, and query counts."""

from __future__ import annotations

import base64
import html
import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from tests import shapes
from tests.portal.conftest import counted_queries, screenshot, sign_in, wait_for_step
from tests.servers import LiveServer, bearer, make_token

# A 1x1 PNG, for log_image.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/eL9GtQAAAABJRU5ErkJggg=="
)

METRICS_SCRIPT = textwrap.dedent(
    """
    from headrace import Run
    run = Run.get_context()
    for i, loss in enumerate([0.9, 0.5, 0.3, 0.2]):
        run.log("loss", loss, step=i)
    run.log("accuracy", 0.93)
    run.log_table("confusion", {"label": ["cat", "dog"], "count": [3, 5]})
    run.log_image("sample", path="pixel.png")
    print("logged the metrics")
    """
)


def finished(ws: Workspace, pipeline: Pipeline, experiment: str = "pages") -> Any:
    run = Experiment(ws, experiment).submit(pipeline)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def slow_chain(root: Path, n: int, sleep: float) -> list[PythonScriptStep]:
    """s1 -> s2 -> ... sn, each sleeping `sleep` seconds."""
    data = [PipelineData(f"d{i}") for i in range(1, n + 1)]
    steps = [shapes.step(root, "s1", [], data[0], sleep=sleep)]
    for i in range(2, n + 1):
        steps.append(shapes.step(root, f"s{i}", [data[i - 2]], data[i - 1], sleep=sleep))
    return steps


def metrics_pipeline(ws: Workspace, root: Path) -> Pipeline:
    source = root / "metrics_src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(METRICS_SCRIPT)
    (source / "pixel.png").write_bytes(PIXEL)
    step = PythonScriptStep("train.py", name="train", source_directory=str(source))
    return Pipeline(ws, steps=[step])


def step_ids(portal: LiveServer, run_id: str) -> dict[str, str]:
    twin = httpx.get(f"{portal.url}/ui/runs/{run_id}.json").json()
    return {s["name"]: s["step_run_id"] for s in twin["steps"]}


# -- the run page ---------------------------------------------------------------------------
def test_the_run_page_and_its_twin_show_facts_graph_and_steps(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run = finished(ws, shapes.diamond(ws, root))
    run.tag("team", "vision")
    page = httpx.get(f"{portal.url}/ui/runs/{run.id}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert re.fullmatch(r"app;dur=\d+\.\d", page.headers["server-timing"])
    for text in (run.id, "Finished", "the Python SDK", "vision", "/ui/experiments/pages"):
        assert text in page.text
    assert len(re.findall(r'<tr data-node-id="[^"]+" data-status="Finished"', page.text)) == 4
    assert "Cancel run" not in page.text  # finished: nothing to cancel

    twin = httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()
    assert twin["run"]["status"] == "Finished" and twin["run"]["run_source"] == "SDK"
    assert twin["run"]["tags"] == {"team": "vision"} and twin["can_cancel"] is False
    assert [s["name"] for s in twin["steps"]] == ["a", "b", "c", "d"]
    assert {s["status"] for s in twin["steps"]} == {"Finished"}
    assert all(s["url"] == f"/ui/steps/{s['step_run_id']}" for s in twin["steps"])
    graph = twin["graph"]
    assert len(graph["steps"]) == 4 and {d["name"] for d in graph["data"]} == {
        "da",
        "db",
        "dc",
        "dd",
    }
    names = {s["id"]: s["name"] for s in graph["steps"]} | {
        d["id"]: d["name"] for d in graph["data"]
    }
    edges = {(names[a], names[b]) for a, b, _kind in graph["edges"]}
    assert {("a", "da"), ("da", "b"), ("da", "c"), ("db", "d"), ("dc", "d")} <= edges

    live = httpx.get(f"{portal.url}/ui/runs/{run.id}.json?live=1").json()
    assert "graph" not in live and live["steps"] == twin["steps"]
    assert httpx.get(f"{portal.url}/ui/runs/{run.id}?live=1").status_code == 200  # HTML: graph


def test_a_failed_run_shows_its_error_and_a_published_run_its_pipeline(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run = finished(ws, shapes.failing(ws, root, slow=0))
    page = httpx.get(f"{portal.url}/ui/runs/{run.id}")
    twin = httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()
    assert twin["run"]["status"] == "Failed" and twin["run"]["error"]
    assert "is failing on purpose" in page.text  # the stderr tail of step A
    failed_step = step_ids(portal, run.id)["A"]
    assert f'id="failed-step-link" href="/ui/steps/{failed_step}"' in page.text
    statuses = {s["name"]: s["status"] for s in twin["steps"]}
    assert statuses["A"] == "Failed" and statuses["C"] == "NotStarted"
    assert twin["counts"]["Failed"] == 1

    published = shapes.linear(ws, root, n=1).publish(name="pub", description="p")
    answer = httpx.post(portal.submit_url(published.id), json={"ExperimentName": "rest"})
    assert answer.status_code == 200, answer.text
    rest_run_id = answer.json()["Id"]
    facts = httpx.get(f"{portal.url}/ui/runs/{rest_run_id}.json").json()["run"]
    assert facts["run_source"] == "API" and facts["submitted_by"] == "the REST API"
    assert facts["published_pipeline"] == {
        "id": published.id,
        "url": f"/ui/pipelines/{published.id}",
    }
    page = httpx.get(f"{portal.url}/ui/runs/{rest_run_id}")
    assert f'href="/ui/pipelines/{published.id}"' in page.text and "the REST API" in page.text


def test_unknown_ids_and_bad_values_are_error_pages(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    for path in ("/ui/runs/no-such-run", "/ui/steps/no-such-step"):
        page = httpx.get(portal.url + path)
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]
        assert "in this workspace" in page.text and "/ui/runs" in page.text
        twin = httpx.get(portal.url + path + ".json")
        assert twin.status_code == 404 and twin.json()["Error"]["Code"] == "NotFound"
    assert httpx.get(f"{portal.url}/ui/steps/nope/log/stdout").status_code == 404
    assert httpx.get(f"{portal.url}/ui/steps/nope/files/x.txt").status_code == 404

    run = finished(ws, shapes.linear(ws, root, n=1))
    (step_id,) = step_ids(portal, run.id).values()
    bad_stream = httpx.get(f"{portal.url}/ui/steps/{step_id}/log/journal")
    assert bad_stream.status_code == 404 and "'stdout' and 'stderr'" in html.unescape(
        bad_stream.text
    )
    bad_offset = httpx.get(f"{portal.url}/ui/steps/{step_id}/log/stdout?offset=minus")
    assert bad_offset.status_code == 400 and "offset" in bad_offset.text
    negative = httpx.get(f"{portal.url}/ui/steps/{step_id}/log/stdout?offset=-4")
    assert negative.status_code == 400 and "0 or more" in negative.text
    missing = httpx.get(f"{portal.url}/ui/steps/{step_id}/files/no/such.txt")
    assert missing.status_code == 404 and "has no file" in missing.text
    for name in ("..%2F..%2Fportal.key", "%2Fetc%2Fpasswd", "user_logs%2F..%2F..%2F..%2Fx"):
        refused = httpx.get(f"{portal.url}/ui/steps/{step_id}/files/{name}")
        assert refused.status_code == 400, (name, refused.text)
        assert "text/html" in refused.headers["content-type"]
        assert "Traceback" not in refused.text


def test_the_run_page_costs_a_handful_of_queries_with_many_steps(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run = finished(ws, shapes.fan_out_fan_in(ws, root, width=24))
    for suffix in ("", "", ".json", ".json?live=1"):  # the first reads the graph, the rest
        # find it cached
        with counted_queries(portal) as statements:
            answer = httpx.get(f"{portal.url}/ui/runs/{run.id}{suffix}")
        assert answer.status_code == 200
        assert 1 <= len(statements) <= 5, [q.split("\n")[0][:70] for q in statements]
    assert len(httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()["steps"]) == 26
    step_id = step_ids(portal, run.id)["join"]
    # The first step page also looks up the output's datastore (kept by the store after):
    # BEGIN, step and run, step runs, metrics, and BEGIN, datastore.
    with counted_queries(portal) as statements:
        assert httpx.get(f"{portal.url}/ui/steps/{step_id}").status_code == 200
    assert 1 <= len(statements) <= 6, statements
    for suffix in ("", ".json"):
        with counted_queries(portal) as statements:
            assert httpx.get(f"{portal.url}/ui/steps/{step_id}{suffix}").status_code == 200
        assert 1 <= len(statements) <= 4, statements


# -- the step page --------------------------------------------------------------------------
def test_the_step_page_shows_command_reason_data_logs_and_files(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run = finished(ws, shapes.diamond(ws, root))
    ids = step_ids(portal, run.id)
    twin = httpx.get(f"{portal.url}/ui/steps/{ids['b']}.json").json()
    step = twin["step"]
    assert step["status"] == "Finished" and step["attempt"] == 0
    assert step["compute_target"] == "local" and step["exit_code"] == 0
    assert step["run_reason"]["summary"] == "first run of step 'b'"
    assert step["command_line"].startswith("python step.py --name b")
    assert "$AZUREML_DATAREFERENCE_" not in step["command_line"]  # after substitution
    assert twin["environment"]["script_name"] == "step.py"
    assert twin["run"] == {
        "id": run.id,
        "url": f"/ui/runs/{run.id}",
        "experiment": "pages",
        "experiment_url": "/ui/experiments/pages",
        "status": "Finished",
    }

    (inp,) = twin["inputs"]
    assert inp["name"] == "da" and inp["producer_url"] == f"/ui/steps/{ids['a']}"
    assert inp["path"] == f"azureml/{ids['a']}/da" and inp["datastore"] == "workspaceblobstore"
    (out,) = twin["outputs"]
    assert out["path"] == f"azureml/{ids['b']}/db"
    (data_file,) = out["files"]
    assert data_file["label"] == "data.txt"
    assert data_file["url"] == f"/ui/datastores/workspaceblobstore/download/{out['path']}/data.txt"
    assert httpx.get(portal.url + data_file["url"]).text == "a;b;"  # what step b wrote

    assert "step b start=" in twin["logs"]["stdout"]["text"]
    assert twin["logs"]["stdout"]["offset"] == len(twin["logs"]["stdout"]["text"].encode())
    files = {f["name"]: f["url"] for f in twin["files"]}
    stdout = httpx.get(portal.url + files["user_logs/stdout.txt"])
    assert stdout.status_code == 200 and stdout.text.startswith("step b start=")

    tail = httpx.get(f"{portal.url}/ui/steps/{ids['b']}/log/stdout?offset=5").json()
    assert tail["text"] == twin["logs"]["stdout"]["text"][5:] and tail["active"] is False
    # The combined log (stdout and stderr in order), each line with its time and stream.
    (line,) = twin["logs"]["log"]["lines"]
    assert line["stream"] == "stdout" and line["text"].startswith("step b start=")
    assert line["time"].endswith("Z") and twin["logs"]["log"]["title"].startswith("stdout and")
    combined = httpx.get(f"{portal.url}/ui/steps/{ids['b']}/log/log?offset=0").json()
    assert combined["why"] == "first run of step 'b'"
    assert combined["text"] == f"{line['time']} stdout {line['text']}\n"

    page = httpx.get(f"{portal.url}/ui/steps/{ids['b']}")
    assert page.status_code == 200
    for text in (
        "first run of step",
        "why it ran: first run of step 'b'",  # the combined pane's first line
        "python step.py --name b",
        "data.txt",
        "user_logs/stdout.txt",
    ):
        assert text in html.unescape(page.text)


def test_a_failed_step_shows_its_error_and_stderr(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    run = finished(ws, shapes.failing(ws, root, slow=0))
    step_id = step_ids(portal, run.id)["A"]
    twin = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()
    assert twin["step"]["status"] == "Failed" and twin["step"]["exit_code"] == 3
    assert "is failing on purpose" in twin["logs"]["stderr"]["text"]

    page.goto(f"{portal.url}/ui/runs/{run.id}")
    page.locator("#steps-table").get_by_role("link", name="A", exact=True).click()
    page.wait_for_url(f"{portal.url}/ui/steps/{step_id}")
    assert page.locator("#step-status").get_attribute("data-status") == "Failed"
    assert page.get_by_role("alert").first.is_visible()
    assert "is failing on purpose" in page.locator("#log-stderr").inner_text()
    assert "is failing on purpose" in page.locator("#error-stderr-tail").inner_text()
    assert "exited with code 3" in page.get_by_role("alert").first.inner_text()
    screenshot(page, "step-failed")


def test_metrics_show_as_a_chart_a_scalar_table_a_table_and_an_image(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    run = finished(ws, metrics_pipeline(ws, root))
    step_id = step_ids(portal, run.id)["train"]
    metrics = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()["metrics"]
    assert metrics["series"] == [{"name": "loss", "x": [0, 1, 2, 3], "y": [0.9, 0.5, 0.3, 0.2]}]
    assert {"name": "accuracy", "value": 0.93, "logged": 1} in metrics["scalars"]
    assert {"name": "loss", "value": 0.2, "logged": 4} in metrics["scalars"]
    assert metrics["tables"] == [
        {"name": "confusion", "columns": ["label", "count"], "rows": [["cat", 3], ["dog", 5]]}
    ]
    (image,) = metrics["images"]
    assert httpx.get(portal.url + image["url"]).content == PIXEL

    page.goto(f"{portal.url}/ui/steps/{step_id}")
    chart = page.locator("figure.metric-chart canvas")
    chart.first.wait_for()
    assert chart.count() >= 1 and "loss" in page.locator("figure.metric-chart").inner_text()
    assert page.locator("#scalar-metrics tr[data-metric='accuracy']").inner_text().count("0.93")
    assert page.locator("table.metric-table[data-metric='confusion']").inner_text().count("dog")
    assert page.evaluate("document.querySelector('.metric-image img').naturalWidth") == 1
    screenshot(page, "step-metrics")


def test_a_reused_step_links_to_the_run_it_reused(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    first = finished(ws, shapes.linear(ws, root, n=2))
    second = finished(ws, shapes.linear(ws, root, n=2))
    original = step_ids(portal, first.id)["s1"]
    reused = step_ids(portal, second.id)["s1"]
    twin = httpx.get(f"{portal.url}/ui/runs/{second.id}.json").json()
    assert all(s["reused"] for s in twin["steps"]) and twin["counts"] == {"Reused": 2}
    step = httpx.get(f"{portal.url}/ui/steps/{reused}.json").json()
    assert step["step"]["reused_url"] == f"/ui/steps/{original}"
    assert "step s1 start=" in step["logs"]["stdout"]["text"]  # what the reused run printed

    page.goto(f"{portal.url}/ui/runs/{second.id}")
    assert page.locator("g.step[data-reused='true']").count() == 2
    page.goto(f"{portal.url}/ui/steps/{reused}")
    page.locator("#reused-link").click()
    page.wait_for_url(f"{portal.url}/ui/steps/{original}")
    assert "first run of step" in page.locator("#run-reason").inner_text()


# -- live updates and cancelling, in a browser ----------------------------------------------
def test_the_run_page_recolours_its_graph_live_without_reloading(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    steps = slow_chain(root, 3, sleep=1.0)
    run = Experiment(ws, "live").submit(Pipeline(ws, steps=steps))
    page.goto(f"{portal.url}/ui/runs/{run.id}")
    loaded_at = page.evaluate("window.headraceRunPage.loadedAt")
    assert page.locator("g.step").count() == 3 and page.locator("g.data").count() == 3
    page.locator("g.step[data-status='Running']").first.wait_for(timeout=20_000)
    page.locator("#run-status[data-status='Finished']").wait_for(timeout=30_000)
    finished_nodes = page.locator("g.step[data-status='Finished']")
    assert finished_nodes.count() == 3
    assert page.locator("#steps-table tr[data-status='Finished']").count() == 3
    assert page.evaluate("window.headraceRunPage.loadedAt") == loaded_at  # no reload
    assert page.evaluate("window.headraceRunPage.polls") >= 2
    links = page.locator("#graph a[href^='/ui/steps/']")
    assert links.count() == 3
    screenshot(page, "run-finished")


def test_a_step_page_tails_its_stdout_while_it_runs(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    source = root / "chatty_src"
    source.mkdir(exist_ok=True)
    (source / "chatty.py").write_text(
        "import sys, time\nfor i in range(6):\n    print('tick', i, flush=True)\n"
        "    print('tock', i, file=sys.stderr)\n    time.sleep(0.5)\n"
    )
    step = PythonScriptStep("chatty.py", name="chatty", source_directory=str(source))
    run = Experiment(ws, "live").submit(Pipeline(ws, steps=[step]))
    step_id = wait_for_step(portal, run.id, "chatty")
    page.goto(f"{portal.url}/ui/steps/{step_id}")
    loaded_at = page.evaluate("window.headraceStepPage.loadedAt")
    page.locator("body[data-step-ended='true']").wait_for(timeout=30_000)
    assert "tick 5" in page.locator("#log-stdout").inner_text()
    # The combined pane: why it ran first, then both streams in order, stderr coloured.
    combined = page.locator("#log-log").inner_text().splitlines()
    assert combined[0] == "why it ran: first run of step 'chatty'", combined
    # Each line starts with its time in the browser's zone, to the millisecond.
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ ")
    assert all(stamp.match(line) for line in combined[1:]), combined
    assert [stamp.sub("", line) for line in combined[1:]] == [
        f"{stream} {word} {i}"
        for i in range(6)
        for stream, word in (("stdout", "tick"), ("stderr", "tock"))
    ]
    assert page.locator("#log-log .ln-stderr").count() == 6
    assert page.locator("#step-status").get_attribute("data-status") == "Finished"
    assert page.evaluate("window.headraceStepPage.loadedAt") == loaded_at


def test_readers_cannot_cancel_and_submitters_can(
    ws: Workspace, root: Path, secured: LiveServer, browser: Any
) -> None:
    run = Experiment(ws, "slow").submit(Pipeline(ws, steps=slow_chain(root, 2, sleep=30)))
    reader = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(reader, secured, root, "reader", "rita")
    reader.goto(f"{secured.url}/ui/runs/{run.id}")
    assert reader.get_by_role("button", name="Cancel run").count() == 0
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', reader.content())
    assert csrf is not None
    answer = reader.request.post(
        f"{secured.url}/ui/runs/{run.id}/cancel", form={"csrf": csrf.group(1)}
    )
    assert answer.status == 403 and "'submitter'" in html.unescape(answer.text())
    token = make_token(root, "reader", "bearer-reader")
    twin = httpx.get(f"{secured.url}/ui/runs/{run.id}.json", headers=bearer(token)).json()
    assert twin["can_cancel"] is False and twin["run"]["active"] is True

    submitter = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(submitter, secured, root, "submitter", "sam")
    submitter.goto(f"{secured.url}/ui/runs/{run.id}")
    submitter.locator("g.step[data-status='Running']").first.wait_for(timeout=20_000)
    submitter.get_by_role("button", name="Cancel run").click()
    submitter.wait_for_url(f"{secured.url}/ui/runs/{run.id}")
    submitter.locator("#run-status[data-status='Canceled']").wait_for(timeout=30_000)
    assert submitter.get_by_role("button", name="Cancel run").count() == 0
    reader.context.close()
    submitter.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_run_and_step_pages_fit_the_screen(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any, width: int
) -> None:
    run = finished(ws, shapes.fan_out_fan_in(ws, root, width=3))
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{portal.url}/ui/runs/{run.id}")
    tab.locator("#graph svg").wait_for()
    for where in ("run", "step"):
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the {where} page is {overflow} px wider than a {width} px screen"
        screenshot(tab, f"{where}-{width}px")
        if where == "run":
            tab.locator("#graph a[href^='/ui/steps/']").first.focus()
            tab.keyboard.press("Enter")
            tab.wait_for_url(re.compile(r".*/ui/steps/.*"))
    assert not errors, errors
    context.close()


def test_the_pages_answer_alike_on_sqlite_and_postgresql(any_ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    run = finished(any_ws, metrics_pipeline(any_ws, root))
    with LiveServer(root, auth=False) as live:
        for _cold in (True, False):  # BEGIN, the run (with its graph when cold), its steps,
            # its own metrics, what its ending set off
            with counted_queries(live) as statements:
                twin = httpx.get(f"{live.url}/ui/runs/{run.id}.json").json()
            assert 1 <= len(statements) <= 5, statements
        (step,) = twin["steps"]
        assert step["status"] == "Finished" and twin["graph"]["steps"][0]["name"] == "train"
        with counted_queries(live) as statements:
            page = httpx.get(f"{live.url}/ui/steps/{step['step_run_id']}.json").json()
        assert 1 <= len(statements) <= 5, statements
        assert page["metrics"]["series"][0]["y"] == [0.9, 0.5, 0.3, 0.2]
        assert page["step"]["run_reason"]["summary"] == "first run of step 'train'"
        # What the live metrics panes poll: the step's metrics from 0, nothing after its cursor.
        poll = f"{live.url}/ui/steps/{step['step_run_id']}/metrics"
        assert httpx.get(poll, params={"after": 0}).json()["metrics"] == page["metrics"]
        after = httpx.get(poll, params={"after": page["metrics_cursor"]}).json()
        assert after["metrics"] is None and after["cursor"] == page["metrics_cursor"] > 0
        own = httpx.get(f"{live.url}/ui/runs/{run.id}/metrics", params={"after": 0}).json()
        assert own["status"] == "Finished" and own["cursor"] == 0 and own["html"] is None


def test_the_run_page_reads_in_the_dark(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any
) -> None:
    run = finished(ws, shapes.failing(ws, root, slow=0))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    tab = context.new_page()
    tab.goto(f"{portal.url}/ui/runs/{run.id}")
    tab.locator("#graph svg").wait_for()
    background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 25)"  # the dark theme's --bg
    assert tab.locator("g.step[data-status='Failed']").count() == 1
    screenshot(tab, "run-dark")
    context.close()


def test_a_long_log_shows_its_last_64_kb_from_a_line_start(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    source = root / "loud_src"
    source.mkdir(exist_ok=True)
    (source / "loud.py").write_text(
        "for i in range(3000):\n    print(f'line {i:05d} ' + 'x' * 40)\n"
    )
    step = PythonScriptStep("loud.py", name="loud", source_directory=str(source))
    run = finished(ws, Pipeline(ws, steps=[step]))
    step_id = step_ids(portal, run.id)["loud"]
    stdout = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()["logs"]["stdout"]
    size = 3000 * len("line 00000 " + "x" * 40 + "\n")
    assert stdout["truncated"] is True and stdout["offset"] == size
    assert stdout["text"].startswith("line ") and stdout["text"].endswith(
        "line 02999 " + "x" * 40 + "\n"
    )
    assert 60_000 < len(stdout["text"]) <= 64 * 1024
    whole = httpx.get(portal.url + stdout["url"])
    assert len(whole.content) == size and whole.text.startswith("line 00000 ")
    page = httpx.get(f"{portal.url}/ui/steps/{step_id}")
    assert "last 64 KB shown" in page.text


def test_a_datapath_input_shows_the_datastore_path_it_was_given(
    ws: Workspace, root: Path, tmp_path: Path, portal: LiveServer
) -> None:
    from headrace import DataPath, DataPathComputeBinding, PipelineParameter

    for name in ("one", "two"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "data.txt").write_text(name.upper())
    store = ws.get_default_datastore()
    store.upload(tmp_path / "data", target_path="data", show_progress=False)
    data = PipelineParameter("data", default_value=DataPath(store, "data/one"))
    pair = (data, DataPathComputeBinding(mode="mount"))
    reader = PythonScriptStep(
        "step.py",
        name="reader",
        source_directory=str(shapes.source_dir(root)),
        inputs=[pair],
        arguments=["--name", "reader", "--inp", pair],
    )
    run = Experiment(ws, "pages").submit(
        Pipeline(ws, steps=[reader]), pipeline_parameters={"data": DataPath(store, "data/two")}
    )
    run.wait_for_completion(show_output=False)
    step_id = step_ids(portal, run.id)["reader"]
    (inp,) = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()["inputs"]
    assert (inp["kind"], inp["datastore"], inp["path"]) == (
        "datapath_parameter",
        "workspaceblobstore",
        "data/two",
    )
    assert inp["browse_url"] == "/ui/datastores/workspaceblobstore/browse/data/two"
    assert httpx.get(portal.url + inp["browse_url"]).status_code == 200
    twin = httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()
    assert {d["kind"] for d in twin["graph"]["data"]} == {"datapath_parameter"}
    assert [p["name"] for p in twin["graph_parameters"]] == ["data"]
    page = html.unescape(httpx.get(f"{portal.url}/ui/runs/{run.id}").text)
    assert '{"datastore": "workspaceblobstore", "path": "data/two"}' in page


def seed_big_run(ws: Workspace, steps: int, finished_steps: int) -> str:
    """A run of a `steps`-step chain whose first `finished_steps` steps are Finished and the
    next one Running, written straight to the store (running 500 real steps takes minutes)."""
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from headrace.graph.model import DataNode, Graph, InputBinding, OutputBinding, StepNode
    from headrace.store.orm import StepRunRow

    nodes, data = [], []
    for i in range(steps):
        data.append(
            DataNode(id=f"out-{i}", kind="pipeline_data", name=f"out_{i}", producer=f"n{i}")
        )
        inputs = (InputBinding(port="previous", data=f"out-{i - 1}"),) if i else ()
        nodes.append(
            StepNode(
                id=f"n{i}",
                name=f"step_{i}",
                kind="python_script",
                source_directory="src",
                script_name="step.py",
                inputs=inputs,
                outputs=(OutputBinding(port="output", data=f"out-{i}"),),
            )
        )
    meta = ws.backend.meta  # type: ignore[attr-defined]
    run = meta.create_pipeline_run(
        experiment_name="big",
        graph=Graph(nodes=tuple(nodes), data=tuple(data)).to_dict(),
        parameters={},
        tags={},
        description="a big chain",
        run_source="SDK",
        continue_on_step_failure=False,
        regenerate_outputs=False,
    )
    now = datetime.now(timezone.utc)
    rows = [
        {
            "id": f"{run.id[:8]}-step-{i}",
            "pipeline_run_id": run.id,
            "node_id": f"n{i}",
            "name": f"step_{i}",
            "status": "Finished" if i < finished_steps else "Running",
            "attempt": 0,
            "compute_target": "local",
            "fingerprint": None,
            "fingerprint_parts": {},
            "run_reason": {"decision": "run", "summary": f"first run of step 'step_{i}'"},
            "reused_run_id": None,
            "command": ["python", "step.py"],
            "outputs": {},
            "tags": {},
            "properties": {},
            "pid": None,
            "pid_started": None,
            "exit_code": 0 if i < finished_steps else None,
            "error": None,
            "created_at": now,
            "started_at": now,
            "ended_at": now if i < finished_steps else None,
        }
        for i in range(finished_steps + 1)
    ]
    with meta.db.write_conn() as conn:
        conn.execute(insert(StepRunRow), rows)
    return str(run.id)


def test_a_500_step_run_page_takes_few_queries_and_draws_every_step(
    ws: Workspace, portal: LiveServer, page: Any
) -> None:
    # How fast the page answers is measured in benchmarks, not here (the machine is shared).
    run_id = seed_big_run(ws, 500, finished_steps=300)
    for suffix in ("", ".json?live=1"):
        with counted_queries(portal) as statements:
            answer = httpx.get(f"{portal.url}/ui/runs/{run_id}{suffix}", timeout=120)
        assert answer.status_code == 200 and len(statements) <= 5, statements
        assert answer.headers["server-timing"].startswith("app;dur=")

    page.goto(f"{portal.url}/ui/runs/{run_id}")
    page.locator("#graph svg").wait_for(timeout=30_000)
    assert page.locator("g.step").count() == 500 and page.locator("g.data").count() == 500
    assert page.locator("g.step[data-status='Finished']").count() == 300
    assert page.locator("g.step[data-status='Running']").count() == 1
    assert page.locator("g.step[data-status='NotStarted']").count() == 199
    assert page.locator("#steps-table tbody tr").count() == 500
