"""Figures for the notebooks: every function returns a ``matplotlib.figure.Figure``.

Figures are built without pyplot (no global state, nothing shown); a notebook displays the
returned figure, a script saves it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

EMBEDDING_METHODS = ("pca", "tsne")

NON_LOSS_KEYS = {"type", "step", "epoch", "lr", "samples_per_s", "wall_time", "time"}
# A curve of at most this many points marks each one: a line through a single step draws nothing.
MARKED_POINTS_MAX = 30
ACCURACY_SUFFIX = "_acc"  # history keys of accuracies (fractions) logged beside the losses


def _records(history: str | Path | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """History records from a run folder, a history.jsonl file, or a list of dicts."""
    if isinstance(history, (str, Path)):
        path = Path(history)
        if path.is_dir():
            path = path / "history.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no training history")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(history)


def smooth(values: Sequence[float], weight: float = 0.0) -> np.ndarray:
    """Exponential moving average with debiasing (weight 0 = unchanged, 0.9 = strong)."""
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out = np.empty_like(values)
    average = 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[index] = average / (1 - weight ** (index + 1))
    return out


def plot_loss_curves(history: str | Path | Sequence[Mapping[str, Any]], terms: Sequence[str] | None = None,
                     smoothing: float = 0.0, title: str | None = None) -> Figure:
    """Loss terms against step (left), learning rate (middle), monitor metrics (right, if any).

    history: run folder, history.jsonl path, or the records ({"type": "step"|"monitor", ...}).
    terms: loss keys to draw (default: every numeric key of the step records except step,
    epoch, lr, samples_per_s, wall_time). Accuracies logged beside the losses (keys ending in
    ``_acc``, fractions) are drawn dashed, and the axis says so.
    """
    records = _records(history)
    steps = [r for r in records if r.get("type", "step") == "step"]
    monitors = [r for r in records if r.get("type") == "monitor"]
    if not steps:
        raise ValueError("plot_loss_curves: the history has no step records")
    if terms is None:
        terms = sorted({key for r in steps for key, value in r.items()
                        if key not in NON_LOSS_KEYS and isinstance(value, (int, float))},
                       key=lambda key: (key != "loss", key))
    monitor_keys = sorted({key for r in monitors for key, value in r.items()
                           if key not in NON_LOSS_KEYS and isinstance(value, (int, float))})
    figure = Figure(figsize=(5 * (2 + bool(monitor_keys)), 3.6), layout="constrained")
    axes = figure.subplots(1, 2 + bool(monitor_keys), squeeze=False)[0]
    for term in terms:
        points = [(r["step"], r[term]) for r in steps if term in r and r[term] is not None]
        if points:
            x, y = zip(*points)
            axes[0].plot(x, smooth(y, smoothing), label=term, linewidth=2.0 if term == "loss" else 1.2,
                         linestyle="--" if term.endswith(ACCURACY_SUFFIX) else "-",
                         marker="o" if len(points) <= MARKED_POINTS_MAX else None, markersize=4)
    with_accuracy = any(term.endswith(ACCURACY_SUFFIX) for term in terms)
    axes[0].set(xlabel="step", ylabel="loss; accuracy as a fraction (dashed)" if with_accuracy else "loss",
                title=title or "training losses")
    axes[0].legend(fontsize="small")
    lr_points = [(r["step"], r["lr"]) for r in steps if "lr" in r]
    if lr_points:
        axes[1].plot(*zip(*lr_points), color="tab:gray", marker="o" if len(lr_points) <= MARKED_POINTS_MAX else None,
                     markersize=4)
    axes[1].set(xlabel="step", ylabel="learning rate", title="schedule")
    if monitor_keys:
        for key in monitor_keys:
            points = [(r["step"], r[key]) for r in monitors if key in r]
            axes[2].plot(*zip(*points), marker="o", label=key)
        percent = all(key.endswith("top1") for key in monitor_keys)  # the kNN monitor logs top-1 in percent
        axes[2].set(xlabel="step", ylabel="top-1 accuracy (%)" if percent else "value", title="monitor")
        axes[2].legend(fontsize="small")
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # steps are whole numbers
    return figure


MIN_EMBEDDED_POINTS = 3  # t-SNE's perplexity must stay below the number of points, and at least 2 here


def embed_features(features: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """2-D embedding (N, 2) of features (N, D), N >= 3, by ``"pca"`` or ``"tsne"`` (sklearn)."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if len(features) < MIN_EMBEDDED_POINTS:
        raise ValueError(f"a 2-D embedding needs at least {MIN_EMBEDDED_POINTS} points, got {len(features)}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = perplexity if perplexity is not None else float(min(30.0, max(2.0, (len(features) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    raise ValueError(f"embedding method must be one of {', '.join(EMBEDDING_METHODS)}, got {method!r}")


# Past these class counts a plot drops per-class decorations that would only overlap.
LEGEND_MAX_CLASSES = 20
CELL_LABEL_MAX_CLASSES = 20
TICK_LABEL_MAX = 50


def shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut (real class and
    file names run long)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plot_embedding(features: np.ndarray, labels: np.ndarray, methods: Sequence[str] = ("pca", "tsne"),
                   class_names: Sequence[str] | None = None, seed: int = 0, title: str | None = None) -> Figure:
    """Scatter of features (N, D) in 2-D, one panel per method, one colour (artist) per class."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    figure = Figure(figsize=(4.6 * len(methods) + 1.5, 4.2), layout="constrained")
    axes = figure.subplots(1, len(methods), squeeze=False)[0]
    colours = _class_colours(len(classes))  # beyond 20 classes colours repeat: no legend then
    for axis, method in zip(axes, methods):
        axis.set(title=f"{title + ': ' if title else ''}{method.upper() if method == 'pca' else 't-SNE'}",
                 xticks=[], yticks=[])
        if len(features) < MIN_EMBEDDED_POINTS:
            axis.text(0.5, 0.5, f"{len(features)} video(s):\ntoo few to embed", ha="center", va="center",
                      transform=axis.transAxes)
            continue
        points = embed_features(features, method, seed)
        for colour, label in zip(colours, classes):
            name = class_names[label] if class_names is not None else str(label)
            chosen = labels == label
            axis.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colour, label=name)
    if len(features) < MIN_EMBEDDED_POINTS:
        return figure
    if len(classes) <= LEGEND_MAX_CLASSES:
        axes[-1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        figure.suptitle(f"{len(classes)} classes, colours repeat every 20", fontsize="small")
    return figure


def _class_colours(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _as_image(frame: Any) -> np.ndarray:
    """Frame (H, W, 3) or (3, H, W), uint8 or float -> array (H, W, 3) for imshow."""
    array = frame.detach().cpu().numpy() if hasattr(frame, "detach") else np.asarray(frame)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            array = (array - low) / max(high - low, 1e-12)
    return array.squeeze(-1) if array.shape[-1] == 1 else array


def plot_confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str | None = None) -> Figure:
    """Confusion matrix (rows = true class, columns = predicted), row-normalised in percent by default."""
    from seco_lab.evaluation.metrics import confusion_matrix

    count = len(class_names) if class_names is not None else None
    matrix = confusion_matrix(labels, predictions, count).astype(np.float64)
    if normalize:
        matrix = 100.0 * matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(size)]
    names = [shortened(name, 24) for name in names]
    cell = min(0.55, 10.0 / size)  # inches; UCF101's 101 or Kinetics' 400 classes stay a readable size
    figure = Figure(figsize=(2.5 + cell * size + (1.5 if size <= CELL_LABEL_MAX_CLASSES else 0.5),
                             0.8 + cell * size + 1.2), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=100 if normalize else None)
    if size <= CELL_LABEL_MAX_CLASSES:
        for row in range(size):
            for column in range(size):
                value = matrix[row, column]
                if value:
                    axis.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize="x-small",
                              color="white" if value > 0.6 * matrix.max() else "black")
    step = max(1, -(-size // TICK_LABEL_MAX))  # every class named up to 50, then every step-th
    ticks = range(0, size, step)
    axis.set_xticks(ticks, [names[i] for i in ticks], rotation=60, ha="right", fontsize="small")
    axis.set_yticks(ticks, [names[i] for i in ticks], fontsize="small")
    axis.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    figure.colorbar(image, ax=axis, label="% of the true class" if normalize else "videos")
    return figure


def plot_tracking_overlay(frames: Sequence[Any], truth_boxes: np.ndarray, predicted_boxes: np.ndarray,
                          frame_indices: Sequence[int] | None = None, num_frames: int = 6,
                          title: str | None = None) -> Figure:
    """Frames with the ground-truth box (green) and the tracker's box (red), boxes (T, 4) x, y, w, h."""
    if frame_indices is None:
        frame_indices = np.unique(np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int))
    figure = Figure(figsize=(2.4 * len(frame_indices), 2.6), layout="constrained")
    axes = figure.subplots(1, len(frame_indices), squeeze=False)[0]
    for axis, index in zip(axes, frame_indices):
        axis.imshow(_as_image(frames[index]))
        for boxes, colour, label in ((truth_boxes, "tab:green", "truth"), (predicted_boxes, "tab:red", "tracker")):
            x, y, w, h = np.asarray(boxes[index], dtype=np.float64)
            axis.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=colour, linewidth=1.5, label=label))
        axis.set(title=f"frame {index}", xticks=[], yticks=[])
    axes[0].legend(fontsize="x-small", loc="upper left")
    if title:
        figure.suptitle(title)
    return figure


