"""Execute the curriculum's notebooks headlessly and collect them into an HTML report.

``run_report`` runs each notebook with papermill (its ``parameters`` cell gets ``profile``,
and the data folder, subset and profile settings when they are given, injected), converts the
executed notebook to HTML with nbconvert, and writes
``index.html`` linking every notebook with its status and run time, plus a table of the key
numbers the notebooks saved with :func:`save_summary`. A report that runs some notebooks only
(``--notebooks 03,04``) keeps, in the same index, the rows and numbers of the others from the
last report run into the same folder with the same parameters (``notebook_runs.json`` there).
"""

from __future__ import annotations

import functools
import html
import importlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seco_lab import paths
from seco_lab.environment import configure_cpu_environment
from seco_lab.profiles import get_profile

if TYPE_CHECKING:
    from seco_lab.session import Session


RUN_RECORDS = "notebook_runs.json"  # in the report folder: the last run of each notebook, for partial re-runs


class NotebookFailed(RuntimeError):
    """A notebook raised while papermill executed it."""


@dataclass
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    seconds: float
    status: str  # "ok" | "failed"
    peak_rss_mib: float
    message: str = ""
    html_path: Path | None = None
    notebook_path: Path | None = None


@dataclass
class ReportResult:
    """Everything ``run_report`` produced."""

    out_dir: Path
    index_path: Path
    runs: list[NotebookRun] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)  # notebooks left out after one failed
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)  # notebook -> record of an earlier report run

    @property
    def ok(self) -> bool:
        return all(run.status == "ok" for run in self.runs)


def summary_dir(profile: str) -> Path:
    """Folder where notebooks of a profile leave their key numbers as JSON."""
    return paths.runs_dir() / profile / "summary"


def save_summary(profile: str, notebook: str, values: dict[str, Any], folder: Path | None = None) -> Path:
    """Record a notebook's key measured numbers (flat ``name -> value``) for the report index,
    in ``folder`` (default: :func:`summary_dir` of ``profile``, which the report reads)."""
    folder = Path(folder) if folder is not None else summary_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    path.write_text(json.dumps(values, indent=2, default=float))
    return path


