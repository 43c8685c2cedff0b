"""The embedded dataset generator: layout, splits, determinism, motion classes, tracking subset."""

from __future__ import annotations

import json
import re
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seco_lab.profiles import PROFILE_NAMES, profile_section
from seco_lab.video import synth
from seco_lab.video.io import probe_video, read_frames

SMOKE = synth.SYNTH_PRESETS["smoke"]
SEED = 3
NAME = re.compile(r"^(?P<cls>[A-Za-z]+)/v_(?P=cls)_g(?P<group>\d\d)_c(?P<clip>\d\d)\.mp4$")


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return synth.generate_dataset(tmp_path_factory.mktemp("synth") / "smoke", "smoke", seed=SEED, progress=False)


def _read_lists(root: Path) -> tuple[dict[str, int], list[tuple[str, int]], list[str]]:
    lists = root / "ucfTrainTestlist"
    class_index = {}
    for line in (lists / "classInd.txt").read_text().splitlines():
        number, name = line.split(" ")
        class_index[name] = int(number)
    train_lines = (lists / "trainlist01.txt").read_text().splitlines()
    train = [(line.split(" ")[0], int(line.split(" ")[1])) for line in train_lines]
    test = (lists / "testlist01.txt").read_text().splitlines()
    return class_index, train, test


def _decoded(path: Path) -> np.ndarray:
    """All frames of a video file, uint8 (T, H, W, 3)."""
    return read_frames(path, range(probe_video(path).num_frames)).permute(0, 2, 3, 1).numpy()


def test_ucf_layout_and_lists_agree_with_files(smoke_root: Path) -> None:
    class_index, train, test = _read_lists(smoke_root)
    assert sorted(class_index) == sorted(SMOKE.classes)
    assert sorted(class_index.values()) == list(range(1, len(SMOKE.classes) + 1))
    listed = [name for name, _ in train] + test
    assert len(listed) == len(set(listed))
    on_disk = sorted(str(path.relative_to(smoke_root)) for path in smoke_root.glob("*/*.mp4"))
    assert sorted(listed) == on_disk
    assert len(on_disk) == len(SMOKE.classes) * SMOKE.num_groups * SMOKE.clips_per_group
    for name, label in train:
        match = NAME.match(name)
        assert match, name
        assert class_index[match["cls"]] == label
    assert all(NAME.match(name) for name in test)
    info = probe_video(smoke_root / on_disk[0])
    assert (info.width, info.height, info.fps) == (SMOKE.frame_size, SMOKE.frame_size, SMOKE.fps)
    assert SMOKE.min_frames <= info.num_frames <= SMOKE.max_frames


def test_split_is_by_group_and_every_class_is_in_both(smoke_root: Path) -> None:
    _, train, test = _read_lists(smoke_root)
    train_matches = [NAME.match(name) for name, _ in train]
    test_matches = [NAME.match(name) for name in test]
    train_groups = {int(match["group"]) for match in train_matches}
    test_groups = {int(match["group"]) for match in test_matches}
    assert train_groups == set(range(1, SMOKE.num_train_groups + 1))
    assert test_groups == set(range(SMOKE.num_train_groups + 1, SMOKE.num_groups + 1))
    assert {match["cls"] for match in train_matches} == set(SMOKE.classes)
    assert {match["cls"] for match in test_matches} == set(SMOKE.classes)


def test_manifest_and_reuse(smoke_root: Path) -> None:
    manifest = synth.read_manifest(smoke_root)
    assert manifest["preset"] == "smoke" and manifest["seed"] == SEED
    assert manifest["version"] == synth.GENERATOR_VERSION
    assert manifest["counts"]["videos"] == len(list(smoke_root.glob("*/*.mp4")))
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == manifest["counts"]["videos"]
    before = {path: path.stat().st_mtime_ns for path in smoke_root.rglob("*")}
    assert synth.generate_dataset(smoke_root, "smoke", seed=SEED, progress=False) == smoke_root
    assert {path: path.stat().st_mtime_ns for path in smoke_root.rglob("*")} == before
    with pytest.raises(synth.SynthDatasetError, match="other parameters"):
        synth.generate_dataset(smoke_root, "smoke", seed=SEED + 1, progress=False)
    assert not list(smoke_root.parent.glob(".smoke.partial-*"))


def test_the_dataset_folder_gets_the_permissions_of_any_new_folder(smoke_root: Path, tmp_path: Path) -> None:
    """Readable by whoever may read a folder made beside it (a dataset shared on a machine), not its owner's only."""
    (tmp_path / "new").mkdir()
    assert stat.S_IMODE(smoke_root.stat().st_mode) == stat.S_IMODE((tmp_path / "new").stat().st_mode)


