"""The command line and the papermill report runner."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from seco_lab.cli import build_parser, main
from seco_lab.profiles import get_profile
from seco_lab.report import find_notebooks, notebook_parameters, run_report
from seco_lab.video.index import DataProblemWarning


def test_every_subcommand_has_help():
    parser = build_parser()
    for argv in (["info"], ["data", "synth", "--out", "x"], ["data", "check", "x"],
                 ["pretrain", "--method", "seco", "--data", "d", "--out", "o"],
                 ["evaluate", "--checkpoint", "c", "--data", "d"], ["report"]):
        assert parser.parse_args(argv).handler is not None


def test_bad_profile_is_rejected_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "--profile", "huge"])
    assert "smoke" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [("cv", "cv"), ("0.01", 0.01), ("1", 1.0)])
def test_svm_c_option_takes_a_number_or_cv(text, expected):
    args = build_parser().parse_args(["evaluate", "--checkpoint", "c", "--data", "d", "--svm-c", text])
    assert args.svm_c == expected


@pytest.mark.parametrize("text", ["0", "-1", "auto", "inf", "nan"])
def test_svm_c_option_rejects_other_values(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--checkpoint", "c", "--data", "d", "--svm-c", text])
    assert "neither a positive finite number nor 'cv'" in capsys.readouterr().err


def test_help_says_what_the_command_does_in_plain_text(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    help_text = capsys.readouterr().out
    assert "Self-supervised video representation learning" in help_text
    assert "``" not in help_text  # no reStructuredText markup from a docstring


def test_version_option_prints_the_package_version(capsys):
    import seco_lab

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"seco-lab {seco_lab.__version__}"


def test_python_dash_m_runs_info():
    completed = subprocess.run([sys.executable, "-m", "seco_lab", "info"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "torch" in completed.stdout


def _write_notebook(path: Path, cells: list[str], parameters: str = "profile = None") -> None:
    parameters = nbformat.v4.new_code_cell(parameters)
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[parameters] + [nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_report_runs_notebooks_in_order_and_names_the_failing_cell(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "00_first.ipynb", ["print('profile is', profile)"])
    _write_notebook(notebooks / "01_broken.ipynb", ["x = 1", "raise ValueError('bad on purpose')"])
    _write_notebook(notebooks / "02_never.ipynb", ["print('not reached')"])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    result = run_report("smoke", out_dir=tmp_path / "report")
    assert [run.name for run in result.runs] == ["00_first", "01_broken"]
    assert [run.status for run in result.runs] == ["ok", "failed"]
    assert "01_broken.ipynb" in result.runs[1].message and "ValueError: bad on purpose" in result.runs[1].message
    index = (tmp_path / "report" / "index.html").read_text()
    assert "00_first.html" in index and "failed" in index
    assert result.not_run == ["02_never"] and "02_never" in index and "not run after 01_broken failed" in index
    executed = nbformat.read(tmp_path / "report" / "00_first.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in executed.cells for output in cell.get("outputs", []))
    assert "profile is smoke" in printed


def test_report_index_collects_saved_summaries(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "00_save.ipynb", [
        "from seco_lab.report import save_summary\n"
        "save_summary(profile, '00_save', {'accuracy': 0.625})"
    ])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    result = run_report("smoke", out_dir=tmp_path / "report")
    assert result.ok
    assert json.loads((tmp_path / "runs" / "smoke" / "summary" / "00_save.json").read_text()) == {"accuracy": 0.625}
    assert "0.625" in (tmp_path / "report" / "index.html").read_text()


def test_report_on_another_dataset_gives_every_notebook_its_data_subset_settings_and_one_run_folder(
        tmp_path, monkeypatch):
    """00 declares no settings parameter (it trains nothing) and still saves beside 01, which does."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    data = _train_test_folders(tmp_path / "my-videos", 3, 1, classes="abcdef")  # 18 train videos: a smoke batch
    declared = "profile = None\ndata_root = None\nrun_dir = None\nmax_videos_per_class = None"
    saves = ("from seco_lab.session import start\n"
             "lab = start(profile=profile, data_root=data_root, run_dir=run_dir, "
             "max_videos_per_class=max_videos_per_class{settings})\n"
             "lab.save_summary('{name}', {{'data': str(lab.data_root), 'subset': lab.max_videos_per_class, "
             "'queue': lab.section('seco')['queue_size']}})")
    _write_notebook(notebooks / "00_plain.ipynb", [saves.format(settings="", name="00_plain")], declared)
    _write_notebook(notebooks / "01_set.ipynb", [saves.format(settings=", settings=settings", name="01_set")],
                    declared + "\nsettings = []")
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SECO_LAB_REPORTS", str(tmp_path / "reports"))
    result = run_report("smoke", data_root=data, max_videos_per_class=3, settings=["seco.queue_size=64"])
    assert result.ok, [run.message for run in result.runs]
    runs = tmp_path / "runs" / "smoke-my-videos-3-per-class-seco.queue_size=64"
    assert result.out_dir == tmp_path / "reports" / runs.name
    plain = json.loads((runs / "summary" / "00_plain.json").read_text())
    assert plain == {"data": str(data), "subset": 3, "queue": get_profile("smoke")["seco"]["queue_size"]}
    assert json.loads((runs / "summary" / "01_set.json").read_text()) == {"data": str(data), "subset": 3, "queue": 64}
    index = result.index_path.read_text()
    assert str(data) in index and "seco.queue_size=64" in index and "<td>64</td>" in index


