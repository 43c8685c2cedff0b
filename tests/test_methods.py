"""Methods: views, one training step, SeCo's queue and EMA, the switches the ablations use."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from seco_lab.evaluation.features import InputSpec
from seco_lab.methods import build_method
from seco_lab.methods.pretrain import build_run_config
from seco_lab.profiles import get_profile


class FakeVideo:
    """A VideoSource stand-in: frame t is filled with the value t (so indices can be read back)."""

    def __init__(self, num_frames: int = 24, size: int = 64) -> None:
        self.num_frames, self.size, self.label, self.index = num_frames, size, 0, 0
        self.reads: list[list[int]] = []

    def read(self, indices) -> torch.Tensor:
        self.reads.append([int(i) for i in indices])
        frames = torch.zeros(len(indices), 3, self.size, self.size, dtype=torch.uint8)
        for position, frame_index in enumerate(indices):
            frames[position] = int(frame_index) * 5 % 256
        return frames


def smoke_config(method: str, **overrides) -> dict:
    config = get_profile("smoke")
    for section, values in overrides.items():
        config[section].update(values)
    config["method"] = method
    config["data"]["num_classes"] = 4
    return config


def make_batch(method, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    views = method.view_maker()
    items = []
    for index in range(batch_size):
        torch.manual_seed(seed * 100 + index)
        item = views(FakeVideo(), np.random.default_rng([seed, index]))
        item["label"] = torch.tensor(index % 4)
        items.append(item)
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@pytest.mark.parametrize("name", ["seco", "cvrl", "dualvar", "supervised"])
def test_one_training_step_gives_a_finite_loss_and_gradients(name):
    torch.manual_seed(0)
    method = build_method(name, smoke_config(name))
    out = method(make_batch(method))
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.encoder().parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("input_mode", ["rgb", "frame_differences"])
def test_seco_views_follow_the_triplet_rule(input_mode):
    method = build_method("seco", smoke_config("seco", seco={"input_mode": input_mode}))
    video = FakeVideo(num_frames=40)
    item = method.view_maker()(video, np.random.default_rng(3))
    read = video.reads[0]
    if input_mode == "frame_differences":  # each frame is read with its successor
        assert read[1::2] == [i + 1 for i in read[0::2]]
        read = read[0::2]
    a, b, c = read
    half = 20
    if int(item["order"]) == 0:
        assert a < half <= b <= c
    else:
        assert b <= c < half <= a
    assert item["xq"].shape == item["x1"].shape == (3, 56, 56)
    assert not torch.equal(item["xq"], item["x1"]), "the anchor's two views must be augmented independently"


def test_seco_enqueues_all_three_keys_and_advances_the_pointer():
    torch.manual_seed(0)
    method = build_method("seco", smoke_config("seco"))
    size = method.queue.shape[0]
    before = method.queue.clone()
    method(make_batch(method, batch_size=4))
    assert int(method.queue_ptr) == 12 % size
    changed = (method.queue != before).any(dim=1)
    assert changed[:12].all() and not changed[12:].any()
    assert torch.allclose(method.queue[:12].norm(dim=1), torch.ones(12), atol=1e-5)


@pytest.mark.parametrize("name,overrides", [("seco", {}), ("dualvar", {"dualvar": {"variant": "moco"}})])
def test_a_forward_in_eval_mode_leaves_the_key_queue_alone(name, overrides):
    """A validation loss computed in eval mode must not push its keys into the training queue."""
    torch.manual_seed(0)
    method = build_method(name, smoke_config(name, **overrides))
    batch = make_batch(method)
    state_before = copy.deepcopy(method.state_dict())
    method.eval()
    with torch.no_grad():
        out = method(batch)
    assert torch.isfinite(out["loss"])
    for key, value in method.state_dict().items():
        assert torch.equal(value, state_before[key]), key
    method.train()
    method(batch)
    assert int(method.queue_ptr) != 0  # training mode still enqueues


def test_seco_queue_wraps_around():
    torch.manual_seed(0)
    method = build_method("seco", smoke_config("seco", seco={"queue_size": 10}))
    method(make_batch(method, batch_size=4))  # 12 keys into a queue of 10
    assert int(method.queue_ptr) == 2


def test_seco_key_encoder_is_an_ema_of_the_query_encoder():
    torch.manual_seed(0)
    method = build_method("seco", smoke_config("seco"))
    for parameter in method.query.parameters():
        parameter.data.add_(1.0)
    key_before = [p.clone() for p in method.key.parameters()]
    method.after_step()
    m = method.momentum
    for before, key, query in zip(key_before, method.key.parameters(), method.query.parameters()):
        assert torch.allclose(key, m * before + (1 - m) * query)
        assert not key.requires_grad


def _moco_v2_checkpoint(path, trunk, feature_dim: int, hidden: int, dim: int) -> dict[str, torch.Tensor]:
    """A MoCo v2 checkpoint: query and key encoders with the projection MLP as ``fc``; returns the MLP's weights."""
    mlp = torch.nn.Sequential(torch.nn.Linear(feature_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, dim))
    encoder_state = trunk.state_dict() | {f"fc.{key}": value for key, value in mlp.state_dict().items()}
    state = {f"module.encoder_{which}.{key}": value for which in "qk" for key, value in encoder_state.items()}
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state | {"module.queue": torch.zeros(dim, 8)}}, path)
    return mlp.state_dict()


