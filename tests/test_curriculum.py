"""The notebooks' helpers for frozen-feature protocols."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from seco_lab.curriculum import (
    BASELINE_RUNS, METHOD_RUNS, RunFeatures, check_method_names, ensure_run, finetune_skip_reason, frozen_protocols,
    reseeded, spread,
)
from seco_lab.evaluation.linear_svm import SVM_C_GRID
from seco_lab.profiles import get_profile
from seco_lab.session import Session


def session_with_svm_c(svm_c) -> Session:
    profile = get_profile("smoke")
    profile["eval"]["svm_c"] = svm_c
    return Session("smoke", profile, "cpu", 0, Path("data"), Path("runs"))


def clustered_features(seed: int, classes: int = 3, per_class: int = 12, dim: int = 6) -> RunFeatures:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    train = rng.normal(size=(len(labels), dim)) + 4.0 * np.eye(dim)[labels]
    test = rng.normal(size=(len(labels), dim)) + 4.0 * np.eye(dim)[labels]
    groups = np.tile(np.arange(4), len(labels) // 4)
    return RunFeatures("run", "2d", "concat", train, labels, test, labels, train_groups=groups)


@pytest.mark.parametrize("svm_c", [1.0, "cv"])
def test_frozen_linear_svm_follows_the_profiles_c(svm_c):
    metrics = frozen_protocols(clustered_features(0), session_with_svm_c(svm_c), ("linear-svm",))
    assert metrics["linear-svm top1"] > 90.0
    if svm_c == "cv":
        assert metrics["linear-svm C"] in SVM_C_GRID
    else:
        assert "linear-svm C" not in metrics


def test_spread_matches_a_plain_computation():
    values = [31.0, 25.5, 28.0, 22.5]
    mean = sum(values) / len(values)
    sd = (sum((value - mean) ** 2 for value in values) / (len(values) - 1)) ** 0.5
    assert spread(values) == pytest.approx({"mean": mean, "sd": sd, "min": 22.5, "max": 31.0})
    assert spread([40.0]) == {"mean": 40.0, "sd": 0.0, "min": 40.0, "max": 40.0}
    with pytest.raises(ValueError, match="at least one value"):
        spread([])


def test_reseeded_run_has_its_own_folder_and_seed():
    run = reseeded(BASELINE_RUNS["random-2d"], 3)
    assert (run.name, run.seed, run.epochs, run.method) == ("random-2d-seed3", 3, 0, "seco")
    assert BASELINE_RUNS["random-2d"].seed is None  # the original is left alone


@pytest.mark.parametrize("run_seed, expected", [(None, 7), (3, 3)])
def test_ensure_run_trains_with_the_runs_own_seed(monkeypatch, tmp_path, run_seed, expected):
    calls = []

    def fake_pretrain(method, data_root, profile, run_dir, **options):
        calls.append(options["seed"])
        return SimpleNamespace(action="initialised", checkpoint_path=run_dir / "checkpoint.pt")

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", fake_pretrain)
    lab = Session("smoke", get_profile("smoke"), "cpu", 7, tmp_path / "data", tmp_path / "runs")
    spec = BASELINE_RUNS["random-2d"] if run_seed is None else reseeded(BASELINE_RUNS["random-2d"], run_seed)
    assert ensure_run(lab, spec, progress=False) == tmp_path / "runs" / spec.name / "checkpoint.pt"
    assert calls == [expected]


def test_frozen_linear_probe_trains_on_the_sessions_device(linear_probe_devices):
    import seco_lab.evaluation as evaluation

    devices = linear_probe_devices(evaluation)
    features = clustered_features(0)
    features.train_views, features.test_views = features.train_x[:, None], features.test_x[:, None]  # (N, 1 view, D)
    metrics = frozen_protocols(features, session_with_svm_c(1.0), ("linear",))
    assert devices == ["cpu"]
    assert metrics["linear top1"] > 90.0


@pytest.mark.parametrize("methods, message", [
    ("seco", r"methods must be a list of method names, e.g. \['seco', 'cvrl', 'dualvar'\], got 'seco'"),
    (["seco", "simclr"], r"unknown method\(s\) \['simclr'\]: choose from seco, cvrl, dualvar"),
])
def test_a_methods_parameter_that_is_not_a_list_of_method_names_is_explained(methods, message):
    with pytest.raises(ValueError, match=message):
        check_method_names(methods)
    assert check_method_names(("cvrl", "seco")) == ["cvrl", "seco"]


@pytest.mark.parametrize("same_settings", [True, False])
def test_ensure_run_says_it_reuses_a_finished_run_only_once_pretrain_accepted_it(monkeypatch, tmp_path, capsys,
                                                                                same_settings):
    def fake_pretrain(method, data_root, profile, run_dir, **options):
        if not same_settings:
            raise ValueError(f"{run_dir} holds a run with different settings")
        return SimpleNamespace(action="reused", checkpoint_path=run_dir / "checkpoint.pt")

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", fake_pretrain)
    monkeypatch.setattr("seco_lab.engine.checkpoint.load_checkpoint", lambda path: {"finished": True})
    lab = Session("smoke", get_profile("smoke"), "cpu", 0, tmp_path / "data", tmp_path / "runs")
    spec = BASELINE_RUNS["random-2d"]
    (lab.run_dir / spec.name).mkdir(parents=True)
    (lab.run_dir / spec.name / "checkpoint.pt").touch()
    if same_settings:
        ensure_run(lab, spec, progress=False)
    else:
        with pytest.raises(ValueError, match="different settings"):
            ensure_run(lab, spec, progress=False)
    assert ("reusing the finished run" in capsys.readouterr().out) == same_settings


def test_fine_tuning_is_left_out_when_switched_off_or_for_the_paper_profile_on_a_cpu(tmp_path):
    paper = get_profile("paper")
    on_cpu = Session("paper", paper, "cpu", 0, tmp_path / "data", tmp_path / "runs")
    assert finetune_skip_reason(on_cpu, finetune=False) == "finetune = False"
    assert f"{paper['eval']['finetune_epochs']} epochs at {paper['data']['crop_size']} px" in \
        finetune_skip_reason(on_cpu, finetune=True)
    smoke = Session("smoke", get_profile("smoke"), "cpu", 0, tmp_path / "data", tmp_path / "runs")
    assert finetune_skip_reason(smoke, finetune=True) is None


def test_ensure_run_refuses_to_train_a_paper_run_on_a_cpu_before_any_work(monkeypatch, tmp_path):
    def fake_pretrain(method, data_root, profile, run_dir, **options):
        return SimpleNamespace(action="initialised", checkpoint_path=run_dir / "checkpoint.pt")

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", fake_pretrain)
    paper = get_profile("paper")
    lab = Session("paper", paper, "cpu", 0, tmp_path / "data", tmp_path / "runs")
    message = (rf"seco: the paper profile trains {paper['train']['epochs']} epochs in batches of "
               rf"{paper['train']['batch_size']} at {paper['data']['crop_size']} px, sized for GPUs; .*"
               r"or set profile = 'standard'")
    with pytest.raises(RuntimeError, match=message):
        ensure_run(lab, METHOD_RUNS["seco"], progress=False)
    with pytest.raises(RuntimeError, match=r"dualvar: the paper profile trains 200 epochs in batches of 64 at 112 px"):
        ensure_run(lab, METHOD_RUNS["dualvar"], progress=False)
    assert ensure_run(lab, BASELINE_RUNS["random-2d"], progress=False).name == "checkpoint.pt"  # untrained: no cost
    smoke = Session("smoke", get_profile("smoke"), "cpu", 0, tmp_path / "data", tmp_path / "runs")
    assert ensure_run(smoke, METHOD_RUNS["seco"], progress=False).name == "checkpoint.pt"


def test_clip_encoders_test_views_hold_the_profiles_crops_and_test_x_the_centre_crop(monkeypatch, tmp_path):
    """The paper's linear probe tests on clips x 3 crops; the SVM, kNN and retrieval see the centre crop."""
    import torch
    from torch import nn

    import seco_lab.evaluation.features as features_module
    from seco_lab.curriculum import extract_run_features
    from seco_lab.evaluation.features import InputSpec, LoadedEncoder, extract_video_features
    from seco_lab.video.io import write_video
    from seco_lab.video.layouts import VideoRecord

    class ColumnProfile(nn.Module):
        """(N, 3, T, H, W) -> mean brightness of each of the W columns (N, W)."""

        def forward(self, x):
            return x.mean(dim=(1, 2, 3))

    records, counts = {"train": [], "test": []}, {}
    for split, starts in (("train", (0, 10)), ("test", (5, 20))):
        for label, start in enumerate(starts):
            frames = np.zeros((6, 32, 48, 3), dtype=np.uint8)
            frames[:, :, start:start + 12] = 255  # a bright band whose place the crops see differently
            path = tmp_path / split / f"{label}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, frames)
            records[split].append(VideoRecord(path, label, str(label), split))
            counts[path] = SimpleNamespace(num_frames=6)
    spec = SimpleNamespace(split=lambda name: records[name])
    index = {record: counts[record.path] for split in records.values() for record in split}
    encoder = LoadedEncoder(ColumnProfile(), "3d", InputSpec(size=32, crop_size=24, clip_frames=4, mean=None, std=None))
    monkeypatch.setattr(features_module, "load_encoder", lambda *args, **kwargs: encoder)
    profile = get_profile("paper")
    profile["eval"].update(clips_per_video=2, batch_size=8)
    lab = Session("paper", profile, "cpu", 0, tmp_path, tmp_path / "runs")
    monkeypatch.setattr(Session, "load_dataset", lambda self, progress=False: (spec, index))

    run = extract_run_features(lab, "cvrl")["clips"]
    assert run.test_views.shape == (2, 2 * 3, 24)  # 2 clips x 3 crops per test video
    with torch.no_grad():
        centre, _ = extract_video_features(encoder, records["test"], clips_per_video=2, num_frames=[6, 6])
        crops, _ = extract_video_features(encoder, records["test"], clips_per_video=2, num_frames=[6, 6],
                                          keep_views=True, num_crops=3)
    np.testing.assert_allclose(run.test_x, centre, atol=1e-6)
    np.testing.assert_allclose(run.test_views, crops, atol=1e-6)
    assert not np.allclose(run.test_views[:, 0], run.test_views[:, 1])  # the left and centre crops differ