@pytest.mark.parametrize("options, message", [
    ({"data_root": "/definitely/not/here"}, "data_root '/definitely/not/here' does not exist"),
    ({"max_videos_per_class": 0}, "max_videos_per_class must be None or an integer >= 1"),
    ({"settings": ["seco.queue_size=0"]}, "seco.queue_size must be a whole number >= 1, got 0"),
    ({"settings": ["seco.queue"]}, "is not SECTION.KEY=VALUE"),
])
def test_report_refuses_bad_parameters_before_any_notebook_runs(tmp_path, monkeypatch, options, message):
    monkeypatch.setenv("SECO_LAB_REPORTS", str(tmp_path / "reports"))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_report("smoke", **options)
    assert not (tmp_path / "reports").exists()


def test_report_without_the_notebook_tools_names_the_extra_that_installs_them(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "00_first.ipynb", ["print(profile)"])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SECO_LAB_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setitem(sys.modules, "papermill", None)  # as if it were not installed
    assert main(["report", "--profile", "smoke"]) == 2
    error = capsys.readouterr().err
    assert "the report needs papermill" in error and "pip install 'seco_lab[notebooks]'" in error
    assert not (tmp_path / "reports").exists()


def test_report_selection_names_the_notebooks_when_nothing_matches(tmp_path):
    _write_notebook(tmp_path / "00_a.ipynb", ["1"])
    with pytest.raises(ValueError, match="00_a"):
        find_notebooks(["07"], folder=tmp_path)


def test_cli_names_the_missing_folder_and_the_layouts_it_reads(capsys):
    assert main(["data", "check", "/definitely/not/here"]) == 2
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "/definitely/not/here does not exist" in shown and "ucf101" in shown and "hmdb51" in shown


def test_cli_reports_other_errors_in_one_line(capsys, tmp_path):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path)]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_report_kernels_run_encrypted_without_a_warning_per_notebook(tmp_path, capfd):
    """ipykernel 7.4 warns on stderr when its messages travel unencrypted; the report's kernels
    get CurveZMQ keys, so a teacher's log shows only the report's own lines."""
    from seco_lab.report import execute_notebook

    _write_notebook(tmp_path / "00_quiet.ipynb", ["print('ran')"])
    (tmp_path / "out").mkdir()
    run = execute_notebook(tmp_path / "00_quiet.ipynb", tmp_path / "out", "smoke")
    assert run.status == "ok"
    assert "without encryption" not in capfd.readouterr().err