def plot_tracking_curves(results: Mapping[str, Mapping[str, Any]] | Mapping[str, Any]) -> Figure:
    """OTB precision (centre error 0..50 px) and success (IoU 0..1) plots.

    results: one ``tracking_protocol``/``otb_metrics`` result, or a dict name -> result; each
    needs "precision_curve" (51,) and "success_curve" (21,).
    """
    from seco_lab.evaluation.tracking import PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS

    named = {"tracker": results} if "precision_curve" in results else dict(results)
    figure = Figure(figsize=(9.5, 3.8), layout="constrained")
    precision_axis, success_axis = figure.subplots(1, 2)
    for name, result in named.items():
        precision = np.asarray(result["precision_curve"])
        success = np.asarray(result["success_curve"])
        precision_axis.plot(PRECISION_THRESHOLDS, precision, label=f"{name} [{precision[20]:.3f}]")
        success_axis.plot(SUCCESS_THRESHOLDS, success, label=f"{name} [{success.mean():.3f}]")
    precision_axis.axvline(20, color="gray", linestyle=":", linewidth=1)
    precision_axis.set(xlabel="location error threshold (px)", ylabel="precision", ylim=(0, 1.02),
                       title="precision plot (at 20 px)")
    success_axis.set(xlabel="overlap threshold (IoU)", ylabel="success rate", ylim=(0, 1.02),
                     title="success plot (AUC)")
    precision_axis.legend(fontsize="small")
    success_axis.legend(fontsize="small")
    return figure


