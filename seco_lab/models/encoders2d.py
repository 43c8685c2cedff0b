"""2D frame encoders: ResNet trunks with a channel-width multiplier and an optional small-input stem.

The trunk is assembled from torchvision's ResNet blocks (``BasicBlock`` / ``Bottleneck``) with
parameter names identical to ``torchvision.models.resnet*`` (``conv1``, ``bn1``, ``layer1`` ...
``layer4``), so a torchvision state dict (minus ``fc.*``) loads directly into a width-1 encoder
with the standard stem. Nothing is downloaded: weights come only from local files through
:func:`load_trunk_weights`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

ARCH_2D_LAYERS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
BASE_STAGE_CHANNELS = (64, 128, 256, 512)


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


class Encoder2D(nn.Module):
    """ResNet trunk for single frames.

    Attributes:
        feature_dim: size D of the pooled feature (512*width for resnet18, 2048*width for resnet50).
        arch, width, small_input: the construction arguments.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        width: float = 1.0,
        small_input: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if arch not in ARCH_2D_LAYERS:
            raise ValueError(
                f"seco_lab/models/encoders2d.py: unknown 2D arch {arch!r}; choose one of {sorted(ARCH_2D_LAYERS)}"
            )
        if width <= 0:
            raise ValueError(f"seco_lab/models/encoders2d.py: width must be > 0, got {width}")
        block, layer_counts = ARCH_2D_LAYERS[arch]
        self.arch = arch
        self.width = width
        self.small_input = small_input
        stem_channels = scaled_channels(64, width)
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self._inplanes = stem_channels
        stage_planes = [scaled_channels(c, width) for c in BASE_STAGE_CHANNELS]
        self.layer1 = self._make_stage(block, stage_planes[0], layer_counts[0], stride=1)
        self.layer2 = self._make_stage(block, stage_planes[1], layer_counts[1], stride=2)
        self.layer3 = self._make_stage(block, stage_planes[2], layer_counts[2], stride=2)
        self.layer4 = self._make_stage(block, stage_planes[3], layer_counts[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = stage_planes[3] * block.expansion
        self._init_weights()

    def _make_stage(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, num_blocks: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        out_channels = planes * block.expansion
        if stride != 1 or self._inplanes != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        blocks = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = out_channels
        blocks.extend(block(self._inplanes, planes) for _ in range(1, num_blocks))
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_map(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> last conv stage (N, D, h, w); h = H/32 (H/8 with small_input)."""
        if x.dim() != 4:
            raise ValueError(
                f"seco_lab/models/encoders2d.py: Encoder2D expects (N, C, H, W), got shape {tuple(x.shape)}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> globally average-pooled features (N, D)."""
        return torch.flatten(self.avgpool(self.forward_map(x)), 1)


def build_encoder_2d(
    arch: str = "resnet18", width: float = 1.0, small_input: bool = False, in_channels: int = 3
) -> Encoder2D:
    """Build a randomly initialised 2D ResNet trunk.

    Args:
        arch: "resnet18" (BasicBlock, 512*width-d) or "resnet50" (Bottleneck, 2048*width-d).
        width: multiplier of every stage's channels (stem 64, stages 64-128-256-512); 0.25/0.5 for CPU.
        small_input: 3x3 stride-1 stem and no max-pool (for ~64 px frames); otherwise the
            ImageNet stem (7x7 stride 2 + 3x3 max-pool).
        in_channels: input channels (3 for RGB).
    """
    return Encoder2D(arch=arch, width=width, small_input=small_input, in_channels=in_channels)


TRUNK_PREFIXES = ("module.encoder_q.", "encoder_q.", "query.trunk.", "trunk.", "module.", "backbone.", "encoder.")
CHECKPOINT_CONTAINER_KEYS = ("state_dict", "model")


def _query_encoder_state_dict(state: dict[str, Tensor], path: str | Path) -> dict[str, Tensor]:
    """A checkpoint's query encoder with torchvision's key names (trunk keys and ``fc.*``): the
    containers and prefixes that ``extract_trunk_state_dict`` describes are removed."""
    for container_key in CHECKPOINT_CONTAINER_KEYS:
        if container_key in state and isinstance(state[container_key], dict):
            state = state[container_key]
    if not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors (keys: {sorted(state)[:8]}...)")
    for prefix in TRUNK_PREFIXES:
        if any(key.startswith(prefix) for key in state):
            return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return state


def extract_trunk_state_dict(state: dict[str, Tensor], path: str | Path = "<state dict>") -> dict[str, Tensor]:
    """Normalise a checkpoint's state dict to the trunk's own key names.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers, keeps only the query trunk
    of MoCo-style checkpoints (``module.encoder_q.``) and of seco_lab method state dicts
    (``query.trunk.`` / ``trunk.``), strips ``module.`` and similar prefixes (the first prefix in
    ``TRUNK_PREFIXES`` that occurs wins) and drops the classifier / projection head (``fc.*``).
    """
    return {key: value for key, value in _query_encoder_state_dict(state, path).items() if not key.startswith("fc.")}


MLP_HEAD_KEYS = ("0.weight", "0.bias", "2.weight", "2.bias")


def extract_mlp_head_state_dict(state: dict[str, Tensor], path: str | Path = "<state dict>") -> dict[str, Tensor]:
    """The projection MLP of a MoCo v2 checkpoint's query encoder, ``fc = Linear(D, D) - ReLU -
    Linear(D, 128)``, keyed as that ``nn.Sequential`` (``0.weight``, ``0.bias``, ``2.weight``,
    ``2.bias``); empty when the checkpoint holds no such MLP (a torchvision classifier ``fc``, a
    trunk alone). Containers and prefixes as in ``extract_trunk_state_dict``."""
    head = {key[len("fc."):]: value for key, value in _query_encoder_state_dict(state, path).items()
            if key.startswith("fc.")}
    return head if sorted(head) == sorted(MLP_HEAD_KEYS) else {}


def load_trunk_weights(encoder: nn.Module, path: str | Path) -> dict[str, Any]:
    """Initialise ``encoder`` from a local checkpoint of its trunk (strict, no download); returns
    the checkpoint as read, for callers that take more from it (SeCo's heads).

    Accepts a plain trunk state dict, a torchvision ResNet state dict (``fc.*`` ignored), or a
    MoCo-style checkpoint (``{"state_dict": {"module.encoder_q.conv1.weight": ...}}``).
    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` naming the missing /
    unexpected / mis-shaped keys if the checkpoint does not match the encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trunk checkpoint not found")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = extract_trunk_state_dict(checkpoint, path)
    own_state = encoder.state_dict()
    missing = sorted(set(own_state) - set(state))
    unexpected = sorted(set(state) - set(own_state))
    mis_shaped = sorted(
        f"{key} checkpoint {tuple(state[key].shape)} vs encoder {tuple(own_state[key].shape)}"
        for key in set(state) & set(own_state)
        if state[key].shape != own_state[key].shape
    )
    if missing or unexpected or mis_shaped:
        raise ValueError(
            f"{path}: checkpoint does not match the encoder "
            f"(missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
            f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}; "
            f"shape mismatches {mis_shaped[:10]}{' ...' if len(mis_shaped) > 10 else ''})"
        )
    encoder.load_state_dict(state, strict=True)
    return checkpoint