def test_a_difference_is_claimed_only_when_it_exceeds_the_noise_as_printed():
    from seco_lab.curriculum import difference_note

    assert "no difference can be claimed" in difference_note("a", 50.0, "b", 25.0, 25.0)  # equal to the noise
    assert "no difference can be claimed" in difference_note("a", 50.0, "b", 25.0, 25.04)  # printed as ±25.0
    assert "a beats b by 25.0 points" in difference_note("a", 50.0, "b", 25.0, 24.9)
    assert "b beats a by 25.0 points" in difference_note("a", 25.0, "b", 50.0, 24.9)


@pytest.mark.parametrize("num_test,a,b", [(224, 50.0, 50.0), (224, 37.0, 29.0), (9, 80.0, 10.0), (1000, 2.0, 99.0)])
def test_the_noise_of_a_difference_adds_both_scores_variances(num_test, a, b):
    from seco_lab.curriculum import accuracy_noise, difference_noise

    def two_standard_errors(accuracy):  # of one score, its proportion kept within [0.05, 0.95]
        p = min(max(accuracy / 100, 0.05), 0.95)
        return 2 * 100 * (p * (1 - p) / num_test) ** 0.5

    assert accuracy_noise(num_test, a) == pytest.approx(two_standard_errors(a))
    expected = (two_standard_errors(a) ** 2 + two_standard_errors(b) ** 2) ** 0.5
    assert difference_noise(num_test, a, b) == pytest.approx(expected)
    assert difference_noise(num_test, a, b) > max(accuracy_noise(num_test, a), accuracy_noise(num_test, b))


