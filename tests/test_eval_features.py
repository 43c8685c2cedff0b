"""Feature extraction from real video files, pooling, BatchNorm re-estimation, run_protocol end to end."""

import json
import re
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest
import torch
from torch import nn

from seco_lab.evaluation.features import (
    EvaluationError, InputSpec, LoadedEncoder, extract_video_features, pool_frame_features,
    recompute_bn_stats_from_batches,
)
from seco_lab.evaluation.linear_svm import linear_svm_protocol
from seco_lab.video.io import read_frames, write_video
from seco_lab.video.layouts import VideoRecord


pytestmark = pytest.mark.usefixtures("single_thread")


FRAMES = 8
SIZE = 32


def square_video(start, reverse):
    """A white square sliding right across a grey frame (left when reversed), (T, H, W, 3) uint8."""
    frames = np.full((FRAMES, SIZE, SIZE, 3), 60, dtype=np.uint8)
    for t in range(FRAMES):
        x = start + 2 * t
        frames[t, 12:20, x:x + 8] = 230
    return frames[::-1].copy() if reverse else frames


def write_pairs(root, split, starts):
    """Class "right" and its exact time reversal "left" for every start; returns records."""
    records = []
    for start in starts:
        for label, name in enumerate(["left", "right"]):
            path = root / split / name / f"{name}_{split}_{start}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, square_video(start, reverse=name == "left"))
            records.append(VideoRecord(path, label, name, split))
    return records


class BlockMeans(nn.Module):
    """Hand-made frame encoder: 8x8 block means of every channel, (N, 3, 32, 32) -> (N, 48)."""

    feature_dim = 48

    def forward(self, x):
        return nn.functional.avg_pool2d(x, 8).flatten(1)

    def forward_map(self, x):
        return nn.functional.avg_pool2d(x, 8)


class ClipMean(nn.Module):
    """Hand-made clip encoder: (N, 3, T, H, W) -> per-channel mean and temporal slope (N, 6)."""

    def forward(self, x):
        over_space = x.mean(dim=(3, 4))  # (N, 3, T)
        slope = over_space[..., -1] - over_space[..., 0]
        return torch.cat([over_space.mean(-1), slope], dim=1)


SPEC = InputSpec(size=SIZE, crop_size=SIZE, clip_frames=4, stride=1, mean=None, std=None)


@pytest.fixture(scope="module")
def pair_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    train = write_pairs(root, "train", [0, 2, 4, 6])
    test = write_pairs(root, "test", [1, 3, 5])
    return root, train, test


def test_pool_frame_features_shapes_and_order():
    features = torch.arange(12.0).reshape(1, 3, 4)  # (N, T, D)
    assert torch.equal(pool_frame_features(features, "mean"), torch.tensor([[4.0, 5.0, 6.0, 7.0]]))
    assert torch.equal(pool_frame_features(features, "concat"), torch.arange(12.0).reshape(1, 12))
    assert not torch.equal(pool_frame_features(features.flip(1), "concat"), pool_frame_features(features, "concat"))
    assert torch.equal(pool_frame_features(features.flip(1), "mean"), pool_frame_features(features, "mean"))
    with pytest.raises(EvaluationError, match="pooling"):
        pool_frame_features(features, "max")


def test_concat_tells_time_reversal_apart_and_mean_cannot(pair_dataset):
    _, train, test = pair_dataset
    encoder = LoadedEncoder(BlockMeans(), "2d", SPEC)
    scores, pair_gaps = {}, {}
    for pooling in ("mean", "concat"):
        train_x, train_y = extract_video_features(encoder, train, frames_per_video=FRAMES, pooling=pooling,
                                                  device="cpu", num_frames=[FRAMES] * len(train))
        test_x, test_y = extract_video_features(encoder, test, frames_per_video=FRAMES, pooling=pooling,
                                                device="cpu", num_frames=[FRAMES] * len(test))
        assert train_x.shape == (len(train), 48 if pooling == "mean" else 48 * FRAMES)
        np.testing.assert_array_equal(train_y, [r.label for r in train])
        scores[pooling] = linear_svm_protocol(train_x, train_y, test_x, test_y)["top1"]
        pair_gaps[pooling] = np.abs(test_x[0::2] - test_x[1::2]).max()  # each video vs its time reversal
    assert pair_gaps["mean"] < 0.02  # only codec noise separates a video from its reversal
    assert pair_gaps["concat"] > 0.1
    assert scores["concat"] == 100.0
    assert scores["mean"] < 100.0