def test_cli_reports_a_system_error_in_one_line_naming_the_file(tmp_path, capsys):
    taken = tmp_path / "report.html"
    taken.write_text("not a folder")
    assert main(["report", "--profile", "smoke", "--notebooks", "00", "--out", str(taken / "inside")]) == 2
    error = capsys.readouterr().err
    assert error == f"seco-lab report: error: {taken / 'inside'}: Not a directory\n"
    assert main(["report", "--profile", "smoke", "--notebooks", "00", "--out", str(taken)]) == 2
    error = capsys.readouterr().err
    assert error == f"seco-lab report: error: {taken} is a file, not a folder: choose another --out for the report\n"


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown device 'gpu': choose 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("cuda:7", "device 'cuda:7' requested but"),
])
def test_evaluate_names_a_device_that_is_unknown_or_missing(device, message, tmp_path, capsys):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU number 7")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path),
                 "--device", device]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("device, message", [
    ("mps", "unknown device 'mps': choose 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("cuda:7", "device 'cuda:7' requested but"),
])
def test_pretrain_names_a_device_that_is_unknown_or_missing_before_reading_the_data(device, message, tmp_path,
                                                                                   capsys):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU number 7")
    assert main(["pretrain", "--method", "seco", "--data", str(tmp_path / "not-indexed"), "--out", str(tmp_path / "run"),
                 "--profile", "smoke", "--device", device]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"seco-lab pretrain: error: {message}") and "not-indexed" not in error


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_report_notebooks_option_naming_no_notebook_is_refused(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "--notebooks", text])
    assert "names no notebook: give prefixes such as 00,01" in capsys.readouterr().err
    assert build_parser().parse_args(["report", "--notebooks", "00, 02"]).notebooks == ["00", "02"]


@pytest.mark.parametrize("text", ["0", "-3", "eight"])
def test_pretrain_batch_size_below_one_is_refused_by_the_option(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--batch-size", text])
    assert f"argument --batch-size: {text!r} is not a whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["pretrain", "--method", "seco", "--data", "", "--out", "o"],
    ["pretrain", "--method", "seco", "--data", "d", "--out", ""],
    ["evaluate", "--checkpoint", "c", "--data", ""], ["report", "--data", " "], ["report", "--out", ""],
    ["data", "check", ""], ["data", "cache", ""], ["data", "synth", "--out", ""]])
