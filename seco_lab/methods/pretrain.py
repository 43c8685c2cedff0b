"""Pretraining from a dataset folder and a profile: what ``seco-lab pretrain`` and notebook 03 run.

``pretrain`` builds the run's full config (profile + overrides + the dataset's classes), the
method, the training dataset, and hands them to the shared engine. ``epochs=0`` writes the
randomly initialised model as a checkpoint: the baseline every evaluation compares against.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seco_lab.engine.checkpoint import (
    CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint, save_checkpoint, seed_everything,
)
from seco_lab.engine.config import TrainConfig
from seco_lab.engine.device import resolve_device
from seco_lab.engine.distributed import env_local_rank, env_rank, env_world_size, init_from_env, main_rank_first
from seco_lab.engine.run_lock import run_folder_lock
from seco_lab.engine.trainer import CONFIG_NAME, LOADING_ONLY_SETTINGS, config_changes, fit
from seco_lab.methods.base import build_method, method_names
from seco_lab.profiles import check_profile_values, check_setting_names, fold_method_sections, get_profile

@dataclass
class PretrainResult:
    """Where a run's checkpoint is and what this call did (``"trained"``, ``"resumed"``,
    ``"reused"`` for a finished run, ``"initialised"`` for ``epochs=0``)."""

    run_dir: Path
    checkpoint_path: Path
    action: str
    wall_time: float
    steps: int
    samples_per_second: float


def deep_update(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in recursively (values of ``overrides`` win)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_run_config(
    method: str,
    profile: str,
    data_root: Path,
    split: int = 1,
    layout: str = "auto",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full, JSON-able configuration of one run: the profile, the method's name, the data
    location, and ``overrides`` (a nested dict, e.g. ``{"seco": {"weights": {"order": 0}}}``).

    The method's own sections (``train_cvrl``, ``data_dualvar`` of the paper profile) replace
    values of ``train`` and ``data`` (:func:`~seco_lab.profiles.fold_method_sections`): first the
    profile's, then the overrides', so ``{"train": {"batch_size": 8}}`` wins over ``train_cvrl``."""
    if method not in method_names():
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(method_names())}")
    config = get_profile(profile)
    unknown = sorted(set(overrides or {}) - set(config))
    if unknown:
        raise ValueError(f"unknown config section(s) {', '.join(unknown)}: sections are {', '.join(sorted(config))}")
    config, folded_overrides = fold_method_sections(config, method), fold_method_sections(overrides or {}, method)
    check_setting_names(folded_overrides, config)
    config = deep_update(config, folded_overrides)
    check_profile_values(config)
    config["method"] = method
    config["profile"] = profile
    config["data"].update({"root": str(Path(data_root).resolve()), "split": int(split), "layout": layout})
    return config


def train_config(config: dict[str, Any], device: str = "auto", seed: int = 0) -> TrainConfig:
    """The engine's ``TrainConfig`` for a run config (its ``train`` section)."""
    values = {**config["train"], "device": device, "seed": seed, "num_workers": int(config["data"]["num_workers"])}
    return TrainConfig.from_dict(values)


def _write_initial_checkpoint(method: Any, config: dict[str, Any], run_dir: Path, seed: int) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    path = run_dir / CHECKPOINT_NAME
    save_checkpoint({
        "format": CHECKPOINT_FORMAT, "method": method.name, "model": method.state_dict(), "config": config,
        "train_config": {"seed": seed}, "optimizer": {}, "scheduler": {}, "step": 0, "epoch": 0,
        "step_in_epoch": 0, "finished": True, "rng": [], "wall_time": 0.0,
    }, path)
    return path


def training_sections(config: dict[str, Any]) -> list[str]:
    """The config sections that change what a run trains (evaluation settings do not)."""
    method = config["method"]
    sections = ["method", "data", "train", method]
    if method == "supervised":
        sections.append(config["supervised"]["backbone"])
    return sections


# Settings that change how fast batches arrive or which kernels compute a step, never what is
# trained, by section: {"data": ("frame_cache", "num_workers"), "train": ("deterministic",)}.
LOADING_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    section: tuple(name.split(".", 1)[1] for name in LOADING_ONLY_SETTINGS if name.split(".", 1)[0] == section)
    for section in {name.split(".", 1)[0] for name in LOADING_ONLY_SETTINGS}
}
# Settings newer than some saved runs: a run saved without one trained with this value.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {"data": {"max_videos_per_class": None},
                                               "train": {"decay_norm_and_bias": False}}