def test_seco_starts_from_moco_v2_weights_trunk_and_heads(tmp_path):
    """SeCo is initialised from MoCo v2: the trunk from its query encoder, the heads from its MLP."""
    from seco_lab.models.encoders2d import build_encoder_2d

    torch.manual_seed(0)
    cfg = get_profile("smoke")["seco"]
    trunk = build_encoder_2d(cfg["arch"], width=cfg["width"], small_input=cfg["small_input"])
    mlp = _moco_v2_checkpoint(tmp_path / "moco_v2.pth.tar", trunk, trunk.feature_dim, cfg["head_hidden"],
                              cfg["head_dim"])
    method = build_method("seco", smoke_config("seco", seco={"init_checkpoint": str(tmp_path / "moco_v2.pth.tar")}))
    assert not torch.equal(method.query.trunk.layer4[1].conv2.weight, trunk.layer4[1].conv2.weight)
    method.load_start_weights()
    assert torch.equal(method.query.trunk.layer4[1].conv2.weight, trunk.layer4[1].conv2.weight)
    assert torch.equal(method.key.trunk.layer4[1].conv2.weight, trunk.layer4[1].conv2.weight)
    for encoder in (method.query, method.key):
        for signal in ("inter", "intra", "order"):
            for key, value in encoder.heads[signal].state_dict().items():
                assert torch.equal(value, mlp[key]), (signal, key)


def test_seco_refuses_a_moco_mlp_of_another_size(tmp_path):
    from seco_lab.models.encoders2d import build_encoder_2d

    cfg = get_profile("smoke")["seco"]
    trunk = build_encoder_2d(cfg["arch"], width=cfg["width"], small_input=cfg["small_input"])
    _moco_v2_checkpoint(tmp_path / "moco_v2.pth.tar", trunk, trunk.feature_dim, 2 * cfg["head_hidden"], cfg["head_dim"])
    method = build_method("seco", smoke_config("seco", seco={"init_checkpoint": str(tmp_path / "moco_v2.pth.tar")}))
    with pytest.raises(ValueError, match=r"projection MLP does not match the SeCo heads \(fc.0.weight"):
        method.load_start_weights()


@pytest.mark.parametrize("weights,expected", [
    ({"inter": 0.0, "intra": 1.0, "order": 0.0}, {"intra"}),
    ({"inter": 1.0, "intra": 1.0, "order": 0.0}, {"inter", "intra"}),
    ({"inter": 1.0, "intra": 1.0, "order": 1.0}, {"inter", "intra", "order"}),
])
def test_seco_signals_can_be_switched_off(weights, expected):
    torch.manual_seed(0)
    method = build_method("seco", smoke_config("seco", seco={"weights": weights}))
    out = method(make_batch(method))
    assert {name for name in ("inter", "intra", "order") if name in out} == expected
    total = sum(weights[name] * out[name] for name in expected)
    assert torch.allclose(out["loss"].detach(), total)
    assert method.has_unused_parameters() == (len(expected) < 3)


def test_seco_without_any_signal_is_an_error():
    with pytest.raises(ValueError, match="at least one signal"):
        build_method("seco", smoke_config("seco", seco={"weights": {"inter": 0, "intra": 0, "order": 0}}))


def test_cvrl_views_are_two_clips_of_the_configured_length():
    method = build_method("cvrl", smoke_config("cvrl"))
    item = method.view_maker()(FakeVideo(num_frames=40), np.random.default_rng(0))
    assert item["v1"].shape == item["v2"].shape == (3, 8, 56, 56)


