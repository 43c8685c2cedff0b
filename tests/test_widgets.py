"""The notebook widgets react to their controls, and their static twins draw the same content."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from seco_lab import widgets
from seco_lab.evaluation.retrieval import retrieval_neighbours
from seco_lab.transforms.recipes import cvrl_clip_augment
from seco_lab.video.io import write_video
from seco_lab.video.layouts import VideoRecord

FRAME_SIZE = 32


def _moving_square_video(path: Path, num_frames: int, colour: tuple[int, int, int]) -> Path:
    """A video where a coloured square moves right by one pixel per frame (every frame differs)."""
    frames = np.zeros((num_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, 8:20, t : t + 12] = colour
    write_video(path, frames, fps=10)
    return path


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """Class-folders layout: two classes, two videos each."""
    root = tmp_path_factory.mktemp("widget_videos")
    for class_name, colour in (("jump", (250, 40, 40)), ("walk", (40, 40, 250))):
        for video in range(2):
            _moving_square_video(root / class_name / f"{class_name}_{video}.mp4", 10 + 2 * video, colour)
    return root


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    import io

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# -------------------------------------------------------------------------------------------- browser


def test_video_browser_reads_a_dataset_root_and_shows_the_first_frame(dataset_root: Path):
    browser = widgets.video_browser(dataset_root, size=FRAME_SIZE)
    assert list(browser.class_dropdown.options) == ["jump", "walk"]
    assert [label for label, _ in browser.video_dropdown.options] == ["jump_0.mp4", "jump_1.mp4"]
    assert browser.frame_slider.max == 9 and browser.play.max == 9
    pixels = _pixels(browser.image.value)
    assert pixels.shape == (FRAME_SIZE, FRAME_SIZE, 3)
    assert pixels[14, 5, 0] > 150 and pixels[14, 5, 2] < 100, "the red square of frame 0 is not where it was drawn"
    assert "frame 0" in browser.caption.value


def test_video_browser_frame_slider_changes_the_image(dataset_root: Path):
    browser = widgets.video_browser(dataset_root, size=FRAME_SIZE)
    first = browser.image.value
    browser.frame_slider.value = 8
    assert browser.image.value != first
    assert _pixels(browser.image.value)[14, 5].max() < 60, "frame 8 should have moved the square away from x=5"
    assert "frame 8" in browser.caption.value


def test_video_browser_switches_class_and_video(dataset_root: Path):
    browser = widgets.video_browser(dataset_root, size=FRAME_SIZE)
    browser.frame_slider.value = 9
    browser.video_dropdown.value = 1
    assert browser.frame_slider.max == 11
    assert "jump_1.mp4" in browser.caption.value and "frame 9" in browser.caption.value
    browser.class_dropdown.value = "walk"
    assert browser.video_dropdown.value == 0
    assert "walk_0.mp4" in browser.caption.value
    assert browser.frame_slider.max == 9
    pixels = _pixels(browser.image.value)
    square = pixels[14, browser.frame_slider.value + 5]
    assert square[2] > 150 and square[0] < 100, "the walk class draws a blue square"


def test_video_browser_caches_decoded_videos_least_recently_used(dataset_root: Path):
    browser = widgets.video_browser(dataset_root, size=FRAME_SIZE, cache_videos=1)
    decodes = browser.cache.decodes
    for frame in range(5):
        browser.frame_slider.value = frame
    assert browser.cache.decodes == decodes, "moving the frame slider must not decode the video again"
    browser.video_dropdown.value = 1
    browser.video_dropdown.value = 0
    assert browser.cache.decodes == decodes + 2, "a cache of one video must decode the first video again"


def test_video_browser_accepts_records_and_mappings(dataset_root: Path):
    paths = sorted(dataset_root.rglob("*.mp4"))
    records = [VideoRecord(path, int(path.parent.name == "walk"), path.parent.name, "train") for path in paths]
    from_records = widgets.video_browser(records, size=FRAME_SIZE)
    from_mapping = widgets.video_browser({"only": paths[:1]}, size=FRAME_SIZE)
    assert list(from_records.class_dropdown.options) == ["jump", "walk"]
    assert list(from_mapping.class_dropdown.options) == ["only"]
    assert from_records.image.value == from_mapping.image.value


def test_video_browser_refuses_an_empty_source():
    with pytest.raises(ValueError, match="no videos"):
        widgets.video_browser({}, size=FRAME_SIZE)


def test_video_strip_figure_has_one_row_per_video(dataset_root: Path):
    figure = widgets.video_strip_figure(dataset_root, size=FRAME_SIZE, frames_per_video=4, videos_per_class=2)
    assert isinstance(figure, Figure)
    assert figure._repr_png_().startswith(b"\x89PNG"), "a static figure must display as a PNG in Jupyter"
    assert len(figure.axes) == 4
    assert figure.axes[0].get_ylabel() == "jump\njump_0.mp4" and figure.axes[3].get_ylabel() == "walk\nwalk_1.mp4"
    assert [label.get_text() for label in figure.axes[3].get_xticklabels()] == [f"frame {i}" for i in (0, 4, 7, 11)]


# -------------------------------------------------------------------------------------------- sampler


def test_interval_explorer_redraws_when_the_power_or_shape_changes():
    explorer = widgets.interval_sampler_explorer(max_gap=16, n_draws=400)
    plot, summary = explorer.plot.value, explorer.summary.value
    assert summary.startswith("decreasing, p = 1")
    explorer.power_slider.value = 3.0
    assert explorer.plot.value != plot and "p = 3" in explorer.summary.value
    explorer.distribution_dropdown.value = "uniform"
    assert explorer.summary.value.startswith("uniform")


def test_interval_explorer_summary_matches_the_formula_means():
    explorer = widgets.interval_sampler_explorer(max_gap=30, n_draws=3000)
    means = {}
    for distribution in ("decreasing", "uniform", "increasing"):
        explorer.distribution_dropdown.value = distribution
        measured, formula = (float(part.split()[-1]) for part in explorer.summary.value.split("(M")[0]
                             .split(": ")[1].split(", "))
        assert abs(measured - formula) < 1.0, explorer.summary.value
        means[distribution] = formula
    assert means["decreasing"] < means["uniform"] < means["increasing"]


def test_sample_interval_gaps_follow_the_exact_pmf():
    gaps = widgets.sample_interval_gaps(8, 8000, power=1.0, distribution="decreasing", seed=1)
    measured = np.bincount(gaps, minlength=8) / len(gaps)
    from seco_lab.samplers import interval_gap_pmf

    assert np.abs(measured - interval_gap_pmf(8)).max() < 0.02


def test_interval_sampler_figure_has_a_panel_per_distribution():
    figure = widgets.interval_sampler_figure(max_gap=12, n_draws=200)
    assert [axis.get_title().split(",")[0] for axis in figure.axes] == ["decreasing", "uniform", "increasing"]


# -------------------------------------------------------------------------------------------- augmentation


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8, generator=generator)


def test_augmentation_preview_seed_and_button_change_the_picture(clip: torch.Tensor):
    recipe = functools.partial(cvrl_clip_augment, view=1, crop_size=16)
    preview = widgets.augmentation_preview(clip, recipe)
    first = preview.plot.value
    preview.seed_slider.value = 5
    assert preview.plot.value != first and preview.caption.value.startswith("seed 5")
    fifth = preview.plot.value
    preview.resample_button.click()
    assert preview.seed_slider.value == 6 and preview.plot.value != fifth
    preview.seed_slider.value = 5
    assert preview.plot.value == fifth, "the same seed must draw the same augmentations"


def test_augmentation_preview_leaves_torch_global_rng_alone(clip: torch.Tensor):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    preview = widgets.augmentation_preview(clip)
    preview.seed_slider.value = 7
    assert torch.equal(torch.rand(3), expected)


def test_consistent_mode_shares_one_draw_and_per_frame_does_not():
    flat = torch.full((4, 3, 20, 20), 128, dtype=torch.uint8)  # every frame identical
    recipe = functools.partial(cvrl_clip_augment, view=2, crop_size=12, jitter_prob=1.0)
    views = widgets._augmented_views(flat, recipe, seed=3)
    consistent, per_frame = views["consistent"], views["per_frame"]
    assert all(torch.allclose(consistent[0], frame) for frame in consistent[1:])
    assert not all(torch.allclose(per_frame[0], frame) for frame in per_frame[1:])


def test_augmentation_preview_rejects_a_frame(clip: torch.Tensor):
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        widgets.augmentation_preview(clip[0])


def test_augmentation_figure_rows_are_original_consistent_per_frame(clip: torch.Tensor):
    figure = widgets.augmentation_figure(clip, seed=2, max_frames=4)
    (axis,) = figure.axes
    assert [label.get_text() for label in axis.get_yticklabels()] == ["original", "consistent", "per frame"]
    assert len(axis.get_xticklabels()) == 4
    assert axis.get_images()[0].get_array().shape[:2] == (3 * 24 + 2 * 2, 4 * 24 + 3 * 2)


# -------------------------------------------------------------------------------------------- neighbours


@pytest.fixture(scope="module")
def features() -> dict:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 4
    gallery_labels = np.repeat(np.arange(3), 4)
    query_labels = np.array([0, 1, 2, 2])
    return {
        "gallery_features": centres[gallery_labels] + rng.normal(size=(12, 8)) * 0.1,
        "query_features": centres[query_labels] + rng.normal(size=(4, 8)) * 0.1,
        "gallery_labels": gallery_labels,
        "query_labels": query_labels,
    }


def _coloured_frames(split: str, index: int) -> torch.Tensor:
    value = (index * 20 + (0 if split == "query" else 100)) % 256
    return torch.full((3, 8, 8), value, dtype=torch.uint8)


def test_neighbour_explorer_lists_same_class_neighbours_and_follows_the_slider(features: dict):
    explorer = widgets.neighbour_explorer(frames=_coloured_frames, k=4, class_names=["a", "b", "c"], **features)
    assert explorer.table.value.count("<td>a</td>") == 4
    plot, table = explorer.plot.value, explorer.table.value
    explorer.query_slider.value = 1
    assert explorer.plot.value != plot and explorer.table.value != table
    assert explorer.table.value.count("<td>b</td>") == 4 and "query 1" in explorer.table.value
    assert set(explorer.neighbours[1]) == {4, 5, 6, 7}
    assert np.all(np.diff(explorer.similarities[1]) <= 0), "neighbours must be ranked by similarity"


def test_neighbour_explorer_accepts_clips_and_torch_features(features: dict):
    as_torch = {name: torch.as_tensor(value) for name, value in features.items()}

    def clip_frames(split: str, index: int) -> torch.Tensor:
        return _coloured_frames(split, index).unsqueeze(0).repeat(3, 1, 1, 1)  # (T, C, H, W)

    explorer = widgets.neighbour_explorer(frames=clip_frames, k=2, **as_torch)
    assert explorer.neighbours.shape == (4, 2)


def test_neighbour_explorer_rejects_mismatched_labels(features: dict):
    broken = dict(features, query_labels=features["query_labels"][:2])
    with pytest.raises(ValueError, match="query labels"):
        widgets.neighbour_explorer(frames=_coloured_frames, **broken)


def test_neighbour_figure_draws_one_row_per_query(features: dict):
    figure = widgets.neighbour_figure(frames=_coloured_frames, queries=(0, 3), k=3, class_names="abc", **features)
    assert len(figure.axes) == 2
    titles = [text.get_text() for text in figure.axes[1].texts]
    assert titles[0] == "query 3\nc" and len(titles) == 4
    assert all(title.startswith("c\nsim") for title in titles[1:])
    assert "nearest gallery videos" in figure.get_suptitle()
    untitled = widgets.neighbour_figure(frames=_coloured_frames, queries=(0,), k=3, title=None, **features)
    assert untitled.get_suptitle() == ""


def test_top_k_neighbours_averages_views_and_ranks_by_cosine():
    gallery = np.array([[[1.0, 0.0], [1.0, 0.2]], [[0.0, 1.0], [0.0, 1.0]], [[-1.0, 0.0], [-1.0, 0.0]]])  # (3, 2, 2)
    query = np.array([[0.9, 0.1]])
    indices, similarities = widgets.top_k_neighbours(query, gallery, k=5, center=False)
    assert indices.tolist() == [[0, 1, 2]]
    assert similarities[0, 0] > 0.95 and similarities[0, 2] < -0.9


def test_top_k_neighbours_are_the_retrieval_protocols_whatever_the_other_queries():
    generator = np.random.default_rng(3)
    gallery, queries = generator.normal(2.0, 1.0, (12, 5)), generator.normal(2.0, 1.0, (4, 5))
    indices, similarities = widgets.top_k_neighbours(queries, gallery, k=3)
    expected = retrieval_neighbours(gallery, queries, 3)
    assert np.array_equal(indices, expected[0]) and np.allclose(similarities, expected[1])
    alone = widgets.top_k_neighbours(queries[:1], torch.from_numpy(gallery), k=3)
    assert np.array_equal(alone[0], indices[:1]) and np.allclose(alone[1], similarities[:1])