def plot_run_comparison(values: Mapping[str, float], errors: Mapping[str, float] | None = None,
                        chance: float | None = None, ylabel: str = "top-1 (%)", title: str | None = None,
                        error_label: str | None = None) -> Figure:
    """Bar chart of one metric per run (name -> value), optional error bars and a chance line.

    ``error_label`` says under the bars what the error bars are (e.g. "±1 standard error").
    Long run names are wrapped and slanted so that neighbouring labels do not run together.
    """
    names = list(values)
    heights = [float(values[name]) for name in names]
    spread = [float(errors.get(name, 0.0)) for name in names] if errors else None
    figure = Figure(figsize=(1.2 + 0.9 * len(names), 3.8), layout="constrained")
    axis = figure.subplots()
    bars = axis.bar(range(len(names)), heights, yerr=spread, capsize=4 if spread else 0,
                    color=_class_colours(len(names)))
    axis.bar_label(bars, labels=[f"{h:.1f}" for h in heights], fontsize="small", padding=2)
    if chance is not None:
        axis.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f})")
        axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, over none
    labels = [textwrap.fill(name, 20) for name in names]
    slanted = len(names) > 4 or any(len(name) > 12 for name in names)
    axis.set_xticks(range(len(names)), labels, rotation=30 if slanted else 0, ha="right" if slanted else "center",
                    fontsize="small")
    axis.set(ylabel=ylabel, title=title or "")
    if spread and error_label:
        axis.set_xlabel(f"error bars: {error_label}", fontsize="small")
    return figure


def plot_untrained_spread(untrained: Mapping[str, Sequence[float]], trained: Mapping[str, float],
                          chance: float | None = None, ylabel: str = "top-1 (%)", title: str | None = None) -> Figure:
    """A trained encoder against several initialisations of the same encoder untrained.

    One column per comparison: ``untrained[label]`` holds the untrained scores (one per
    initialisation, grey dots, their mean a black dash) and ``trained[label]`` the trained
    encoder's score (a red diamond). Both mappings need the same labels.
    """
    if set(untrained) != set(trained):
        raise ValueError(f"untrained and trained scores need the same labels, got {sorted(untrained)} "
                         f"and {sorted(trained)}")
    labels = list(untrained)
    figure = Figure(figsize=(3.8 + 1.3 * len(labels), 3.8), layout="constrained")
    axis = figure.subplots()
    for position, label in enumerate(labels):
        values = np.asarray(untrained[label], dtype=float)
        if values.size == 0:
            raise ValueError(f"no untrained scores for {label!r}")
        axis.scatter(np.full(values.size, position), values, color="tab:gray", alpha=0.7, zorder=2,
                     label="untrained, one per initialisation" if position == 0 else None)
        axis.hlines(values.mean(), position - 0.25, position + 0.25, color="black", linewidth=2, zorder=3,
                    label="untrained mean" if position == 0 else None)
        axis.scatter([position], [trained[label]], color="tab:red", marker="D", s=50, zorder=4,
                     label="trained" if position == 0 else None)
    if chance is not None:
        axis.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f})")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, over no point
    axis.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0,
                    ha="right" if len(labels) > 3 else "center")
    axis.set_xlim(-0.6, len(labels) - 0.4)
    axis.set(ylabel=ylabel, title=title or "")
    return figure


