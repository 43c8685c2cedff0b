"""Interactive views for the notebooks, each with a static twin for executed reports.

Every interactive view is built by a function that *returns* an ipywidgets container whose
controls and outputs are attributes, so a test (or a curious reader) can set a control's
``.value`` and read what the view shows:

============================  ==========================================  ==========================
widget                        controls                                    outputs
============================  ==========================================  ==========================
``video_browser``             ``class_dropdown``, ``video_dropdown``,     ``image`` (PNG bytes),
                              ``frame_slider``, ``play``                  ``caption`` (text)
``interval_sampler_explorer`` ``power_slider``, ``distribution_dropdown`` ``plot`` (PNG), ``summary``
``augmentation_preview``      ``seed_slider``, ``resample_button``        ``plot`` (PNG), ``caption``
``neighbour_explorer``        ``query_slider``                            ``plot`` (PNG), ``table``
============================  ==========================================  ==========================

An executed HTML report has no kernel behind its widgets, so each view has a function that
returns a matplotlib ``Figure`` of the same content: ``video_strip_figure``,
``interval_sampler_figure``, ``augmentation_figure`` and ``neighbour_figure``. They return a
``DisplayFigure``, which a notebook shows as a PNG even when pyplot was never imported.

Images are shown as PNG bytes in an ``ipywidgets.Image``; frames are uint8 ``(C, H, W)`` or
clips ``(T, C, H, W)`` as everywhere in ``seco_lab``.
"""

from __future__ import annotations

import functools
import html
import io
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image as PILImage

from seco_lab.evaluation.retrieval import retrieval_neighbours
from seco_lab.plots import shortened
from seco_lab.samplers import GAP_DISTRIBUTIONS, interval_gap, interval_gap_density, interval_gap_pmf
from seco_lab.video.io import probe_video, read_frames
from seco_lab.video.layouts import VideoRecord, discover

__all__ = [
    "AugmentationPreview", "DisplayFigure", "IntervalSamplerExplorer", "NeighbourExplorer", "VideoBrowser",
    "augmentation_figure", "augmentation_preview", "figure_png", "frame_png", "interval_sampler_explorer",
    "interval_sampler_figure", "neighbour_explorer", "neighbour_figure", "records_by_class",
    "sample_interval_gaps", "top_k_neighbours", "video_browser", "video_strip_figure",
]

VideoSource = Mapping[str, Sequence[VideoRecord | Path | str]] | Iterable[VideoRecord] | str | Path
RecipeFactory = Callable[..., Callable[[torch.Tensor], torch.Tensor]]
FrameGetter = Callable[[str, int], torch.Tensor]

_DISPLAY_WIDTH = "256px"


# --------------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------------


def _to_hwc_uint8(frame: torch.Tensor | np.ndarray) -> np.ndarray:
    """A displayable ``(H, W, 3)`` uint8 array from a frame ``(C, H, W)`` uint8 or float in [0, 1]."""
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"seco_lab/widgets.py: expected a frame (C, H, W) with C = 1 or 3, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.round(np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return np.ascontiguousarray(array.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)


def frame_png(frame: torch.Tensor | np.ndarray) -> bytes:
    """PNG bytes of one frame ``(C, H, W)`` (uint8, or float in [0, 1] clamped)."""
    buffer = io.BytesIO()
    PILImage.fromarray(_to_hwc_uint8(frame)).save(buffer, format="png")
    return buffer.getvalue()