def _existing_config_differences(checkpoint: dict[str, Any], config: dict[str, Any], seed: int) -> list[str]:
    """What ``config`` and ``seed`` would train differently from the run of ``checkpoint``
    (compared with what the checkpoint holds: the run's ``config.json`` may be missing or damaged)."""
    existing = checkpoint["config"]
    trained_seed = checkpoint["train_config"].get("seed")  # absent from untrained runs written before it was kept
    seed_change = [] if trained_seed in (None, seed) else [f"seed {trained_seed!r} -> {seed!r}"]

    def trained(section: str, values: Any) -> Any:
        if section not in SECTION_DEFAULTS or not isinstance(values, dict):
            return values
        merged = {**SECTION_DEFAULTS[section], **values}
        return {key: value for key, value in merged.items() if key not in LOADING_ONLY_KEYS.get(section, ())}

    sections = training_sections(config)
    return config_changes({key: trained(key, existing.get(key)) for key in sections},
                          {key: trained(key, config.get(key)) for key in sections}) + seed_change


def pretrain(
    method: str,
    data_root: Path,
    profile: str,
    run_dir: Path,
    split: int = 1,
    layout: str = "auto",
    epochs: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    resume: bool = False,
    seed: int = 0,
    num_workers: int | None = None,
    frame_cache: bool | None = None,
    max_videos_per_class: int | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    monitor: bool = True,
) -> PretrainResult:
    """Pretrain ``method`` on the train split of ``data_root`` into ``run_dir``.

    ``resume=False`` refuses to touch a run directory that already holds a checkpoint;
    ``resume=True`` continues it (or reuses it when finished). The run's config must match the
    existing one, so a finished run is never silently mixed with different settings (the
    loading-only settings ``num_workers`` and ``frame_cache`` may differ). ``frame_cache``
    overrides the profile's choice of decoding the train videos once into a frame store; when
    the disk has no room for it, training warns and decodes from the files. The ``paper``
    profile, sized for GPUs, is refused when ``device="auto"`` finds none (``"cpu"`` trains it),
    unless the run has finished (trained elsewhere, reused here).
    ``max_videos_per_class`` trains on at most that many videos of each class (the same subset
    every time; see :func:`~seco_lab.video.layouts.limit_per_class`), for a quick run on a
    large dataset.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a run directory: choose another --out")
    with run_folder_lock(run_dir) if env_rank() == 0 else contextlib.nullcontext():  # rank 0 holds it under torchrun
        from seco_lab.video.dataset import VideoDataset
        from seco_lab.video.frame_store import FrameStore, FrameStoreSpaceError, store_folder
        from seco_lab.video.index import MIN_USABLE_FRAMES, load_dataset

        checkpoint_path = run_dir / CHECKPOINT_NAME
        # a missing GPU is named before the data is indexed
        chosen_device = resolve_device(device, env_local_rank(), env_world_size())
        if checkpoint_path.exists() and not resume:
            raise FileExistsError(
                f"{checkpoint_path} already exists: pass --resume to continue or reuse it, or choose another --out"
            )
        overrides = copy.deepcopy(overrides or {})
        if epochs is not None:
            if epochs < 0:
                raise ValueError(f"epochs must be >= 0, got {epochs}")
            overrides.setdefault("train", {})["epochs"] = epochs
        if batch_size is not None:
            overrides.setdefault("train", {})["batch_size"] = batch_size
        if num_workers is not None:
            overrides.setdefault("data", {})["num_workers"] = num_workers
        if frame_cache is not None:
            overrides.setdefault("data", {})["frame_cache"] = frame_cache
        if max_videos_per_class is not None:
            overrides.setdefault("data", {})["max_videos_per_class"] = max_videos_per_class
        config = build_run_config(method, profile, data_root, split, layout, overrides)
        existing = load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None  # a run to continue or reuse
        if (profile == "paper" and device == "auto" and chosen_device.type == "cpu" and config["train"]["epochs"]
                and not (existing is not None and existing.get("finished"))):
            train, data = config["train"], config["data"]
            raise ValueError(
                f"the paper profile trains {method} for {train['epochs']} epochs in batches of {train['batch_size']} "
                f"at {data['crop_size']} px, sized for GPUs, and no GPU is visible (--device auto chose the CPU), "
                "where it would take days: use --profile standard (sized for a CPU), or --device cpu to train it on "
                "the CPU anyway"
            )
        batch, processes = int(config["train"]["batch_size"]), env_world_size()
        if config["train"]["epochs"] and batch % processes:  # before the data is indexed or cached
            fitting = [multiple for multiple in (batch - batch % processes, batch - batch % processes + processes)
                       if multiple > 0]
            raise ValueError(f"batch_size={batch} does not split evenly over the {processes} processes of this run: "
                             f"choose a multiple of {processes} ({' or '.join(map(str, fitting))})")
        init_from_env(use_cuda=chosen_device.type == "cuda")  # rank 0 indexes and caches first, the others reuse them
        spec, index = main_rank_first(lambda: load_dataset(
            data_root, layout=layout, split=split, min_frames=MIN_USABLE_FRAMES, progress=progress,
            max_videos_per_class=config["data"].get("max_videos_per_class")))
        train_records = spec.split("train")
        if not train_records:
            raise ValueError(f"{data_root}: split {split} has no usable training videos")
        if method == "supervised" and len({record.label for record in train_records}) < 2:
            raise ValueError(f"{data_root}: supervised training learns to tell classes apart and needs training "
                             f"videos of at least 2 classes; split {split} has those of one, "
                             f"{train_records[0].class_name}")
        if config["train"]["epochs"] and len(train_records) < batch:  # before any frame is cached
            raise ValueError(f"{data_root}: split {split} has {len(train_records)} usable training videos, fewer "
                             f"than batch_size={batch} (every step needs a full batch): lower it to at most "
                             f"{len(train_records)} (pretrain --batch-size, report --set train.batch_size, or a "
                             "notebook's batch_size parameter) or use more data")
        config["data"]["num_classes"] = len(spec.classes)
        config["data"]["classes"] = list(spec.classes)

        if existing is not None:
            differences = _existing_config_differences(existing, config, seed)
            if differences:
                raise ValueError(
                    f"{run_dir} holds a run with different settings ({'; '.join(differences)}); "
                    "choose another run directory or delete this one"
                )
        existing = None  # its weights are not kept through training: the trainer reads the checkpoint itself

        seed_everything(seed)  # the initial weights depend on the seed only
        model = build_method(method, config)
        if not checkpoint_path.exists():
            model.load_start_weights()
        if config["train"]["epochs"] == 0:
            start = time.perf_counter()
            if not checkpoint_path.exists():
                _write_initial_checkpoint(model, config, run_dir, seed)
            return PretrainResult(run_dir, checkpoint_path, "initialised", time.perf_counter() - start, 0, 0.0)

        cfg = train_config(config, device=device, seed=seed)
        cfg.find_unused_parameters = model.has_unused_parameters()
        size = int(config["data"]["size"])

        def cached_frames() -> FrameStore | None:
            """The train videos' decoded frames, cached once (None: no room or no writable folder)."""
            try:
                return FrameStore.build([r.path for r in train_records], [index[r].num_frames for r in train_records],
                                        size, store_folder(Path(data_root)), progress=progress,
                                        frame_sizes=[(index[r].height, index[r].width) for r in train_records])
            except FrameStoreSpaceError as error:
                warnings.warn(f"{error.strerror}: training decodes every batch from the video files instead "
                              "(same batches, slower; --no-frame-cache skips this check)", stacklevel=4)
            except OSError as error:  # neither the dataset folder nor the user cache folder can be written
                warnings.warn(f"cannot cache the decoded frames ({error.filename}: {error.strerror}): training decodes "
                              "every batch from the video files instead (same batches, slower; --no-frame-cache skips "
                              "the cache)", stacklevel=4)
            return None

        store = main_rank_first(cached_frames) if config["data"].get("frame_cache") else None
        dataset = VideoDataset(train_records, index, model.view_maker(), size=size, seed=seed,
                               problem_log=run_dir / "data_problems.txt", frame_store=store)
        knn_monitor = None
        if monitor and cfg.knn_every and not spec.split("test"):
            warnings.warn(f"{data_root}: split {split} has no usable test videos, so this run trains without the kNN "
                          f"monitor (train.knn_every={cfg.knn_every})", stacklevel=2)
        elif monitor and cfg.knn_every:
            from seco_lab.evaluation.monitor import knn_monitor as make_knn_monitor

            knn_monitor = make_knn_monitor(method, config, spec, index, progress=progress)
        resumed = checkpoint_path.exists()
        result = fit(model, dataset, cfg, run_dir, config, resume=resume, monitor=knn_monitor, progress=progress)
        action = "reused" if result.already_finished else ("resumed" if resumed else "trained")
        return PretrainResult(run_dir, result.checkpoint_path, action, result.wall_time, result.steps,
                              result.samples_per_second)