def find_notebooks(selection: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """Ordered curriculum notebooks; ``selection`` holds name prefixes such as ``"00"``."""
    installed_default = folder is None and not paths.in_checkout()
    folder = folder or paths.notebooks_dir()
    notebooks = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        hint = ("; an installed seco_lab does not include the notebooks: run the report in a checkout of the "
                "project, or copy its notebooks/ folder there") if installed_default else ""
        raise FileNotFoundError(f"no curriculum notebooks (NN_name.ipynb) found in {folder}{hint}")
    if not selection:
        return notebooks
    chosen = []
    for prefix in selection:
        matches = [p for p in notebooks if p.name.startswith(prefix)]
        if not matches:
            names = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"no notebook matches {prefix!r}; the notebooks are: {names}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _peak_child_rss_mib() -> float:
    """Largest resident set of any finished child process (the kernels), in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


@functools.cache
def _encrypted_kernel_manager_class() -> type:
    """A kernel manager that gives the kernel CurveZMQ keys when its kernelspec supports them
    (ipykernel 7.4 does), instead of running it over plain TCP with a warning for every notebook."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class EncryptedKernelManager(AsyncKernelManager):
        @default("transport_encryption")
        def _default_transport_encryption(self) -> str:
            return "auto"

    return EncryptedKernelManager


# Notebooks that train with labels or classify videos: they need two classes with training videos.
CLASSIFYING_NOTEBOOKS = ("03", "04", "05")


def notebook_parameters(profile: str, data_root: str | Path | None = None, max_videos_per_class: int | None = None,
                        settings: list[str] | tuple[str, ...] = (),
                        classify: bool = True) -> tuple[dict[str, Any], Path]:
    """The parameters a report gives its notebooks, checked as a notebook's first cell checks
    them, and the run folder they share (the notebooks save their numbers in its ``summary``).
    A user's dataset is checked too (:func:`check_report_dataset`; ``classify``: for notebooks
    that classify).

    The run folder is the one a notebook would choose for these values
    (:func:`~seco_lab.session.default_run_dir`); it is passed to every notebook, so that those
    without a ``settings`` parameter (00, 01) save beside those with one.
    """
    from seco_lab.session import start

    lab = start(profile, data_root=data_root, max_videos_per_class=max_videos_per_class, settings=settings,
                prepare=False)
    if data_root is not None:
        check_report_dataset(lab, classify)
    parameters: dict[str, Any] = {"profile": profile, "run_dir": str(lab.run_dir.resolve())}
    if data_root is not None:
        parameters["data_root"] = str(lab.data_root.resolve())
    if max_videos_per_class is not None:
        parameters["max_videos_per_class"] = max_videos_per_class
    if lab.settings:
        parameters["settings"] = list(lab.settings)
    return parameters, lab.run_dir


def check_report_dataset(lab: Session, classify: bool = True) -> None:
    """What would stop the curriculum on a user's dataset, found before the first notebook runs:
    its layout, an empty train or test split, fewer usable training videos than one batch, fewer
    than two classes with training videos when ``classify`` (notebooks 03 to 05 need them), and
    (first) the paper profile on a CPU with no finished runs to reuse. The videos are indexed as
    notebook 00 indexes them (a progress bar; the cached index is reused after), so the counts are
    those of the videos training uses."""
    from seco_lab.engine.device import resolve_device

    finished_runs = any(lab.run_dir.glob("*/checkpoint.pt")) if lab.run_dir.is_dir() else False
    if lab.profile_name == "paper" and resolve_device(lab.device).type == "cpu" and not finished_runs:
        raise ValueError(f"the paper profile trains its runs for hundreds of epochs at 224 px, sized for GPUs, and "
                         f"this machine has none: train them where CUDA is (their folders, copied into "
                         f"{lab.run_dir}, are then reused), or run the report with --profile standard")
    spec, _ = lab.load_dataset(progress=True)
    counts = {split: len(spec.split(split)) for split in ("train", "test")}
    if not all(counts.values()):
        empty = [split for split, count in counts.items() if not count]
        raise ValueError(f"{lab.data_root}: the {' and '.join(empty)} split of this {spec.layout} dataset holds no "
                         f"video (train {counts['train']}, test {counts['test']}); the curriculum trains on the train "
                         "split and measures on the test split: python -m seco_lab data check "
                         f"{lab.data_root} shows what was found")
    more = " (or a larger --max-videos-per-class)" if lab.max_videos_per_class is not None else ""
    if counts["train"] < 2:
        raise ValueError(f"{lab.data_root}: 1 usable training video; every training step needs a batch of 2 or "
                         f"more: add videos{more}")
    batch_size = int(lab.section("train")["batch_size"])
    if counts["train"] < batch_size:
        raise ValueError(f"{lab.data_root}: {counts['train']} usable training videos, fewer than one batch of "
                         f"{batch_size}: add --set train.batch_size={counts['train']}{more}")
    train_classes = sorted({record.class_name for record in spec.split("train")})
    if classify and len(train_classes) < 2:
        raise ValueError(f"{lab.data_root}: one class with training videos ({train_classes[0]}); notebooks "
                         f"{', '.join(CLASSIFYING_NOTEBOOKS)} train with labels and classify videos, which needs at "
                         "least 2: run --notebooks 00,01,02 for the self-supervised part alone, or point --data at "
                         "the folder whose sub-folders are the classes (python -m seco_lab data check "
                         f"{lab.data_root} shows what was found)")


def execute_notebook(notebook: Path, out_dir: Path, profile: str,
                     parameters: dict[str, Any] | None = None) -> NotebookRun:
    """Run one notebook with papermill and write its executed copy and HTML into ``out_dir``.

    ``parameters`` (default ``{"profile": profile}``) go into the notebook's ``parameters``
    cell; those the cell does not declare are left out.
    """
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from nbconvert import HTMLExporter
    from papermill.exceptions import PapermillExecutionError

    declared = papermill.inspect_notebook(str(notebook))
    given = {"profile": profile, **(parameters or {})}
    executed = out_dir / notebook.name
    start = time.perf_counter()
    status, message = "ok", ""
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters={name: value for name, value in given.items() if name in declared},
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
            kernel_manager_class=_encrypted_kernel_manager_class(),
        )
    except PapermillExecutionError as error:
        status = "failed"
        message = (
            f"{notebook.name}: cell {error.exec_count} (index {error.cell_index}) raised "
            f"{error.ename}: {error.evalue}"
        )
    except DeadKernelError:
        status = "failed"
        message = (f"{notebook.name}: the kernel died {_last_started_cell(executed)} "
                   "(as it does when it runs out of memory)")
    seconds = time.perf_counter() - start
    html_path = None
    if executed.exists():
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
        html_path = executed.with_suffix(".html")
        html_path.write_text(body, encoding="utf-8")
    return NotebookRun(
        name=notebook.stem,
        seconds=seconds,
        status=status,
        peak_rss_mib=_peak_child_rss_mib(),
        message=message,
        html_path=html_path,
        notebook_path=executed if executed.exists() else None,
    )