def test_3d_clips_are_averaged_or_kept(pair_dataset):
    _, train, _ = pair_dataset
    encoder = LoadedEncoder(ClipMean(), "3d", SPEC)
    kept, labels = extract_video_features(encoder, train, clips_per_video=3, device="cpu", keep_views=True,
                                          num_frames=[FRAMES] * len(train))
    averaged, _ = extract_video_features(encoder, train, clips_per_video=3, device="cpu",
                                         num_frames=[FRAMES] * len(train))
    assert kept.shape == (len(train), 3, 6) and averaged.shape == (len(train), 6)
    np.testing.assert_allclose(kept.mean(axis=1), averaged, atol=1e-6)
    np.testing.assert_array_equal(labels, [r.label for r in train])
    three_crops, _ = extract_video_features(encoder, train[:2], clips_per_video=2, num_crops=3, device="cpu",
                                            keep_views=True, num_frames=[FRAMES] * 2)
    assert three_crops.shape == (2, 6, 6)


def test_recompute_bn_stats_from_batches_matches_data_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
    weights_before = model[0].weight.clone()
    batches = [torch.randn(5, 3, 8, 8) * 3 + 1 for _ in range(4)]
    recompute_bn_stats_from_batches(model, batches)
    with torch.no_grad():
        outputs = torch.cat([model[0](b) for b in batches])  # (20, 4, 6, 6)
    np.testing.assert_allclose(model[1].running_mean, outputs.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    per_batch_var = torch.stack([model[0](b).var(dim=(0, 2, 3)) for b in batches]).mean(0).detach()
    assert torch.allclose(model[1].running_var, per_batch_var, rtol=1e-3)
    assert torch.equal(model[0].weight, weights_before)
    assert not model.training and model[1].momentum == 0.1


@pytest.mark.parametrize("batches,error,message", [
    ([], EvaluationError, "no batches were given"),
    ([torch.randn(5, 2), torch.randn(5, 3)], RuntimeError, "cannot be multiplied"),  # the second one fails
], ids=["no batches", "a batch of the wrong width"])
def test_recompute_bn_stats_leaves_the_module_as_it_was_when_it_fails(batches, error, message):
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.BatchNorm1d(4, momentum=0.3))
    model[1].running_mean.fill_(5.0)
    model[1].running_var.fill_(2.0)
    model[1].num_batches_tracked.fill_(7)
    model[2].eval()
    model[3].eval()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    modes = [layer.training for layer in model.modules()]
    with pytest.raises(error, match=message):
        recompute_bn_stats_from_batches(model, batches)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
    assert [layer.training for layer in model.modules()] == modes
    assert (model[1].momentum, model[3].momentum) == (0.1, 0.3)


