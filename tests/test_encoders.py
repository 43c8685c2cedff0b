"""Encoder and head shapes, reference parameter counts, stems and trunk-weight loading."""

from __future__ import annotations

import pytest
import torch
import torchvision

from seco_lab.models import (
    ENCODER_3D_ARCHS,
    SeriesHead,
    build_encoder_2d,
    build_encoder_3d,
    count_parameters,
    cvrl_head,
    dualvar_clip_head,
    load_trunk_weights,
    mlp_head,
    seco_head,
)


# ------------------------------------------------------------------------------------------- 2D
@pytest.mark.parametrize(
    "arch,width,small_input,size,expected_dim,expected_map",
    [
        ("resnet18", 0.25, True, 32, 128, 4),
        ("resnet18", 0.5, False, 64, 256, 2),
        ("resnet50", 0.25, True, 32, 512, 4),
        ("resnet50", 0.125, False, 64, 256, 2),
    ],
)
def test_encoder_2d_shapes(arch, width, small_input, size, expected_dim, expected_map):
    encoder = build_encoder_2d(arch, width=width, small_input=small_input)
    frames = torch.randn(2, 3, size, size)
    assert encoder.feature_dim == expected_dim
    assert encoder(frames).shape == (2, expected_dim)
    assert encoder.forward_map(frames).shape == (2, expected_dim, expected_map, expected_map)


def test_encoder_2d_small_input_stem():
    small = build_encoder_2d("resnet18", width=0.25, small_input=True)
    standard = build_encoder_2d("resnet18", width=0.25, small_input=False)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert standard.conv1.kernel_size == (7, 7) and isinstance(standard.maxpool, torch.nn.MaxPool2d)
    frames = torch.randn(1, 3, 64, 64)
    assert small.forward_map(frames).shape[-1] == 8  # 64 / 8
    assert standard.forward_map(frames).shape[-1] == 2  # 64 / 32


def test_encoder_2d_in_channels_and_bad_args():
    assert build_encoder_2d("resnet18", width=0.25, small_input=True, in_channels=1)(torch.randn(2, 1, 16, 16)).shape == (2, 128)
    with pytest.raises(ValueError, match="unknown 2D arch"):
        build_encoder_2d("vgg16")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        build_encoder_2d("resnet18", width=0.25)(torch.randn(3, 32, 32))


def test_resnet_trunk_parameter_counts_match_torchvision():
    resnet50 = build_encoder_2d("resnet50")
    assert count_parameters(resnet50) == 23_508_032
    assert count_parameters(build_encoder_2d("resnet18")) == 11_176_512
    reference = torchvision.models.resnet50(weights=None)
    assert set(reference.state_dict()) - set(resnet50.state_dict()) == {"fc.weight", "fc.bias"}


# ------------------------------------------------------------------------------------------- trunk weights
def test_load_trunk_weights_round_trip(tmp_path):
    source = build_encoder_2d("resnet18", width=0.25, small_input=True)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter))
    path = tmp_path / "trunk.pt"
    torch.save(source.state_dict(), path)
    target = build_encoder_2d("resnet18", width=0.25, small_input=True)
    load_trunk_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key