def _last_started_cell(executed: Path) -> str:
    """Where the kernel was when it died: ``in cell N (index I)`` (``in the cell at index I``
    when it got no execution count), the last cell papermill started, or ``before its first cell``."""
    import nbformat

    if not executed.exists():
        return "before its first cell"
    cells = nbformat.read(executed, as_version=4).cells
    started = [(index, cell) for index, cell in enumerate(cells)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "before its first cell"
    index, cell = started[-1]
    count = cell.get("execution_count")
    return f"in cell {count} (index {index})" if count else f"in the cell at index {index}"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _read_run_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The records of ``out_dir``'s ``notebook_runs.json`` (none when missing or unreadable: a
    record only adds earlier rows to the index)."""
    try:
        records = json.loads((out_dir / RUN_RECORDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def earlier_runs(out_dir: Path, parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The notebooks an earlier report run into ``out_dir`` with the same ``parameters`` recorded."""
    return {name: record for name, record in _read_run_records(out_dir).items()
            if isinstance(record, dict) and record.get("parameters") == parameters}


def record_run(out_dir: Path, run: NotebookRun, parameters: dict[str, Any], summaries: Path) -> None:
    """Keep ``run`` in ``out_dir``'s ``notebook_runs.json``, with the numbers it saved in
    ``summaries`` when it ran to the end, for the index of a later partial re-run."""
    saved = summaries / f"{run.name}.json"
    values = json.loads(saved.read_text()) if run.status == "ok" and saved.exists() else {}
    records = _read_run_records(out_dir)
    records[run.name] = {
        "status": run.status, "seconds": run.seconds, "peak_rss_mib": run.peak_rss_mib, "message": run.message,
        "html": run.html_path.name if run.html_path else None, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "parameters": parameters, "summary": values,
    }
    temporary = out_dir / f".{RUN_RECORDS}.tmp"
    temporary.write_text(json.dumps(records, indent=1, default=str), encoding="utf-8")
    temporary.replace(out_dir / RUN_RECORDS)


def _notebook_row(name: str, html_name: str | None, status: str, seconds: str, rss: str, message: str) -> str:
    link = f'<a href="{html.escape(html_name)}">{html.escape(name)}</a>' if html_name else html.escape(name)
    css = "ok" if status == "ok" else "failed"
    return (f"<tr><td>{link}</td><td class='{css}'>{html.escape(status)}</td><td>{seconds}</td><td>{rss}</td>"
            f"<td>{html.escape(message)}</td></tr>")


def _summary_rows(notebook: str, values: dict[str, Any]) -> list[str]:
    return [f"<tr><td>{html.escape(notebook)}</td><td>{html.escape(str(key))}</td>"
            f"<td>{html.escape(_format_value(value))}</td></tr>" for key, value in values.items()]


def write_index(result: ReportResult, profile: str, summaries: Path | None = None) -> Path:
    """Write ``index.html``: one row per notebook, then the summary numbers saved in ``summaries``
    (default: :func:`summary_dir` of ``profile``) by the notebooks that ran to the end in this
    report; those an earlier run or a notebook that failed left there are not this run's. The
    notebooks of ``result.earlier`` that this run did not run get their recorded row and numbers,
    marked as an earlier run's."""
    rows: dict[str, str] = {}
    for run in result.runs:
        rows[run.name] = _notebook_row(run.name, run.html_path.name if run.html_path else None, run.status,
                                       f"{run.seconds:.1f}", f"{run.peak_rss_mib:.0f}", run.message)
    for name in result.not_run:
        rows[name] = _notebook_row(name, None, "not run", "", "", f"not run after {result.runs[-1].name} failed")
    earlier = {name: record for name, record in result.earlier.items() if name not in rows}
    for name, record in earlier.items():
        page = record.get("html")
        rows[name] = _notebook_row(
            name, page if page and (result.out_dir / page).exists() else None, str(record.get("status")),
            f"{record.get('seconds', 0.0):.1f}", f"{record.get('peak_rss_mib', 0.0):.0f}",
            f"not run this time: from the report run of {record.get('finished')}"
            + (f"; {record['message']}" if record.get("message") else ""))
    summary_rows = []
    finished = {run.name for run in result.runs if run.status == "ok"}
    for path in sorted((summaries or summary_dir(profile)).glob("*.json")):
        if path.stem in finished:
            summary_rows += _summary_rows(path.stem, json.loads(path.read_text()))
    for name, record in sorted(earlier.items()):
        if record.get("status") == "ok" and isinstance(record.get("summary"), dict):
            summary_rows += _summary_rows(f"{name} (earlier run)", record["summary"])
    total = sum(run.seconds for run in result.runs)
    run_parameters = "".join(f"<p>{html.escape(name)}: <code>{html.escape(str(value))}</code></p>\n"
                             for name, value in result.parameters.items() if name != "profile")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>seco_lab report — {profile}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }}