def test_cvrl_projection_head_follows_the_profile():
    """The paper's head: 3 hidden layers, each with BN; the CPU profiles': one, without BN; a
    config from before these settings existed (an older checkpoint's) builds the paper's head."""
    def layers(config: dict) -> tuple[int, int]:
        head = build_method("cvrl", config).head
        return (sum(isinstance(m, torch.nn.Linear) for m in head) - 1, sum(isinstance(m, torch.nn.BatchNorm1d) for m in head))

    assert layers(smoke_config("cvrl")) == (1, 0)
    assert layers(smoke_config("cvrl", cvrl={"head_layers": 2, "head_batch_norm": True})) == (2, 2)
    paper = get_profile("paper")["cvrl"]
    assert layers(smoke_config("cvrl", cvrl={key: paper[key] for key in ("head_layers", "head_batch_norm")})) == (3, 3)
    older = smoke_config("cvrl")
    del older["cvrl"]["head_layers"], older["cvrl"]["head_batch_norm"]
    assert layers(older) == (3, 3)


def test_frame_difference_input_reads_one_more_frame_and_cancels_static_content():
    method = build_method("cvrl", smoke_config("cvrl", cvrl={"input_mode": "frame_differences",
                                                              "augment": {"hflip": False, "jitter_prob": 0.0,
                                                                          "grayscale_prob": 0.0, "blur_prob": 0.0,
                                                                          "solarize_prob": 0.0}}))
    video = FakeVideo(num_frames=40)
    video.read = lambda indices: torch.full((len(indices), 3, 64, 64), 90, dtype=torch.uint8)  # a still video
    item = method.view_maker()(video, np.random.default_rng(0))
    assert item["v1"].shape == (3, 8, 56, 56)
    assert torch.count_nonzero(item["v1"]) == 0


def test_dualvar_shuffle_is_never_the_identity_and_the_method_encodes_v2_in_that_order():
    method = build_method("dualvar", smoke_config("dualvar", dualvar={"segments": 3}))
    batch = make_batch(method, batch_size=6)
    perms = batch["perm"]  # (B, S)
    assert len({tuple(row) for row in perms.tolist()}) > 1
    assert not (perms == torch.arange(3)).any()  # no segment stays in place (derangements)
    encoded = []
    method.query.register_forward_pre_hook(lambda module, args: encoded.append(args[0]))
    method(batch)
    shuffled = encoded[0][3 * len(perms):]  # inputs are v0, v1, v2, then the shuffled v2: (B, C, T, H, W)
    for row, perm in enumerate(perms.tolist()):
        segments = torch.tensor_split(batch["v2"][row], 3, dim=1)
        assert torch.equal(shuffled[row], torch.cat([segments[segment] for segment in perm], dim=1))


@pytest.mark.parametrize("losses,expected", [
    ("clip", {"clip"}), ("clip+SR", {"clip", "SR_v0", "SR_v2"}), ("clip+SR+TC", {"clip", "SR_v0", "SR_v2", "TC"}),
])
@pytest.mark.parametrize("variant", ["simclr", "moco"])
def test_dualvar_loss_switches(losses, expected, variant):
    torch.manual_seed(0)
    method = build_method("dualvar", smoke_config("dualvar", dualvar={"losses": losses, "variant": variant}))
    out = method(make_batch(method))
    terms = {name for name in ("clip", "SR_v0", "SR_v2", "TC") if name in out}
    assert terms == expected
    total = out["clip"] + out.get("TC", 0.0) + 0.5 * out.get("SR_v0", 0.0) + 0.5 * out.get("SR_v2", 0.0)
    assert torch.allclose(out["loss"].detach(), torch.as_tensor(total))


def test_supervised_2d_concatenates_segments_in_order():
    torch.manual_seed(0)  # RGB frames: FakeVideo's frame differences are all alike
    method = build_method("supervised", smoke_config("supervised", seco={"input_mode": "rgb"}))
    batch = make_batch(method)
    assert batch["x"].shape == (4, 4, 3, 56, 56)
    assert method.classifier.in_features == 4 * method.trunk.feature_dim
    reversed_batch = dict(batch, x=batch["x"].flip(1))
    method.eval()
    assert not torch.allclose(method(batch)["loss"], method(reversed_batch)["loss"])


class RampVideo(FakeVideo):
    """Frame t is filled with t * t, so the difference of frames t and t + 1 (2t + 1) names t."""

    def read(self, indices) -> torch.Tensor:
        self.reads.append([int(i) for i in indices])
        values = torch.tensor([int(i) ** 2 for i in indices], dtype=torch.uint8)  # (T,)
        return values.view(-1, 1, 1, 1).expand(-1, 3, self.size, self.size).clone()


