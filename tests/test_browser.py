"""The learner's path, end to end, in a real JupyterLab driven by a real browser.

JupyterLab is started through the project's own ``make lab`` (on 127.0.0.1, a
free port, a token, a temporary copy of the notebooks) and Debian's Chromium is
driven by Playwright. For each task the test opens the learner notebook, runs
every cell, waits for the score panel to render *as a widget* (its static twin
hidden), asks for every hint and then the fix, pastes the reference fix into the
graded cell, re-runs it and checks that the score rose and the attempts history
shows both runs. Then it saves the notebook, restarts the kernel, shuts it down,
closes the notebook and opens it again with a new kernel: each time exactly one
whole panel must show, never "Error displaying widget". For task 1 it also
switches to JupyterLab's dark theme and reads the plot's pixels. Last, the saved
file must read well through nbconvert, as it would on GitHub, with no widgets and
no network.

Screenshots land in ``artifacts/`` (git-ignored): the panel before and after
the fix, after reopening, in the dark theme, the nbconvert page, and the whole
page whenever a step fails.
"""

from __future__ import annotations

import io
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
from PIL import Image
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
#: The static panel, an output of its own beside the widget's.
STATIC_PANEL = ".jp-CodeCell [data-mime-type='text/html'] .whipnb-static-panel"
ANY_PANEL = ".jp-CodeCell .whipnb-panel"
#: Task 1 also goes through the dark theme (once is enough: it is the same panel).
DARK_THEME_TASK = "task1"


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


def menu(page, *path: str) -> None:
    """Click through JupyterLab's menu bar: ``menu(page, "Kernel", "Restart Kernel…")``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(path[0])}$")).click()
    for label in path[1:]:
        page.locator(
            ".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")
        ).last.click()


def run_all_cells(page) -> None:
    menu(page, "Run", "Run All Cells")


def visible_panels(page):
    return page.locator(ANY_PANEL).filter(visible=True)


def expect_one_whole_panel(page, score: float, when: str) -> None:
    """Exactly one panel shows (never the widget and its static twin, never neither),
    with the saved score, and no widget error."""
    expect(visible_panels(page), f"one panel {when}").to_have_count(1)
    panel = visible_panels(page)
    assert f"{panel_score(panel)[0]:.3f}" == f"{score:.3f}", when
    assert panel.locator(".whipnb-plot").filter(visible=True).count() == 1, when
    errors = page.get_by_text("Error displaying widget").filter(visible=True)
    expect(errors, f"no widget error {when}").to_have_count(0)


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
    ask_for_every_hint_then_the_fix(page, task)
    page.locator(PANEL).screenshot(path=ARTIFACTS / f"{task.id}-panel-buggy.png")

    graded = page.locator(".jp-CodeCell", has=page.locator(".widget-vbox.whipnb-panel"))
    replace_cell_source(page, graded, f"%%whip_grade {task.id}\n{task.solution_source}")
    page.keyboard.press("Shift+Enter")
    fixed_score, fixed_band = check_panel_after_fix(page, task, buggy_score)
    page.locator(PANEL).screenshot(path=ARTIFACTS / f"{task.id}-panel-fixed.png")

    saved = save_notebook(page, lab.root / f"{task.id}.ipynb")
    (bundle,) = result_bundles(saved)
    assert f"{bundle['score']:.3f}" == f"{fixed_score:.3f}", "the widget shows the bundle's score"
    check_panel_survives_restart_and_reopening(lab, page, task, fixed_score)
    if task.id == DARK_THEME_TASK:
        check_dark_theme(page, task)
    check_saved_notebook_reads_without_widgets(page, saved, task.id, fixed_score, fixed_band)


def check_first_panel(page, task: Task) -> float:
    """The buggy script's panel, rendered by the widget manager; returns its score."""
    panel = page.locator(PANEL)
    panel.wait_for(timeout=FIRST_PANEL_S * 1000)
    assert page.locator(STATIC_PANEL).count() == 1, "the static twin is there, for reopening"
    expect(visible_panels(page), "only the widget shows, its static twin hidden").to_have_count(1)
    score, band = panel_score(panel)
    assert band == band_label(score)
    assert score < top_band_low(task), "the buggy script must not reach the top band"
    assert panel.locator(".whipnb-fail").count() >= 1, "the panel names what to fix"
    return score


