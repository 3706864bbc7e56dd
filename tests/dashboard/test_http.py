"""The dashboard over plain HTTP against a real server: log-in codes, the session cookie, CSRF,
every page, 404 pages, escaping, and that the API still wants its bearer token."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.dashboard.conftest import PY, job

pytestmark = pytest.mark.slow

PAGES = ["/dashboard/jobs", "/dashboard/queues", "/dashboard/nodes", "/dashboard/workflows", "/dashboard/sim",
         "/dashboard/fragments/jobs", "/dashboard/fragments/queues", "/dashboard/fragments/nodes"]


def wait_phase(live, name: str, phases: tuple[str, ...], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while (phase := live.service.get("default", name).phase.value) not in phases:
        assert time.monotonic() < deadline, f"{name} still {phase}"
        time.sleep(0.1)
    return phase


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def test_without_a_session_pages_redirect_to_login_and_the_api_still_wants_its_token(live):
    c = httpx.Client(base_url=live.url)
    r = c.get("/dashboard/jobs")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    r = c.get("/dashboard/fragments/jobs", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/dashboard/login"
    assert c.post("/dashboard/jobs/default/x/cancel", data={"csrf": "x"}).status_code == 401
    assert c.get("/dashboard/login").status_code == 200  # the log-in page itself is open
    assert c.get("/v1/jobs").status_code == 401
    assert c.post("/v1/dashboard/login").status_code == 401  # minting a code needs the token
    forged = httpx.Client(base_url=live.url, cookies={"jobsched_session": "made-up"})
    assert forged.get("/v1/jobs").status_code == 401
    assert forged.get("/dashboard/jobs").status_code == 303


def test_login_code_works_once_and_sets_an_httponly_strict_cookie(live):
    path = live.login_path()
    assert path.startswith("/dashboard/login?code=") and live.token not in path
    first = httpx.get(live.url + path)
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("jobsched_session=")
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attrs
    assert live.token not in cookie
    again = httpx.get(live.url + path)
    assert again.status_code == 401 and "set-cookie" not in again.headers
    assert "already used or has expired" in again.text
    session = first.cookies["jobsched_session"]
    ok = httpx.get(live.url + "/dashboard/jobs", cookies={"jobsched_session": session})
    assert ok.status_code == 200 and "<h1>Jobs</h1>" in ok.text


def test_login_form_takes_the_token_not_a_wrong_one(live):
    c = httpx.Client(base_url=live.url)
    assert c.post("/dashboard/login", data={"token": "wrong"}).status_code == 401
    assert "jobsched_session" not in c.cookies
    assert c.post("/dashboard/login", data={"token": live.token}).status_code == 200
    assert c.get("/dashboard/jobs").status_code == 200


def test_every_page_renders_and_unknown_things_get_a_404_page(live):
    live.service.submit(job("hello", [PY, "-c", "print('hi')"]))
    wait_phase(live, "hello", ("Succeeded",))
    c = live.browser_client()
    for path in [*PAGES, "/dashboard/jobs/default/hello", "/dashboard/fragments/jobs/default/hello",
                 "/dashboard/jobs?queue=default&phase=Succeeded", "/dashboard/static/htmx.min.js"]:
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    assert c.get("/dashboard/").status_code == 303
    r = c.get("/dashboard/jobs/default/nope")
    assert r.status_code == 404 and "There is no job default/nope." in r.text and "<html" in r.text
    assert c.get("/dashboard/workflows/default/nope").status_code == 404
    assert c.get("/dashboard/no-such-page").status_code == 404
    r = c.get("/dashboard/jobs?phase=Bogus")
    assert r.status_code == 400 and "unknown phase" in r.text
    assert c.get("/dashboard/static/../templates/base.html").status_code == 404


def test_jobs_filter_by_queue_and_phase(live):
    live.service.apply_queue({"metadata": {"name": "research"}})
    live.service.submit(job("a", [PY, "-c", "pass"]))
    live.service.submit(job("b", [PY, "-c", "pass"], queue="research"))
    wait_phase(live, "a", ("Succeeded",))
    wait_phase(live, "b", ("Succeeded",))
    c = live.browser_client()
    rows = re.findall(r'data-job="([^"]+)"', c.get("/dashboard/jobs?queue=research").text)
    assert rows == ["default/b"]
    assert re.findall(r'data-job="([^"]+)"', c.get("/dashboard/fragments/jobs?phase=Running").text) == []
    both = re.findall(r'data-job="([^"]+)"', c.get("/dashboard/jobs?phase=Succeeded").text)
    assert sorted(both) == ["default/a", "default/b"]


def test_user_text_is_escaped(live):
    live.service.submit(job("loud", [PY, "-c", "print('<img src=x onerror=alert(1)>')"]))
    wait_phase(live, "loud", ("Succeeded",))
    html = live.browser_client().get("/dashboard/jobs/default/loud").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "script-src 'self'" in httpx.get(live.url + "/dashboard/login").headers["content-security-policy"]


def test_cancel_needs_the_sessions_csrf_token(live):
    live.service.submit(job("sleeper", [PY, "-c", "import time; time.sleep(120)"]))
    wait_phase(live, "sleeper", ("Running",))
    c = live.browser_client()
    page = c.get("/dashboard/jobs/default/sleeper").text
    assert c.post("/dashboard/jobs/default/sleeper/cancel", data={"csrf": "forged"}).status_code == 403
    assert c.post("/dashboard/jobs/default/sleeper/cancel", data={}).status_code == 403
    other = live.browser_client()  # another session's token is no good either
    other_csrf = csrf_of(other.get("/dashboard/jobs").text)
    assert c.post("/dashboard/jobs/default/sleeper/cancel", data={"csrf": other_csrf}).status_code == 403
    assert not live.runtime.store.job("default", "sleeper").cancel_requested
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "null"}):
        r = c.post("/dashboard/jobs/default/sleeper/cancel", data={"csrf": csrf_of(page)}, headers=headers)
        assert r.status_code == 403, headers
    r = c.post("/dashboard/jobs/default/sleeper/cancel", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/jobs/default/sleeper"
    assert wait_phase(live, "sleeper", ("Cancelled",)) == "Cancelled"


def test_logout_ends_the_session(live):
    c = live.browser_client()
    csrf = csrf_of(c.get("/dashboard/jobs").text)
    assert c.post("/dashboard/logout", data={"csrf": "nope"}).status_code == 403
    session = c.cookies["jobsched_session"]
    assert c.post("/dashboard/logout", data={"csrf": csrf}).status_code == 303
    r = httpx.get(live.url + "/dashboard/jobs", cookies={"jobsched_session": session})
    assert r.status_code == 303


def test_simulator_plots_are_listed_and_served_by_name_only(live):
    sim = live.home / "sim"
    sim.mkdir()
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    (sim / "allocation.png").write_bytes(png)
    (sim / "notes.txt").write_text("not an image")
    c = live.browser_client()
    page = c.get("/dashboard/sim").text
    assert 'src="/dashboard/sim/files/allocation.png"' in page and "notes.txt" not in page
    r = c.get("/dashboard/sim/files/allocation.png")
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    assert c.get("/dashboard/sim/files/notes.txt").status_code == 404
    assert c.get("/dashboard/sim/files/..%2Fstate.db").status_code == 404


def test_cli_prints_a_login_url_that_works_once(live):
    import os
    import subprocess
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(JOBSCHED_URL=live.url, JOBSCHED_TOKEN=live.token, PYTHONPATH=root)
    for args in (["--print-url"], []):  # without a display there is no browser to open: it says so
        out = subprocess.run([PY, "-m", "jobsched.cli.main", "dashboard", *args], env=env, cwd=root,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip()
        assert url.startswith(live.url + "/dashboard/login?code=") and live.token not in url
        assert ("no browser found" in out.stderr) == (not args)
        assert httpx.get(url).status_code == 200
        assert httpx.get(url).status_code == 401
    env["JOBSCHED_TOKEN"] = "wrong"
    out = subprocess.run([PY, "-m", "jobsched.cli.main", "dashboard", "--print-url"], env=env, cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "invalid bearer token" in out.stderr and not out.stdout
