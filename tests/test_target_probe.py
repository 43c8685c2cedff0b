"""The target probe: the generator's ground truth per frame, ridge R^2 and the SVM on the true targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from seco_lab.evaluation import EvaluationError
from seco_lab.evaluation.target_probe import dataset_targets, frame_targets, ground_truth_svm, target_probe
from seco_lab.samplers import evenly_spaced_frames
from seco_lab.video import synth
from seco_lab.video.layouts import discover


@pytest.mark.parametrize("class_name", ["SlideRight", "Shrink", "OrbitClockwise", "Bounce", "ZigZag"])
def test_the_target_path_is_the_one_the_rendered_clip_shows(class_name: str) -> None:
    config = synth.SYNTH_PRESETS["standard"]
    for group, clip in ((1, 1), (7, 3)):
        scene = synth.group_scene(config, 5, group)
        rng = np.random.default_rng([5, synth._CLIP_STREAM, synth._class_id(class_name), group, clip])
        rendered = synth.render_clip(class_name, scene, rng, config)
        motion = synth.dataset_clip_target(config, 5, class_name, group, clip)
        np.testing.assert_array_equal(motion.centres, rendered.centres)
        np.testing.assert_array_equal(motion.radii, rendered.radii)
        assert len(motion.radii) == len(synth.render_dataset_clip(config, 5, class_name, group, clip, scene))


def test_dataset_targets_read_the_manifest_and_match_the_decoded_videos(smoke_data: Path) -> None:
    spec = discover(smoke_data)
    records = spec.split("train")
    config, seed = synth.manifest_config(smoke_data)
    assert config == synth.SYNTH_PRESETS["smoke"] and seed == 0
    targets = dataset_targets(smoke_data, records, 4, "rgb")
    assert targets.shape == (len(records), 4, 3)
    first = synth.video_target(config, seed, records[0].path)
    indices = evenly_spaced_frames(len(first.radii), 4)
    np.testing.assert_allclose(targets[0, :, :2], first.centres[indices])
    np.testing.assert_allclose(targets[0, :, 2], first.radii[indices])
    differences = dataset_targets(smoke_data, records[:1], 4, "frame_differences")
    starts = evenly_spaced_frames(len(first.radii) - 1, 4)  # a difference starts at every frame but the last
    np.testing.assert_allclose(differences[0, :, :2], (first.centres[starts] + first.centres[starts + 1]) / 2)


def test_a_frame_count_the_generator_did_not_draw_names_the_file(smoke_data: Path) -> None:
    record = discover(smoke_data).split("test")[0]
    length = len(synth.video_target(*synth.manifest_config(smoke_data), record.path).radii)
    with pytest.raises(synth.SynthDatasetError, match=f"{record.path.name}.*decodes {length + 1} frames"):
        dataset_targets(smoke_data, [record], 4, num_frames=[length + 1])


def test_videos_and_folders_that_are_not_the_generated_dataset_are_named(smoke_data: Path, tmp_path: Path) -> None:
    config, seed = synth.manifest_config(smoke_data)
    with pytest.raises(synth.SynthDatasetError, match="v_Jump_g01_c01.mp4: not a video of the generated dataset"):
        frame_targets(config, seed, [SimpleNamespace(path=tmp_path / "Jump" / "v_Jump_g01_c01.mp4")], 4)
    with pytest.raises(synth.SynthDatasetError, match=f"{tmp_path}: not a dataset made by"):
        synth.manifest_config(tmp_path)
    manifest = json.loads((smoke_data / synth.MANIFEST_NAME).read_text())
    (tmp_path / synth.MANIFEST_NAME).write_text(json.dumps({**manifest, "version": synth.GENERATOR_VERSION + 1}))
    with pytest.raises(synth.SynthDatasetError, match="regenerate it"):
        synth.manifest_config(tmp_path)
    (tmp_path / synth.MANIFEST_NAME).write_text(json.dumps({**manifest, "config": {"classes": ["SlideLeft"]}}))
    with pytest.raises(synth.SynthDatasetError, match="unreadable configuration"):
        synth.manifest_config(tmp_path)
    with pytest.raises(EvaluationError, match="input_mode 'flow'"):
        frame_targets(config, seed, [], 4, input_mode="flow")


def _toy_targets(rng: np.random.Generator, videos: int, frames: int) -> np.ndarray:
    return rng.uniform([4.0, 4.0, 2.0], [60.0, 60.0, 12.0], size=(videos, frames, 3))


@pytest.mark.parametrize("width", [3, 16])
@pytest.mark.parametrize("frames", [1, 4])
def test_features_that_encode_the_target_score_near_one_and_noise_near_zero(width: int, frames: int) -> None:
    rng = np.random.default_rng(width * 10 + frames)
    train_t, test_t = _toy_targets(rng, 120, frames), _toy_targets(rng, 60, frames)
    mixing = rng.normal(size=(3, width))

    def encoded(targets: np.ndarray) -> np.ndarray:  # (N, T, 3) -> (N, T * width), an invertible linear code
        return (targets @ mixing + 0.01 * rng.normal(size=(*targets.shape[:2], width))).reshape(len(targets), -1)

    exact = target_probe(encoded(train_t), train_t, encoded(test_t), test_t)
    assert all(value > 0.99 for value in exact.values()), exact
    noise = target_probe(rng.normal(size=(120, frames * width)), train_t, rng.normal(size=(60, frames * width)), test_t)
    assert all(value < 0.1 for value in noise.values()), noise
    only_x = target_probe(train_t[..., :1], train_t, test_t[..., :1], test_t)  # (N, T, 1) features
    assert only_x["x"] > 0.99 and only_x["y"] < 0.1 and only_x["radius"] < 0.1, only_x


def test_the_probe_names_features_that_do_not_fit_the_targets() -> None:
    targets = np.zeros((5, 4, 3))
    with pytest.raises(EvaluationError, match="not a multiple of the 4 frames"):
        target_probe(np.zeros((5, 10)), targets, np.zeros((5, 10)), targets)
    with pytest.raises(EvaluationError, match=r"test features \(4, 8\) do not fit targets \(5, 4, 3\)"):
        target_probe(np.zeros((5, 8)), targets, np.zeros((4, 8)), targets)
    with pytest.raises(EvaluationError, match="train frames have 2 features, test frames 3"):
        target_probe(np.zeros((5, 8)), targets, np.zeros((5, 12)), targets)
    with pytest.raises(EvaluationError, match=r"train targets must be \(N, T, 3\)"):
        target_probe(np.zeros((5, 8)), np.zeros((5, 4)), np.zeros((5, 8)), targets)


def test_the_ground_truth_svm_reads_the_direction_of_travel() -> None:
    rng = np.random.default_rng(0)

    def slides(videos: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, size=videos)  # 0: to the left, 1: to the right
        start = rng.uniform(20.0, 44.0, size=videos)
        step = np.where(labels == 1, 1.0, -1.0)[:, None] * rng.uniform(1.0, 3.0, size=(videos, 1))
        x = start[:, None] + step * np.arange(6)  # (N, 6)
        y, radius = rng.uniform(10.0, 50.0, size=(videos, 6)), rng.uniform(4.0, 8.0, size=(videos, 6))
        return np.stack([x, y, radius], axis=2), labels

    train_t, train_y = slides(80)
    test_t, test_y = slides(40)
    assert ground_truth_svm(train_t, train_y, test_t, test_y) > 95.0
    assert ground_truth_svm(train_t, rng.permutation(train_y), test_t, test_y) < 80.0
    with pytest.raises(EvaluationError, match=r"test targets must be \(N, T, 3\)"):
        ground_truth_svm(train_t, train_y, test_t[..., :2], test_y)


def test_evaluate_runs_the_probe_on_the_features_it_extracts_and_names_a_dataset_it_cannot_probe(
        smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from seco_lab.cli import main
    from seco_lab.evaluation import extract_video_features, load_encoder
    from seco_lab.methods.pretrain import pretrain

    checkpoint = pretrain("seco", smoke_data, "smoke", tmp_path / "random", epochs=0, progress=False).checkpoint_path
    command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(smoke_data), "--json"]
    assert main(command + ["--protocol", "target-probe"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["protocol"] == "target-probe" and "pooling" not in line

    encoder = load_encoder(checkpoint)
    frames = int(encoder.config["eval"]["frames_per_video"])
    spec = discover(smoke_data)
    features, targets, labels = {}, {}, {}
    for split in ("train", "test"):
        records = spec.split(split)
        features[split], labels[split] = extract_video_features(encoder, records, frames_per_video=frames,
                                                                pooling="concat")
        targets[split] = dataset_targets(smoke_data, records, frames, encoder.input_spec.input_mode)
    expected = target_probe(features["train"], targets["train"], features["test"], targets["test"])
    for quantity, value in expected.items():
        assert line[f"r2_{quantity}"] == pytest.approx(value, abs=1e-6)
    assert line["true_targets_top1"] == ground_truth_svm(targets["train"], labels["train"], targets["test"], labels["test"])

    other = tmp_path / "copy"
    shutil.copytree(smoke_data, other, ignore=shutil.ignore_patterns("synth_manifest.json", ".seco_lab*"))
    assert main(command[:4] + [str(other), "--protocol", "target-probe"]) == 2
    assert f"{other}" in capsys.readouterr().err
    assert main(command[:4] + [str(other), "--protocol", "target-probe,knn", "--json"]) == 0
    out, err = capsys.readouterr()
    probed, knn = (json.loads(text) for text in out.strip().splitlines()[-2:])
    assert "manifest" in probed["skipped"] and "knn" == knn["protocol"]
    assert "note: target-probe skipped" in err

    clip_encoder = pretrain("cvrl", smoke_data, "smoke", tmp_path / "clips", epochs=0, progress=False).checkpoint_path
    assert main(["evaluate", "--checkpoint", str(clip_encoder), "--data", str(smoke_data), "--protocol",
                 "target-probe", "--json"]) == 0
    skipped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert skipped["skipped"] == "the target probe reads frame features; method 'cvrl' has a 3d encoder"