def ask_for_every_hint_then_the_fix(page, task: Task) -> None:
    """One hint per click, the fix only after the last hint, from the findings' diagnoses."""
    hints = page.locator(f"{PANEL} .whipnb-hint")
    button = page.locator(f"{PANEL} button.whipnb-hint-button")
    fix = page.locator(f"{PANEL} .whipnb-fix-step")
    expect(hints).to_have_count(0)  # nothing shown before it is asked for
    for clicks in range(1, len(task.hints) + 1):
        button.click()
        expect(hints).to_have_count(clicks)  # exactly one more per click
        expect(fix).to_have_count(0)
    expect(hints.nth(0)).to_have_text(task.hints[0])
    expect(button).to_have_text("Show the fix")
    button.click()
    expect(fix).to_have_count(1)
    expect(button).to_be_disabled()
    assert fix.inner_text().startswith("The fix"), fix.inner_text()


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
    expect(panel.locator(".whipnb-hint")).to_have_count(len(task.hints))  # kept across re-runs
    expect(panel.locator(".whipnb-fix-step")).to_contain_text("nothing left to fix")
    return score, band


def check_panel_survives_restart_and_reopening(lab: Lab, page, task: Task, score: float) -> None:
    """Restart the kernel, shut it down, close the notebook, open it again (a new
    kernel, none of the old widget models): the whole panel shows each time."""
    menu(page, "Kernel", "Restart Kernel…")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    wait_for_kernel(page)
    expect_one_whole_panel(page, score, "after a kernel restart")
    menu(page, "Kernel", "Shut Down Kernel")
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(0)
    expect_one_whole_panel(page, score, "with no kernel")
    menu(page, "File", "Close Tab")
    expect(page.locator(".jp-NotebookPanel")).to_have_count(0)
    reopen = f"{lab.url}/lab/workspaces/{task.id}-reopened/tree/{task.id}.ipynb?token={lab.token}"
    page.goto(reopen)
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for()
    wait_for_kernel(page)
    expect_one_whole_panel(page, score, "after closing and reopening the notebook")
    panel = visible_panels(page)
    assert "whipnb-static-panel" in (panel.get_attribute("class") or "")
    open_static_hints_to_the_fix(panel, task)
    panel.screenshot(path=ARTIFACTS / f"{task.id}-panel-reopened.png")


def open_static_hints_to_the_fix(panel, task: Task) -> None:
    """The saved panel's hints: nested, one more per click, the fix last."""
    summaries = panel.locator("details.whipnb-static-hint > summary")
    for step in range(len(task.hints)):
        expect(summaries.filter(visible=True)).to_have_count(step + 1)
        summaries.nth(step).click()
    expect(summaries.filter(visible=True)).to_have_count(len(task.hints) + 1)
    expect(summaries.nth(len(task.hints))).to_have_text("Show the fix")
    summaries.nth(len(task.hints)).click()
    expect(panel.locator(".whipnb-fix").filter(visible=True)).to_contain_text("nothing left to fix")


def check_dark_theme(page, task: Task) -> None:
    """In JupyterLab Dark the panel's text is light and the plot is dark with light ink:
    read from the computed styles and from the plot's own pixels on screen."""
    menu(page, "Settings", "Theme", "JupyterLab Dark")
    page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
    try:
        panel = visible_panels(page)
        plot = panel.locator("img.whipnb-plot").filter(visible=True)
        expect(plot).to_have_css("filter", re.compile(r"invert\(1\)"))
        text = panel.locator(".whipnb-message").evaluate("e => getComputedStyle(e).color")
        assert luminance(text) > 0.5, f"the panel's text is light on a dark page ({text})"
        page.wait_for_timeout(500)  # the theme's own transition
        picture = Image.open(io.BytesIO(plot.screenshot())).convert("L")
        pixels = picture.tobytes()
        dark = sum(value < 60 for value in pixels) / len(pixels)
        light = sum(value > 190 for value in pixels)
        assert dark > 0.8, f"the plot's background is dark ({dark:.0%} of its pixels)"
        assert light > 300, "its axes, labels and curves are drawn in light ink"
        plot.screenshot(path=ARTIFACTS / f"{task.id}-plot-dark.png")
    finally:
        menu(page, "Settings", "Theme", "JupyterLab Light")
        page.locator("body[data-jp-theme-light='true']").wait_for(state="attached")


def luminance(css_colour: str) -> float:
    """Relative luminance of a computed ``rgb(r, g, b)`` colour (WCAG)."""
    channels = [int(c) / 255 for c in re.findall(r"[\d.]+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


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