def test_an_empty_folder_path_is_refused_by_the_option(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(command)
    assert "an empty path: give a folder" in capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    commands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    children = [child for action in commands for child in action.choices.values()]
    return children + [grandchild for child in children for grandchild in _subparsers(child)]


def test_every_option_of_every_subcommand_is_explained_in_its_help():
    undocumented = [f"{command.prog} {action.dest}" for command in _subparsers(build_parser())
                    for action in command._actions
                    if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert not undocumented


def test_evaluate_given_a_run_folder_asks_for_the_checkpoint_in_it(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder, not a checkpoint file: give the checkpoint in it, e.g. " \
           f"{tmp_path / 'checkpoint.pt'}" in capsys.readouterr().err


def test_an_interrupted_pretraining_says_how_to_continue_it(monkeypatch, capsys):
    def interrupted(**options):
        raise KeyboardInterrupt

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", interrupted)
    assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == 130
    assert capsys.readouterr().err == \
        "interrupted (the same command with --resume continues from the last checkpoint)\n"


def test_an_interrupted_pretraining_under_torchrun_says_so_once(monkeypatch, capsys):
    def interrupted(**options):
        raise KeyboardInterrupt

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", interrupted)
    said = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == 130
        said[rank] = capsys.readouterr().err
    assert said["0"].startswith("interrupted (the same command with --resume") and said["1"] == ""


def test_an_interrupted_report_says_that_its_runs_are_kept(monkeypatch, capsys):
    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr("seco_lab.report.run_report", interrupted)
    assert main(["report", "--profile", "smoke", "--notebooks", "00"]) == 130
    assert capsys.readouterr().err.startswith("interrupted (the runs are kept: the same command reuses the finished")


def test_a_notebook_whose_kernel_dies_is_reported_as_failed_where_it_stopped(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "00_dies.ipynb", ["x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
    _write_notebook(notebooks / "01_never.ipynb", ["print('not reached')"])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    result = run_report("smoke", out_dir=tmp_path / "report")
    assert [(run.name, run.status) for run in result.runs] == [("00_dies", "failed")]
    # index 3: after the injected parameters; whether the cell got its count first depends on timing
    assert re.search(r"the kernel died in (cell 4 \(index 3\)|the cell at index 3)", result.runs[0].message)
    index = (tmp_path / "report" / "index.html").read_text()
    assert "00_dies.html" in index and "the kernel died" in index


def test_report_index_lists_only_the_numbers_saved_by_the_notebooks_it_ran_to_the_end(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    saves = "from seco_lab.report import save_summary\nsave_summary(profile, '{name}', {{'{name} value': 0.625}})"
    _write_notebook(notebooks / "00_save.ipynb", [saves.format(name="00_save")])
    _write_notebook(notebooks / "01_broken.ipynb", ["raise ValueError('bad on purpose')"])
    _write_notebook(notebooks / "02_not_selected.ipynb", [saves.format(name="02_not_selected")])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    summaries = tmp_path / "runs" / "smoke" / "summary"
    summaries.mkdir(parents=True)
    for earlier in ("01_broken", "02_not_selected"):  # left by an earlier run
        (summaries / f"{earlier}.json").write_text(json.dumps({f"{earlier} value": 0.125}))
    run_report("smoke", selection=["00", "01"], out_dir=tmp_path / "report")
    index = (tmp_path / "report" / "index.html").read_text()
    assert "00_save value" in index and "0.625" in index
    assert "01_broken value" not in index and "02_not_selected value" not in index and "0.125" not in index


def test_a_partial_rerun_keeps_the_other_notebooks_rows_and_numbers_from_the_last_run_with_its_parameters(
        tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    saves = "from seco_lab.report import save_summary\nsave_summary(profile, '{name}', {{'{name} value': {value}}})"
    _write_notebook(notebooks / "00_first.ipynb", [saves.format(name="00_first", value="0.625")])
    _write_notebook(notebooks / "01_second.ipynb", [saves.format(name="01_second", value="0.375")])
    monkeypatch.setattr("seco_lab.paths.notebooks_dir", lambda: notebooks)
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    run_report("smoke", out_dir=tmp_path / "report")
    _write_notebook(notebooks / "01_second.ipynb", [saves.format(name="01_second", value="0.875")])
    run_report("smoke", selection=["01"], out_dir=tmp_path / "report")
    index = (tmp_path / "report" / "index.html").read_text()
    assert '<a href="00_first.html">00_first</a>' in index and "not run this time: from the report run of" in index
    assert "00_first (earlier run)" in index and "0.625" in index
    assert "01_second value" in index and "0.875" in index and "0.375" not in index
    run_report("smoke", selection=["01"], out_dir=tmp_path / "report", settings=["seco.queue_size=64"])
    index = (tmp_path / "report" / "index.html").read_text()  # other parameters: the earlier rows are not this report's
    assert "00_first" not in index and "0.625" not in index


def test_a_pretraining_stopped_by_a_signal_says_how_to_continue_it_with_its_own_exit_status(monkeypatch, capsys):
    from seco_lab.cli import STOPPED_EXIT_STATUS
    from seco_lab.engine import TrainingStopped

    def stopped(**options):
        raise TrainingStopped("SIGTERM", 37, 120, Path("o") / "checkpoint.pt")

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", stopped)
    assert STOPPED_EXIT_STATUS not in (0, 1, 2, 130)  # success, report failed, error, Ctrl-C
    assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == STOPPED_EXIT_STATUS
    assert capsys.readouterr().err == (
        f"stopped by SIGTERM after step 37 of 120; checkpoint saved: {Path('o') / 'checkpoint.pt'}; "
        "the same command with --resume continues from it\n")


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_pretrain_under_torchrun_reports_its_checkpoint_from_the_first_process_only(rank, printed, monkeypatch,
                                                                                    capsys):
    from seco_lab.methods.pretrain import PretrainResult

    def trained(**options):
        return PretrainResult(Path("o"), Path("o") / "checkpoint.pt", "trained", 1.0, 4, 10.0)

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", trained)
    assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == 0
    assert capsys.readouterr().out == (f"checkpoint: {Path('o') / 'checkpoint.pt'} (trained)\n" if printed else "")


@pytest.mark.parametrize("launched_by_torchrun", [True, False])
def test_a_pretraining_process_of_torchrun_ends_with_its_launcher(launched_by_torchrun, monkeypatch):
    """Killed alone, a launcher left its processes training on, holding the run folder."""
    from seco_lab.methods.pretrain import PretrainResult

    requests = []
    monkeypatch.setattr("seco_lab.engine.workers.end_with_parent", lambda: requests.append("end with parent"))
    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", lambda **options: PretrainResult(
        Path("o"), Path("o") / "checkpoint.pt", "trained", 1.0, 4, 10.0))
    if launched_by_torchrun:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    else:
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == 0
    assert requests == (["end with parent"] if launched_by_torchrun else [])


def test_evaluate_under_torchrun_is_refused_before_it_repeats_itself_in_every_process(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "--checkpoint", "c.pt", "--data", "d"]) == 2
    assert "evaluate runs in one process, and under torchrun each of the 2 processes" in capsys.readouterr().err


def test_a_diverged_pretraining_is_reported_in_one_line(monkeypatch, capsys):
    def diverged(**options):
        raise FloatingPointError("seco: loss is nan at step 5")

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", diverged)
    assert main(["pretrain", "--method", "seco", "--data", "d", "--out", "o", "--profile", "smoke"]) == 2
    assert capsys.readouterr().err == "seco-lab pretrain: error: seco: loss is nan at step 5\n"


def _train_test_folders(root, train_per_class, test_per_class, classes=("a", "b")):
    from tests._video_fixtures import make_video

    for split, count in (("train", train_per_class), ("test", test_per_class)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for class_name in classes:
            for clip in range(count):
                make_video(root / split / class_name / f"{class_name}{clip}.mp4", num_frames=4, seed=clip)
    return root


def test_report_refuses_a_dataset_the_curriculum_cannot_use_before_any_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SECO_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SECO_LAB_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    no_test = _train_test_folders(tmp_path / "no_test", 2, 0)
    with pytest.raises(ValueError, match=r"the test split of this folders dataset holds no video \(train 4, test 0\)"):
        run_report("smoke", data_root=no_test)
    small = _train_test_folders(tmp_path / "small", 2, 1)
    from tests._video_fixtures import make_video

    for clip in range(3):  # listed, but a single frame: training leaves them out, and so does the count
        make_video(small / "train" / "a" / f"one_frame{clip}.mp4", num_frames=1, seed=clip)
    with pytest.raises(ValueError, match=r"4 usable training videos, fewer than one batch of 16: add --set "
                                         r"train\.batch_size=4$"), \
            pytest.warns(DataProblemWarning, match=r"3 file\(s\) skipped \(3 too short\)"):
        run_report("smoke", data_root=small)
    with pytest.raises(ValueError, match=r"4 usable training videos, fewer than one batch of 16: add --set "
                                         r"train\.batch_size=4 \(or a larger --max-videos-per-class\)"):
        run_report("smoke", data_root=_train_test_folders(tmp_path / "larger", 3, 1), max_videos_per_class=2)
    with pytest.raises(ValueError, match="the paper profile trains its runs .* this machine has none"):
        run_report("paper", data_root=small)
    one_class = _train_test_folders(tmp_path / "one_class", 2, 1, classes=("a",))
    with pytest.raises(ValueError, match=r"one class with training videos \(a\); notebooks 03, 04, 05 train with "
                                         r"labels .* run --notebooks 00,01,02 for the self-supervised part alone"):
        run_report("smoke", data_root=one_class, settings=["train.batch_size=2"])
    parameters, _ = notebook_parameters("smoke", one_class, settings=["train.batch_size=2"], classify=False)
    assert parameters["data_root"] == str(one_class.resolve())
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"a_file is a file, not a folder: choose another --out for the report"):
        run_report("smoke", data_root=small, out_dir=tmp_path / "a_file")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "runs").exists()


def test_evaluate_prints_a_small_c_and_other_small_values_so_they_do_not_read_as_zero(monkeypatch, capsys):
    """``--svm-c cv`` may choose C = 1e-05, which ``.4f`` printed as 0.0000."""
    metrics = {"protocol": "linear-svm", "C": 1e-05, "top1": 50.0, "chance": 100 / 3, "small": 0.00012345, "zero": 0.0,
               "large_c": 1.0}
    monkeypatch.setattr("seco_lab.evaluation.run_protocols", lambda *args, **options: [dict(metrics)])
    assert main(["evaluate", "--checkpoint", "c.pt", "--data", "d", "--svm-c", "cv"]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert printed == {"protocol": "linear-svm", "C": "1e-05", "top1": "50.0000", "chance": "33.3333",
                       "small": "0.0001234", "zero": "0.0000", "large_c": "1.0000"}


@pytest.mark.parametrize(("given", "passed"), [([], None), (["--num-workers", "0"], 0), (["--num-workers", "3"], 3)])
def test_evaluate_passes_its_number_of_decoding_processes_to_the_protocols(given, passed, monkeypatch):
    received = []

    def recording_run_protocols(*args, **options):
        received.append(options["num_workers"])
        return [{"protocol": "linear-svm", "top1": 50.0}]

    monkeypatch.setattr("seco_lab.evaluation.run_protocols", recording_run_protocols)
    assert main(["evaluate", "--checkpoint", "c.pt", "--data", "d", *given]) == 0
    assert received == [passed]


@pytest.mark.parametrize("text", ["-1", "two", "1.5"])
def test_evaluate_refuses_a_number_of_decoding_processes_below_zero_or_not_whole(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--checkpoint", "c", "--data", "d", "--num-workers", text])
    assert f"argument --num-workers: {text!r} is not a whole number >= 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def untrained_checkpoints(tmp_path_factory):
    """Checkpoints of untrained smoke SeCo encoders: input_mode -> checkpoint (frame differences, rgb)."""
    from seco_lab.methods.pretrain import pretrain

    root = _train_test_folders(tmp_path_factory.mktemp("pretraining_data"), 2, 1)
    runs = tmp_path_factory.mktemp("runs")
    return {mode: pretrain("seco", root, "smoke", runs / mode, epochs=0, overrides={"seco": {"input_mode": mode}},
                           progress=False).checkpoint_path for mode in ("frame_differences", "rgb")}


def test_evaluate_leaves_out_one_frame_videos_for_every_encoder_and_names_the_classes_chance_counts(
        tmp_path, untrained_checkpoints, capsys):
    """A one-frame video's frame differences are all zero whatever it shows: every such video would
    get the same feature. An RGB encoder leaves them out too, so that both are scored on the same
    videos. Class c has test videos only: chance guesses among the 2 classes with training videos."""
    from tests._video_fixtures import make_video

    root = _train_test_folders(tmp_path / "data", 3, 1)
    make_video(root / "test" / "c" / "c0.mp4", num_frames=4, seed=7)
    make_video(root / "train" / "a" / "one_frame_a.mp4", num_frames=1, seed=8)
    make_video(root / "test" / "b" / "one_frame_b.mp4", num_frames=1, seed=9)
    errors = ""
    for mode, checkpoint in untrained_checkpoints.items():
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--protocol", "knn",
                     "--profile", "smoke", "--device", "cpu"]) == 0
        captured = capsys.readouterr()
        printed = dict(line.split(maxsplit=1) for line in captured.out.splitlines())
        assert (printed["num_train"], printed["num_test"], printed["chance"]) == ("6", "3", "33.3333"), mode
        assert (printed["num_classes"], printed["num_train_classes"]) == ("3", "2")
        errors += captured.err
    assert len(re.findall(r"note: .*: 2 file\(s\) skipped \(2 too short\)", errors)) == 1, errors  # shown once
    assert "knn: k=20 is more than the 6 training videos, so every one of them votes" in errors