.ok {{ color: #1a7f37; }} .failed {{ color: #cf222e; font-weight: bold; }}
</style></head><body>
<h1>seco_lab report — profile <code>{html.escape(profile)}</code></h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")}; notebook time of this run {total:.1f} s.</p>
{run_parameters}
<h2>Notebooks</h2>
<table><tr><th>Notebook</th><th>Status</th><th>Run time (s)</th>
<th>Peak kernel RSS so far (MiB)</th><th>Message</th></tr>
{''.join(rows[name] for name in sorted(rows))}
</table>
<h2>Key numbers measured in this run{" (and, marked, in an earlier one)" if earlier else ""}</h2>
<table><tr><th>Notebook</th><th>Quantity</th><th>Value</th></tr>
{''.join(summary_rows) or '<tr><td colspan="3">no summary saved</td></tr>'}
</table>
</body></html>
"""
    index_path = result.out_dir / "index.html"
    index_path.write_text(page, encoding="utf-8")
    return index_path


NOTEBOOK_TOOLS = ("papermill", "nbconvert", "nbformat", "ipykernel")


def _check_notebook_tools() -> None:
    """Raise a ``RuntimeError`` naming the ``notebooks`` extra when a tool the report runs is missing."""
    missing = []
    for name in NOTEBOOK_TOOLS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise RuntimeError(f"the report needs {', '.join(missing)}, which the notebooks extra installs: "
                           "pip install 'seco_lab[notebooks]'")


def run_report(
    profile: str,
    selection: list[str] | None = None,
    out_dir: Path | None = None,
    stop_on_failure: bool = True,
    data_root: str | Path | None = None,
    max_videos_per_class: int | None = None,
    settings: list[str] | tuple[str, ...] = (),
) -> ReportResult:
    """Execute the selected notebooks in order for ``profile`` and write the report.

    ``data_root``, ``max_videos_per_class`` and ``settings`` reach every notebook's parameters
    cell (None and ``()``: the embedded dataset and the profile's values). The report goes to
    ``out_dir``, by default ``reports/<name of the runs' folder>`` (``reports/standard``,
    ``reports/smoke-UCF-101-6-per-class``).
    """
    get_profile(profile)
    _check_notebook_tools()
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"{out_dir} is a file, not a folder: choose another --out for the report")
    notebooks = find_notebooks(selection)
    classify = any(notebook.name.startswith(CLASSIFYING_NOTEBOOKS) for notebook in notebooks)
    parameters, run_dir = notebook_parameters(profile, data_root, max_videos_per_class, settings, classify)
    configure_cpu_environment()  # inherited by the notebooks' kernels
    out_dir = Path(out_dir) if out_dir else paths.reports_dir() / run_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ReportResult(out_dir=out_dir, index_path=out_dir / "index.html", parameters=parameters)
    not_selected = {path.stem for path in find_notebooks()} - {notebook.stem for notebook in notebooks}
    result.earlier = {name: record for name, record in earlier_runs(out_dir, parameters).items()
                      if name in not_selected}
    described = ", ".join(f"{name} {value}" for name, value in parameters.items() if name != "run_dir")
    for position, notebook in enumerate(notebooks):
        print(f"[report] running {notebook.name} ({described}) ...", flush=True)
        run = execute_notebook(notebook, out_dir, profile, parameters)
        result.runs.append(run)
        record_run(out_dir, run, parameters, run_dir / "summary")
        print(f"[report] {notebook.name}: {run.status} in {run.seconds:.1f} s", flush=True)
        write_index(result, profile, run_dir / "summary")
        if run.status != "ok":
            print(f"[report] FAILED — {run.message}", file=sys.stderr, flush=True)
            if run.notebook_path:
                print(f"[report] executed notebook with the error: {run.notebook_path}", file=sys.stderr)
            if stop_on_failure:
                result.not_run = [later.stem for later in notebooks[position + 1:]]
                break
    write_index(result, profile, run_dir / "summary")
    print(f"[report] index: {result.index_path}", flush=True)
    return result
