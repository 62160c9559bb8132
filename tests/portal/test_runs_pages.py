"""The experiments pages and the runs list, as a user meets them: filters in the address,
sorting, pages, bad values as 400 pages, the JSON twins, a handful of queries per page, on
SQLite and PostgreSQL; and in a browser: filter, page on, pick two runs and compare them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import insert

from headrace import Experiment, Workspace
from headrace.store.orm import GraphRow, PipelineRunRow
from headrace.store.records import MetricRecord
from tests import shapes
from tests.portal.conftest import counted_queries, screenshot
from tests.servers import LiveServer

START = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
STATUSES = ["Finished", "Failed", "Running", "Canceled", "NotStarted", "Finished"]


def seed(ws: Workspace, n: int, experiment: str = "train", **overrides: Any) -> list[str]:
    """`n` runs of `experiment` inserted straight into the store (submitting real runs is
    slow): run i is submitted START + i hours, started a minute later and ran i seconds; its
    status cycles through STATUSES; even runs carry the tag team=vision, every third
    team=nlp; runs 0-4 came from the published pipeline "pub-1". Returns their ids, oldest
    first."""
    meta = ws.backend.meta  # type: ignore[attr-defined]
    exp = meta.get_or_create_experiment(experiment)
    graph = {"schema": 1, "nodes": [], "n": experiment}
    graph_id = meta.graph_id(graph)
    rows = []
    for i in range(n):
        status = STATUSES[i % len(STATUSES)]
        created = START + timedelta(hours=i)
        started = None if status == "NotStarted" else created + timedelta(minutes=1)
        ended = started + timedelta(seconds=i) if started and status != "Running" else None
        tags: dict[str, Any] = {"team": "vision"} if i % 2 == 0 else {}
        if i % 3 == 0:
            tags = {"team": "nlp", "nightly": ""}
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "experiment_id": exp.id,
                "graph_id": graph_id,
                "status": status,
                "parameters": {"lr": i / 100},
                "tags": tags,
                "properties": {"azureml.pipelineid": "pub-1"} if i < 5 else {},
                "description": None,
                "run_source": "REST" if i < 5 else "SDK",
                "continue_on_step_failure": False,
                "regenerate_outputs": False,
                "cancel_requested": False,
                "created_at": created,
                "started_at": started,
                "ended_at": ended,
                **overrides,
            }
        )
    with meta.db.write_conn() as conn:
        conn.execute(
            meta._insert(GraphRow)
            .values(id=graph_id, graph=graph, created_at=START)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        conn.execute(insert(PipelineRunRow), rows)
    return [row["id"] for row in rows]


@pytest.fixture
def any_portal(any_ws: Workspace) -> Iterator[LiveServer]:
    """The portal (auth off) of a fresh workspace on SQLite, then on PostgreSQL."""
    assert any_ws.path is not None
    with LiveServer(Path(any_ws.path), auth=False) as live:
        yield live


def twin(server: LiveServer, path: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}{path}", params=params or None)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def ids(data: dict[str, Any]) -> list[str]:
    return [run["id"] for run in data["runs"]]


# -- the runs list -------------------------------------------------------------------------
def test_the_runs_list_filters_by_status_tag_pipeline_experiment_and_date(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    train = seed(any_ws, 30)
    other = seed(any_ws, 4, experiment="eval")
    newest_first = list(reversed(train))

    every = twin(any_portal, "/ui/runs.json", size=200)
    assert every["total"] == 34 and not every["total_capped"] and every["total_text"] == "34"
    assert set(ids(every)) == set(train + other)
    assert every["experiments"] == ["eval", "train"]

    failed = twin(any_portal, "/ui/runs.json", status="Failed", experiment="train")
    assert ids(failed) == [r for i, r in enumerate(train) if i % 6 == 1][::-1]
    assert {run["status"] for run in failed["runs"]} == {"Failed"}

    two = httpx.get(
        f"{any_portal.url}/ui/runs.json?experiment=train&status=Failed&status=canceled"
    ).json()
    assert {run["status"] for run in two["runs"]} == {"Failed", "Canceled"}
    assert two["total"] == 10 and two["filters"]["status"] == ["Failed", "Canceled"]
    assert (
        twin(any_portal, "/ui/runs.json", status="Failed,Canceled", experiment="train")["total"]
        == 10
    )

    nlp = twin(any_portal, "/ui/runs.json", tag="team=nlp", experiment="train")
    assert ids(nlp) == [r for i, r in enumerate(newest_first[::-1]) if i % 3 == 0][::-1]
    nightly = twin(any_portal, "/ui/runs.json", tag="nightly", experiment="train")
    assert nightly["total"] == 10
    assert twin(any_portal, "/ui/runs.json", tag="team=nobody")["total"] == 0

    published = twin(any_portal, "/ui/runs.json", pipeline="pub-1")
    assert published["total"] == 9  # runs 0-4 of each experiment (eval has 4)
    graph_id = any_ws.backend.meta.get_pipeline_run(train[0]).graph_id  # type: ignore[attr-defined]
    assert twin(any_portal, "/ui/runs.json", pipeline=graph_id)["total"] == 30

    # Runs 0..23 were submitted on Nov 1, 24..29 on Nov 2 (hours from 12:00).
    day_two = twin(any_portal, "/ui/runs.json", experiment="train", **{"from": "2026-11-02"})
    assert set(ids(day_two)) == set(train[12:])
    day_one = twin(any_portal, "/ui/runs.json", experiment="train", to="2026-11-01")
    assert set(ids(day_one)) == set(train[:12])
    window = twin(
        any_portal,
        "/ui/runs.json",
        experiment="train",
        **{"from": "2026-11-01T20:00:00Z", "to": "2026-11-01T22:00:00+00:00"},
    )
    assert ids(window) == [train[9], train[8]]


def test_the_runs_list_sorts_by_each_column_both_ways(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    runs = seed(any_ws, 12)
    assert ids(twin(any_portal, "/ui/runs.json")) == runs[::-1]
    assert ids(twin(any_portal, "/ui/runs.json", order="asc")) == runs

    # Run i ran i seconds; runs without a start (NotStarted) or an end (Running) come last.
    durations = twin(any_portal, "/ui/runs.json", sort="duration")["runs"]
    finished = [r for r in durations if r["ended_at"] is not None]
    assert [r["duration_seconds"] for r in finished] == sorted(
        (r["duration_seconds"] for r in finished), reverse=True
    )
    assert durations[-1]["started_at"] is None
    shortest = twin(any_portal, "/ui/runs.json", sort="duration", order="asc")["runs"]
    assert shortest[0]["id"] == runs[0]

    started = ids(twin(any_portal, "/ui/runs.json", sort="started", order="asc"))
    never = [runs[4], runs[10]]  # NotStarted
    assert started == [r for r in runs if r not in never] + never
    ended = twin(any_portal, "/ui/runs.json", sort="ended")["runs"]
    assert [r["ended_at"] is None for r in ended] == [False] * 8 + [True] * 4

    by_status = [r["status"] for r in twin(any_portal, "/ui/runs.json", sort="status")["runs"]]
    assert by_status == sorted(by_status, reverse=True)

    # Column headers sort too: descending first, then the other way, keeping the filters.
    data = twin(any_portal, "/ui/runs.json", sort="duration", tag="team")
    assert data["sort_urls"]["duration"] == "/ui/runs?tag=team&sort=duration&order=asc"
    assert data["sort_urls"]["status"] == "/ui/runs?tag=team&sort=status&order=desc"
    html = httpx.get(f"{any_portal.url}/ui/runs?sort=duration&tag=team").text
    assert (
        '<th scope="col" aria-sort="descending"><a href="/ui/runs?tag=team&amp;sort=duration&amp;order=asc">Duration'
        in html
    )


BEST = [0.5, 0.51, 0.52] * 20
ACCURACY = [0.9, 0.89, 0.88] * 20


def log_metrics(ws: Workspace, run_ids: list[str]) -> dict[str, str]:
    """Through the store, as steps log them: for the run in place p, a pipeline-level `best`
    (BEST[p]) and a step `train` logging `accuracy` twice (the last: ACCURACY[p]); returns
    the train step run ids. The last run given gets a reused `train` step, reusing the
    first run's."""
    meta = ws.backend.meta  # type: ignore[attr-defined]
    steps = {}
    for place, run_id in enumerate(run_ids[:-1]):
        step_id = str(uuid.uuid4())
        meta.create_step_run(
            event="step.created", id=step_id, pipeline_run_id=run_id, node_id="n-train",
            name="train", status="Finished",
        )  # fmt: skip
        steps[run_id] = step_id
        meta.add_metrics(
            [
                MetricRecord(run_id, "best", "scalar", BEST[place]),
                MetricRecord(step_id, "accuracy", "scalar", 0.1),
                MetricRecord(step_id, "accuracy", "scalar", ACCURACY[place]),
                MetricRecord(step_id, "confusion", "table", {"a": [1]}),
            ]
        )
    reused = str(uuid.uuid4())
    meta.create_step_run(
        event="step.reused", id=reused, pipeline_run_id=run_ids[-1], node_id="n-train",
        name="train", status="Finished", reused_run_id=steps[run_ids[0]],
    )  # fmt: skip
    return steps