def test_supervised_2d_sees_frame_differences_as_its_backbone_and_evaluation_do():
    method = build_method("supervised", smoke_config("supervised", seco={"augment": {"scale": [1.0, 1.0],
                                                                               "jitter": [0, 0, 0, 0]}}))
    video = RampVideo(num_frames=12)
    x = method.view_maker()(video, np.random.default_rng(0))["x"]
    assert x.shape == (4, 3, 56, 56)
    starts = video.reads[0][0::2]
    assert video.reads[0][1::2] == [t + 1 for t in starts]
    expected = torch.tensor([(2 * t + 1) / 255 for t in starts]).view(4, 1, 1, 1).expand_as(x)
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize("name,overrides", [
    ("seco", {}), ("cvrl", {}), ("cvrl", {"cvrl": {"reverse_prob": 1.0}}), ("dualvar", {}),
    ("supervised", {}), ("supervised", {"supervised": {"backbone": "cvrl"}}),
])
def test_frame_difference_views_start_inside_the_video(name, overrides):
    """With frame differences no view may pair the last frame with itself (an all-zero input)."""
    method = build_method(name, smoke_config(name, **overrides))
    views = method.view_maker()
    for seed in range(40):
        video = FakeVideo(num_frames=10)  # frames differ pairwise, so only a repeated frame gives zero
        item = views(video, np.random.default_rng(seed))
        assert max(max(read) for read in video.reads) <= 9
        for key, view in item.items():
            if view.ndim < 3:
                continue
            if method.encoder_kind == "3d":
                frames = view.transpose(0, 1)  # (C, T, H, W) -> (T, C, H, W)
            else:
                frames = view.reshape(-1, *view.shape[-3:])  # (C, H, W) or (K, C, H, W) -> (N, C, H, W)
            empty = [position for position, frame in enumerate(frames) if frame.abs().amax() == 0]
            assert not empty, f"seed {seed}: {key} has all-zero frames {empty} (reads {video.reads})"


class ShakyStillVideo(FakeVideo):
    """A still textured scene filmed by a shaking camera: frame t is the scene shifted by a
    camera offset (a random walk of whole pixels), so every difference of two frames is the
    camera's alone."""

    def __init__(self, num_frames: int = 24, size: int = 64, margin: int = 10) -> None:
        super().__init__(num_frames, size)
        generator = torch.Generator().manual_seed(3)
        noise = torch.rand(1, 3, size + 2 * margin, size + 2 * margin, generator=generator)
        self.scene = torch.nn.functional.avg_pool2d(noise, 3, 1, 1, count_include_pad=False)[0].mul(255).round()
        steps = torch.randint(-1, 2, (num_frames, 2), generator=generator)
        self.offsets = (steps.cumsum(dim=0) - steps[0]).clamp(-margin + 1, margin - 1)  # (T, 2), frame 0 at (0, 0)
        self.margin = margin

    def read(self, indices) -> torch.Tensor:
        self.reads.append([int(i) for i in indices])
        m, size = self.margin, self.size
        return torch.stack([self.scene[:, m - dy:m - dy + size, m - dx:m - dx + size]
                            for dy, dx in self.offsets[list(indices)].tolist()]).to(torch.uint8)


STILL_AUGMENT = {"scale": [1.0, 1.0], "jitter": [0, 0, 0, 0]}


@pytest.mark.parametrize("name,overrides", [
    ("seco", {"seco": {"augment": STILL_AUGMENT}}),
    ("cvrl", {"cvrl": {"augment": {"hflip": False, "area": [1.0, 1.0], "jitter": [0, 0, 0, 0], "blur_prob": 0.0,
                                   "solarize_prob": 0.0}}}),
    ("dualvar", {"dualvar": {"reverse_prob": 0.0, "augment": {"hflip": False, "scale": [1.0, 1.0],
                                                              "jitter": [0, 0, 0, 0], "blur_prob": 0.0}}}),
    ("supervised", {"seco": {"augment": STILL_AUGMENT}}),
])
def test_stabilized_differences_cancel_the_cameras_shake(name, overrides):
    """A still scene under a shaking camera: plain frame differences light up its edges, stabilized
    ones leave nothing (away from the border, where pixels enter the view)."""
    largest = {}
    for mode in ("frame_differences", "stabilized_differences"):
        config = smoke_config(name, **overrides)
        for section in ("seco", "cvrl", "dualvar"):
            config[section]["input_mode"] = mode
        views = build_method(name, config).view_maker()
        item = views(ShakyStillVideo(), np.random.default_rng(0))
        interiors = [view[..., 8:-8, 8:-8].abs().amax() for view in item.values() if view.ndim >= 3]
        largest[mode] = float(max(interiors))
    assert largest["frame_differences"] > 0.05
    assert largest["stabilized_differences"] < 1e-6


