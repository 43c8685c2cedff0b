"""How much of SeCo's gain over an untrained encoder is the seed: pretrain and evaluate per seed.

For each seed it runs ``seco_lab pretrain --method seco`` twice, as a user would (the trained
run and ``--epochs 0``, the untrained encoder with that seed's initial weights), extracts
frozen features once per checkpoint with the profile's evaluation settings, and scores the
linear SVM (concat and mean pooling, the profile's C or ``--svm-c``) and kNN. It prints one row per seed and
the mean, standard deviation, minimum and maximum of each column and of each gain. A single
curriculum run measures one seed; the untrained encoder's score moves more from seed to seed
than the trained one's. ``--bn-stats checkpoint,train`` scores every checkpoint both with its
BatchNorm statistics as saved (an untrained encoder's are the initial ones) and re-estimated on
train videos (the fairer untrained baseline), each gain comparing the two encoders alike. On
the generated dataset it adds the target probe's R² (how linearly one frame's feature gives the
target's x, y and radius, ``seco_lab.evaluation.target_probe``) and prints the linear SVM on the
true values, a reference for what position and size alone give the protocol.

Usage: ``python benchmarks/seed_spread.py [--profile standard] [--data data/synth-standard]
[--seeds 0,1,2,3] [--bn-stats checkpoint[,train]] [--svm-c C|cv] [--set seco.queue_size=1024 ...]
[--runs runs/seed-spread]`` (finished runs in
``--runs`` with the same settings are reused; the standard profile takes a few minutes per seed
on a 2-core CPU). ``--set`` measures a variant of the profile, as ``pretrain --set`` does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from seco_lab.environment import configure_cpu_environment

configure_cpu_environment()  # before torch is imported

import numpy as np  # noqa: E402

from seco_lab.cli import svm_c_argument  # noqa: E402
from seco_lab.curriculum import spread  # noqa: E402
from seco_lab.evaluation.features import extract_video_features, load_encoder, recompute_bn_stats  # noqa: E402
from seco_lab.evaluation.knn import knn_protocol  # noqa: E402
from seco_lab.evaluation.linear_svm import linear_svm_protocol, record_groups  # noqa: E402
from seco_lab.evaluation.target_probe import TARGET_QUANTITIES, dataset_targets, ground_truth_svm  # noqa: E402
from seco_lab.evaluation.target_probe import target_probe  # noqa: E402
from seco_lab.paths import runs_dir, synth_dataset_dir  # noqa: E402
from seco_lab.profiles import get_profile, settings_label  # noqa: E402
from seco_lab.video.index import VideoIndex, load_dataset  # noqa: E402
from seco_lab.video.layouts import DatasetSpec  # noqa: E402
from seco_lab.video.synth import SynthDatasetError, manifest_config  # noqa: E402

COLUMNS = ("svm concat", "svm mean", "knn concat")
PROBE_COLUMNS = tuple(f"R² {quantity}" for quantity in TARGET_QUANTITIES)


def pretrain(data: Path, profile: str, seed: int, out: Path, untrained: bool, settings: list[str]) -> Path:
    """The run's checkpoint, trained (or written untrained) by the command line; a finished run
    with the same settings is reused, one with other settings is refused."""
    command = [sys.executable, "-m", "seco_lab", "pretrain", "--method", "seco", "--data", str(data),
               "--profile", profile, "--out", str(out), "--seed", str(seed), "--resume", "--quiet"]
    command += [f"--set={setting}" for setting in settings] + (["--epochs", "0"] if untrained else [])
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out / "checkpoint.pt"


def scores(checkpoint: Path, spec: DatasetSpec, index: VideoIndex, evaluation: dict,
           bn_stats: str = "checkpoint",
           targets_of: Callable[[str], dict[str, np.ndarray]] | None = None) -> dict[str, float]:
    """Linear SVM (concat and mean pooling) and kNN top-1 of one checkpoint's frozen features, with
    its BatchNorm statistics as saved (``bn_stats="checkpoint"``) or re-estimated (``"train"``);
    given ``targets_of`` (input mode -> the target's values per frame of each split), the probe's
    R² too."""
    frames = int(evaluation["frames_per_video"])
    encoder = load_encoder(checkpoint, device="cpu")
    if bn_stats == "train":  # as evaluate --bn-stats train does
        train_records = spec.split("train")
        recompute_bn_stats(encoder, train_records, [index[r].num_frames for r in train_records],
                           frames_per_video=frames, clips_per_video=int(evaluation["clips_per_video"]),
                           batch_size=int(evaluation["batch_size"]), device="cpu")
    split = {}
    for name in ("train", "test"):
        records = spec.split(name)
        features, labels = extract_video_features(
            encoder, records, frames_per_video=frames, pooling="concat", batch_size=int(evaluation["batch_size"]),
            device="cpu", num_frames=[index[r].num_frames for r in records])
        split[name] = (features, features.reshape(len(features), frames, -1).mean(axis=1), labels)  # (N, T*D), (N, D)
    (train_concat, train_mean, train_labels), (test_concat, test_mean, test_labels) = split["train"], split["test"]
    svm = {"C": evaluation["svm_c"], "train_groups": record_groups(spec.split("train"))}  # as the CLI's protocol
    targets = None if targets_of is None else targets_of(encoder.input_spec.input_mode)
    probe = {} if targets is None else target_probe(train_concat, targets["train"], test_concat, targets["test"])
    return {f"R² {quantity}": value for quantity, value in probe.items()} | {
        "svm concat": linear_svm_protocol(train_concat, train_labels, test_concat, test_labels, **svm)["top1"],
        "svm mean": linear_svm_protocol(train_mean, train_labels, test_mean, test_labels, **svm)["top1"],
        "knn concat": knn_protocol(train_concat, train_labels, test_concat, test_labels, k=int(evaluation["knn_k"]),
                                   temperature=float(evaluation["knn_temperature"]),
                                   num_classes=len(spec.classes))["top1"],
    }


def summary(label: str, values: list[float], width: int = 22, digits: int = 1) -> str:
    stats = spread(values)
    return (f"{label:<{width}}{stats['mean']:>8.{digits}f} ± {stats['sd']:<5.{digits}f}{stats['min']:>7.{digits}f}"
            f"{stats['max']:>7.{digits}f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--data", default=None)
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--bn-stats", default="checkpoint", metavar="checkpoint[,train]",
                        help="BatchNorm statistics of every encoder scored: as saved, re-estimated on train "
                             "videos, or both (checkpoint,train)")
    parser.add_argument("--svm-c", type=svm_c_argument, default=None, metavar="C|cv",
                        help="the linear SVM's C: a positive number or cv (chosen by cross-validation on the train "
                             "split, as evaluate --svm-c cv; default: the profile's)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a profile value for both runs of every seed, as pretrain --set (repeatable)")
    parser.add_argument("--runs", default=None,
                        help="run folder (default: runs/seed-spread-<profile>[-<settings>])")
    args = parser.parse_args()
    data = Path(args.data) if args.data else synth_dataset_dir("standard" if args.profile != "smoke" else "smoke")
    variant = f"-{settings_label(args.set)}" if args.set else ""
    runs = Path(args.runs) if args.runs else runs_dir() / f"seed-spread-{args.profile}{variant}"
    evaluation = get_profile(args.profile)["eval"]
    if args.svm_c is not None:
        evaluation["svm_c"] = args.svm_c
    seeds = [int(seed) for seed in args.seeds.split(",")]
    bn_choices = list(dict.fromkeys(args.bn_stats.split(",")))
    if not bn_choices or any(choice not in ("checkpoint", "train") for choice in bn_choices):
        parser.error(f"--bn-stats takes checkpoint, train or both separated by a comma, got {args.bn_stats!r}")
    kinds = [(kind, bn) for bn in bn_choices for kind in ("seco", "untrained")]
    names = {(kind, bn): kind + (" (BN re-estimated)" if bn == "train" else "") for kind, bn in kinds}
    spec, index = load_dataset(data, progress=False)
    targets: dict[str, dict[str, np.ndarray]] = {}

    def targets_of(input_mode: str) -> dict[str, np.ndarray]:
        if input_mode not in targets:
            targets[input_mode] = {
                split: dataset_targets(data, spec.split(split), int(evaluation["frames_per_video"]), input_mode,
                                       [index[record].num_frames for record in spec.split(split)])
                for split in ("train", "test")}
        return targets[input_mode]

    try:
        manifest_config(data)
        probing = True
    except SynthDatasetError as error:
        probing = False
        print(f"no target probe: {error}")
    columns = COLUMNS + (PROBE_COLUMNS if probing else ())
    table: dict[tuple[str, str], dict[str, list[float]]] = {key: {c: [] for c in columns} for key in kinds}
    width = max(len(name) for name in names.values()) + 2
    shown = {column: ".2f" if column in PROBE_COLUMNS else ".1f" for column in columns}
    print(f"{'seed':<6}{'encoder':<{width}}" + "".join(f"{c:>12}" for c in columns))
    for seed in seeds:
        for kind, bn in kinds:
            checkpoint = pretrain(data, args.profile, seed, runs / f"{kind}-seed{seed}", untrained=kind == "untrained",
                                  settings=args.set)
            row = scores(checkpoint, spec, index, evaluation, bn_stats=bn, targets_of=targets_of if probing else None)
            for column in columns:
                table[kind, bn][column].append(row[column])
            print(f"{seed:<6}{names[kind, bn]:<{width}}" + "".join(f"{row[c]:>12{shown[c]}}" for c in columns),
                  flush=True)
    print(f"\n{'over ' + str(len(seeds)) + ' seeds':<{width + 16}}{'mean ± sd':>16}{'min':>7}{'max':>7}")
    for column in columns:
        for bn in bn_choices:
            trained, untrained = table["seco", bn][column], table["untrained", bn][column]
            suffix = ", BN re-estimated" if bn == "train" else ""
            digits = 2 if column in PROBE_COLUMNS else 1
            print(summary(f"{column}{suffix}, seco", trained, width + 16, digits))
            print(summary(f"{column}{suffix}, untrained", untrained, width + 16, digits))
            print(summary(f"{column}{suffix}, gain", list(np.subtract(trained, untrained)), width + 16, digits))
    if probing:
        labels = {split: np.array([record.label for record in spec.split(split)]) for split in ("train", "test")}
        truth = next(iter(targets.values()))  # the frames the encoders saw (both runs share their input mode)
        true_targets_top1 = ground_truth_svm(truth["train"], labels["train"], truth["test"], labels["test"],
                                             C=evaluation["svm_c"])
        print(f"\nlinear SVM on the target's true x, y and radius in the frames (a reference, not a bound): "
              f"{true_targets_top1:.1f} %")


if __name__ == "__main__":
    main()
