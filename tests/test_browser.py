"""JupyterLab in a real browser: every notebook opens, runs all its cells, and its widgets render.

nbval and papermill execute notebooks but never render a widget; here headless Chromium runs
JupyterLab from this venv, clicks Run > Run All Cells in each curriculum notebook, and checks
the page: no error output, every widget view rendered (no "Error displaying widget" or a
"Loading widget..." placeholder left), and in notebook 00 moving the video browser's frame
slider changes the frame the kernel sends back. A screenshot per notebook is saved under
``artifacts/browser/``.

Chromium comes from Debian's packages (installed with apt-get when absent and possible); the
test is skipped, loudly, only when no Chromium can be found or installed.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import nbformat
import pytest

from _jupyterlab_browser import CHROMIUM_ARGS, WIDGET_OUTPUT, JupyterLabServer, NotebookPage, ensure_chromium

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = REPO / "artifacts" / "browser"
PROFILE = os.environ.get("SECO_LAB_PROFILE", "smoke")
# Seconds one notebook may take to run all its cells (smoke notebooks take seconds to a minute).
NOTEBOOK_TIMEOUT_S = float(os.environ.get("SECO_LAB_BROWSER_TIMEOUT", 300 if PROFILE == "smoke" else 3600))
WIDGET_RENDER_TIMEOUT_S = 60
INTERACTION_TIMEOUT_S = 60
VIEWPORT = {"width": 1400, "height": 2000}
FRAME_CAPTION = re.compile(r"frame (\d+) \((\d+) of (\d+) shown\)")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path, note = ensure_chromium()
    if path is None:
        message = f"BROWSER TEST SKIPPED: no Chromium ({note}). Install it: apt-get install -y chromium chromium-driver"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    with JupyterLabServer(REPO, tmp_path_factory.mktemp("jupyterlab"), {"SECO_LAB_PROFILE": PROFILE}) as server:
        yield server


@pytest.fixture(scope="module")
def timings():
    results: dict[str, float] = {}
    yield results
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(results, indent=2))


def _frame_caption(page) -> tuple[str, int]:
    """Text of the video browser's caption and the frame position it names (0-based)."""
    for text in page.locator(".jp-OutputArea-output .widget-label").all_inner_texts():
        match = FRAME_CAPTION.search(text)
        if match:
            return text, int(match.group(2)) - 1
    raise AssertionError("notebook 00: no video browser caption ('frame N (i of n shown)') on the page")


def _move_video_browser_slider(page) -> None:
    """Press ArrowRight on the frame slider's handle; the kernel must send a new frame back."""
    slider = page.locator(".widget-hslider").filter(has=page.locator(".widget-label", has_text=re.compile(r"^frame$")))
    assert slider.count() >= 1, "notebook 00: the video browser's frame slider did not render"
    box = page.locator(".widget-vbox").filter(has=slider.first).last
    image = box.locator("img").first
    caption_before, position_before = _frame_caption(page)
    image_before = image.get_attribute("src")
    handle = slider.first.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    presses = 3
    for _ in range(presses):
        handle.press("ArrowRight")
    expected_shown = position_before + presses + 1  # the caption counts frames from 1
    try:
        page.wait_for_function(
            """([pattern, shown]) => [...document.querySelectorAll('.jp-OutputArea-output .widget-label')]
                  .some(n => { const m = new RegExp(pattern).exec(n.textContent); return m && +m[2] === shown; })""",
            arg=[FRAME_CAPTION.pattern, expected_shown],
            timeout=INTERACTION_TIMEOUT_S * 1000,
        )
    except Exception:  # fall through to the assertion below, which names what the page shows
        pass
    caption_after, position_after = _frame_caption(page)
    assert position_after == position_before + presses, (caption_before, caption_after)
    readout = slider.first.locator(".widget-readout").inner_text().strip()
    assert readout == str(position_after), f"slider readout {readout!r} does not match caption {caption_after!r}"
    page.wait_for_function("([img, before]) => img.getAttribute('src') !== before",
                           arg=[image.element_handle(), image_before], timeout=INTERACTION_TIMEOUT_S * 1000)


def test_the_browser_test_has_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb to open in JupyterLab"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_jupyterlab_and_its_widgets_render(notebook: Path, browser, lab_server, timings):
    committed = notebook.read_bytes()
    expected_cells = len(nbformat.reads(committed.decode(), as_version=4).cells)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    started = time.monotonic()
    try:
        notebook_page = NotebookPage(page, lab_server, f"notebooks/{notebook.name}")
        notebook_page.open(expected_cells)
        notebook_page.run_all_cells()
        notebook_page.wait_until_finished(NOTEBOOK_TIMEOUT_S * 1000)
        run_seconds = time.monotonic() - started
        try:
            notebook_page.wait_for_widgets(WIDGET_RENDER_TIMEOUT_S * 1000)
        except Exception:  # reported below, with what the page shows
            pass
        run = notebook_page.collect(run_seconds)
        timings[notebook.name] = round(run_seconds, 1)

        assert not run.errors, f"{notebook.name}: error output in the browser:\n" + "\n---\n".join(run.errors)
        unexecuted = [i for i, prompt in enumerate(run.execution_counts) if not re.search(r"\[\d+\]", prompt)]
        assert not unexecuted, f"{notebook.name}: code cells {unexecuted} did not run ({run.execution_counts})"
        assert not run.widget_failures, f"{notebook.name}: widgets did not render: {run.widget_failures}"
        if notebook.name.startswith("00_"):
            assert run.widget_views >= 1, "notebook 00 shows the video browser, but no widget view rendered"
            _move_video_browser_slider(page)
        widget_errors = [error for error in page_errors if "widget" in error.lower()]
        assert not widget_errors, f"{notebook.name}: JavaScript errors from widgets: {widget_errors}"
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:  # show the first widget if there is one, else where the run ended
            focus = page.locator(WIDGET_OUTPUT)
            focus = focus if focus.count() else page.locator(".jp-Notebook .jp-Cell")
            if focus.count():
                focus.first.scroll_into_view_if_needed(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}.png"), full_page=True, timeout=30_000)
        except Exception as error:  # a failed screenshot must not hide the test's own failure
            warnings.warn(f"no screenshot of {notebook.name}: {error}", stacklevel=1)
        context.close()
        try:
            lab_server.shutdown_kernels()
        except Exception as error:
            warnings.warn(f"could not shut the kernels down after {notebook.name}: {error}", stacklevel=1)
        if notebook.read_bytes() != committed:
            notebook.write_bytes(committed)
            pytest.fail(f"{notebook.name} was modified on disk while it ran in JupyterLab (restored)")