def test_refuses_a_folder_that_is_not_a_synth_dataset(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(synth.SynthDatasetError, match="not a synth dataset"):
        synth.generate_dataset(tmp_path / "mine", "smoke", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_same_seed_same_frames(smoke_root: Path) -> None:
    clips = [(class_name, group, clip) for class_name in SMOKE.classes for group in (1, SMOKE.num_groups)
             for clip in (1, 2)]
    for class_name, group, clip in clips:
        frames = synth.render_dataset_clip(SMOKE, SEED, class_name, group, clip)
        np.testing.assert_array_equal(frames, synth.render_dataset_clip(SMOKE, SEED, class_name, group, clip))
        assert frames.dtype == np.uint8 and frames.shape[1:] == (SMOKE.frame_size, SMOKE.frame_size, 3)
        # The file holds these frames up to codec loss (lossy libx264 mostly removes the pixel
        # noise); another seed differs far more.
        decoded = _decoded(smoke_root / f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.mp4")
        assert decoded.shape == frames.shape
        assert np.abs(decoded.astype(np.int16) - frames).mean() < 10.0
        other = synth.render_dataset_clip(SMOKE, SEED + 1, class_name, group, clip)
        length = min(len(other), len(frames))
        assert np.abs(other[:length].astype(np.int16) - frames[:length]).mean() > 20.0


def test_worker_count_does_not_change_the_dataset(smoke_root: Path, tmp_path: Path) -> None:
    again = synth.generate_dataset(tmp_path / "again", "smoke", seed=SEED, progress=False, workers=2)
    assert synth.read_manifest(again) == synth.read_manifest(smoke_root)
    videos = sorted(smoke_root.glob("*/*.mp4"))
    assert videos
    for path in videos:  # the same bytes: every generation of the dataset holds the same videos
        assert path.read_bytes() == (again / path.relative_to(smoke_root)).read_bytes(), path.name
    for sequence in (smoke_root / "tracking").iterdir():
        gt = sequence / "groundtruth_rect.txt"
        assert gt.read_text() == (again / gt.relative_to(smoke_root)).read_text()


def _clean_render(class_name: str, seed: int) -> synth.RenderedClip:
    """A clip on a flat background, without distractors, camera motion or noise."""
    config = replace(SMOKE, classes=tuple(synth.CLASS_DESCRIPTIONS), noise_std=(0.0, 0.0), camera_jitter=0.0,
                     camera_pan=0.0, min_distractors=0, max_distractors=0)
    scene = synth.draw_scene(np.random.default_rng(seed), config)
    scene = replace(scene, background=np.full_like(scene.background, 100.0))
    return synth.render_clip(class_name, scene, np.random.default_rng(seed), config)


def _target_pixels(frames: np.ndarray) -> np.ndarray:
    return np.abs(frames.astype(np.int16) - 100).sum(axis=-1) > 30  # (T, H, W)


def _centroids(frames: np.ndarray) -> np.ndarray:
    mask = _target_pixels(frames)
    ys, xs = np.arange(mask.shape[1]), np.arange(mask.shape[2])
    area = mask.sum(axis=(1, 2))
    return np.stack([(mask * xs).sum(axis=(1, 2)) / area, (mask * ys[:, None]).sum(axis=(1, 2)) / area], axis=1)


def _turning(centroids: np.ndarray) -> float:
    """Signed area swept around the mean point; positive = clockwise on screen (y down)."""
    rel = centroids - centroids.mean(axis=0)
    return float(np.sum(rel[:-1, 0] * rel[1:, 1] - rel[:-1, 1] * rel[1:, 0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_motion_classes_move_as_named_in_pixels(seed: int) -> None:
    left = _centroids(_clean_render("SlideLeft", seed).frames)
    right = _centroids(_clean_render("SlideRight", seed).frames)
    assert left[-1, 0] - left[0, 0] < -10 and right[-1, 0] - right[0, 0] > 10
    rise, fall = _centroids(_clean_render("Rise", seed).frames), _centroids(_clean_render("Fall", seed).frames)
    assert rise[-1, 1] - rise[0, 1] < -10 and fall[-1, 1] - fall[0, 1] > 10
    grow = _target_pixels(_clean_render("Grow", seed).frames).sum(axis=(1, 2))
    shrink = _target_pixels(_clean_render("Shrink", seed).frames).sum(axis=(1, 2))
    assert grow[-1] > 3 * grow[0] and shrink[0] > 3 * shrink[-1]
    assert _turning(_centroids(_clean_render("OrbitClockwise", seed).frames)) > 0
    assert _turning(_centroids(_clean_render("OrbitCounterclockwise", seed).frames)) < 0
    bounce = _centroids(_clean_render("Bounce", seed).frames)[:, 1]
    assert bounce.max() - bounce.min() > 10


@pytest.mark.parametrize("first,second", synth.reversal_pairs())
def test_reversal_partner_is_the_same_motion_played_backwards(first: str, second: str) -> None:
    forward, backward = _clean_render(first, 5), _clean_render(second, 5)
    np.testing.assert_allclose(backward.centres, forward.centres[::-1])
    np.testing.assert_allclose(backward.radii, forward.radii[::-1])


def test_pairs_cover_the_standard_classes() -> None:
    standard = synth.SYNTH_PRESETS["standard"].classes
    assert set(synth.reversal_pairs(standard)) == {
        ("SlideLeft", "SlideRight"), ("Grow", "Shrink"), ("OrbitClockwise", "OrbitCounterclockwise")}
    assert set(synth.horizontal_flip_pairs(standard)) == {
        ("SlideLeft", "SlideRight"), ("OrbitClockwise", "OrbitCounterclockwise")}
    flipped = _clean_render("OrbitClockwise", 4).frames[:, :, ::-1]
    assert _turning(_centroids(flipped)) < 0
    assert set(synth.CLASS_DESCRIPTIONS) >= set(standard)
    for name in PROFILE_NAMES:
        assert profile_section(name, "synth")["preset"] in synth.SYNTH_PRESETS


def test_appearance_belongs_to_the_group_not_the_class(smoke_root: Path) -> None:
    mean_colour = {}
    for path in smoke_root.glob("*/*.mp4"):
        match = NAME.match(str(path.relative_to(smoke_root)))
        mean_colour[(match["cls"], int(match["group"]))] = _decoded(path).astype(float).mean(axis=(0, 1, 2))
    keys = list(mean_colour)
    within, between = [], []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            distance = np.linalg.norm(mean_colour[a] - mean_colour[b])
            (within if a[1] == b[1] else between).append(distance)
    assert np.mean(within) < 0.3 * np.mean(between)


def test_tracking_sequences_in_otb_layout(smoke_root: Path) -> None:
    folders = sorted((smoke_root / "tracking").iterdir())
    names = [synth.tracking_sequence_name(index) for index in range(SMOKE.tracking_sequences)]
    assert [folder.name for folder in folders] == names
    size = SMOKE.tracking_size
    for folder in folders:
        images = sorted((folder / "img").glob("*.jpg"))
        assert [image.name for image in images] == [f"{i:04d}.jpg" for i in range(1, SMOKE.tracking_frames + 1)]
        assert Image.open(images[0]).size == (size, size)
        boxes = np.loadtxt(folder / "groundtruth_rect.txt", delimiter=",", ndmin=2)
        assert boxes.shape == (SMOKE.tracking_frames, 4)
        x, y, w, h = boxes.T
        assert (w > 4).all() and (h > 4).all()
        assert (x >= 1).all() and (y >= 1).all() and (x + w - 1 <= size).all() and (y + h - 1 <= size).all()
    rendered = synth.render_tracking_sequence(np.random.default_rng([SEED, 2, 0]), SMOKE)
    written = np.loadtxt(folders[0] / "groundtruth_rect.txt", delimiter=",", ndmin=2)
    np.testing.assert_array_equal(rendered.boxes + [1, 1, 0, 0], written)


def test_tracking_target_pixels_fill_their_box() -> None:
    sequence = synth.render_tracking_sequence(np.random.default_rng(7), replace(SMOKE, tracking_frames=30))
    target = sequence.target_alpha > 0.5  # (T, H, W)
    for mask, (x, y, w, h) in zip(target, sequence.boxes.astype(int)):
        inside = np.zeros_like(mask)
        inside[y:y + h, x:x + w] = True
        assert mask.any() and not (mask & ~inside).any()
        assert mask[y].any() and mask[y + h - 1].any() and mask[:, x].any() and mask[:, x + w - 1].any()
    travelled = np.abs(np.diff(sequence.boxes[:, :2], axis=0)).sum()
    assert travelled > 10 and sequence.boxes[0, 2] >= 10


def test_bad_configuration_names_the_problem() -> None:
    with pytest.raises(synth.SynthDatasetError, match="unknown synth classes"):
        replace(SMOKE, classes=("SlideLeft", "Moonwalk"))
    with pytest.raises(synth.SynthDatasetError, match="num_train_groups"):
        replace(SMOKE, num_train_groups=SMOKE.num_groups)
    with pytest.raises(synth.SynthDatasetError, match="unknown synth preset"):
        synth.get_synth_config("huge")
    assert json.loads(json.dumps(SMOKE.to_json()))["classes"] == list(SMOKE.classes)
