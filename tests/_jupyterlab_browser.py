"""Drive the curriculum's notebooks in JupyterLab inside headless Chromium (used by test_browser.py).

Three pieces, each cleaned up by its owner even when a test fails:

* ``ensure_chromium`` finds Debian's Chromium, installing ``chromium`` and ``chromium-driver``
  with apt-get when absent and possible (root, apt-get present).
* ``JupyterLabServer`` starts JupyterLab from this venv on 127.0.0.1 with a random port and
  token, a private config/runtime/settings/workspaces directory (no user settings leak in),
  news, update checks, autosave and windowed notebook rendering turned off, in its own process
  group so ``stop`` kills the server and its kernels together.
* ``NotebookPage`` opens one notebook, runs all cells from the Run menu, waits for the kernel
  and collects error outputs and widget views from the DOM.
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
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APT_INSTALL_TIMEOUT_S = 900
SERVER_START_TIMEOUT_S = 90

# Lab settings written into the private user-settings directory.
LAB_SETTINGS = {
    # no news popup, no update check, no notification toasts over the notebook
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False,
                                                    "doNotDisturbMode": True},
    # running a notebook must never write its outputs into the committed file
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # every cell stays in the DOM, so outputs below the fold can be inspected
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

# A Python exception as rendered in an output: "Traceback" or "SomeError: message" at a line start.
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception)\b.*:", re.MULTILINE)
WIDGET_FAILURE_TEXTS = ("Error displaying widget", "Loading widget...", "Model not found")
# The text/plain fallback of a widget, shown when the page cannot render widgets at all.
WIDGET_AS_TEXT = re.compile(r"^\w+\(children=\(", re.MULTILINE)
# Widget views are rendered into a Lumino Panel output (other MIME renderers are plain widgets),
# and an output that failed to render a widget keeps the widget manager's message.
WIDGET_OUTPUT = ".jp-Notebook .jp-OutputArea-output.lm-Panel"


def find_chromium() -> str | None:
    """Path of an installed Chromium, or None."""
    for candidate in CHROMIUM_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """``(path, note)``: Chromium's path (installed from Debian's packages when absent and we are
    root with apt-get), or ``(None, why it could not be found or installed)``."""
    path = find_chromium()
    if path:
        return path, f"found {path}"
    if shutil.which("apt-get") is None:
        return None, "Chromium is not installed and apt-get is not available to install it"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return None, "Chromium is not installed and installing it needs root (apt-get install chromium chromium-driver)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = "apt-get update -q && apt-get install -y -q chromium chromium-driver"
    try:
        result = subprocess.run(["bash", "-c", command], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=APT_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"'{command}' did not finish within {APT_INSTALL_TIMEOUT_S} s"
    path = find_chromium()
    if result.returncode != 0 or path is None:
        return None, f"'{command}' failed (exit {result.returncode}): {result.stderr[-2000:]}"
    return path, f"installed {path} with apt-get"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class JupyterLabServer:
    """JupyterLab serving ``root_dir`` from this interpreter; use as a context manager."""

    root_dir: Path
    work_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "jupyterlab.log"

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def notebook_url(self, relative_path: str) -> str:
        """The notebook in a fresh workspace of its own, so no earlier notebook's tab is restored."""
        workspace = "".join(c if c.isalnum() else "-" for c in Path(relative_path).stem)
        return f"{self.base_url}/lab/workspaces/{workspace}/tree/{relative_path}?reset&token={self.token}"

    def _write_private_config(self) -> dict[str, str]:
        config_dir, runtime_dir = self.work_dir / "config", self.work_dir / "runtime"
        settings_dir, workspaces_dir = self.work_dir / "user-settings", self.work_dir / "workspaces"
        for directory in (config_dir, runtime_dir, settings_dir, workspaces_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for plugin, values in LAB_SETTINGS.items():
            package, name = plugin.rsplit("/", 1)
            target = settings_dir / package / f"{name}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        (config_dir / "jupyter_server_config.json").write_text(json.dumps({
            "LabApp": {
                "news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                "user_settings_dir": str(settings_dir), "workspaces_dir": str(workspaces_dir),
            },
            "LabServerApp": {"user_settings_dir": str(settings_dir), "workspaces_dir": str(workspaces_dir)},
        }))
        return {"JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_RUNTIME_DIR": str(runtime_dir),
                "JUPYTERLAB_SETTINGS_DIR": str(settings_dir), "JUPYTERLAB_WORKSPACES_DIR": str(workspaces_dir),
                "JUPYTER_PREFER_ENV_PATH": "1"}

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **self._write_private_config(), **self.env_overrides)
        command = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
        ]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, env=env, cwd=self.root_dir, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{self.log_tail()}")

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.base_url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so one notebook's memory is freed before the next runs."""
        for kernel in self.api("GET", "/api/kernels") or []:
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def stop(self) -> None:
        """Terminate the server's whole process group (kernels included); kill what remains."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # kernels share the group: make sure none outlives the server
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> JupyterLabServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@dataclass
class NotebookRun:
    """What the DOM showed after running all cells of one notebook."""

    code_cells: int
    execution_counts: list[str]
    errors: list[str]
    widget_views: int
    widget_failures: list[str]
    seconds: float


class NotebookPage:
    """One notebook open in a Playwright page of JupyterLab."""

    def __init__(self, page, server: JupyterLabServer, relative_path: str) -> None:
        self.page = page
        self.server = server
        self.relative_path = relative_path

    def open(self, expected_cells: int, timeout_ms: float = 90_000) -> None:
        """Load the notebook and wait until all its cells are in the DOM and its kernel is idle."""
        self.page.goto(self.server.notebook_url(self.relative_path), wait_until="domcontentloaded",
                       timeout=timeout_ms)
        self.page.wait_for_function(
            """(expected) => {
                const cells = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length;
                const bar = document.querySelector('#jp-main-statusbar');
                return cells === expected && bar !== null && /\\|\\s*Idle/.test(bar.textContent)
                       && !bar.textContent.includes('No Kernel');
            }""",
            arg=expected_cells,
            timeout=timeout_ms,
            polling=250,
        )
        self.wait_for_kernel_idle(timeout_ms)

    def kernel_status(self) -> str | None:
        indicator = self.page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator").first
        return indicator.get_attribute("data-status") if indicator.count() else None

    def wait_for_kernel_idle(self, timeout_ms: float) -> None:
        self.page.wait_for_function(
            """() => {
                const node = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
                return node !== null && node.getAttribute('data-status') === 'idle';
            }""",
            timeout=timeout_ms,
        )

    def run_all_cells(self) -> None:
        """Run > Run All Cells, from the menu bar as a reader would."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()

    def wait_until_finished(self, timeout_ms: float) -> None:
        """Every code cell has an execution count and the kernel is idle (or an error stopped the run)."""
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
                if (prompts.some(p => p.textContent.includes('*'))) return false;
                const node = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
                if (node === null || node.getAttribute('data-status') !== 'idle') return false;
                const errored = document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
                return prompts.every(p => /\\[\\d+\\]/.test(p.textContent)) || errored !== null;
            }""",
            timeout=timeout_ms,
            polling=500,
        )

    def wait_for_widgets(self, timeout_ms: float) -> None:
        """Every widget output holds a rendered view (or a failure message) — not the placeholder."""
        self.page.wait_for_function(
            f"""() => [...document.querySelectorAll({json.dumps(WIDGET_OUTPUT)})]
                .every(node => node.querySelector('.jupyter-widgets') !== null
                               && !node.textContent.includes('Loading widget...'))""",
            timeout=timeout_ms,
            polling=250,
        )

    def collect(self, seconds: float) -> NotebookRun:
        page = self.page
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
        texts = outputs.all_inner_texts()
        errors = [text for text in texts if ERROR_TEXT.search(text)]
        failures = [text[:300] for text in texts if any(bad in text for bad in WIDGET_FAILURE_TEXTS)]
        failures += [f"widget shown as text (no widget manager in the page): {text[:200]}"
                     for text in texts if WIDGET_AS_TEXT.search(text)]
        views = page.locator(WIDGET_OUTPUT)
        rendered = views.evaluate_all("nodes => nodes.filter(n => n.querySelector('.jupyter-widgets') !== null).length")
        if rendered < views.count():
            failures.append(f"{views.count() - rendered} widget output(s) without a rendered .jupyter-widgets view")
        return NotebookRun(len(prompts), prompts, errors, rendered, failures, seconds)