class TinyFrameMethod(nn.Module):
    """A stand-in method for run_protocol: a 2D trunk with BatchNorm."""

    name = "eval_test_tiny2d"
    encoder_kind = "2d"

    def __init__(self, config):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = self.build_trunk()

    @staticmethod
    def build_trunk() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten())

    def encoder(self):
        return self.trunk


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    from seco_lab.methods import base

    monkeypatch.setitem(base._REGISTRY, TinyFrameMethod.name, TinyFrameMethod)
    config = {"data": {"size": SIZE, "crop_size": SIZE, "mean": None, "std": None}, TinyFrameMethod.name: {}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "checkpoint.pt"
    torch.save({"method": TinyFrameMethod.name, "config": config, "model": TinyFrameMethod(config).state_dict()}, path)
    return path


class TinyClipMethod(TinyFrameMethod):
    """A stand-in method for run_protocols: a 3D trunk with BatchNorm."""

    name = "eval_test_tiny3d"
    encoder_kind = "3d"

    @staticmethod
    def build_trunk() -> nn.Module:
        return nn.Sequential(nn.Conv3d(3, 8, 3, stride=2, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool3d((1, 2, 2)), nn.Flatten())


@pytest.fixture(params=["2d", "3d"])
def tiny_checkpoint_of_each_kind(request, tmp_path, monkeypatch):
    """A frame or clip encoder's checkpoint; the clip encoder crops 24 of 32 px, so its test crops differ."""
    from seco_lab.methods import base

    method = TinyFrameMethod if request.param == "2d" else TinyClipMethod
    monkeypatch.setitem(base._REGISTRY, method.name, method)
    config = {"data": {"size": SIZE, "crop_size": SIZE if request.param == "2d" else 24, "mean": None, "std": None},
              method.name: {"clip_frames": 4}}
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save({"method": method.name, "config": config, "model": method(config).state_dict()}, path)
    return path


def counted_extractions(monkeypatch):
    """Wrap the runner's ``extract_video_features``; returns the list of each call's ``keep_views``."""
    from seco_lab.evaluation import runner

    calls = []
    real_extract = runner.extract_video_features

    def counting_extract(*args, **kwargs):
        calls.append(kwargs.get("keep_views", False))
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(runner, "extract_video_features", counting_extract)
    return calls


@pytest.mark.parametrize("test_crops", [1, 3])
def test_run_protocols_extracts_the_features_once_for_every_frozen_protocol(
        pair_dataset, tiny_checkpoint_of_each_kind, monkeypatch, tmp_path, test_crops):
    from seco_lab.evaluation.runner import run_protocol, run_protocols

    protocols = ["linear-svm", "linear", "knn", "retrieval"]
    options = dict(profile="smoke", device="cpu", linear_epochs=3, knn_k=4, test_crops=test_crops,
                   results_file=tmp_path / "results.jsonl")
    one_by_one = [run_protocol(protocol, tiny_checkpoint_of_each_kind, pair_dataset[0], **options)
                  for protocol in protocols]
    calls = counted_extractions(monkeypatch)
    together = run_protocols(protocols, tiny_checkpoint_of_each_kind, pair_dataset[0], **options)
    clip_encoder = together[0]["encoder_kind"] == "3d"
    # train and test once; a clip encoder's test split again for averaged features of the centre crop alone
    assert calls == ([True, True] + [False] * (test_crops > 1) if clip_encoder else [False, False])
    for alone, jointly in zip(one_by_one, together):
        assert {key: value for key, value in jointly.items() if key not in ("wall_time_s", "time")} == \
            {key: value for key, value in alone.items() if key not in ("wall_time_s", "time")}


@pytest.mark.parametrize("test_crops", [1, 3])
def test_clip_features_averaged_from_their_views_are_those_extracted_averaged(pair_dataset, test_crops):
    from seco_lab.evaluation import runner

    spec = InputSpec(size=SIZE, crop_size=24, clip_frames=4, stride=1, mean=None, std=None)
    encoder = LoadedEncoder(TinyClipMethod({}).trunk.eval(), "3d", spec)
    _, train, test = pair_dataset
    splits = runner.VideoSplits(None, train, test, [FRAMES] * len(train), [FRAMES] * len(test))
    settings = {"test_crops": test_crops}
    common = dict(frames_per_video=FRAMES, clips_per_video=3, batch_size=6, device="cpu")  # 2 videos a batch
    averaged = runner._frozen_features(encoder, splits, settings, False, **common)
    derived = runner._view_averaged(runner._frozen_features(encoder, splits, settings, True, **common), encoder,
                                    splits, settings, **common)
    for extracted, from_views in zip(averaged, derived):
        np.testing.assert_array_equal(from_views, extracted)


def test_run_protocol_trains_the_linear_probe_on_the_evaluation_device(pair_dataset, tiny_checkpoint,
                                                                      linear_probe_devices):
    from seco_lab.evaluation import runner

    devices = linear_probe_devices(runner)
    runner.run_protocol("linear", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", linear_epochs=2,
                        weights="random", progress=False)
    assert devices == [torch.device("cpu")]


@pytest.mark.parametrize("protocol", ["linear-svm", "knn", "retrieval", "linear", "finetune"])
def test_run_protocol_end_to_end_appends_results(pair_dataset, tiny_checkpoint, protocol):
    from seco_lab.evaluation.runner import read_results, run_protocol

    root, _, _ = pair_dataset
    callers_rng = torch.get_rng_state()
    metrics = run_protocol(protocol, tiny_checkpoint, root, profile="smoke", pooling="concat", device="cpu",
                           bn_stats="train", linear_epochs=5, finetune_segments=2, weights="random", knn_k=4,
                           progress=False)
    assert torch.equal(torch.get_rng_state(), callers_rng), "the protocols seed generators of their own"
    assert metrics["protocol"] == protocol and metrics["num_train"] == 8 and metrics["num_test"] == 6
    assert metrics["weights"] == "random" and metrics["method"] == TinyFrameMethod.name
    pooling = "segment-mean" if protocol == "finetune" else "concat"  # fine-tuning averages its segments
    assert metrics["bn_stats"] == "train" and metrics["pooling"] == pooling and metrics["wall_time_s"] > 0
    key = "R@1" if protocol == "retrieval" else "top1"
    assert 0.0 <= metrics[key] <= 100.0
    lines = read_results(tiny_checkpoint.parent / "results.jsonl")
    assert lines[-1] == json.loads(json.dumps(metrics))


@pytest.mark.parametrize(("profile", "expected"), [
    ("smoke", 1), ("paper", 4), ({"data": {"num_workers": 3}, "eval": {"knn_k": 4}}, 3), (None, 2)])
def test_run_protocol_decodes_with_the_profiles_number_of_workers_when_given_none(
        pair_dataset, tiny_checkpoint, monkeypatch, tmp_path, profile, expected):
    """The profile's loader processes, at most one per usable core (4 here; the paper's 8 are capped)."""
    from seco_lab.engine import workers as engine_workers
    from seco_lab.evaluation import runner
    from seco_lab.profiles import get_profile

    monkeypatch.setattr(engine_workers, "usable_cores", lambda: 4)

    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["config"]["data"]["num_workers"] = 2
    checkpoint["config"]["eval"] = {**get_profile("smoke")["eval"], "knn_k": 4}
    torch.save(checkpoint, tiny_checkpoint)
    workers = []
    real_extract = runner.extract_video_features

    def recording_extract(*args, num_workers, **kwargs):
        workers.append(num_workers)
        return real_extract(*args, num_workers=0, **kwargs)

    monkeypatch.setattr(runner, "extract_video_features", recording_extract)
    runner.run_protocol("knn", tiny_checkpoint, pair_dataset[0], profile=profile, device="cpu", knn_k=4,
                        num_workers=None, results_file=tmp_path / "results.jsonl")
    runner.run_protocol("knn", tiny_checkpoint, pair_dataset[0], profile=profile, device="cpu", knn_k=4,
                        results_file=tmp_path / "results.jsonl")
    assert workers == [expected, expected, 0, 0]  # train and test; none given: decoded in this process


def finished_bar(description, done, unit):
    """A tqdm bar's last line: ``description`` at 100 % with ``done`` of as many ``unit`` s."""
    return re.compile(rf"{re.escape(description)}: 100%\|[^|\r]*\| {done}/{done} \[[^]\r]*{unit}/s[^]\r]*\]")


@pytest.mark.parametrize("progress", [True, False])
def test_run_protocols_names_each_split_on_its_own_bar_counting_videos(pair_dataset, tiny_checkpoint, tmp_path,
                                                                        capsys, progress):
    from seco_lab.evaluation.runner import run_protocols

    run_protocols(["knn"], tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", knn_k=4, bn_stats="train",
                  progress=progress, results_file=tmp_path / "results.jsonl")
    error = capsys.readouterr().err
    bars = [finished_bar("BatchNorm statistics: train", 8, "video"), finished_bar("features: train", 8, "video"),
            finished_bar("features: test", 6, "video")]
    if progress:
        for bar in bars:
            assert re.search(bar.pattern + "\n", error), bar.pattern  # drawn last at 100 %, and left on screen
    else:
        assert error == ""


@pytest.mark.parametrize("progress", [True, False])
def test_fine_tuning_counts_its_steps_with_the_epoch_and_loss_and_shows_the_test_prediction(
        pair_dataset, tiny_checkpoint, tmp_path, capsys, progress):
    from seco_lab.evaluation.runner import run_protocol

    run_protocol("finetune", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", finetune_epochs=2,
                 finetune_batch_size=4, finetune_segments=2, progress=progress, results_file=tmp_path / "results.jsonl")
    error = capsys.readouterr().err
    if progress:  # 8 train videos in batches of 4: 2 steps an epoch
        assert re.search(r"fine-tune: 100%\|[^|\r]*\| 4/4 \[[^]\r]*step/s, epoch=2/2, loss=\d[\d.e+-]*\]", error)
        assert finished_bar("fine-tune: test", 6, "video").search(error)
    else:
        assert error == ""


@pytest.mark.parametrize("progress", [True, False])
def test_the_knn_monitor_shows_bars_of_its_features_that_vanish_when_done(pair_dataset, capsys, progress):
    from seco_lab.evaluation.monitor import knn_monitor
    from seco_lab.profiles import get_profile
    from seco_lab.video.index import load_dataset

    spec, index = load_dataset(pair_dataset[0], progress=False)
    config = {"data": {"size": SIZE, "crop_size": SIZE, "mean": None, "std": None}, TinyFrameMethod.name: {},
              "eval": {**get_profile("smoke")["eval"], "knn_k": 4}}
    method = TinyFrameMethod(config)
    capsys.readouterr()
    result = knn_monitor(TinyFrameMethod.name, config, spec, index, progress=progress)(method)
    assert 0.0 <= result["knn_top1"] <= 100.0
    error = capsys.readouterr().err
    if progress:
        assert "monitor: train features" in error and "monitor: test features" in error
        assert "\n" not in error  # each bar is cleared where it was drawn
    else:
        assert error == ""


def test_run_protocol_takes_its_paths_as_strings_or_paths(pair_dataset, tiny_checkpoint):
    from seco_lab.evaluation.runner import read_results, run_protocol, run_protocols

    for function in (run_protocol, run_protocols):
        hints = get_type_hints(function)
        assert hints["checkpoint"] == hints["data_root"] == str | Path, function.__name__
    knn = run_protocol("knn", str(tiny_checkpoint), str(pair_dataset[0]), profile="smoke", device="cpu", knn_k=4)
    (retrieval,) = run_protocols(["retrieval"], str(tiny_checkpoint), str(pair_dataset[0]), profile="smoke",
                                 device="cpu")
    assert knn["checkpoint"] == retrieval["checkpoint"] == str(tiny_checkpoint)
    assert knn["num_train"] == retrieval["num_train"] == 8
    lines = read_results(tiny_checkpoint.parent / "results.jsonl")
    assert [line["protocol"] for line in lines] == ["knn", "retrieval"]


def test_run_protocol_rejects_unknown_options(pair_dataset, tiny_checkpoint):
    from seco_lab.evaluation.runner import run_protocol

    with pytest.raises(EvaluationError, match="linear_lrr"):
        run_protocol("linear", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", linear_lrr=1.0)
    with pytest.raises(EvaluationError, match="unknown protocol"):
        run_protocol("svm", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu")


def test_input_spec_from_config_follows_method_and_backbone():
    config = {"data": {"size": 40, "crop_size": 32}, "seco": {}, "cvrl": {"clip_frames": 6, "stride": 2, "mean": None,
              "std": None, "input_mode": "frame_differences"}, "supervised": {"backbone": "cvrl"}}
    seco = InputSpec.from_config(config, "seco")
    assert (seco.size, seco.crop_size, seco.mean is not None) == (40, 32, True)
    for method in ("cvrl", "supervised"):
        spec = InputSpec.from_config(config, method)
        assert (spec.clip_frames, spec.stride, spec.mean, spec.input_mode) == (6, 2, None, "frame_differences")


class AbsoluteMean3D(nn.Module):
    """Hand-made clip encoder: mean absolute value per channel, (N, 3, T, H, W) -> (N, 3)."""

    def forward(self, x):
        return x.abs().mean(dim=(2, 3, 4))


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_frame_differences_cancel_static_content(tmp_path, kind):
    static = np.repeat(square_video(4, reverse=False)[:1], FRAMES, axis=0)
    paths = {"static": tmp_path / "static.mp4", "moving": tmp_path / "moving.mp4"}
    write_video(paths["static"], static)
    write_video(paths["moving"], square_video(4, reverse=False))
    records = [VideoRecord(paths[name], label, name, "train") for label, name in enumerate(paths)]
    spec = InputSpec(size=SIZE, crop_size=SIZE, clip_frames=4, stride=1, input_mode="frame_differences")
    module = BlockMeans() if kind == "2d" else AbsoluteMean3D()
    features, _ = extract_video_features(LoadedEncoder(module, kind, spec), records, frames_per_video=4,
                                         clips_per_video=2, device="cpu", num_frames=[FRAMES, FRAMES])
    assert np.abs(features[0]).max() < 0.005
    assert np.abs(features[1]).max() > 0.01


class InteriorAbsoluteMean(nn.Module):
    """Hand-made encoder: mean absolute input away from the border, (N, 3, H, W) -> (N, 1), or
    (N, 3, T, H, W) -> (N, 1) for clips."""

    feature_dim = 1

    def forward(self, x):
        return x[..., 6:-6, 6:-6].abs().flatten(1).mean(dim=1, keepdim=True)


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_stabilized_differences_cancel_a_shaking_cameras_view_of_a_still_scene(tmp_path, kind):
    y, x = np.mgrid[0:SIZE + 4, 0:SIZE + 4]
    grey = 128 + 55 * np.sin(2 * np.pi * x / 12 + 0.3 * y) + 45 * np.sin(2 * np.pi * y / 10)  # smooth: encodes cleanly
    scene = np.repeat(grey[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
    offsets = [(0, 0), (2, 1), (1, 3), (3, 2), (2, 0), (0, 1), (1, 2), (3, 3)]  # the camera's shake, px
    write_video(tmp_path / "shaky.mp4", np.stack([scene[dy:dy + SIZE, dx:dx + SIZE] for dy, dx in offsets]))
    records = [VideoRecord(tmp_path / "shaky.mp4", 0, "still", "train")]
    scores = {}
    for mode in ("frame_differences", "stabilized_differences"):
        spec = InputSpec(size=SIZE, crop_size=SIZE, clip_frames=4, stride=1, input_mode=mode)
        features, _ = extract_video_features(LoadedEncoder(InteriorAbsoluteMean(), kind, spec), records,
                                             frames_per_video=4, clips_per_video=2, device="cpu", num_frames=[FRAMES])
        scores[mode] = float(np.abs(features).max())
    assert scores["frame_differences"] > 0.05
    assert scores["stabilized_differences"] < 0.1 * scores["frame_differences"]


def test_run_protocol_chooses_svm_c_on_the_train_split(pair_dataset, tiny_checkpoint):
    from seco_lab.evaluation.linear_svm import SVM_C_GRID
    from seco_lab.evaluation.runner import run_protocol

    fixed = run_protocol("linear-svm", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", svm_c=0.5)
    chosen = run_protocol("linear-svm", tiny_checkpoint, pair_dataset[0], profile="smoke", device="cpu", svm_c="cv")
    assert fixed["C"] == 0.5
    assert chosen["C"] in SVM_C_GRID


def test_chance_leaves_out_a_listed_class_without_videos(tmp_path, tiny_checkpoint):
    """A partial UCF101 download: classInd lists three classes, one has no video on disk."""
    import shutil

    from seco_lab.evaluation.runner import run_protocol
    from tests._video_fixtures import make_ucf101

    root = make_ucf101(tmp_path / "ucf", classes=("Archery", "Bowling", "YoYo"))
    shutil.rmtree(root / "UCF-101" / "YoYo")
    with pytest.warns(UserWarning, match="6 file.s. skipped"):
        metrics = run_protocol("knn", tiny_checkpoint, root, profile="smoke", device="cpu", knn_k=4)
    assert metrics["num_classes"] == 3 and metrics["chance"] == 50.0


def test_chance_counts_the_classes_a_classifier_learns_not_those_the_test_split_holds(tmp_path, tiny_checkpoint):
    """Three classes have training videos, the test videos of one are missing: the classifiers
    still choose among three classes, so a uniform guess is right a third of the time."""
    from seco_lab.evaluation.runner import run_protocol
    from tests._video_fixtures import make_ucf101

    root = make_ucf101(tmp_path / "ucf", classes=("Archery", "Bowling", "YoYo"))
    for path in (root / "UCF-101" / "YoYo").glob("*_g03_*"):  # group 3 is the test split
        path.unlink()
    with pytest.warns(UserWarning) as caught:
        metrics = run_protocol("knn", tiny_checkpoint, root, profile="smoke", device="cpu")
    messages = [str(warning.message) for warning in caught]
    assert any("2 file(s) skipped" in message for message in messages)
    assert any("2 of the 3 classes with training videos (none of YoYo)" in message for message in messages)
    assert metrics["num_test"] == 4 and metrics["chance"] == pytest.approx(100 / 3)


@pytest.mark.parametrize("test_classes,also", [(("a",), "a classifier that always predicts it scores 100 %"),
                                               (("a", "b"), None)])
def test_a_test_split_without_some_classes_is_named(tmp_path, test_classes, also):
    from seco_lab.evaluation.runner import load_video_splits
    from tests._video_fixtures import make_video

    for split, classes in (("train", ("a", "b", "c")), ("test", test_classes)):
        for class_name in classes:
            for clip in range(2):
                make_video(tmp_path / split / class_name / f"{class_name}{clip}.mp4", num_frames=10, seed=clip)
    with pytest.warns(UserWarning, match=rf"holds videos of {len(test_classes)} of the 3 classes with training "
                                         rf"videos \(none of {', '.join(sorted({'a', 'b', 'c'} - set(test_classes)))}\)"
                      ) as caught:
        splits = load_video_splits(tmp_path)
    assert len(splits.test) == 2 * len(test_classes)
    message = "".join(str(warning.message) for warning in caught)
    assert (also in message) if also else ("100 %" not in message)


@pytest.mark.parametrize("method,overrides", [
    ("seco", {"seco": {"input_mode": mode}}) for mode in ("rgb", "frame_differences", "stabilized_differences")
] + [("cvrl", {"cvrl": {"input_mode": mode}}) for mode in ("frame_differences", "stabilized_differences")])
def test_encode_gives_a_videos_features_as_the_evaluation_extracts_them(smoke_data, tmp_path, method, overrides):
    from seco_lab.evaluation import extract_video_features, load_encoder
    from seco_lab.methods.pretrain import pretrain
    from seco_lab.samplers import evenly_spaced_frames, uniform_clip_indices
    from seco_lab.video.index import load_dataset

    checkpoint = pretrain(method, smoke_data, "smoke", tmp_path / "run", epochs=0, overrides=overrides,
                          progress=False).checkpoint_path
    encoder = load_encoder(checkpoint)
    spec = encoder.input_spec
    assert spec.input_mode == overrides[method]["input_mode"]
    dataset, index = load_dataset(smoke_data, progress=False)
    record = dataset.split("test")[0]
    count = index[record].num_frames
    if encoder.kind == "2d":
        extracted, _ = extract_video_features(encoder, [record], frames_per_video=4, pooling="concat", device="cpu",
                                              num_frames=[count])
        if spec.input_mode == "rgb":
            encoded = encoder.encode(read_frames(record.path, evenly_spaced_frames(count, 4), spec.size))  # (4, D)
        else:  # a difference starts at every frame but the last
            encoded = torch.cat([encoder.encode(read_frames(record.path, [i, i + 1], spec.size))
                                 for i in evenly_spaced_frames(count - 1, 4)])  # 4 x (1, D)
    else:
        extracted, _ = extract_video_features(encoder, [record], clips_per_video=1, device="cpu", num_frames=[count])
        (indices,) = uniform_clip_indices(count, spec.clip_frames + 1, spec.stride, 1)  # T + 1 frames, T differences
        encoded = encoder.encode(read_frames(record.path, indices, spec.size))
    np.testing.assert_allclose(encoded.reshape(1, -1).numpy(), extracted, rtol=1e-5, atol=1e-5)
    with pytest.raises(EvaluationError, match=r"\(T, C, H, W\) uint8 tensor, got \(2, 8, 8\) torch.uint8"):
        encoder.encode(torch.zeros(2, 8, 8, dtype=torch.uint8))


RUN_SEED = 5  # not pretrain's default: load_encoder must read it from the checkpoint


@pytest.mark.parametrize("method", ["seco", "cvrl", "dualvar"])
def test_random_weights_are_the_runs_initial_weights(smoke_data, tmp_path, method):
    """weights="random" of a trained run: the weights pretrain --epochs 0 writes with the run's
    settings and seed, at every call, without moving the caller's random number generator."""
    from seco_lab.evaluation import load_encoder
    from seco_lab.methods.pretrain import pretrain

    initial = pretrain(method, smoke_data, "smoke", tmp_path / "initial", epochs=0, seed=RUN_SEED,
                       progress=False).checkpoint_path
    state = torch.load(initial, weights_only=True)
    trained = tmp_path / "trained" / "checkpoint.pt"
    trained.parent.mkdir()
    moved = {key: value + 1.0 if value.is_floating_point() else value for key, value in state["model"].items()}
    torch.save({**state, "model": moved}, trained)  # the run's weights after training moved them
    start = load_encoder(initial).module.state_dict()
    assert any(not torch.equal(load_encoder(trained).module.state_dict()[key], start[key]) for key in start)
    torch.manual_seed(123)
    generator_state = torch.get_rng_state()
    for _ in range(2):
        random_weights = load_encoder(trained, weights="random").module.state_dict()
        assert random_weights.keys() == start.keys()
        for key, value in start.items():
            assert torch.equal(random_weights[key], value), key
    assert torch.equal(torch.get_rng_state(), generator_state)


@pytest.mark.parametrize("method", ["seco", "cvrl"])
def test_extract_video_features_defaults_to_the_checkpoints_eval_settings(smoke_data, tmp_path, method):
    from seco_lab.evaluation import load_encoder
    from seco_lab.methods.pretrain import pretrain
    from seco_lab.video.index import load_dataset

    settings = {"frames_per_video": 5, "clips_per_video": 3}  # neither the profile's nor the old defaults (8, 1)
    checkpoint = pretrain(method, smoke_data, "smoke", tmp_path / "run", epochs=0, overrides={"eval": settings},
                          progress=False).checkpoint_path
    encoder = load_encoder(checkpoint)
    dataset, index = load_dataset(smoke_data, progress=False)
    records = dataset.split("test")[:2]
    options = dict(pooling="concat", keep_views=True, device="cpu", num_frames=[index[r].num_frames for r in records])
    by_default, labels = extract_video_features(encoder, records, **options)
    as_given, _ = extract_video_features(encoder, records, **settings, **options)
    np.testing.assert_array_equal(by_default, as_given)
    views, width = (1, 5 * encoder.feature_dim) if encoder.kind == "2d" else (3, encoder.feature_dim)
    assert by_default.shape == (2, views, width)
    np.testing.assert_array_equal(labels, [record.label for record in records])