def figure_png(figure: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (rendered off-screen, nothing displayed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


class DisplayFigure(Figure):
    """A matplotlib ``Figure`` that shows itself as a PNG in Jupyter, whether or not pyplot (and
    with it the inline backend's figure formatter) was ever imported; nothing is drawn twice."""

    def _repr_png_(self) -> bytes:
        return figure_png(self, dpi=100)


def _check_clip(clip: torch.Tensor, where: str) -> None:
    if not isinstance(clip, torch.Tensor) or clip.ndim != 4 or clip.shape[1] not in (1, 3):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"seco_lab/widgets.py: {where} expects a clip tensor (T, C, H, W), got {shape}")


def _mosaic(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> tuple[np.ndarray, int, int]:
    """Tile images ``(H, W, 3)`` uint8 into one ``(R*(h+gap)-gap, C*(w+gap)-gap, 3)`` array on
    white, every image resized to the first one's ``(h, w)``; returns ``(mosaic, h, w)``."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    mosaic = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.shape[:2] != (height, width):
                image = np.asarray(PILImage.fromarray(image).resize((width, height), PILImage.BILINEAR))
            top, left = r * (height + gap), c * (width + gap)
            mosaic[top : top + height, left : left + width] = image
    return mosaic, height, width


# --------------------------------------------------------------------------------------------
# 1. Video browser
# --------------------------------------------------------------------------------------------


def records_by_class(source: VideoSource) -> dict[str, list[Path]]:
    """Video paths grouped by class name, classes and videos sorted.

    ``source`` is a dataset root (any layout ``video.layouts.discover`` reads), an iterable of
    ``VideoRecord``, or a mapping ``class name -> [VideoRecord | path, ...]``.
    """
    if isinstance(source, (str, Path)):
        source = discover(source).records
    grouped: dict[str, list[Path]] = defaultdict(list)
    if isinstance(source, Mapping):
        for class_name, videos in source.items():
            for video in videos:
                grouped[str(class_name)].append(Path(video.path if isinstance(video, VideoRecord) else video))
    else:
        for record in source:
            grouped[record.class_name].append(Path(record.path))
    result = {name: sorted(set(paths)) for name, paths in sorted(grouped.items()) if paths}
    if not result:
        raise ValueError("seco_lab/widgets.py: no videos to browse (the dataset or mapping is empty)")
    return result


class _DecodedVideoCache:
    """Least-recently-used cache of decoded videos: path -> (frame indices (N,), frames uint8 (N, C, H, W))."""

    def __init__(self, size: int, capacity: int, max_frames: int) -> None:
        self.size = size
        self.capacity = capacity
        self.max_frames = max_frames
        self.decodes = 0
        self._videos: OrderedDict[Path, tuple[np.ndarray, torch.Tensor]] = OrderedDict()

    def get(self, path: Path) -> tuple[np.ndarray, torch.Tensor]:
        if path in self._videos:
            self._videos.move_to_end(path)
            return self._videos[path]
        num_frames = probe_video(path).num_frames
        count = min(num_frames, self.max_frames)
        indices = np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))
        frames = read_frames(path, indices.tolist(), self.size, num_frames=num_frames)  # (N, C, H, W)
        self.decodes += 1
        self._videos[path] = (indices, frames)
        while len(self._videos) > self.capacity:
            self._videos.popitem(last=False)
        return indices, frames


class VideoBrowser(widgets.VBox):
    """Browse a dataset frame by frame (see ``video_browser``).

    Children: a row of ``class_dropdown`` and ``video_dropdown``, a row of ``play`` and
    ``frame_slider`` (linked in the browser), ``image`` (PNG of the frame) and ``caption``.
    ``frame_slider`` indexes the decoded frames (all of them, or ``max_frames`` evenly
    spaced ones); ``caption`` names the video's real frame index.
    """

    def __init__(self, source: VideoSource, size: int = 64, cache_videos: int = 8, max_frames: int = 300) -> None:
        self.videos = records_by_class(source)
        self.cache = _DecodedVideoCache(size, cache_videos, max_frames)
        classes = list(self.videos)
        self.class_dropdown = widgets.Dropdown(options=classes, value=classes[0], description="class")
        self.video_dropdown = widgets.Dropdown(description="video")
        self.frame_slider = widgets.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=True)
        self.play = widgets.Play(value=0, min=0, max=0, interval=100, description="play")
        widgets.jslink((self.play, "value"), (self.frame_slider, "value"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(width=_DISPLAY_WIDTH))
        self.caption = widgets.Label()
        super().__init__([
            widgets.HBox([self.class_dropdown, self.video_dropdown]),
            widgets.HBox([self.play, self.frame_slider]),
            self.image,
            self.caption,
        ])
        self.class_dropdown.observe(self._on_class, names="value")
        self.video_dropdown.observe(self._on_video, names="value")
        self.frame_slider.observe(self._on_frame, names="value")
        self._on_class()

    @property
    def current_path(self) -> Path:
        return self.videos[self.class_dropdown.value][self.video_dropdown.value]

    def _on_class(self, change: dict | None = None) -> None:
        paths = self.videos[self.class_dropdown.value]
        self.video_dropdown.unobserve(self._on_video, names="value")
        try:
            self.video_dropdown.options = [(path.name, position) for position, path in enumerate(paths)]
            self.video_dropdown.value = 0
        finally:
            self.video_dropdown.observe(self._on_video, names="value")
        self._on_video()

    def _on_video(self, change: dict | None = None) -> None:
        if self.video_dropdown.value is None:
            return
        indices, _ = self.cache.get(self.current_path)
        last = len(indices) - 1
        if self.frame_slider.value > last:
            self.frame_slider.value = 0
        self.frame_slider.max = last
        self.play.max = last
        self._on_frame()

    def _on_frame(self, change: dict | None = None) -> None:
        indices, frames = self.cache.get(self.current_path)
        position = min(self.frame_slider.value, len(indices) - 1)
        self.image.value = frame_png(frames[position])
        height, width = frames.shape[-2:]
        self.caption.value = (
            f"{self.class_dropdown.value} / {self.current_path.name}: frame {int(indices[position])} "
            f"({position + 1} of {len(indices)} shown), {width}x{height} px"
        )


def video_browser(source: VideoSource, size: int = 64, cache_videos: int = 8, max_frames: int = 300) -> VideoBrowser:
    """A frame-by-frame browser of a dataset's videos.

    Args:
        source: dataset root, iterable of ``VideoRecord`` or mapping class name -> videos.
        size: shorter side of the decoded frames in pixels (shown enlarged).
        cache_videos: how many decoded videos to keep (least recently used dropped first).
        max_frames: decode at most this many evenly spaced frames of a long video.

    Returns a ``VideoBrowser`` (an ``ipywidgets.VBox``); its controls are ``class_dropdown``,
    ``video_dropdown`` (value = position in the class), ``frame_slider`` and ``play``; its
    outputs ``image`` (PNG bytes) and ``caption``.
    """
    return VideoBrowser(source, size=size, cache_videos=cache_videos, max_frames=max_frames)


def video_strip_figure(
    source: VideoSource, size: int = 64, frames_per_video: int = 6, videos_per_class: int = 1, max_classes: int = 10
) -> Figure:
    """Static twin of ``video_browser``: one row per video (the first ``videos_per_class`` of
    each of the first ``max_classes`` classes), ``frames_per_video`` evenly spaced frames."""
    videos = records_by_class(source)
    rows = [(name, path) for name, paths in list(videos.items())[:max_classes] for path in paths[:videos_per_class]]
    figure = DisplayFigure(figsize=(1.3 * frames_per_video, 1.3 * len(rows) + 0.3), layout="constrained")
    axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    for axis, (class_name, path) in zip(axes, rows):
        num_frames = probe_video(path).num_frames
        indices = np.linspace(0, num_frames - 1, frames_per_video).round().astype(np.int64)
        frames = read_frames(path, indices.tolist(), size, num_frames=num_frames)  # (frames_per_video, C, H, W)
        mosaic, _, width = _mosaic([[_to_hwc_uint8(frame) for frame in frames]])
        axis.imshow(mosaic)
        axis.set_xticks([c * (width + 2) + width / 2 for c in range(len(indices))],
                        [f"frame {i}" for i in indices], fontsize=7)
        axis.set_yticks([])
        axis.tick_params(length=0)
        axis.set_frame_on(False)
        axis.set_ylabel(f"{shortened(class_name, 20)}\n{shortened(path.name, 20)}", fontsize=7)
    figure.suptitle(f"{len(videos)} classes; one row per video", fontsize=9)
    return figure


# --------------------------------------------------------------------------------------------
# 2. CVRL's temporal interval sampler
# --------------------------------------------------------------------------------------------


def sample_interval_gaps(
    max_gap: int, n_draws: int, power: float = 1.0, distribution: str = "decreasing", seed: int = 0
) -> np.ndarray:
    """``n_draws`` gaps ``(n_draws,)`` drawn with ``samplers.interval_gap`` (``M = max_gap``)."""
    rng = np.random.default_rng(seed)
    return np.array([interval_gap(max_gap, rng, power=power, distribution=distribution) for _ in range(n_draws)])


def _draw_interval_panel(axis, max_gap: int, n_draws: int, power: float, distribution: str, seed: int) -> str:
    """Histogram of measured gaps against the density on ``axis``; returns a one-line summary."""
    gaps = sample_interval_gaps(max_gap, n_draws, power, distribution, seed)
    axis.hist(gaps, bins=np.arange(max_gap + 1), density=True, color="tab:blue", alpha=0.6,
              label=f"{n_draws} draws of interval_gap")
    d = np.linspace(0.0, max_gap, 400)
    axis.plot(d, interval_gap_density(d, max_gap, power, distribution), color="black",
              label="interval_gap_density (formula)")
    axis.set_xlabel("gap between the two clips' starts (frames)")
    axis.set_ylabel("probability density")
    axis.set_title(f"{distribution}, p = {power:g}, M = {max_gap}", fontsize=9)
    axis.legend(fontsize=7)
    expected = float(np.arange(max_gap) @ interval_gap_pmf(max_gap, power, distribution))
    return f"{distribution}, p = {power:g}: mean gap measured {gaps.mean():.2f}, formula {expected:.2f} (M = {max_gap})"


class IntervalSamplerExplorer(widgets.VBox):
    """CVRL's gap distribution, measured against its formula (see ``interval_sampler_explorer``).

    Children: a row of ``power_slider`` and ``distribution_dropdown``, ``plot`` (PNG) and
    ``summary`` (measured and exact mean gap).
    """

    def __init__(self, max_gap: int = 64, n_draws: int = 4000, seed: int = 0) -> None:
        self.max_gap, self.n_draws, self.seed = max_gap, n_draws, seed
        self.power_slider = widgets.FloatSlider(value=1.0, min=0.25, max=4.0, step=0.25, description="p",
                                                continuous_update=False)
        self.distribution_dropdown = widgets.Dropdown(options=list(GAP_DISTRIBUTIONS), value="decreasing",
                                                      description="shape")
        self.plot = widgets.Image(format="png")
        self.summary = widgets.Label()
        super().__init__([widgets.HBox([self.power_slider, self.distribution_dropdown]), self.plot, self.summary])
        self.power_slider.observe(self._update, names="value")
        self.distribution_dropdown.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        figure = Figure(figsize=(6, 3.2), layout="constrained")
        self.summary.value = _draw_interval_panel(
            figure.subplots(), self.max_gap, self.n_draws, self.power_slider.value,
            self.distribution_dropdown.value, self.seed,
        )
        self.plot.value = figure_png(figure)


def interval_sampler_explorer(max_gap: int = 64, n_draws: int = 4000, seed: int = 0) -> IntervalSamplerExplorer:
    """Explore CVRL's temporal interval sampler: a slider for the power ``p`` and a dropdown for
    the shape (decreasing / uniform / increasing) redraw the histogram of ``n_draws`` gaps from
    ``samplers.interval_gap`` over the density ``samplers.interval_gap_density``.

    Returns an ``IntervalSamplerExplorer`` (``ipywidgets.VBox``): controls ``power_slider`` and
    ``distribution_dropdown``, outputs ``plot`` (PNG bytes) and ``summary`` (text).
    """
    return IntervalSamplerExplorer(max_gap=max_gap, n_draws=n_draws, seed=seed)


def interval_sampler_figure(
    max_gap: int = 64, n_draws: int = 4000, power: float = 1.0,
    distributions: Sequence[str] = GAP_DISTRIBUTIONS, seed: int = 0,
) -> Figure:
    """Static twin of ``interval_sampler_explorer``: one panel per distribution at ``power``."""
    figure = DisplayFigure(figsize=(4.2 * len(distributions), 3.2), layout="constrained")
    axes = figure.subplots(1, len(distributions), squeeze=False)[0]
    for axis, distribution in zip(axes, distributions):
        _draw_interval_panel(axis, max_gap, n_draws, power, distribution, seed)
    return figure


# --------------------------------------------------------------------------------------------
# 3. Clip-consistent versus per-frame augmentation
# --------------------------------------------------------------------------------------------


def _default_recipe(clip: torch.Tensor) -> RecipeFactory:
    from seco_lab.transforms.recipes import cvrl_clip_augment

    return functools.partial(cvrl_clip_augment, view=1, crop_size=int(min(clip.shape[-2:])))


def _augmented_views(clip: torch.Tensor, recipe: RecipeFactory, seed: int) -> dict[str, torch.Tensor]:
    """The clip augmented by ``recipe(mode=...)`` in both modes with torch seeded to ``seed``
    (the global generator is restored afterwards). Each value is float ``(T, C, crop, crop)``."""
    views = {}
    for mode in ("consistent", "per_frame"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            views[mode] = recipe(mode=mode)(clip)
    return views


def _draw_augmentations(axis, clip: torch.Tensor, views: dict[str, torch.Tensor], title: str) -> None:
    """One mosaic on ``axis``: rows original / consistent / per frame, one column per frame."""
    names = ["original", "consistent", "per frame"]
    rows = [[_to_hwc_uint8(frame) for frame in frames] for frames in (clip, views["consistent"], views["per_frame"])]
    mosaic, height, width = _mosaic(rows)
    axis.imshow(mosaic)
    axis.set_yticks([r * (height + 2) + height / 2 for r in range(len(names))], names, fontsize=8)
    axis.set_xticks([c * (width + 2) + width / 2 for c in range(clip.shape[0])],
                    [f"t = {c}" for c in range(clip.shape[0])], fontsize=7)
    axis.tick_params(length=0)
    axis.set_frame_on(False)
    axis.set_title(title, fontsize=9)


class AugmentationPreview(widgets.VBox):
    """One clip augmented clip-consistently and per frame (see ``augmentation_preview``).

    Children: a row of ``seed_slider`` and ``resample_button`` (adds one to the seed), ``plot``
    (PNG: original, consistent and per-frame rows) and ``caption``.
    """

    def __init__(self, clip: torch.Tensor, recipe: RecipeFactory | None = None, max_frames: int = 8) -> None:
        _check_clip(clip, "augmentation_preview")
        positions = np.linspace(0, clip.shape[0] - 1, min(max_frames, clip.shape[0])).round().astype(np.int64)
        self.clip = clip[torch.from_numpy(positions)]  # (T', C, H, W), T' <= max_frames
        self.recipe = recipe or _default_recipe(clip)
        self.seed_slider = widgets.IntSlider(value=0, min=0, max=999, description="seed", continuous_update=False)
        self.resample_button = widgets.Button(description="resample", icon="refresh")
        self.plot = widgets.Image(format="png")
        self.caption = widgets.Label()
        super().__init__([widgets.HBox([self.seed_slider, self.resample_button]), self.plot, self.caption])
        self.seed_slider.observe(self._update, names="value")
        self.resample_button.on_click(self._resample)
        self._update()

    def _resample(self, button: widgets.Button | None = None) -> None:
        self.seed_slider.value = (self.seed_slider.value + 1) % (self.seed_slider.max + 1)

    def _update(self, change: dict | None = None) -> None:
        seed = self.seed_slider.value
        views = _augmented_views(self.clip, self.recipe, seed)
        figure = Figure(figsize=(1.1 * self.clip.shape[0], 3.6), layout="constrained")
        _draw_augmentations(figure.subplots(), self.clip, views, f"seed {seed}")
        self.plot.value = figure_png(figure)
        spread = {mode: float(view.mean(dim=(1, 2, 3)).std()) for mode, view in views.items()}
        self.caption.value = (
            f"seed {seed}: spread of the frames' mean brightness — consistent {spread['consistent']:.3f}, "
            f"per frame {spread['per_frame']:.3f}"
        )


def augmentation_preview(clip: torch.Tensor, recipe: RecipeFactory | None = None, max_frames: int = 8) -> AugmentationPreview:
    """Show one clip augmented with one random draw for the whole clip ("consistent") and with
    a draw per frame ("per_frame"), side by side, for a seed chosen with a slider.

    Args:
        clip: uint8 ``(T, C, H, W)``; at most ``max_frames`` evenly spaced frames are shown.
        recipe: factory called as ``recipe(mode="consistent" | "per_frame")`` returning a clip
            transform with output in [0, 1] (values outside are clamped for display); default
            ``cvrl_clip_augment(view=1, crop_size=<clip's shorter side>)``.

    Returns an ``AugmentationPreview`` (``ipywidgets.VBox``): controls ``seed_slider`` and
    ``resample_button``, outputs ``plot`` (PNG bytes) and ``caption``.
    """
    return AugmentationPreview(clip, recipe=recipe, max_frames=max_frames)


def augmentation_figure(
    clip: torch.Tensor, recipe: RecipeFactory | None = None, seed: int = 0, max_frames: int = 8
) -> Figure:
    """Static twin of ``augmentation_preview`` for one ``seed``."""
    _check_clip(clip, "augmentation_figure")
    positions = np.linspace(0, clip.shape[0] - 1, min(max_frames, clip.shape[0])).round().astype(np.int64)
    shown = clip[torch.from_numpy(positions)]  # (T', C, H, W)
    views = _augmented_views(shown, recipe or _default_recipe(clip), seed)
    figure = DisplayFigure(figsize=(1.1 * shown.shape[0], 3.6), layout="constrained")
    _draw_augmentations(figure.subplots(), shown, views, f"clip-consistent vs per-frame augmentation, seed {seed}")
    return figure


# --------------------------------------------------------------------------------------------
# 4. Nearest neighbours in feature space
# --------------------------------------------------------------------------------------------


def _video_rows(features: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim not in (2, 3):
        raise ValueError(f"seco_lab/widgets.py: {name} must be (N, D) or (N, V, D), got shape {array.shape}")
    return array


def top_k_neighbours(
    query_features: np.ndarray | torch.Tensor, gallery_features: np.ndarray | torch.Tensor, k: int,
    center: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(Nq, k')`` and cosine similarities ``(Nq, k')`` of each query's most similar
    gallery videos, ``k' = min(k, Ng)``, best first (ties: lower index first).

    Features are ``(N, D)`` or ``(N, V, D)`` (views averaged); with ``center`` both sets are
    centred by the gallery's mean before L2 normalisation: the retrieval protocol's neighbours
    (:func:`~seco_lab.evaluation.retrieval.retrieval_neighbours`, the gallery as its train split).
    """
    return retrieval_neighbours(_video_rows(gallery_features, "gallery_features"),
                                _video_rows(query_features, "query_features"), k, center)


def _class_name(label: int, class_names: Sequence[str] | None) -> str:
    return class_names[label] if class_names is not None else str(label)


def _thumbnail(frames: FrameGetter, split: str, index: int) -> np.ndarray:
    frame = frames(split, index)
    if isinstance(frame, torch.Tensor) and frame.ndim == 4:
        frame = frame[frame.shape[0] // 2]  # (T, C, H, W) -> middle frame (C, H, W)
    return _to_hwc_uint8(frame)


def _draw_neighbour_row(axis, query: int, neighbours: np.ndarray, similarities: np.ndarray,
                        query_labels: np.ndarray, gallery_labels: np.ndarray, frames: FrameGetter,
                        class_names: Sequence[str] | None) -> None:
    """The query's thumbnail then its neighbours' on ``axis``, each titled with class and similarity."""
    query_label = int(query_labels[query])
    images = [_thumbnail(frames, "query", query)] + [_thumbnail(frames, "gallery", int(i)) for i in neighbours]
    gap = max(2, images[0].shape[1] // 4)  # room between thumbnails for the titles
    mosaic, height, width = _mosaic([images], gap=gap)
    axis.imshow(mosaic)
    axis.set_axis_off()
    step = width + gap
    axis.text(width / 2, -2, f"query {query}\n{_class_name(query_label, class_names)}", ha="center", va="bottom",
              fontsize=7, fontweight="bold")
    for position, (index, similarity) in enumerate(zip(neighbours, similarities), start=1):
        label = int(gallery_labels[index])
        same = label == query_label
        axis.text(position * step + width / 2, -2,
                  f"{_class_name(label, class_names)}\nsim {similarity:.2f}", ha="center", va="bottom", fontsize=7,
                  color="tab:green" if same else "tab:red")


class NeighbourExplorer(widgets.VBox):
    """A query video and its nearest gallery videos (see ``neighbour_explorer``).

    Children: ``query_slider``, ``plot`` (PNG: query then its top-k) and ``table`` (HTML: rank,
    gallery index, class, cosine similarity).
    """

    def __init__(self, query_features, gallery_features, query_labels, gallery_labels, frames: FrameGetter,
                 k: int = 5, class_names: Sequence[str] | None = None, center: bool = True) -> None:
        self.query_labels = np.asarray(query_labels)
        self.gallery_labels = np.asarray(gallery_labels)
        self.neighbours, self.similarities = top_k_neighbours(query_features, gallery_features, k, center=center)
        if len(self.query_labels) != len(self.neighbours) or len(self.gallery_labels) != len(gallery_features):
            raise ValueError(
                f"seco_lab/widgets.py: neighbour_explorer got {len(self.neighbours)} query features and "
                f"{len(self.query_labels)} query labels, {len(gallery_features)} gallery features and "
                f"{len(self.gallery_labels)} gallery labels"
            )
        self.frames = frames
        self.class_names = class_names
        self.query_slider = widgets.IntSlider(value=0, min=0, max=len(self.query_labels) - 1, description="query",
                                              continuous_update=False)
        self.plot = widgets.Image(format="png")
        self.table = widgets.HTML()
        super().__init__([self.query_slider, self.plot, self.table])
        self.query_slider.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        query = self.query_slider.value
        neighbours, similarities = self.neighbours[query], self.similarities[query]
        figure = Figure(figsize=(1.4 * (len(neighbours) + 1), 1.9), layout="constrained")
        _draw_neighbour_row(figure.subplots(), query, neighbours, similarities, self.query_labels, self.gallery_labels,
                            self.frames, self.class_names)
        self.plot.value = figure_png(figure)
        query_class = _class_name(int(self.query_labels[query]), self.class_names)
        rows = "".join(
            f"<tr><td>{rank}</td><td>{int(index)}</td>"
            f"<td>{html.escape(_class_name(int(self.gallery_labels[index]), self.class_names))}</td>"
            f"<td>{similarity:.3f}</td></tr>"
            for rank, (index, similarity) in enumerate(zip(neighbours, similarities), start=1)
        )
        self.table.value = (
            f"<b>query {query}</b> ({html.escape(query_class)})"
            f"<table><tr><th>rank</th><th>gallery</th><th>class</th><th>cosine</th></tr>{rows}</table>"
        )


def neighbour_explorer(
    query_features, gallery_features, query_labels, gallery_labels, frames: FrameGetter,
    k: int = 5, class_names: Sequence[str] | None = None, center: bool = True,
) -> NeighbourExplorer:
    """Pick a query video with a slider and see its ``k`` most similar gallery videos.

    Args:
        query_features: ``(Nq, D)`` or ``(Nq, V, D)``; gallery_features: ``(Ng, D)`` or ``(Ng, V, D)``.
        query_labels: ``(Nq,)`` int; gallery_labels: ``(Ng,)`` int.
        frames: ``frames(split, index)`` with split ``"query"`` or ``"gallery"`` returns a
            thumbnail uint8 ``(C, H, W)`` (or a clip ``(T, C, H, W)``, its middle frame is shown).
        class_names: label -> name, for the titles.
        center: centre features before cosine similarity, as the retrieval protocol does.

    Returns a ``NeighbourExplorer`` (``ipywidgets.VBox``): control ``query_slider``, outputs
    ``plot`` (PNG bytes) and ``table`` (HTML).
    """
    return NeighbourExplorer(query_features, gallery_features, query_labels, gallery_labels, frames,
                             k=k, class_names=class_names, center=center)


def neighbour_figure(
    query_features, gallery_features, query_labels, gallery_labels, frames: FrameGetter,
    queries: Sequence[int] = (0, 1, 2), k: int = 5, class_names: Sequence[str] | None = None, center: bool = True,
    title: str | None = "each query video (left) and its nearest gallery videos, by cosine similarity",
) -> Figure:
    """Static twin of ``neighbour_explorer``: one row per query in ``queries``, under ``title``."""
    neighbours, similarities = top_k_neighbours(query_features, gallery_features, k, center=center)
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    queries = [q for q in queries if 0 <= q < len(query_labels)]
    if not queries:
        raise ValueError(f"seco_lab/widgets.py: neighbour_figure needs query indices in [0, {len(query_labels)})")
    figure = DisplayFigure(figsize=(1.4 * (neighbours.shape[1] + 1), 1.9 * len(queries)), layout="constrained")
    axes = figure.subplots(len(queries), 1, squeeze=False)[:, 0]
    for axis, query in zip(axes, queries):
        _draw_neighbour_row(axis, query, neighbours[query], similarities[query], query_labels,
                            gallery_labels, frames, class_names)
    if title:
        figure.suptitle(title)
    return figure
