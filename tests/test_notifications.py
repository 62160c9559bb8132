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
    Notification,
    Pipeline,
    PythonScriptStep,
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