def test_supervised_3d_uses_the_backbone_methods_encoder():
    method = build_method("supervised", smoke_config("supervised", supervised={"backbone": "cvrl"}))
    assert method.encoder_kind == "3d"
    assert type(method.trunk) is type(build_method("cvrl", smoke_config("cvrl")).encoder())


def test_run_config_rejects_unknown_methods_and_sections(tmp_path):
    with pytest.raises(ValueError, match="seco"):
        build_run_config("simsiam", "smoke", tmp_path)
    with pytest.raises(ValueError, match="sections are"):
        build_run_config("seco", "smoke", tmp_path, overrides={"optimiser": {}})
    config = build_run_config("seco", "smoke", tmp_path, overrides={"seco": {"weights": {"order": 0.0}}})
    assert config["seco"]["weights"] == {"inter": 1.0, "intra": 1.0, "order": 0.0}


def test_run_config_refuses_misspelt_settings_at_any_depth(tmp_path):
    with pytest.raises(ValueError) as raised:
        build_run_config("seco", "smoke", tmp_path, overrides={"seco": {"weights": {"ordr": 0}, "queue_sise": 16}})
    message = str(raised.value)
    assert "seco.weights has no 'ordr' (keys: inter, intra, order)" in message
    assert "seco has no 'queue_sise'" in message and "queue_size" in message
    with pytest.raises(ValueError, match="cvrl.augment has no 'mean'"):
        build_run_config("cvrl", "smoke", tmp_path, overrides={"cvrl": {"augment": {"mean": [0.5] * 3}}})
    folded = build_run_config("cvrl", "paper", tmp_path, overrides={"train_cvrl": {"batch_size": 8}})
    assert folded["train"]["batch_size"] == 8


@pytest.mark.parametrize("name,section", [
    ("cvrl", "cvrl"), ("dualvar", "dualvar"), ("supervised", "cvrl"),
])
def test_a_methods_mean_and_std_normalise_its_training_views_as_they_do_its_evaluation_inputs(name, section):
    overrides = {section: {"input_mode": "rgb", "mean": [0.5, 0.5, 0.5], "std": [0.01, 0.01, 0.01]}}
    if name == "supervised":
        overrides["supervised"] = {"backbone": "cvrl"}
    config = smoke_config(name, **overrides)
    assert InputSpec.from_config(config, name).mean == (0.5, 0.5, 0.5)
    normalised = make_batch(build_method(name, config))
    plain = make_batch(build_method(name, smoke_config(name, **{**overrides, section: {"input_mode": "rgb"}})))
    for key in (k for k in normalised if normalised[k].is_floating_point()):
        assert plain[key].min() >= 0.0 and plain[key].max() <= 1.0
        assert normalised[key].abs().max() > 5.0  # (x - 0.5) / 0.01 for x in [0, 1]


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="cvrl, dualvar, seco, supervised"):
        build_method("byol", copy.deepcopy(smoke_config("seco")))


@pytest.mark.parametrize("name,overrides", [
    ("seco", {}), ("cvrl", {}), ("dualvar", {}), ("dualvar", {"dualvar": {"variant": "moco"}}),
])
def test_losses_run_in_float32_inside_mixed_precision(name, overrides):
    """Under the trainer's autocast the encoders run in bfloat16, but every loss module sees
    autocast switched off (its matmuls would otherwise cast float32 embeddings back down)."""
    torch.manual_seed(0)
    method = build_method(name, smoke_config(name, **overrides))
    batch = make_batch(method)
    autocast_seen: dict[str, list[bool]] = {"encoder": [], "losses": []}
    method.encoder().register_forward_pre_hook(
        lambda module, args: autocast_seen["encoder"].append(torch.is_autocast_enabled("cpu")))
    for module in method.modules():
        if type(module).__module__.startswith("seco_lab.losses."):
            module.register_forward_pre_hook(
                lambda module, args: autocast_seen["losses"].append(torch.is_autocast_enabled("cpu")))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method(batch)
    assert autocast_seen["encoder"] and all(autocast_seen["encoder"])
    assert autocast_seen["losses"] and not any(autocast_seen["losses"])
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