@pytest.mark.parametrize("action, steps, said", [
    ("trained", 150, "seco: 150 steps in 32 s (50 videos/s)"), ("trained", 1, "seco: 1 step in 32 s (50 videos/s)"),
    ("resumed", 150, "seco: finished at step 150, 32 s after resuming (50 videos/s)"),
])
def test_ensure_run_does_not_count_a_resumed_runs_earlier_steps_in_its_time(monkeypatch, tmp_path, capsys, action,
                                                                             steps, said):
    def fake_pretrain(method, data_root, profile, run_dir, **options):
        return SimpleNamespace(action=action, checkpoint_path=run_dir / "checkpoint.pt", steps=steps, wall_time=32.0,
                               samples_per_second=50.0)

    monkeypatch.setattr("seco_lab.methods.pretrain.pretrain", fake_pretrain)
    monkeypatch.setattr("seco_lab.engine.checkpoint.load_checkpoint", lambda path: {"finished": False})
    lab = Session("smoke", get_profile("smoke"), "cpu", 0, tmp_path / "data", tmp_path / "runs")
    (lab.run_dir / "seco").mkdir(parents=True)
    (lab.run_dir / "seco" / "checkpoint.pt").touch()
    ensure_run(lab, METHOD_RUNS["seco"], progress=False)
    assert said in capsys.readouterr().out
