"""The learner's path, end to end, in a real JupyterLab driven by a real browser.

JupyterLab is started through the project's own ``make lab`` (on 127.0.0.1, a
free port, a token, a temporary copy of the notebooks) and Debian's Chromium is
driven by Playwright. For each task the test opens the learner notebook, runs
every cell, waits for the score panel to render *as a widget*, asks for hints,
pastes the reference fix into the graded cell, re-runs it and checks that the
score rose and the attempts history shows both runs. Then it saves the notebook
and checks the saved file still reads well through nbconvert, as it would on
GitHub, with no widgets and no network.

Screenshots land in ``artifacts/`` (git-ignored): the panel before and after
the fix, the nbconvert page, and the whole page whenever a step fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter
from playwright.sync_api import expect, sync_playwright

from whipnb.core.result import RESULT_MIME, band_label
from whipnb.tasks import Task, get_task

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path(os.environ.get("WHIPNB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Task 1 and a harder task: the learner path must hold for more than the easy one.
BROWSER_TASKS = ("task1", "task6")
#: Generous bounds: a shared 2-core machine, a cold kernel importing torch.
SERVER_START_S = 180
KERNEL_START_S = 180
FIRST_PANEL_S = 420
REGRADE_S = 300
UI_STEP_MS = 60_000
expect.set_options(timeout=UI_STEP_MS)
#: The score panel as the widget manager renders it (the HTML fallback has no widget-vbox).
PANEL = ".jp-CodeCell .widget-vbox.whipnb-panel"


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed through ``make browser`` when missing.

    A missing browser fails the test with the reason: it never skips."""
    if not CHROMIUM.exists():
        install = subprocess.run(
            ["make", "--no-print-directory", "browser", f"CHROMIUM={CHROMIUM}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if not CHROMIUM.exists():
            pytest.fail(
                f"The browser test needs Chromium at {CHROMIUM}, and `make browser` could not "
                f"install it (exit {install.returncode}). Install Debian's `chromium` package "
                f"(apt-get install chromium) or set WHIPNB_CHROMIUM.\n"
                f"{install.stdout[-2000:]}\n{install.stderr[-2000:]}"
            )
    return CHROMIUM


def lab_settings(directory: Path) -> None:
    """A fresh user-settings folder: no news or update checks (no network here)."""
    plugin = directory / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True)
    settings = {"fetchNews": "false", "checkForUpdates": False}
    (plugin / "notification.jupyterlab-settings").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab from ``make lab`` on a copy of the notebooks; stopped at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    lab_settings(base / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    lab_args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token}"
    )
    log = base / "lab.log"
    with log.open("w") as output:
        # -o: never reinstall the venv underneath a running test session.
        server = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "lab"]
            + [f"LAB_DIR={root}", f"LAB_ARGS={lab_args}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: make, jupyter and kernels
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(server, url, token, log)
        yield Lab(url, token, root, log)
    finally:
        stop(server)


def wait_for_server(server: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`make lab` exited with {server.returncode}:\n{log_tail(log)}")
        with suppress(OSError), urllib.request.urlopen(request, timeout=5) as response:
            if response.status == 200:
                return
        time.sleep(1)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log_tail(log)}")


def stop(server: subprocess.Popen) -> None:
    """Stop make, JupyterLab and its kernels: the process group this test started."""
    if server.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(chromium: Path, tmp_path_factory: pytest.TempPathFactory):
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_FLAGS,
            # Tall enough to hold a whole panel: JupyterLab scrolls inside the page,
            # so a taller panel could not be pictured in one screenshot.
            viewport={"width": 1280, "height": 2400},
        )
        context.set_default_timeout(UI_STEP_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


@contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:
    """Keep a picture of the whole page when a step fails: what the learner would see."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with suppress(Exception):
            page.screenshot(path=ARTIFACTS / f"{name}-failure.png", full_page=True)
        raise


# ---------------------------------------------------------------- page helpers


def panel_score(panel) -> tuple[float, str]:
    score = float(panel.locator(".whipnb-score").inner_text())
    return score, panel.locator(".whipnb-band").inner_text().strip()


def wait_for_kernel(page) -> None:
    """Wait, as a learner would, until the kernel is idle; when JupyterLab asks which
    kernel to start (it does when starting the preferred one is slow), pick its
    suggestion. Idle for a few seconds with no dialog open means ready."""
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    dialog = page.locator(".jp-Dialog")
    deadline, quiet = time.monotonic() + KERNEL_START_S, 0
    while quiet < 3:
        if time.monotonic() > deadline:
            pytest.fail(f"the notebook's kernel was not ready within {KERNEL_START_S} s")
        if dialog.count():
            dialog.locator("button.jp-mod-accept").click()
            quiet = 0
        else:
            quiet = quiet + 1 if idle.count() else 0
        time.sleep(1)


def run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def replace_cell_source(page, cell, source: str) -> None:
    """Select the whole cell and paste ``source``, as a learner pasting a fix would
    (a paste is inserted as is; typing would be re-indented by the editor)."""
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    editor.evaluate(
        """(element, text) => {
            const data = new DataTransfer();
            data.setData('text/plain', text);
            const paste = new ClipboardEvent('paste', {clipboardData: data, bubbles: true});
            element.dispatchEvent(paste);
        }""",
        source,
    )


def top_band_low(task: Task) -> float:
    """The lowest score of the task's best rubric row: where a full fix lands."""
    return max(row.low for row in task.rows)


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("task_id", BROWSER_TASKS)
def test_learner_fixes_the_notebook_in_jupyterlab(page, lab: Lab, task_id: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with screenshot_on_failure(page, task_id):
        learner_session(lab, page, get_task(task_id))


def learner_session(lab: Lab, page, task: Task) -> None:
    # A workspace per task, so JupyterLab does not restore the previous test's tabs.
    page.goto(f"{lab.url}/lab/workspaces/{task.id}/tree/{task.id}.ipynb?token={lab.token}")
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for()
    wait_for_kernel(page)
    run_all_cells(page)
    buggy_score = check_first_panel(page, task)
    ask_for_two_hints(page, task)
    page.locator(PANEL).screenshot(path=ARTIFACTS / f"{task.id}-panel-buggy.png")

    graded = page.locator(".jp-CodeCell", has=page.locator(".widget-vbox.whipnb-panel"))
    replace_cell_source(page, graded, f"%%whip_grade {task.id}\n{task.solution_source}")
    page.keyboard.press("Shift+Enter")
    fixed_score, fixed_band = check_panel_after_fix(page, task, buggy_score)
    page.locator(PANEL).screenshot(path=ARTIFACTS / f"{task.id}-panel-fixed.png")

    saved = save_notebook(page, lab.root / f"{task.id}.ipynb")
    (bundle,) = result_bundles(saved)
    assert f"{bundle['score']:.3f}" == f"{fixed_score:.3f}", "the widget shows the bundle's score"
    check_saved_notebook_reads_without_widgets(page, saved, task.id, fixed_score, fixed_band)


def check_first_panel(page, task: Task) -> float:
    """The buggy script's panel, rendered by the widget manager; returns its score."""
    panel = page.locator(PANEL)
    panel.wait_for(timeout=FIRST_PANEL_S * 1000)
    fallback = page.locator("[data-mime-type='text/html'] .whipnb-panel")
    assert fallback.count() == 0, "JupyterLab showed the HTML fallback instead of the widget"
    score, band = panel_score(panel)
    assert band == band_label(score)
    assert score < top_band_low(task), "the buggy script must not reach the top band"
    assert panel.locator(".whipnb-fail").count() >= 1, "the panel names what to fix"
    return score


def ask_for_two_hints(page, task: Task) -> None:
    hints = page.locator(f"{PANEL} .whipnb-hint")
    expect(hints).to_have_count(0)  # nothing shown before it is asked for
    for clicks in (1, 2):
        page.locator(f"{PANEL} button.whipnb-hint-button").click()
        expect(hints).to_have_count(clicks)  # exactly one more per click
    expect(hints.nth(0)).to_have_text(task.hints[0])


def check_panel_after_fix(page, task: Task, buggy_score: float) -> tuple[float, str]:
    """The re-run's panel: a higher score, both attempts listed, the hints still there."""
    attempts = page.locator(f"{PANEL} .whipnb-attempt")
    attempts.nth(1).wait_for(timeout=REGRADE_S * 1000)
    panel = page.locator(PANEL)
    score, band = panel_score(panel)
    assert score > buggy_score
    assert score >= top_band_low(task) and band == band_label(score)
    assert panel.locator(".whipnb-plot").count() == 1, "the loss curve is drawn"
    history = attempts.all_inner_texts()
    assert len(history) == 2
    assert f"{buggy_score:.3f}" in history[0] and f"{score:.3f}" in history[1]
    expect(panel.locator(".whipnb-hint")).to_have_count(2)  # kept across re-runs
    return score, band


def result_bundles(notebook: nbformat.NotebookNode) -> list[dict]:
    return [
        output["data"][RESULT_MIME]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if RESULT_MIME in output.get("data", {})
    ]


def save_notebook(page, path: Path) -> nbformat.NotebookNode:
    before = path.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 60
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert path.stat().st_mtime_ns != before, "JupyterLab did not save the notebook"
    return nbformat.read(path, as_version=4)


def check_saved_notebook_reads_without_widgets(
    page, notebook: nbformat.NotebookNode, task_id: str, score: float, band: str
) -> None:
    """What GitHub or nbconvert show of the saved notebook: the HTML fallback."""
    body, _ = HTMLExporter().from_notebook_node(notebook)
    html_path = ARTIFACTS / f"{task_id}-nbconvert.html"
    html_path.write_text(body, encoding="utf-8")
    page.route("http*://**", lambda route: route.abort())  # offline, like a plain viewer
    page.goto(html_path.as_uri())
    fallback = page.locator(".jp-RenderedHTMLCommon .whipnb-panel")
    fallback.wait_for()
    text = fallback.inner_text()
    assert f"{score:.3f}" in text and band in text
    assert "Working" in text and "Your attempts this session (2)" in text
    fallback.screenshot(path=ARTIFACTS / f"{task_id}-nbconvert-panel.png")
