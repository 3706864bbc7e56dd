"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python API;
no browser is downloaded): log in through the one-time URL, see a job's row, open its detail, see the
memory charts of an OOM-resized job, cancel a running job, and see a workflow's DAG.

Screenshots go to $JOBSCHED_DASHBOARD_SCREENSHOTS when set (docs/img holds the ones in the docs).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from jobsched.sdk.client import Client
from tests.dashboard.conftest import PY, job

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python API only)")
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and os.path.exists(p)), None)
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)",
                allow_module_level=True)
expect = playwright_api.expect
HOG = str(Path(__file__).resolve().parents[2] / "benchmarks" / "programs" / "memhog.py")
SHOTS = os.environ.get("JOBSCHED_DASHBOARD_SCREENSHOTS")
DIAMOND = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "diamond"},
           "spec": {"entrypoint": "main", "templates": [
               {"name": "main", "dag": {"tasks": [
                   {"name": "prepare", "template": "step"},
                   {"name": "train-a", "template": "step", "dependencies": ["prepare"]},
                   {"name": "train-b", "template": "step", "depends": "prepare"},
                   {"name": "evaluate", "template": "step", "depends": "train-a && train-b.Succeeded"}]}},
               {"name": "step", "container": {"image": "python", "command": [PY, "-c", "print('ok')"]}}]}}


@pytest.fixture
def page(live):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1360, "height": 900})
        pg.set_default_timeout(30_000)
        try:
            yield pg
        finally:
            browser.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"), full_page=True)


def login(live, page) -> None:
    url = Client(url=live.url, token=live.token, autostart=False).dashboard_login_url()
    page.goto(url)
    expect(page).to_have_url(f"{live.url}/dashboard/jobs")
    expect(page.locator("h1")).to_have_text("Jobs")


def wait_phase(live, name: str, phases: tuple[str, ...], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while live.service.get("default", name).phase.value not in phases:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_login_row_detail_and_memory_charts_of_an_oom_resized_job(live, page):
    if live.runtime.backend.enforcement() == "watchdog":
        pytest.skip("needs a memory cgroup: the OOM kill is the cgroup's")
    live.service.submit(job("memhog", [PY, HOG, "plateau", "400", "--ramp", "1", "--hold", "2"],
                            memory="150Mi", maxRetries=3))
    login(live, page)
    row = page.locator('tr[data-job="default/memhog"]')
    expect(row).to_be_visible()
    shot(page, "jobs")
    row.get_by_role("link", name="memhog").click()
    expect(page.locator("h1")).to_have_text("memhog")
    expect(page.locator("#job-phase")).to_have_text("Succeeded", timeout=180_000)
    st = live.service.get("default", "memhog")
    assert len(st.attempts) >= 2 and st.attempts[0].reason == "OOMKilled"
    page.reload()  # the finished job's page, drawn once
    charts = page.locator('figure.mem-chart[data-drawn="1"]')
    expect(charts).to_have_count(len(st.attempts))
    for i in range(len(st.attempts)):
        fig = charts.nth(i)
        expect(fig.locator("canvas").first).to_be_visible()
        assert int(fig.get_attribute("data-points") or 0) > 0
    expect(charts.first).to_have_attribute("data-oom", "1")  # the OOM kill is marked
    expect(charts.first.locator(".u-legend")).to_contain_text("limit")
    expect(page.locator("table.attempts tr.oom")).to_have_count(1)
    expect(page.locator("pre.logs")).to_contain_text("plateau at 400 MiB")
    shot(page, "job")


def test_live_jobs_table_and_cancel_a_running_job_from_the_ui(live, page):
    live.service.submit(job("sleeper", [PY, "-c", "import time; print('sleeping', flush=True); time.sleep(120)"]))
    wait_phase(live, "sleeper", ("Running",))
    login(live, page)
    live.service.submit(job("late", [PY, "-c", "pass"]))  # the table polls: the row appears without a reload
    expect(page.locator('tr[data-job="default/late"]')).to_be_visible()
    page.get_by_role("link", name="sleeper").click()
    expect(page.locator("#job-phase")).to_have_text("Running")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-phase")).to_have_text("Cancelled", timeout=60_000)
    assert live.service.get("default", "sleeper").phase.value == "Cancelled"
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)


def test_workflow_dag_queues_and_nodes(live, page):
    ctl = live.runtime_workflows
    st = ctl.submit(DIAMOND, {})
    ctl.wait(st.namespace, st.name, 120)
    login(live, page)
    page.get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="diamond").click()
    nodes = page.locator("div.dag svg g.node")
    expect(nodes).to_have_count(5)
    expect(page.locator('g.node[data-phase="Succeeded"]')).to_have_count(5)
    expect(page.locator("div.dag svg line.edge")).to_have_count(5)
    shot(page, "workflow")
    # A queue with a quota of one CPU: two 500m jobs run, a third waits.
    live.service.apply_queue({"metadata": {"name": "research"},
                              "spec": {"quota": {"cpu": "1", "memory": "2Gi"}, "weight": 3}})
    names = ["trainer-1", "trainer-2", "trainer-3"]
    for name in names:
        manifest = job(name, [PY, "-c", "import time; time.sleep(120)"], memory="256Mi", queue="research")
        manifest["spec"]["template"]["resources"]["requests"]["cpu"] = "500m"
        live.service.submit(manifest)
    for name in names[:2]:
        wait_phase(live, name, ("Running",))
    try:
        page.get_by_role("link", name="Queues").click()
        research = page.locator('tr[data-queue="research"]')
        expect(research).to_contain_text("1 / 1 (100.0%)")  # two 500m of one CPU
        expect(research.locator("td").nth(2)).to_have_text("75.0%")  # weight 3 of 4
        expect(research.locator("td").nth(6)).to_have_text("1")  # pending
        expect(research.locator("td").nth(7)).to_have_text("2")  # admitted
        shot(page, "queues")
        page.get_by_role("link", name="Nodes").click()
        expect(page.locator('tr[data-node="local"] td').nth(2)).to_contain_text("512Mi /")
        shot(page, "nodes")
    finally:
        for name in names:
            live.service.cancel("default", name)
        for name in names:
            wait_phase(live, name, ("Cancelled",))
    (live.home / "sim").mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "docs" / "img" / "allocation.png", live.home / "sim")
    page.get_by_role("link", name="Simulator").click()
    plot = page.get_by_role("img", name="allocation.png")
    expect(plot).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", plot.element_handle()) > 0  # the PNG loaded
    shot(page, "sim")