def plot_frame_triplets(num_frames: int, triplets: np.ndarray, orders: np.ndarray) -> Figure:
    """SeCo triplets on a video's timeline: one row per draw, anchor ``a`` (red) and frames
    ``b``, ``c`` (blue), the halves split by a dashed line. triplets (N, 3), orders (N,)."""
    triplets, orders = np.asarray(triplets), np.asarray(orders)
    figure = Figure(figsize=(7.5, 0.9 + 0.16 * len(triplets)), layout="constrained")
    axis = figure.subplots()
    rows = np.arange(len(triplets))
    axis.scatter(triplets[:, 0], rows, color="tab:red", marker="o", label="anchor a")
    axis.scatter(triplets[:, 1:].ravel(), np.repeat(rows, 2), color="tab:blue", marker="s", label="b, c")
    axis.axvline((num_frames // 2) - 0.5, color="gray", linestyle="--", linewidth=1)
    axis.set_yticks(rows, [f"order {int(o)}" for o in orders], fontsize=6)
    axis.set(xlim=(-0.5, num_frames - 0.5), xlabel="frame index", title="SeCo frame triplets (one draw per row)")
    axis.invert_yaxis()
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def plot_view_grid(views: Mapping[str, Any], title: str | None = None, differences: bool = False) -> Figure:
    """Images side by side with their names; each (C, H, W) or (H, W, C), rescaled for display.

    ``differences=True`` shows frame differences on one symmetric scale shared by all panels:
    zero is mid grey, the largest change in any panel black or white (an all-zero view is flat grey).
    """
    if differences:
        arrays = {name: np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
                  for name, image in views.items()}
        scale = max(max(float(np.abs(array).max()) for array in arrays.values()), 1e-12)
        images = {name: _as_image(0.5 + array / (2 * scale)) for name, array in arrays.items()}
    else:
        images = {name: _as_image(image) for name, image in views.items()}
    figure = Figure(figsize=(1.9 * len(views), 2.2), layout="constrained")
    axes = figure.subplots(1, len(views), squeeze=False)[0]
    for axis, (name, image) in zip(axes, images.items()):
        axis.imshow(image, vmin=0.0, vmax=1.0)
        axis.set(title=name, xticks=[], yticks=[])
    if title:
        figure.suptitle(title)
    return figure


def plot_clip_strips(clips: Mapping[str, Any], max_frames: int = 12, title: str | None = None) -> Figure:
    """One row per named clip (T, C, H, W), at most ``max_frames`` evenly spaced frames each."""
    columns = min(max_frames, max(len(clip) for clip in clips.values()))
    figure = Figure(figsize=(1.1 * columns + 1.2, 1.3 * len(clips) + 0.2), layout="constrained")
    axes = figure.subplots(len(clips), columns, squeeze=False)
    for row, (name, clip) in enumerate(clips.items()):
        shown = np.unique(np.linspace(0, len(clip) - 1, min(columns, len(clip))).round().astype(int))
        for column, axis in enumerate(axes[row]):
            axis.set(xticks=[], yticks=[])
            if column < len(shown):
                axis.imshow(_as_image(clip[shown[column]]))
                axis.set_title(f"t={shown[column]}", fontsize=6)
            else:
                axis.set_axis_off()
        axes[row, 0].set_ylabel(name, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def plot_similarity_matrices(matrices: Mapping[str, np.ndarray],
                             key_names: Mapping[str, Sequence[str]] | None = None) -> Figure:
    """Heat maps of similarity matrices (rows: queries), one panel each, shared colour scale.

    ``key_names[panel]`` names that panel's columns (e.g. ``["k1", "k2", "k3"]``); other panels
    number them.
    """
    arrays = {name: np.asarray(matrix, dtype=np.float64) for name, matrix in matrices.items()}
    key_names = dict(key_names or {})
    unknown = set(key_names) - set(arrays)
    if unknown:
        raise ValueError(f"key_names for panels that are not plotted: {sorted(unknown)}")
    low = min(float(a.min()) for a in arrays.values())
    high = max(float(a.max()) for a in arrays.values())
    figure = Figure(figsize=(4.2 * len(arrays) + 0.8, 3.8), layout="constrained")
    axes = figure.subplots(1, len(arrays), squeeze=False)[0]
    image = None
    for axis, (name, matrix) in zip(axes, arrays.items()):
        image = axis.imshow(matrix, vmin=low, vmax=high, cmap="viridis", aspect="auto")
        axis.set(title=name, xlabel="key", ylabel="query")
        if name in key_names:
            if len(key_names[name]) != matrix.shape[1]:
                raise ValueError(f"{name!r} has {matrix.shape[1]} columns but {len(key_names[name])} key names")
            axis.set_xticks(range(matrix.shape[1]), list(key_names[name]))
        else:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # keys and queries are whole indices
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.colorbar(image, ax=list(axes), label="cosine similarity")
    return figure