def test_load_trunk_weights_torchvision_and_moco_formats(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torchvision_path = tmp_path / "torchvision_resnet18.pt"
    torch.save(reference.state_dict(), torchvision_path)
    encoder = build_encoder_2d("resnet18")
    load_trunk_weights(encoder, torchvision_path)
    assert torch.equal(encoder.conv1.weight, reference.conv1.weight)
    frames = torch.randn(2, 3, 64, 64)
    reference.eval(), encoder.eval()
    reference.fc = torch.nn.Identity()
    assert torch.allclose(encoder(frames), reference(frames), atol=1e-5)

    query_trunk = build_encoder_2d("resnet18", width=0.25)
    key_trunk = build_encoder_2d("resnet18", width=0.25)
    moco_state = {f"module.encoder_q.{k}": v for k, v in query_trunk.state_dict().items()}
    moco_state |= {f"module.encoder_k.{k}": v for k, v in key_trunk.state_dict().items()}
    moco_state |= {"module.encoder_q.fc.0.weight": torch.zeros(4, 128), "module.queue": torch.zeros(128, 8)}
    moco_path = tmp_path / "moco.pth.tar"
    torch.save({"epoch": 3, "arch": "resnet18", "state_dict": moco_state}, moco_path)
    target = build_encoder_2d("resnet18", width=0.25)
    load_trunk_weights(target, moco_path)
    assert torch.equal(target.layer4[1].conv2.weight, query_trunk.layer4[1].conv2.weight)


def test_load_trunk_weights_from_method_state_dict(tmp_path):
    query_trunk = build_encoder_2d("resnet18", width=0.25, small_input=True)
    method_state = {f"query.trunk.{k}": v for k, v in query_trunk.state_dict().items()}
    method_state |= {f"key.trunk.{k}": torch.zeros_like(v) for k, v in query_trunk.state_dict().items()}
    method_state["query.heads.inter.0.weight"] = torch.zeros(8, 128)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": method_state, "step": 10}, path)
    target = build_encoder_2d("resnet18", width=0.25, small_input=True)
    load_trunk_weights(target, path)
    assert torch.equal(target.conv1.weight, query_trunk.conv1.weight)


def test_load_trunk_weights_errors_name_keys(tmp_path):
    state = build_encoder_2d("resnet18", width=0.25).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['layer1.0.conv1.weight'\].*unexpected keys \['extra.weight'\]"):
        load_trunk_weights(build_encoder_2d("resnet18", width=0.25), path)
    wide_path = tmp_path / "wide.pt"
    torch.save(build_encoder_2d("resnet18", width=0.5).state_dict(), wide_path)
    with pytest.raises(ValueError, match="shape mismatches.*conv1.weight"):
        load_trunk_weights(build_encoder_2d("resnet18", width=0.25), wide_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_trunk_weights(build_encoder_2d("resnet18", width=0.25), tmp_path / "absent.pt")


# ------------------------------------------------------------------------------------------- 3D
@pytest.mark.parametrize(
    "arch,width,clip_shape,expected_dim",
    [
        ("r3d_18", 0.125, (4, 32, 32), 64),
        ("r2plus1d_18", 0.125, (4, 32, 32), 64),
        ("dualvar_r21d", 0.25, (8, 32, 32), 128),
        ("cvrl_r3d50", 0.125, (4, 32, 32), 256),
        ("tiny3d", 1.0, (8, 32, 32), 256),
        ("tiny3d", 0.5, (8, 64, 64), 128),
    ],
)
def test_encoder_3d_shapes(arch, width, clip_shape, expected_dim):
    encoder = build_encoder_3d(arch, width=width)
    clips = torch.randn(2, 3, *clip_shape)
    assert encoder.feature_dim == expected_dim
    features = encoder(clips)
    assert features.shape == (2, expected_dim)
    assert torch.isfinite(features).all()
    assert encoder.forward_map(clips).shape[:2] == (2, expected_dim)


def test_every_3d_arch_is_covered():
    assert set(ENCODER_3D_ARCHS) == {"r3d_18", "r2plus1d_18", "dualvar_r21d", "cvrl_r3d50", "tiny3d"}


@pytest.mark.parametrize(
    "arch,expected,tolerance",
    [
        ("dualvar_r21d", 14.4e6, 0.03),
        ("cvrl_r3d50", 31.7e6, 0.03),
        ("tiny3d", 1.2e6, 0.05),
        ("r3d_18", 33_166_272, 0.0),  # torchvision r3d_18 without fc
        ("r2plus1d_18", 31_300_125, 0.0),  # torchvision r2plus1d_18 without fc
    ],
)
def test_reference_3d_parameter_counts(arch, expected, tolerance):
    count = count_parameters(build_encoder_3d(arch))
    assert abs(count - expected) <= tolerance * expected, f"{arch}: {count:,} parameters"


def test_cvrl_r3d50_temporal_kernels_only_in_res4_res5_and_no_temporal_stride():
    encoder = build_encoder_3d("cvrl_r3d50", width=0.125)
    for stage, temporal_kernel in ((encoder.layer1, 1), (encoder.layer2, 1), (encoder.layer3, 3), (encoder.layer4, 3)):
        for block in stage:
            assert block.conv1.kernel_size == (temporal_kernel, 1, 1)
            assert block.conv2.kernel_size == (1, 3, 3)
            for conv in block.modules():
                if isinstance(conv, torch.nn.Conv3d):
                    assert conv.stride[0] == 1
    frames = 8
    time_after_stem = encoder.stem(torch.randn(1, 3, frames, 32, 32)).shape[2]
    assert encoder.forward_map(torch.randn(1, 3, frames, 32, 32)).shape[2] == time_after_stem


def test_dualvar_r21d_has_one_block_per_stage_and_downsamples_time():
    encoder = build_encoder_3d("dualvar_r21d", width=0.25)
    assert encoder.feature_dim == 128
    assert encoder.forward_map(torch.randn(1, 3, 16, 32, 32)).shape[2:] == (2, 2, 2)  # T/8, H/16, W/16


def test_width_scales_3d_channels_and_validates():
    assert build_encoder_3d("tiny3d", width=0.5).feature_dim == 128
    assert count_parameters(build_encoder_3d("tiny3d", width=0.5)) < count_parameters(build_encoder_3d("tiny3d"))
    with pytest.raises(ValueError, match="unknown 3D arch"):
        build_encoder_3d("i3d")
    with pytest.raises(ValueError, match="width must be > 0"):
        build_encoder_3d("tiny3d", width=0)
    with pytest.raises(ValueError, match=r"\(N, C, T, H, W\)"):
        build_encoder_3d("tiny3d")(torch.randn(2, 3, 32, 32))


# ------------------------------------------------------------------------------------------- heads
def test_mlp_heads_structure_and_shapes():
    head = mlp_head(16, 32, 8, num_hidden_layers=2, batch_norm=True)
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert [type(m).__name__ for m in seco_head(32)] == ["Linear", "ReLU", "Linear"]
    assert seco_head(32)[0].out_features == 32 and seco_head(32)[2].out_features == 128
    cvrl = cvrl_head(64, hidden_dim=48)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in cvrl) == 3 and cvrl[-1].out_features == 128
    clip_head = dualvar_clip_head()
    assert (clip_head[0].in_features, clip_head[0].out_features, clip_head[2].out_features) == (512, 512, 128)
    assert mlp_head(4, 8, 2, num_hidden_layers=0)(torch.randn(3, 4)).shape == (3, 2)


def test_series_head_shape_and_normalisation():
    head = SeriesHead(in_dim=32, hidden_dim=16, num_segments=3, segment_dim=8)
    series = head(torch.randn(5, 32))
    assert series.shape == (5, 3, 8)
    assert torch.allclose(series.norm(dim=-1), torch.ones(5, 3), atol=1e-5)
    default = SeriesHead()
    assert default(torch.randn(2, 512)).shape == (2, 2, 64)
    assert default.mlp[-1].out_features == 128
