"""Command line interface: ``python -m seco_lab`` or ``seco-lab``.

Sub-commands::

    info                                  versions, device and threads
    data synth --out DIR --profile P      generate the embedded dataset (real mp4 files)
    data check ROOT                       index a dataset folder and list every problem
    pretrain --method M --data DIR ...    self-supervised (or supervised) pretraining
    evaluate --checkpoint C --data DIR    downstream protocols on a checkpoint's encoder
    report --profile P [--data DIR]       execute the notebooks into reports/<profile>[-<data>]/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seco_lab import __version__
from seco_lab.environment import configure_cpu_environment
from seco_lab.profiles import METHOD_NAMES, PROFILE_NAMES

DESCRIPTION = ("Self-supervised video representation learning (SeCo, CVRL, DualVar): generate or check a "
               "dataset, pretrain an encoder, evaluate it, or execute the notebooks into a report.")
PROTOCOL_NAMES = ("linear-svm", "linear", "knn", "finetune", "retrieval", "tracking", "target-probe")
PRETRAIN_ACTIONS = {"trained": "trained", "resumed": "resumed from its last checkpoint and finished",
                    "reused": "the run had already finished: reused, not trained again",
                    "initialised": "untrained weights, --epochs 0"}
# pretrain stopped by SIGTERM or SIGUSR1 after saving a checkpoint that --resume continues
STOPPED_EXIT_STATUS = 3
LAUNCHED_BY_TORCHRUN = "TORCHELASTIC_RUN_ID"  # set by torchrun in the environment of every process it starts
INTERRUPTED_HINTS = {  # after Ctrl-C: what was kept and how to go on
    "pretrain": " (the same command with --resume continues from the last checkpoint)",
    "report": " (the runs are kept: the same command reuses the finished ones and continues an unfinished one "
              "from its last checkpoint)",
}
SUBSET_HELP = ("use at most N videos of each class in each split, the same ones every time "
               "(a quick look at a large dataset; default: every video)")


def _cmd_info(args: argparse.Namespace) -> int:
    from seco_lab.environment import environment_report

    for key, value in environment_report().items():
        print(f"{key:>18}: {value}")
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from seco_lab.profiles import profile_section
    from seco_lab.video.synth import generate_dataset

    preset = profile_section(args.profile, "synth")["preset"]
    root = generate_dataset(Path(args.out), preset=preset, seed=args.seed, progress=not args.quiet)
    print(f"dataset ready: {root}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from seco_lab.video.check import run_check

    return run_check(Path(args.root), layout=args.layout, split=args.split,
                     max_videos_per_class=args.max_videos_per_class)


def _cmd_data_cache(args: argparse.Namespace) -> int:
    import datetime

    from seco_lab.video.frame_store import cached_stores, remove_stores

    root = Path(args.root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such dataset folder")
    stores = cached_stores(root)
    if not stores:
        print(f"{root}: no cached frames")
        return 0
    print(f"cached frames of {root}:")
    for store in stores:
        when = datetime.datetime.fromtimestamp(store.modified).strftime("%Y-%m-%d %H:%M")
        if store.writer_pid is not None:
            state = "being written" if store.being_written else "left unfinished by a stopped run"
            what = f"{state} (process {store.writer_pid})"
        else:
            what = "index unreadable" if store.videos is None else f"{store.videos} videos"
        print(f"  {store.files[0]}  {store.size} px, {what}, {store.num_bytes / 2**30:.2f} GiB, {when}")
    total = sum(store.num_bytes for store in stores)
    if args.remove:
        freed = remove_stores(stores)
        kept = [store for store in stores if store.being_written]
        print(f"removed: {freed / 2**30:.2f} GiB freed" + (f"; {len(kept)} still being written, kept" if kept else "")
              + "; training decodes again, once, the videos it needs")
    else:
        print(f"{len(stores)} cache(s), {total / 2**30:.2f} GiB; `python -m seco_lab data cache {root} --remove` "
              "deletes them (training rebuilds the one it needs)")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from seco_lab.engine.checkpoint import CHECKPOINT_NAME
    from seco_lab.engine.distributed import env_rank
    from seco_lab.engine.preemption import TrainingStopped
    from seco_lab.engine.workers import end_with_parent
    from seco_lab.methods.pretrain import pretrain
    from seco_lab.profiles import get_profile, settings_overrides

    overrides = settings_overrides(args.set or [], get_profile(args.profile))
    if args.resume and env_rank() == 0 and not (Path(args.out) / CHECKPOINT_NAME).is_file():
        print(f"note: --resume: no checkpoint in {args.out} yet, so training starts from the beginning",
              file=sys.stderr)
    if LAUNCHED_BY_TORCHRUN in os.environ:  # a process of a torchrun launch ends with its launcher, however it ends
        end_with_parent()
    try:
        result = pretrain(
            method=args.method,
            data_root=Path(args.data),
            profile=args.profile,
            run_dir=Path(args.out),
            split=args.split,
            epochs=args.epochs,
            batch_size=args.batch_size,
            device=args.device,
            resume=args.resume,
            seed=args.seed,
            num_workers=args.num_workers,
            frame_cache=False if args.no_frame_cache else None,
            max_videos_per_class=args.max_videos_per_class,
            overrides=overrides,
            progress=not args.quiet,
        )
    except TrainingStopped as stopped:
        if env_rank() == 0:  # under torchrun every process stops alike: one says so
            print(f"{stopped}; the same command with --resume continues from it", file=sys.stderr)
        return STOPPED_EXIT_STATUS
    if env_rank() == 0:
        print(f"checkpoint: {result.checkpoint_path} ({PRETRAIN_ACTIONS[result.action]})")
    return 0


def _folder_path(text: str) -> str:
    """argparse type of a folder: any path but an empty one (which would mean the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a folder")
    return text


def _whole_number_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type of a whole number >= ``minimum`` (a count: 1, a number of processes: 0)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value

    return parse


_positive_int = _whole_number_at_least(1)
_non_negative_int = _whole_number_at_least(0)


def _names_from(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """argparse type of a comma-separated list of names from ``choices`` (one or more)."""
    def names(text: str) -> list[str]:
        given = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [name for name in given if name not in choices]
        if unknown or not given:
            raise argparse.ArgumentTypeError(
                f"{', '.join(map(repr, unknown)) or 'nothing'} given: choose from {', '.join(choices)}, "
                "several separated by commas")
        return given
    return names


def _notebook_prefixes(text: str) -> list[str]:
    """argparse type of ``report --notebooks``: comma-separated name prefixes, at least one."""
    prefixes = [part.strip() for part in text.split(",") if part.strip()]
    if not prefixes:
        raise argparse.ArgumentTypeError(f"{text!r} names no notebook: give prefixes such as 00,01")
    return prefixes


def svm_c_argument(text: str) -> float | str:
    """argparse type of ``--svm-c``: a positive number or ``cv``."""
    if text == "cv":
        return text
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive finite number nor 'cv'")
    return value


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from seco_lab.engine.distributed import env_world_size
    from seco_lab.evaluation import run_protocols
    from seco_lab.profiles import get_profile, settings_overrides

    if env_world_size() > 1:
        raise ValueError(f"evaluate runs in one process, and under torchrun each of the {env_world_size()} "
                         "processes would repeat the whole evaluation and record its results again: run "
                         "`python -m seco_lab evaluate ...` without torchrun (--device picks the GPU)")

    evaluation_section = {"eval": get_profile("standard")["eval"]}
    overrides = settings_overrides(args.set or [], evaluation_section).get("eval", {})
    overrides.update({key: value for key, value in (("svm_c", args.svm_c), ("bn_stats", args.bn_stats))
                      if value is not None})
    results = run_protocols(
        args.protocol,
        checkpoint=Path(args.checkpoint),
        data_root=Path(args.data),
        profile=args.profile,
        poolings=args.pooling,
        device=args.device,
        split=args.split,
        weights=args.weights,
        max_videos_per_class=args.max_videos_per_class,
        num_workers=args.num_workers,
        progress=not args.json,
        **overrides,
    )
    for number, metrics in enumerate(results):
        if args.json:
            print(json.dumps(metrics, default=float))
            continue
        if number:
            print()
        scalars = {key: value for key, value in metrics.items() if not isinstance(value, list)}
        width = max(len(key) for key in scalars)
        for key, value in scalars.items():
            print(f"{key:<{width}}  {_shown_value(key, value)}")
        _print_tracking_sequences(metrics)
    return 0


def _shown_value(key: str, value: Any) -> str:
    """A metric as ``evaluate`` prints it: a float with 4 decimals, but the SVM's ``C`` (1e-05 from
    ``--svm-c cv``) and any other float below 0.01 that is not 0 with 4 significant digits, so
    that none reads as 0.0000."""
    if not isinstance(value, float):
        return str(value)
    if key == "C" or 0 < abs(value) < 0.01:
        return f"{value:.4g}"
    return f"{value:.4f}"


def _print_tracking_sequences(metrics: dict[str, Any]) -> None:
    """The tracking protocol's score per sequence, and the sequences left out with their reasons."""
    rows = metrics.get("per_sequence") or []
    if rows:
        width = max(len("sequence"), *(len(row["name"]) for row in rows))
        print(f"\n{'sequence':<{width}}  frames  precision@20  success_auc  mean_iou  centre_error_px")
        for row in rows:
            print(f"{row['name']:<{width}}  {row['frames']:>6}  {row['precision@20']:>12.4f}  "
                  f"{row['success_auc']:>11.4f}  {row['mean_iou']:>8.4f}  {row['mean_centre_error']:>15.1f}")
    for row in metrics.get("left_out") or []:
        print(f"left out: {row['name']}: {row['reason']}")


def _cmd_report(args: argparse.Namespace) -> int:
    from seco_lab.report import run_report

    result = run_report(args.profile, selection=args.notebooks, out_dir=Path(args.out) if args.out else None,
                        data_root=args.data, max_videos_per_class=args.max_videos_per_class, settings=args.set or ())
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="seco-lab", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="versions, device and threads")
    info.set_defaults(handler=_cmd_info)

    data = commands.add_parser("data", help="generate or check datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="generate the embedded action dataset")
    synth.add_argument("--out", required=True, type=_folder_path, help="dataset folder to create, e.g. data/synth-standard")
    synth.add_argument("--profile", choices=("smoke", "standard"), default="standard",
                       help="the dataset's size (default: standard)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the generated videos (default: 0)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_cmd_data_synth)
    check = data_commands.add_parser("check", help="index a dataset folder and list its problems")
    check.add_argument("root", type=_folder_path, help="the dataset folder")
    check.add_argument("--layout", default="auto", choices=("auto", "ucf101", "hmdb51", "kinetics", "folders"),
                       help="the folder's layout (default: auto, recognised from its files)")
    check.add_argument("--split", type=int, default=1, help="official split number (1-3)")
    check.add_argument("--max-videos-per-class", type=_positive_int, default=None, metavar="N",
                       help="check only the subset pretrain and evaluate use with the same option")
    check.set_defaults(handler=_cmd_data_check)
    cache = data_commands.add_parser("cache", help="list (or remove) the decoded frames cached for a dataset")
    cache.add_argument("root", type=_folder_path, help="the dataset folder")
    cache.add_argument("--remove", action="store_true", help="delete them (training rebuilds the one it needs)")
    cache.set_defaults(handler=_cmd_data_cache)

    pretrain = commands.add_parser("pretrain", help="pretrain an encoder")
    pretrain.add_argument("--method", required=True, choices=METHOD_NAMES, help="the training method")
    pretrain.add_argument("--data", required=True, type=_folder_path, help="dataset root (any supported layout)")
    pretrain.add_argument("--split", type=int, default=1, help="official split number (1-3; default: 1)")
    pretrain.add_argument("--profile", choices=PROFILE_NAMES, default="standard",
                          help="sizes, schedule and hyperparameters (default: standard)")
    pretrain.add_argument("--out", required=True, type=_folder_path, help="run directory (checkpoint, history, results)")
    pretrain.add_argument("--epochs", type=int, default=None,
                          help="training epochs (default: the profile's); 0 writes the randomly initialised model")
    pretrain.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                          help="the training batch (default: the profile's)")
    pretrain.add_argument("--num-workers", type=int, default=None, metavar="N",
                          help="data loading processes (default: the profile's)")
    pretrain.add_argument("--no-frame-cache", action="store_true",
                          help="decode every batch from the video files instead of caching the decoded train "
                               "videos next to the data once (the smoke and standard profiles cache)")
    pretrain.add_argument("--max-videos-per-class", type=_positive_int, default=None, metavar="N",
                          help=SUBSET_HELP)
    pretrain.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                          help="change one value of the profile, e.g. seco.queue_size=1024, seco.weights.order=0 "
                               "or seco.augment.scale=[0.8,1.0] (repeatable; the run's config.json records it, "
                               "and --epochs/--batch-size win over it)")
    pretrain.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    pretrain.add_argument("--resume", action="store_true",
                          help="continue the run in --out from its last checkpoint, or reuse it when it has "
                               "finished (its settings and seed must match)")
    pretrain.add_argument("--seed", type=int, default=0, help="seed of the initial weights and data order (default: 0)")
    pretrain.add_argument("--quiet", action="store_true", help="no progress bar")
    pretrain.set_defaults(handler=_cmd_pretrain)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint's encoder")
    evaluate.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt (pretrain --out)")
    evaluate.add_argument("--data", required=True, type=_folder_path, help="dataset root (any supported layout)")
    evaluate.add_argument("--split", type=int, default=1, help="official split number (1-3; default: 1)")
    evaluate.add_argument("--protocol", default=["linear-svm"], type=_names_from(PROTOCOL_NAMES),
                          metavar="P[,P...]",
                          help=f"one or more of {', '.join(PROTOCOL_NAMES)}, separated by commas; the features "
                               "are extracted once for all of them (default: linear-svm)")
    evaluate.add_argument("--pooling", default=["mean"], type=_names_from(("mean", "concat")), metavar="mean|concat",
                          help="a frame encoder's pooling over frames: mean (the papers'), concat (temporal "
                               "order kept) or mean,concat for both from one extraction (default: mean)")
    evaluate.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                          help="evaluation sizes (default: the checkpoint's profile)")
    evaluate.add_argument("--bn-stats", default=None, choices=("checkpoint", "train"),
                          help="train: re-estimate BatchNorm statistics on train videos first (a fairer random "
                               "baseline; default: the profile's, checkpoint)")
    evaluate.add_argument("--weights", default="checkpoint", choices=("checkpoint", "random"),
                          help="random: the run's initial weights, rebuilt from its config and seed (untrained)")
    evaluate.add_argument("--svm-c", type=svm_c_argument, default=None,
                          help="linear-svm's C: a positive number (the paper: 1) or 'cv' to choose it by "
                               "cross-validation on the train split (default: the profile's)")
    evaluate.add_argument("--max-videos-per-class", type=_positive_int, default=None, metavar="N",
                          help=SUBSET_HELP)
    evaluate.add_argument("--num-workers", type=_non_negative_int, default=None, metavar="N",
                          help="processes decoding the videos beside the main one (0: the main process decodes "
                               "them; default: data.num_workers of the profile, the checkpoint's unless --profile "
                               "names another)")
    evaluate.add_argument("--set", action="append", metavar="eval.KEY=VALUE",
                          help="change an evaluation setting of the profile, e.g. eval.knn_k=50 or "
                               "eval.frames_per_video=16 (repeatable; --svm-c and --bn-stats win over it)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--json", action="store_true", help="print one machine-readable line per result")
    evaluate.set_defaults(handler=_cmd_evaluate)

    report = commands.add_parser("report", help="execute the notebooks into an HTML report")
    report.add_argument("--profile", choices=PROFILE_NAMES, default="standard",
                        help="the notebooks' profile (default: standard)")
    report.add_argument("--notebooks", type=_notebook_prefixes, default=None, metavar="NN[,NN...]",
                        help="comma-separated prefixes, e.g. 00,01 (default: every notebook)")
    report.add_argument("--data", default=None, type=_folder_path, metavar="DIR",
                        help="a dataset folder for every notebook's data_root (default: the embedded dataset)")
    report.add_argument("--max-videos-per-class", type=_positive_int, default=None, metavar="N", help=SUBSET_HELP)
    report.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="change a value of the profile in every notebook, as pretrain --set does (repeatable)")
    report.add_argument("--out", default=None, type=_folder_path,
                        help="default: reports/<name of the runs' folder>, e.g. reports/standard or "
                             "reports/standard-UCF-101-6-per-class")
    report.set_defaults(handler=_cmd_report)
    return parser


PACKAGE_DIR = Path(__file__).resolve().parent


def _show_warning(show_default: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints the package's own warnings (a layout with one class,
    a skipped video, ...) as one ``note:`` line, and any other warning as Python does."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if PACKAGE_DIR not in Path(filename).resolve().parents:
            show_default(message, category, filename, lineno, file, line)
            return
        print(f"note: {message}", file=file or sys.stderr, flush=True)
    return show


def _error_text(error: Exception) -> str:
    """One line for an error: an operating system error (a file where a folder belongs, a
    read-only or full disk) as ``file: reason``, any other as its message."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; errors print one clear line."""
    configure_cpu_environment()  # before any sub-command imports torch
    for stream in (sys.stdout, sys.stderr):  # file names that are not valid UTF-8 print escaped, not crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.handler(args)
    except (OSError, ValueError, RuntimeError, FloatingPointError) as error:
        print(f"seco-lab {args.command}: error: {_error_text(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "pretrain":  # under torchrun Ctrl-C reaches every process: one says so
            from seco_lab.engine.distributed import env_rank

            if env_rank() != 0:
                return 130
        print(f"interrupted{INTERRUPTED_HINTS.get(args.command, '')}", file=sys.stderr)
        return 130
