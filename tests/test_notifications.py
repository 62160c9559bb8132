"""Notifications when runs end: a real SMTP server (aiosmtpd) and a real HTTP receiver on
127.0.0.1, delivered by the agent's background sender from the durable outbox; retries,
timeouts and failures are recorded and never change the run; secrets stay out of the
database and every listing.

The receivers are module-scoped; each test gets a fresh workspace (its agent, started by the
submit, sends). `HEADRACE_OUTBOX_BACKOFF_SECONDS` is short so retries happen within a test.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    ConfigError,
    ConflictError,
    NotFoundError,
    Notification,
    NotificationError,
    Pipeline,
    PythonScriptStep,
    UserError,
    Workspace,
)

TOKEN = "T000/B000/XXXXsecretXXXX"  # what a Slack webhook URL's path holds


# -- the far side --------------------------------------------------------------------------
class Receiver:
    """A tiny HTTP server recording POSTs; `plans[path]` says how to answer the next ones to
    that path (an HTTP status, or "sleep" to answer after the client gave up); then 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.plans: dict[str, list[int | str]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                plan = receiver.plans.get(self.path) or []
                action = plan.pop(0) if plan else 200
                if action == "sleep":
                    time.sleep(1.5)
                    action = 200
                if action == "hang":  # recorded on arrival; the sender is killed meanwhile
                    receiver.posts.append(
                        {"path": self.path, "status": "hang", "body": json.loads(body),
                         "delivery": self.headers.get("X-Headrace-Delivery")}
                    )  # fmt: skip
                    time.sleep(4)
                    return
                receiver.posts.append(
                    {
                        "path": self.path,
                        "status": action,
                        "body": json.loads(body),
                        "delivery": self.headers.get("X-Headrace-Delivery"),
                    }
                )
                try:
                    self.send_response(int(action))
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (the timeout test)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def to(self, path: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["path"] == path]


class Mailbox:
    """aiosmtpd on 127.0.0.1 keeping every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                mailbox.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd's start() connects to the port it was given
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.controller.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_OUTBOX_BACKOFF_SECONDS", "0.2")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pipeline(ws: Workspace, folder: Path, *, fail: bool = False, **kwargs: Any) -> Pipeline:
    folder.mkdir(exist_ok=True)
    code = "raise SystemExit('the model diverged')" if fail else "print('trained')"
    (folder / "train.py").write_text(textwrap.dedent(code))
    step = PythonScriptStep("train.py", name="train", source_directory=str(folder))
    return Pipeline(ws, steps=[step], **kwargs)


# -- tests ---------------------------------------------------------------------------------
def test_webhook_and_email_tell_of_finished_and_failed_runs(
    ws: Workspace, tmp_path: Path, receiver: Receiver, mailbox: Mailbox
) -> None:
    hook = Notification.webhook(ws, "team-hook", url=receiver.url(f"/services/{TOKEN}"))
    mail = Notification.email(
        ws,
        "oncall",
        to=["oncall@example.com"],
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        statuses=["Failed"],
    )
    assert hook.statuses == ["Finished", "Failed", "Canceled"] and mail.statuses == ["Failed"]
    mails_before = len(mailbox.messages)

    good = pipeline(ws, tmp_path / "good").submit("nightly")
    bad = pipeline(ws, tmp_path / "bad", fail=True).submit("nightly")
    good.wait_for_completion(show_output=False)
    bad.wait_for_completion(show_output=False, raise_on_error=False)

    posts = wait_for(
        lambda: len(receiver.to(f"/services/{TOKEN}")) >= 2 and receiver.posts, "2 posts"
    )
    by_run = {p["body"]["run_id"]: p["body"] for p in posts if p["path"].endswith(TOKEN)}
    assert by_run[good.id]["status"] == "Finished" and by_run[bad.id]["status"] == "Failed"
    assert f"Pipeline run {good.id} of experiment 'nightly' Finished" in by_run[good.id]["text"]
    assert "the model diverged" in by_run[bad.id]["text"]  # the failed step's error
    assert by_run[bad.id]["experiment"] == "nightly" and by_run[bad.id]["workspace"] == "test-ws"

    mails = wait_for(lambda: mailbox.messages[mails_before:], "a mail")
    assert len(mails) == 1  # Failed only
    assert mails[0]["To"] == "oncall@example.com"
    assert mails[0]["Subject"] == f"[headrace] nightly: run {bad.id[:8]} Failed"
    assert bad.id in mails[0].get_payload()

    done = wait_for(
        lambda: [d for d in hook.deliveries() if d["state"] == "done"][1:] and hook.deliveries(),
        "both deliveries recorded",
    )
    assert {d["run_id"] for d in done} == {good.id, bad.id}
    assert all(d["attempts"] == 1 for d in done)
    assert good.get_status() == "Finished"

    # The webhook URL holds a token: it is in no listing and not in the database.
    shown = json.dumps([n.settings for n in Notification.list(ws)])
    assert TOKEN not in shown and "127.0.0.1" in shown
    database = (tmp_path / "ws" / "headrace.db").read_bytes()
    wal = tmp_path / "ws" / "headrace.db-wal"
    assert TOKEN.encode() not in database + (wal.read_bytes() if wal.exists() else b"")
    secrets = tmp_path / "ws" / "secrets" / "notifications.json"
    assert TOKEN in secrets.read_text() and secrets.stat().st_mode & 0o777 == 0o600


def test_a_webhook_answering_500_is_retried_and_one_timing_out_gives_up(
    ws: Workspace, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.plans["/flaky"] = [500, 500]
    receiver.plans["/slow"] = ["sleep", "sleep"]
    flaky = Notification.webhook(ws, "flaky", url=receiver.url("/flaky"), statuses="Finished")
    slow = Notification.webhook(
        ws,
        "slow",
        url=receiver.url("/slow"),
        statuses="Finished",
        timeout_seconds=0.3,
        max_attempts=2,
    )
    run = pipeline(ws, tmp_path / "src").submit("retries")
    run.wait_for_completion(show_output=False)

    def ended(notification: Notification) -> list[dict[str, Any]]:
        return [d for d in notification.deliveries() if d["state"] in ("done", "failed")]

    (flaky_done,) = wait_for(lambda: ended(flaky), "the flaky webhook's delivery to end")
    (slow_done,) = wait_for(lambda: ended(slow), "the slow webhook's delivery to end")
    assert (flaky_done["state"], flaky_done["attempts"]) == ("done", 3)
    assert flaky_done["result"] == {"http_status": 200}
    posts = receiver.to("/flaky")
    assert [p["status"] for p in posts] == [500, 500, 200]
    assert len({p["delivery"] for p in posts}) == 1  # one delivery id: a receiver can dedupe
    assert (slow_done["state"], slow_done["attempts"]) == ("failed", 2)
    assert "timed out" in slow_done["last_error"]
    assert run.get_status() == "Finished"  # whatever the webhooks did
    assert run.get_details().get("error") is None


def test_through_a_server_on_request_notifications_and_a_test_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    from tests.conftest import stop_agents
    from tests.servers import free_port, served_workspace

    root = tmp_path / "ws"
    Workspace.create("test-ws", path=root, show_output=False)
    try:
        with served_workspace(root, monkeypatch, "admin") as ws:
            asked = Notification.webhook(
                ws, "asked", url=receiver.url(f"/asked/{TOKEN}"), on_request=True
            )
            assert asked.on_request and TOKEN not in json.dumps(asked.settings)
            assert asked.test() == {"http_status": 200}
            (tested,) = receiver.to(f"/asked/{TOKEN}")
            assert tested["body"]["text"].startswith("Test of headrace notification 'asked'")

            closed = Notification.webhook(ws, "closed", url=f"http://127.0.0.1:{free_port()}/x")
            with pytest.raises(NotificationError, match=r"Cannot reach the webhook .*refused"):
                closed.test()
            closed.remove()
            with pytest.raises(NotFoundError, match="No notification named 'closed'"):
                Notification.get(ws, "closed")

            plain = pipeline(ws, tmp_path / "plain").submit("served")
            flagged = pipeline(ws, tmp_path / "flagged", enable_email_notification=True).submit(
                "served"
            )
            plain.wait_for_completion(show_output=False)
            flagged.wait_for_completion(show_output=False)
            wait_for(lambda: len(receiver.to(f"/asked/{TOKEN}")) >= 2, "the flagged run's post")
            time.sleep(0.5)  # the plain run would have been sent by now too
            runs = [p["body"].get("run_id") for p in receiver.to(f"/asked/{TOKEN}")[1:]]
            assert runs == [flagged.id]
            assert [d["run_id"] for d in asked.deliveries()] == [flagged.id]

            with pytest.raises(ConflictError, match="'asked' exists"):
                Notification.webhook(ws, "asked", url=receiver.url("/other"))
            with pytest.raises(UserError) as caught:
                Notification.email(
                    ws, "bad mail", to=["not-an-address"], smtp_host="", statuses=["Done"]
                )
            for part in ("name 'bad mail'", "to ['not-an-address']", "smtp_host", "['Done']"):
                assert part in str(caught.value)
    finally:
        stop_agents(root)


def test_the_cli_adds_lists_tests_and_removes_notifications(
    ws: Workspace, tmp_path: Path, receiver: Receiver
) -> None:
    from headrace.cli.main import app
    from tests.servers import RUNNER
    from tests.test_cli import hr, hr_json, one_error_line

    folder = tmp_path / "ws"
    url = receiver.url(f"/cli/{TOKEN}")
    added = RUNNER.invoke(
        app,
        ["notification", "add", "cli-hook", "--webhook", "-", "--status", "Failed", "-w", folder],
        input=url + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "Added webhook notification 'cli-hook': http://127.0.0.1:" in added.stdout
    assert TOKEN not in added.stdout
    (listed,) = hr_json("notification", "list", "-w", folder)
    assert (listed["name"], listed["statuses"], listed["on_request"]) == (
        "cli-hook",
        ["Failed"],
        False,
    )
    table = hr("notification", "list", "-w", folder).stdout
    assert "cli-hook" in table and "every run" in table and TOKEN not in table
    assert hr_json("notification", "test", "cli-hook", "-w", folder) == {"http_status": 200}
    assert receiver.to(f"/cli/{TOKEN}")[-1]["body"]["experiment"] == "notification-test"
    assert hr_json("notification", "deliveries", "-w", folder) == []

    wrong = hr("notification", "add", "x", "-w", folder, code=1)
    assert "Give either --webhook URL or --email ADDRESS" in one_error_line(wrong)
    mail = hr(
        "notification", "add", "m", "--email", "a@b.c", "--smtp-host", "127.0.0.1",
        "--smtp-port", "1", "-w", folder,
    )  # fmt: skip
    assert "Added email notification 'm': a@b.c via 127.0.0.1:1" in mail.stdout
    refused = hr("notification", "test", "m", "-w", folder, code=1)
    assert "Cannot send through the SMTP server 127.0.0.1:1" in one_error_line(refused)
    hr("notification", "remove", "cli-hook", "-w", folder)
    gone = hr("notification", "remove", "cli-hook", "-w", folder, code=1)
    assert "No notification named 'cli-hook'" in one_error_line(gone)


def test_an_env_secret_stays_out_of_the_database_and_of_isolated_steps(ws: Workspace) -> None:
    from headrace.engine.runtime import credential_variables

    hook = Notification.webhook(ws, "from-env", url="env:TEAM_HOOK_URL")
    assert hook.settings["url"] == "env:TEAM_HOOK_URL"
    # An isolated step does not inherit the variable a notification reads its secret from.
    assert "TEAM_HOOK_URL" in credential_variables(ws.backend.store)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="environment variable TEAM_HOOK_URL, which is not set"):
        hook.test()


def test_an_agent_killed_mid_send_leaves_the_delivery_to_the_next_agent(
    ws: Workspace, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the agent while its sender waits on the webhook: the outbox row stays,
    its lease runs out, and the next agent delivers it, with the same delivery id."""
    import os
    import signal

    from headrace.engine.launcher import agent_alive

    # Long enough that the agent is killed within its lease even on a loaded machine (with
    # 1 s, the agent itself re-leased the hanging row and resent it first, once in CI).
    monkeypatch.setenv("HEADRACE_OUTBOX_LEASE_SECONDS", "4")
    receiver.plans["/crash"] = ["hang"]
    hook = Notification.webhook(ws, "crash", url=receiver.url("/crash"), statuses="Finished")
    run = pipeline(ws, tmp_path / "src").submit("crash")
    run.wait_for_completion(show_output=False)
    wait_for(lambda: receiver.to("/crash"), "the first attempt to arrive")
    root = tmp_path / "ws"
    os.kill(int((root / "agent" / "agent.lock").read_text().strip()), signal.SIGKILL)
    wait_for(lambda: not agent_alive(root), "the agent to die")
    (pending,) = hook.deliveries()
    assert (pending["state"], pending["attempts"]) == ("sending", 1)

    ws.backend.ensure_agent()  # what any later submit or CLI call does
    (done,) = wait_for(lambda: [d for d in hook.deliveries() if d["state"] == "done"], "resend")
    assert done["attempts"] == 2
    first, second = receiver.to("/crash")
    assert first["delivery"] == second["delivery"] and second["status"] == 200
    assert run.get_status() == "Finished"


def test_senders_racing_for_the_outbox_take_each_row_once(any_ws: Workspace) -> None:
    """Four senders (separate connections, as four agents on one PostgreSQL workspace) lease
    due rows at once: every row is taken by exactly one of them."""
    import uuid

    from headrace.store.orm import OutboxRow, utcnow
    from headrace.store.workspace_store import WorkspaceStore

    root = Path(any_ws.backend.location)
    store = any_ws.backend.store  # type: ignore[attr-defined]
    with store.meta.db.write() as session:
        for _ in range(40):
            session.add(
                OutboxRow(
                    kind="notification", target="n", run_id=str(uuid.uuid4()),
                    run_status="Finished", state="pending", attempts=0,
                    next_attempt_at=utcnow(), result={}, created_at=utcnow(),
                )
            )  # fmt: skip
    stores = [WorkspaceStore.open(root) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    taken: list[int] = []

    def sender(own: WorkspaceStore) -> None:
        barrier.wait()
        while rows := own.meta.claim_outbox(lease_seconds=60, limit=3):
            taken.extend(r.id for r in rows)

    threads = [threading.Thread(target=sender, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in stores:
        own.close()
    assert len(taken) == 40 and len(set(taken)) == 40
    assert {r.state for r in store.meta.list_outbox(limit=100)} == {"sending"}


def test_the_rest_submit_route_honours_enable_notification(
    ws: Workspace, tmp_path: Path, receiver: Receiver
) -> None:
    """SDK v1's REST body field `EnableNotification` (accepted and ignored before) marks
    the run for the on_request notifications."""
    import httpx

    from tests.servers import LiveServer

    published = pipeline(ws, tmp_path / "src").publish(name="rest")
    hook = Notification.webhook(ws, "rest-asked", url=receiver.url("/rest"), on_request=True)
    with LiveServer(tmp_path / "ws", auth=False) as live:
        answers = [
            httpx.post(
                live.submit_url(published.id),
                json={"ExperimentName": "rest", **({"EnableNotification": True} if on else {})},
            ).json()["Id"]
            for on in (True, False)
        ]
    asked, plain = (ws.backend.get_pipeline_run(i) for i in answers)
    assert asked.properties.get("headrace.enableNotification") == "true"
    assert "headrace.enableNotification" not in plain.properties
    (delivery,) = wait_for(hook.deliveries, "the asked run's delivery")
    assert delivery["run_id"] == asked.id


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"kind": "email", "to": 5, "smtp_host": "h"}, "to 5 must be one or more email"),
        ({"kind": "webhook", "url": "http://x", "statuses": 5}, "statuses 5 are not final"),
        ({"kind": "webhook", "url": "http://x", "timeout_seconds": 61}, "in (0, 60]"),
        ({"kind": "webhook", "url": "http://x", "max_attempts": True}, "max_attempts True"),
        ({"kind": "webhook", "url": "env:"}, "url is missing"),
        ({"kind": "webhook", "url": "http://[::1"}, "must be an http:// or https:// URL"),
        ({"kind": "webhook", "url": "ftp://x/y"}, "must be an http:// or https:// URL"),
        ({"kind": "webhook", "url": "http://x", "on_request": "yes"}, "on_request must be"),
        ({"kind": "sms"}, "kind 'sms' must be 'email' or 'webhook'"),
    ],
)
def test_a_bad_notification_setting_is_named(spec: dict[str, Any], problem: str) -> None:
    from headrace.engine.notifications import notification_from_spec

    with pytest.raises(UserError, match="The notification cannot be added") as caught:
        notification_from_spec({"name": "n", **spec})
    assert problem in str(caught.value)
