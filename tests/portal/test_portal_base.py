"""The portal's plumbing, as a user meets it: signing in with a token, sessions that end when
the token does, pages and their JSON twins, CSRF on forms, errors as pages."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from headrace import Experiment, Workspace
from headrace.cli.main import app as cli_app
from tests import shapes
from tests.portal.conftest import counted_queries, screenshot, sign_in
from tests.servers import RUNNER, LiveServer, bearer, free_port, make_token


def finished_run(ws: Workspace, root: Path, experiment: str = "portal") -> str:
    run = Experiment(ws, experiment).submit(shapes.linear(ws, root, n=2))
    run.wait_for_completion(show_output=False)
    return str(run.id)


def test_home_lists_recent_runs_and_its_json_twin_holds_the_same(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    run_id = finished_run(ws, root)
    html = httpx.get(f"{portal.url}/ui")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert run_id[:8] in html.text and "Finished" in html.text
    assert re.fullmatch(r"app;dur=\d+\.\d", html.headers["server-timing"])

    twin = httpx.get(f"{portal.url}/ui.json").json()
    by_accept = httpx.get(f"{portal.url}/ui", headers={"Accept": "application/json"}).json()
    assert twin == by_accept
    (row,) = twin["runs"]
    assert row["id"] == run_id and row["status"] == "Finished" and row["experiment"] == "portal"


def test_the_server_root_leads_to_the_portal(portal: LiveServer) -> None:
    page = httpx.get(f"{portal.url}/", follow_redirects=True)
    assert page.status_code == 200 and page.url.path == "/ui"


def test_an_unknown_page_is_a_404_page_not_a_traceback(portal: LiveServer) -> None:
    page = httpx.get(f"{portal.url}/ui/no/such/page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "There is no portal page /ui/no/such/page" in page.text
    twin = httpx.get(f"{portal.url}/ui/no/such/page.json")
    assert twin.status_code == 404 and twin.json()["Error"]["Code"] == "NotFound"


def test_every_portal_page_needs_a_session_when_auth_is_on(root: Path, secured: LiveServer) -> None:
    routes = [r for r in secured.app.routes if isinstance(r, APIRoute)]
    pages = [r for r in routes if r.path.startswith("/ui") and r.path not in ("/ui/login", "/ui/")]
    assert len(pages) >= 4
    for route in pages:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in route.methods:
            answer = httpx.request(method, secured.url + path)
            if path.endswith(".json"):
                assert answer.status_code == 401, (method, path, answer.text)
                assert "Sign in at /ui/login" in answer.json()["Error"]["Message"]
            else:
                assert answer.status_code == 303, (method, path, answer.text)
                assert answer.headers["location"].startswith("/ui/login?next=")


def test_a_bearer_token_reads_the_twins_without_a_session(root: Path, secured: LiveServer) -> None:
    token = make_token(root, "reader")
    answer = httpx.get(f"{secured.url}/ui.json", headers=bearer(token))
    assert answer.status_code == 200 and answer.json() == {"runs": []}


def test_signing_in_sets_a_session_cookie_that_ends_with_its_token(
    root: Path, secured: LiveServer
) -> None:
    with httpx.Client(base_url=secured.url) as client:
        wrong = client.post("/ui/login", data={"token": "hr_000000000000_nope-nope-nope-nope-nope"})
        assert wrong.status_code == 403 and "another workspace" in wrong.text

        token = make_token(root, "reader", "alice")
        signed = client.post("/ui/login", data={"token": token, "next": "/ui/runs"})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/runs"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
        assert token not in cookie  # the secret never travels in the cookie
        assert client.get("/ui").status_code == 200

        revoked = RUNNER.invoke(cli_app, ["token", "revoke", "alice", "-w", str(root)])
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/ui").status_code == 303  # back to the sign-in page


def test_sign_in_refuses_an_open_redirect_and_a_tampered_cookie(
    root: Path, secured: LiveServer
) -> None:
    with httpx.Client(base_url=secured.url) as client:
        token = make_token(root, "reader")
        signed = client.post("/ui/login", data={"token": token, "next": "//evil.example/x"})
        assert signed.headers["location"] == "/ui"
        session = client.cookies["headrace_session"]
        token_id, expires, signature = session.split(".")
        forged = f"{token_id}.{int(expires) + 10**6}.{signature}"
        answer = httpx.get(f"{secured.url}/ui", cookies={"headrace_session": forged})
        assert answer.status_code == 303


def test_signing_out_ends_the_session_wherever_its_cookie_was_copied(
    root: Path, secured: LiveServer
) -> None:
    token = make_token(root, "reader", "carol")
    with httpx.Client(base_url=secured.url) as browser, httpx.Client(base_url=secured.url) as other:
        browser.post("/ui/login", data={"token": token})
        copied = browser.cookies["headrace_session"]
        other.cookies.set("headrace_session", copied, domain="127.0.0.1", path="/ui")
        assert other.get("/ui").status_code == 200  # the copy works while signed in
        second = httpx.post(f"{secured.url}/ui/login", data={"token": token})
        kept = second.cookies["headrace_session"]  # another browser of the same token
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', browser.get("/ui").text)
        assert csrf is not None
        assert browser.post("/ui/logout", data={"csrf": csrf.group(1)}).status_code == 303
        assert other.get("/ui").status_code == 303  # the copied cookie is signed out too
        answer = httpx.get(f"{secured.url}/ui.json", cookies={"headrace_session": copied})
        assert answer.status_code == 401
        # Signing out ends one session; the token's other sessions go on.
        assert httpx.get(f"{secured.url}/ui", cookies={"headrace_session": kept}).is_success


def test_a_form_without_its_csrf_field_is_refused(root: Path, secured: LiveServer) -> None:
    with httpx.Client(base_url=secured.url) as client:
        client.post("/ui/login", data={"token": make_token(root, "reader")})
        refused = client.post("/ui/logout", data={})
        assert refused.status_code == 403 and "reload the page" in refused.text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui").text)
        assert csrf is not None
        assert client.post("/ui/logout", data={"csrf": csrf.group(1)}).status_code == 303
        assert client.get("/ui").status_code == 303  # signed out


def test_sign_in_and_out_in_a_browser(
    ws: Workspace, root: Path, secured: LiveServer, page: Any
) -> None:
    run_id = finished_run(ws, root)
    page.goto(f"{secured.url}/ui/login")
    page.get_by_label("API token").fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    assert "not a headrace token" in page.get_by_role("alert").inner_text()
    screenshot(page, "login")

    sign_in(page, secured, root, "reader", "bob")
    assert page.get_by_text("bob").is_visible()
    assert page.locator(f"tr[data-run-id='{run_id}']").is_visible()
    screenshot(page, "home")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{secured.url}/ui/login")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_home_page_fits_the_screen(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any, width: int
) -> None:
    finished_run(ws, root)
    context = browser.new_context(viewport={"width": width, "height": 800})
    tab = context.new_page()
    tab.goto(f"{portal.url}/ui")
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen"
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to content"
    screenshot(tab, f"home-{width}px")
    context.close()


def test_the_home_page_costs_a_handful_of_queries(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    finished_run(ws, root)
    with counted_queries(portal) as statements:
        assert httpx.get(f"{portal.url}/ui").status_code == 200
    assert 1 <= len(statements) <= 3, statements


def test_headrace_ui_serves_a_workspace_folder_without_tokens(ws: Workspace, root: Path) -> None:
    run_id = finished_run(ws, root)
    port = free_port()
    headrace = Path(sys.executable).with_name("headrace")
    ui = subprocess.Popen(
        [str(headrace), "ui", "-w", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/ui.json")
                break
            except httpx.TransportError:
                assert ui.poll() is None, ui.communicate()[0]
                assert time.monotonic() < deadline, "headrace ui did not answer in 30 s"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert [row["id"] for row in answer.json()["runs"]] == [run_id]
        # No token: so only loopback names are answered (tests/test_browser_guards.py).
        forged = httpx.get(f"http://127.0.0.1:{port}/ui", headers={"Host": "evil.example"})
        assert forged.status_code == 403 and run_id[:8] not in forged.text
    finally:
        ui.terminate()
        output = ui.communicate(timeout=20)[0].decode()
    assert f"http://127.0.0.1:{port}/ui" in output


def test_headrace_ui_refuses_a_public_address(root: Path) -> None:
    result = RUNNER.invoke(cli_app, ["ui", "-w", str(root), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "Refusing to serve the portal on 0.0.0.0" in result.output
    assert "headrace server" in result.output