def test_parameter_and_metric_columns_show_and_sort_with_runs_lacking_last(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    runs = seed(any_ws, 8)  # lr = i / 100
    logged = [runs[1], runs[2], runs[5], runs[0]]  # runs[0]'s train step reuses runs[1]'s
    log_metrics(any_ws, logged)
    cols = "param:lr,metric:best,metric:train/accuracy"
    data = twin(any_portal, "/ui/runs.json", cols=cols)
    assert [c["key"] for c in data["columns"]] == cols.split(",")
    by_id = {r["id"]: r["columns"] for r in data["runs"]}
    assert by_id[runs[2]] == {"param:lr": 0.02, "metric:best": 0.51, "metric:train/accuracy": 0.89}
    assert by_id[runs[0]] == {"param:lr": 0.0, "metric:best": None, "metric:train/accuracy": 0.9}
    assert by_id[runs[7]]["metric:train/accuracy"] is None
    assert data["column_choices"]["metric"] == [
        {"key": "metric:best", "name": "best", "chosen": True},
        {"key": "metric:train/accuracy", "name": "train/accuracy", "chosen": True},
    ]

    # Sorted by a metric: runs with a value in order, then the others newest first.
    newest_lacking = [r for r in runs[::-1] if r not in logged]
    best = ids(twin(any_portal, "/ui/runs.json", sort="metric:train/accuracy"))
    assert best == [runs[1], runs[0], runs[2], runs[5], *newest_lacking]  # a tie: newest first
    worst = ids(twin(any_portal, "/ui/runs.json", sort="metric:train/accuracy", order="asc"))
    assert worst == [runs[5], runs[2], runs[1], runs[0], *newest_lacking]
    assert ids(twin(any_portal, "/ui/runs.json", sort="metric:best", size=2, page=2)) == [
        runs[1],
        runs[7],
    ]
    sorted_only = twin(any_portal, "/ui/runs.json", sort="metric:best")
    assert [c["key"] for c in sorted_only["columns"]] == ["metric:best"]  # shown when sorted by

    # By a parameter: numbers as numbers, both ways; filters still apply.
    by_lr = ids(twin(any_portal, "/ui/runs.json", sort="param:lr", status="Finished"))
    assert by_lr == [runs[6], runs[5], runs[0]]
    assert ids(twin(any_portal, "/ui/runs.json", sort="param:lr", order="asc"))[:2] == runs[:2]

    # Links keep the columns; a header sorts by its column; its remove link drops it.
    column = {c["key"]: c for c in data["columns"]}["metric:best"]
    sorting = [("cols", cols), ("sort", "metric:best"), ("order", "desc")]
    assert column["sort_url"] == f"/ui/runs?{urlencode(sorting)}"
    rest = "param:lr,metric:train/accuracy"
    assert column["remove_url"] == f"/ui/runs?{urlencode([('cols', rest)])}"
    html = httpx.get(f"{any_portal.url}/ui/runs", params={"cols": cols}).text
    assert '<td class="column" data-column="metric:best">0.51</td>' in html
    experiment = twin(any_portal, "/ui/experiments/train.json", cols=cols, sort="metric:best")
    assert ids(experiment)[:3] == [runs[5], runs[2], runs[1]]  # an experiment's page too


def test_the_search_box_finds_runs_by_id_names_tags_and_parameters(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    runs = seed(any_ws, 6)
    other = seed(any_ws, 2, experiment="Eval-Nightly", description="50% of the ImageNet set")
    meta = any_ws.backend.meta  # type: ignore[attr-defined]
    meta.update_run_tags(runs[1], {"owner": "Ada Lovelace"})

    def found(q: str, **params: Any) -> list[str]:
        return ids(twin(any_portal, "/ui/runs.json", q=q, **params))

    assert found("lovelace") == [runs[1]]  # a tag's value, any case
    assert found("OWNER") == [runs[1]]  # a tag's key
    assert set(found("nightly")) == set(other) | {runs[0], runs[3]}  # experiment, tag key
    assert found("imagenet") == other[::-1]  # a description
    assert found("50%") == other[::-1] and found("5_%") == []  # % and _ are literal
    assert found("0.05") == [runs[5]]  # a parameter's value
    assert found(runs[2][:13]) == [runs[2]]  # a run id
    assert found("nlp", status="Finished", experiment="train") == [runs[0]]
    page = httpx.get(f"{any_portal.url}/ui/runs", params={"q": "lovelace"})
    assert 'name="q" value="lovelace"' in page.text and "Runs 1\N{EN DASH}1 of 1" in page.text
    too_long = httpx.get(f"{any_portal.url}/ui/runs.json", params={"q": "x" * 201})
    assert too_long.status_code == 400 and "q is 201 characters long" in too_long.text


def test_pages_of_the_runs_list_keep_the_filters(any_ws: Workspace, any_portal: LiveServer) -> None:
    runs = seed(any_ws, 60)[::-1]
    first = twin(any_portal, "/ui/runs.json", size=25, tag="team")
    assert first["total"] == 40 and first["previous_url"] is None
    assert first["shown"] == {"first": 1, "last": 25}
    assert first["next_url"] == "/ui/runs?size=25&tag=team&page=2"
    second = twin(any_portal, first["next_url"].replace("/ui/runs", "/ui/runs.json"))
    assert second["shown"] == {"first": 26, "last": 40} and second["next_url"] is None
    assert second["previous_url"] == "/ui/runs?size=25&tag=team"
    tagged = [r for r in runs if r in {*ids(first), *ids(second)}]
    assert ids(first) + ids(second) == tagged

    assert ids(twin(any_portal, "/ui/runs.json"))[:50] == runs[:50]  # 50 by default
    past_the_end = httpx.get(f"{any_portal.url}/ui/runs?page=9")
    assert past_the_end.status_code == 200 and "Go to the first page" in past_the_end.text


def test_a_capped_total_reads_ten_thousand_plus(ws: Workspace, portal: LiveServer) -> None:
    seed(ws, 10_001)
    data = twin(portal, "/ui/runs.json", page=3)
    assert data["total_capped"] and data["total_text"] == "10,000+"
    assert data["shown"] == {"first": 101, "last": 150} and data["next_url"]
    page = httpx.get(f"{portal.url}/ui/runs?page=3")
    assert "Runs 101\N{EN DASH}150 of 10,000+" in page.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=Bogus", "status 'Bogus' is not a run status; use one or more of NotStarted"),
        ("status=Faild", "(did you mean 'Failed'?)"),
        ("from=xx", "from 'xx' is not a date; use YYYY-MM-DD"),
        ("to=2026-13-01", "to '2026-13-01' is not a date"),
        ("size=10000", "size '10000' must be a whole number from 1 to 200."),
        ("page=0", "page '0' must be a whole number from 1 to 100,000."),
        ("sort=colour", "sort 'colour' is not a column to sort by; use one of submitted, started"),
        ("order=up", "order 'up' must be asc or desc."),
        ("tag==x", "tag '=x' has no key; use tag=KEY or tag=KEY=VALUE."),
        ("cols=bogus", "cols 'bogus' is not a column; use param:NAME (a pipeline parameter)"),
        ("cols=param:lr,metric:", "cols 'metric:' is not a column; use param:NAME"),
        ("sort=metrics:x", "sort 'metrics:x' is not a column to sort by; use one of submitted"),
    ],
)
def test_a_bad_value_in_the_address_is_a_400_page_naming_it(
    portal: LiveServer, query: str, says: str
) -> None:
    page = httpx.get(f"{portal.url}/ui/runs?{query}")
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]
    assert says.replace("'", "&#39;") in page.text
    answer = httpx.get(f"{portal.url}/ui/runs.json?{query}")
    assert answer.status_code == 400 and says in answer.json()["Error"]["Message"]


def test_every_bad_value_is_named_at_once(portal: LiveServer) -> None:
    answer = httpx.get(f"{portal.url}/ui/experiments/x.json?status=Bogus&size=0&from=yesterday")
    message = answer.json()["Error"]["Message"]
    assert answer.status_code == 400
    assert "status 'Bogus'" in message and "size '0'" in message and "from 'yesterday'" in message


# -- experiments -------------------------------------------------------------------------
def test_the_experiments_page_counts_runs_and_shows_the_last_one(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    train = seed(any_ws, 8)
    evals = seed(any_ws, 3, experiment="eval")
    any_ws.backend.meta.get_or_create_experiment("empty")  # type: ignore[attr-defined]
    data = twin(any_portal, "/ui/experiments.json")
    by_name = {e["name"]: e for e in data["experiments"]}
    assert list(by_name) == ["empty", "eval", "train"]
    assert by_name["train"]["run_count"] == 8 and by_name["eval"]["run_count"] == 3
    assert by_name["train"]["last_run"]["id"] == train[-1]
    assert by_name["train"]["last_run"]["status"] == "Failed"  # run 7: STATUSES[7 % 6]
    assert by_name["eval"]["last_run"]["url"] == f"/ui/runs/{evals[-1]}"
    assert by_name["empty"]["run_count"] == 0 and by_name["empty"]["last_run"] is None
    assert by_name["eval"]["url"] == "/ui/experiments/eval"

    html = httpx.get(f"{any_portal.url}/ui/experiments").text
    assert 'href="/ui/experiments/train"' in html and train[-1][:8] in html
    assert "no runs" in html


def test_an_experiment_page_lists_its_runs_with_the_same_filters(
    any_ws: Workspace, any_portal: LiveServer
) -> None:
    train = seed(any_ws, 14)
    seed(any_ws, 3, experiment="eval")
    data = twin(any_portal, "/ui/experiments/train.json", status="Finished", order="asc")
    assert data["experiment"]["name"] == "train" and data["filters"]["experiment"] is None
    assert ids(data) == [r for i, r in enumerate(train) if i % 6 in (0, 5)]
    page = twin(any_portal, "/ui/experiments/train.json", size=5, page=2)
    assert ids(page) == train[::-1][5:10]
    assert page["next_url"] == "/ui/experiments/train?size=5&page=3"
    html = httpx.get(f"{any_portal.url}/ui/experiments/train").text
    assert "Experiment train" in html and 'name="experiment"' not in html


def test_an_unknown_experiment_is_a_404_page_with_a_hint(ws: Workspace, portal: LiveServer) -> None:
    seed(ws, 2, experiment="training")
    page = httpx.get(f"{portal.url}/ui/experiments/trainin")
    assert page.status_code == 404
    assert (
        "There is no experiment &#39;trainin&#39; (did you mean &#39;training&#39;?)" in page.text
    )
    answer = httpx.get(f"{portal.url}/ui/experiments/nope.json")
    assert answer.status_code == 404 and "/ui/experiments" in answer.json()["Error"]["Message"]
    # On the runs list an unknown experiment is an empty list, not an error: it is a filter.
    assert twin(portal, "/ui/runs.json", experiment="nope")["total"] == 0


# -- real runs, costs ----------------------------------------------------------------------
def test_real_submitted_runs_appear_with_their_links(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run = Experiment(ws, "real").submit(shapes.linear(ws, root, n=1), tags={"kind": "smoke"})
    run.wait_for_completion(show_output=False)
    data = twin(portal, "/ui/runs.json", tag="kind=smoke", status="Finished")
    (row,) = data["runs"]
    assert row["id"] == run.id and row["experiment"] == "real" and row["run_source"] == "SDK"
    assert row["duration_seconds"] > 0
    html = httpx.get(f"{portal.url}/ui/runs", params={"experiment": "real"}).text
    assert f'href="/ui/runs/{run.id}"' in html and 'href="/ui/experiments/real"' in html
    assert f'value="{run.id}" form="compare"' in html and "kind=smoke" in html
    assert twin(portal, "/ui/experiments.json")["experiments"][0]["run_count"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/ui/runs",
        "/ui/runs?status=Failed&tag=team=nlp&sort=duration&page=2&size=5",
        "/ui/runs?experiment=train&from=2026-11-01&pipeline=pub-1",
        "/ui/experiments",
        "/ui/experiments/train?sort=ended&order=asc",
        "/ui/runs?cols=param:lr,metric:best,metric:train/accuracy&sort=metric:best&size=5",
        "/ui/runs?q=NLP&sort=param:lr&order=asc&status=Finished&page=2&size=5",
    ],
)
def test_each_page_costs_a_handful_of_queries(
    any_ws: Workspace, any_portal: LiveServer, path: str
) -> None:
    runs = seed(any_ws, 40)
    seed(any_ws, 5, experiment="eval")
    log_metrics(any_ws, runs[::2])
    with counted_queries(any_portal) as statements:
        assert httpx.get(any_portal.url + path).status_code == 200
    assert 1 <= len(statements) <= 5, statements


# -- in a browser --------------------------------------------------------------------------
def test_filter_page_on_and_compare_two_runs_in_a_browser(
    ws: Workspace, portal: LiveServer, page: Any
) -> None:
    seed(ws, 130)
    seed(ws, 6, experiment="eval")
    page.goto(f"{portal.url}/ui/runs")
    page.get_by_label("Failed").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/ui/runs?*status=Failed*")
    assert page.get_by_role("status").inner_text().strip() == "Runs 1\N{EN DASH}23 of 23"
    statuses = page.locator("table.runs tbody .status").all_inner_texts()
    assert statuses and set(statuses) == {"Failed"}

    page.get_by_role("group", name="Status").get_by_label("Failed").uncheck()
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**size=25*")
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url("**page=2*")
    assert "Runs 26\N{EN DASH}50 of 136" in page.get_by_role("status").inner_text()
    screenshot(page, "runs-list")

    first, second = page.locator("tr[data-run-id]").evaluate_all(
        "rows => rows.slice(0, 2).map(r => r.dataset.runId)"
    )
    page.get_by_role("button", name="Compare selected").click()
    assert "Select two or more runs" in page.locator(".hint").inner_text()
    page.get_by_label(f"Select run {first[:8]}").check()
    page.get_by_label(f"Select run {second[:8]}").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url("**/ui/compare?*")
    assert page.url == f"{portal.url}/ui/compare?runs={first},{second}"


def test_choose_sort_and_remove_columns_in_a_browser(
    ws: Workspace, portal: LiveServer, page: Any
) -> None:
    runs = seed(ws, 8)
    log_metrics(ws, [runs[1], runs[2], runs[5], runs[0]])
    page.goto(f"{portal.url}/ui/runs")
    page.get_by_text("Columns", exact=True).click()
    page.get_by_role("group", name="Parameters").get_by_label("lr").check()
    page.get_by_label("Add a column").fill("metric:train/accuracy")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**cols=*")
    query = parse_qs(urlsplit(page.url).query)  # the columns as one parameter, no empties
    assert query["cols"] == ["param:lr,metric:train/accuracy"] and "tag" not in query
    header = [" ".join(h.split()) for h in page.locator("th.column").all_inner_texts()]
    assert header == [
        "param lr \N{MULTIPLICATION SIGN}",
        "metric train/accuracy \N{MULTIPLICATION SIGN}",
    ]
    page.get_by_role("link", name="metric train/accuracy").click()
    page.wait_for_url("**sort=metric*")
    cells = page.locator('td.column[data-column="metric:train/accuracy"]').all_inner_texts()
    assert cells[:4] == ["0.9", "0.9", "0.89", "0.88"] and set(cells[4:]) == {"\N{EN DASH}"}
    screenshot(page, "runs-list-columns")
    page.get_by_role("link", name="Remove the column param:lr").click()
    page.wait_for_url("**/ui/runs?*")
    assert page.locator("th.column").count() == 1  # the sorted-by column stays
    page.get_by_label("Search").fill("nlp")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**q=nlp*")
    assert page.locator("tr[data-run-id]").count() == 3  # runs 0, 3, 6 carry team=nlp


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "light"), (1280, "dark")])
def test_the_runs_and_experiments_pages_fit_the_screen(
    ws: Workspace, portal: LiveServer, browser: Any, width: int, scheme: str
) -> None:
    seed(ws, 30)
    seed(ws, 4, experiment="evaluation-with-a-long-name")
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    tab = context.new_page()
    pages = [
        ("/ui/runs", "runs-list"),
        ("/ui/experiments", "experiments"),
        ("/ui/experiments/train?status=Finished", "experiment"),
    ]
    for path, name in pages:
        tab.goto(portal.url + path)
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a {width} px screen"
        screenshot(tab, f"{name}-{width}px-{scheme}")
    # Everything is reachable from the keyboard: the filters, Apply, the row checkboxes.
    tab.goto(portal.url + "/ui/runs")
    reached = set()
    for _ in range(80):  # past the navigation's links, however many pages it lists
        tab.keyboard.press("Tab")
        reached.add(
            tab.evaluate("document.activeElement.name || document.activeElement.textContent")
        )
    assert {"experiment", "status", "tag", "from", "size", "Apply", "runs"} <= reached
    context.close()
