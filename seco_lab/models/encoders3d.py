"""3D clip encoders: (N, C, T, H, W) -> (N, D).

Architectures (all randomly initialised, nothing downloaded):

- ``r3d_18``: 3D ResNet-18 (3x3x3 convolutions), torchvision's video-ResNet blocks, 512*width-d.
- ``r2plus1d_18``: R(2+1)D-18, torchvision's ``Conv2Plus1D`` blocks, 512*width-d.
- ``dualvar_r21d``: the small R(2+1)D used by DualVar: ONE basic block per stage, every (2+1)D
  convolution factorised with its own middle width ``floor(kt*ks*ks*in*out / (ks*ks*in + kt*out))``
  (so it has about the parameters of the 3D conv it replaces), a (2+1)D 3x7x7 stem with spatial
  stride 2 and no max-pool, stride 2 in space *and* time at the first block of stages 2-4 with a
  factorised 1x1x1 projection shortcut. 512-d, 14.37M parameters at width 1.
- ``cvrl_r3d50``: CVRL's 3D ResNet-50, "slow pathway" style: bottleneck blocks (3-4-6-3) whose
  first 1x1 convolution has a temporal kernel of 3 (3x1x1) in res4 and res5 and 1x1x1 in res2 and
  res3; spatial 1x3x3 middle convolutions; no temporal striding in the residual stages. The stem
  (7x7 spatial, temporal kernel ``stem_temporal_kernel``, temporal stride ``stem_temporal_stride``,
  then a 1x3x3 max-pool) is the only place time is downsampled. 2048-d, 31.7M parameters.
- ``tiny3d``: a CPU-sized 3D CNN: 4 x [Conv3d 3x3x3 - BN - ReLU] with 32-64-128-256 channels
  (times width), spatial stride 2 in every stage, temporal stride 2 in the first and third; 256*width-d,
  1.16M parameters at width 1.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models.video.resnet import BasicBlock as VideoBasicBlock
from torchvision.models.video.resnet import Conv2Plus1D, Conv3DSimple

from seco_lab.models.encoders2d import scaled_channels

ENCODER_3D_ARCHS = ("r3d_18", "r2plus1d_18", "dualvar_r21d", "cvrl_r3d50", "tiny3d")
Triple = tuple[int, int, int]


class Encoder3D(nn.Module):
    """Clip encoder: ``forward(x (N, C, T, H, W)) -> (N, feature_dim)`` (global average pool).

    Subclasses define ``stem`` and ``layer1`` .. ``layer4`` (or override ``forward_map``).
    """

    arch: str
    width: float
    feature_dim: int

    def forward_map(self, x: Tensor) -> Tensor:
        """(N, C, T, H, W) -> (N, D, t, h, w): ``stem`` then ``layer1`` .. ``layer4`` of the subclass."""
        x = self.stem(x)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(
                f"seco_lab/models/encoders3d.py: {self.arch} expects (N, C, T, H, W), got shape {tuple(x.shape)}"
            )
        feature_map = self.forward_map(x)  # (N, D, t, h, w)
        return feature_map.mean(dim=(2, 3, 4))

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


# ---------------------------------------------------------------- torchvision-block video ResNet-18
class VideoResNet18(Encoder3D):
    """r3d_18 / r2plus1d_18 with a width multiplier (names match torchvision's VideoResNet)."""

    def __init__(self, arch: str, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.arch = arch
        self.width = width
        stem_channels = scaled_channels(64, width)
        conv_builder: type[Conv3DSimple] | type[Conv2Plus1D]
        if arch == "r3d_18":
            conv_builder = Conv3DSimple
            self.stem = nn.Sequential(
                nn.Conv3d(in_channels, stem_channels, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                nn.BatchNorm3d(stem_channels),
                nn.ReLU(inplace=True),
            )
        else:
            conv_builder = Conv2Plus1D
            stem_mid = scaled_channels(45, width)
            self.stem = nn.Sequential(
                nn.Conv3d(in_channels, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                nn.BatchNorm3d(stem_mid),
                nn.ReLU(inplace=True),
                nn.Conv3d(stem_mid, stem_channels, (3, 1, 1), padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(stem_channels),
                nn.ReLU(inplace=True),
            )
        self._inplanes = stem_channels
        planes = [scaled_channels(c, width) for c in (64, 128, 256, 512)]
        self.layer1 = self._make_stage(conv_builder, planes[0], stride=1)
        self.layer2 = self._make_stage(conv_builder, planes[1], stride=2)
        self.layer3 = self._make_stage(conv_builder, planes[2], stride=2)
        self.layer4 = self._make_stage(conv_builder, planes[3], stride=2)
        self.feature_dim = planes[3]
        self._init_weights()

    def _make_stage(
        self, conv_builder: type[Conv3DSimple] | type[Conv2Plus1D], planes: int, stride: int, num_blocks: int = 2
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(self._inplanes, planes, kernel_size=1, stride=conv_builder.get_downsample_stride(stride), bias=False),
                nn.BatchNorm3d(planes),
            )
        blocks = [VideoBasicBlock(self._inplanes, planes, conv_builder, stride, downsample)]
        self._inplanes = planes
        blocks.extend(VideoBasicBlock(planes, planes, conv_builder) for _ in range(1, num_blocks))
        return nn.Sequential(*blocks)



# ---------------------------------------------------------------- DualVar R(2+1)D, one block per stage
def factorised_mid_channels(in_channels: int, out_channels: int, kernel: Triple) -> int:
    """Middle width of a (2+1)D factorisation with about the parameters of the full 3D kernel."""
    kt, kh, kw = kernel
    return (kt * kh * kw * in_channels * out_channels) // (kh * kw * in_channels + kt * out_channels)


class SpatioTemporalConv(nn.Sequential):
    """(2+1)D convolution: spatial (1, kh, kw) conv -> BN -> ReLU -> temporal (kt, 1, 1) conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple = (1, 1, 1)) -> None:
        kt, kh, kw = kernel
        st, sh, sw = stride
        mid_channels = factorised_mid_channels(in_channels, out_channels, kernel)
        super().__init__(
            nn.Conv3d(in_channels, mid_channels, (1, kh, kw), stride=(1, sh, sw), padding=(0, kh // 2, kw // 2), bias=False),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, (kt, 1, 1), stride=(st, 1, 1), padding=(kt // 2, 0, 0), bias=False),
        )


class SpatioTemporalBlock(nn.Module):
    """Residual basic block of two (2+1)D 3x3x3 convs; stride 2 (T, H, W) + projection when downsampling."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        stride = (2, 2, 2) if downsample else (1, 1, 1)
        self.conv1 = nn.Sequential(
            SpatioTemporalConv(in_channels, out_channels, (3, 3, 3), stride),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            SpatioTemporalConv(out_channels, out_channels, (3, 3, 3)), nn.BatchNorm3d(out_channels)
        )
        self.shortcut: nn.Module = nn.Identity()
        if downsample or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                SpatioTemporalConv(in_channels, out_channels, (1, 1, 1), stride), nn.BatchNorm3d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class DualVarR21D(Encoder3D):
    """R(2+1)D with one block per stage (DualVar's backbone), 512*width-d."""

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.arch = "dualvar_r21d"
        self.width = width
        channels = [scaled_channels(c, width) for c in (64, 64, 128, 256, 512)]
        self.stem = nn.Sequential(
            SpatioTemporalConv(in_channels, channels[0], (3, 7, 7), (1, 2, 2)),
            nn.BatchNorm3d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.layer1 = SpatioTemporalBlock(channels[0], channels[1], downsample=False)
        self.layer2 = SpatioTemporalBlock(channels[1], channels[2], downsample=True)
        self.layer3 = SpatioTemporalBlock(channels[2], channels[3], downsample=True)
        self.layer4 = SpatioTemporalBlock(channels[3], channels[4], downsample=True)
        self.feature_dim = channels[4]
        self._init_weights()



# ---------------------------------------------------------------- CVRL 3D ResNet-50 (slow pathway style)
class SlowBottleneck(nn.Module):
    """Bottleneck: (kt,1,1) conv -> (1,3,3) conv (spatial stride) -> 1x1x1 conv, x4 expansion."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, temporal_kernel: int, spatial_stride: int) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv3d(
            in_channels, planes, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False
        )
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(
            planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1), bias=False
        )
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if spatial_stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class CVRLResNet3D50(Encoder3D):
    """3D ResNet-50, slow-pathway style (temporal kernels only in res4/res5), 2048*width-d.

    Args:
        stem_temporal_kernel / stem_temporal_stride: the stem's temporal kernel and stride.
            Defaults 5 / 2 follow the CVRL reference configuration *(unverified)*; the 1x7x7
            stem of SlowOnly is ``stem_temporal_kernel=1, stem_temporal_stride=1``.
    """

    STAGE_BLOCKS = (3, 4, 6, 3)
    STAGE_TEMPORAL_KERNELS = (1, 1, 3, 3)

    def __init__(
        self,
        width: float = 1.0,
        in_channels: int = 3,
        stem_temporal_kernel: int = 5,
        stem_temporal_stride: int = 2,
    ) -> None:
        super().__init__()
        self.arch = "cvrl_r3d50"
        self.width = width
        stem_channels = scaled_channels(64, width)
        self.stem = nn.Sequential(
            nn.Conv3d(
                in_channels,
                stem_channels,
                (stem_temporal_kernel, 7, 7),
                stride=(stem_temporal_stride, 2, 2),
                padding=(stem_temporal_kernel // 2, 3, 3),
                bias=False,
            ),
            nn.BatchNorm3d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        in_planes = stem_channels
        stages = []
        for stage_index, (num_blocks, temporal_kernel) in enumerate(zip(self.STAGE_BLOCKS, self.STAGE_TEMPORAL_KERNELS)):
            planes = scaled_channels(64 * 2**stage_index, width)
            blocks = []
            for block_index in range(num_blocks):
                spatial_stride = 2 if (stage_index > 0 and block_index == 0) else 1
                blocks.append(SlowBottleneck(in_planes, planes, temporal_kernel, spatial_stride))
                in_planes = planes * SlowBottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = in_planes
        self._init_weights()



# ---------------------------------------------------------------- tiny3d
class Tiny3D(Encoder3D):
    """4 x [Conv3d 3x3x3 - BN - ReLU], channels 32-64-128-256 (x width).

    Strides (T, H, W): (2,2,2), (1,2,2), (2,2,2), (1,2,2): an 8x64x64 clip ends as a 2x4x4 map.
    Halving time in the first layer (its 3-frame kernel still sees every frame) rather than
    later more than doubles CPU throughput (~300 train clips/s at 8x64x64, batch 16, 2 threads).
    """

    BASE_CHANNELS = (32, 64, 128, 256)
    STRIDES: tuple[Triple, ...] = ((2, 2, 2), (1, 2, 2), (2, 2, 2), (1, 2, 2))

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.arch = "tiny3d"
        self.width = width
        layers: list[nn.Module] = []
        previous = in_channels
        for base, stride in zip(self.BASE_CHANNELS, self.STRIDES):
            channels = scaled_channels(base, width)
            layers += [
                nn.Conv3d(previous, channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm3d(channels),
                nn.ReLU(inplace=True),
            ]
            previous = channels
        self.features = nn.Sequential(*layers)
        self.feature_dim = previous
        self._init_weights()

    def forward_map(self, x: Tensor) -> Tensor:
        return self.features(x)


ENCODER_3D_BUILDERS: dict[str, Callable[..., Encoder3D]] = {
    "r3d_18": lambda width, in_channels, **kw: VideoResNet18("r3d_18", width, in_channels, **kw),
    "r2plus1d_18": lambda width, in_channels, **kw: VideoResNet18("r2plus1d_18", width, in_channels, **kw),
    "dualvar_r21d": lambda width, in_channels, **kw: DualVarR21D(width, in_channels, **kw),
    "cvrl_r3d50": lambda width, in_channels, **kw: CVRLResNet3D50(width, in_channels, **kw),
    "tiny3d": lambda width, in_channels, **kw: Tiny3D(width, in_channels, **kw),
}


def build_encoder_3d(arch: str, width: float = 1.0, in_channels: int = 3, **arch_options: int) -> Encoder3D:
    """Build a randomly initialised 3D clip encoder.

    Args:
        arch: one of ``ENCODER_3D_ARCHS``.
        width: channel multiplier of every stage (1.0 = the reference network).
        in_channels: input channels (3 for RGB; also 3 for RGB frame differences).
        arch_options: extra keyword options of one arch (``cvrl_r3d50``: ``stem_temporal_kernel``,
            ``stem_temporal_stride``).
    """
    if arch not in ENCODER_3D_BUILDERS:
        raise ValueError(f"seco_lab/models/encoders3d.py: unknown 3D arch {arch!r}; choose one of {list(ENCODER_3D_ARCHS)}")
    if width <= 0:
        raise ValueError(f"seco_lab/models/encoders3d.py: width must be > 0, got {width}")
    return ENCODER_3D_BUILDERS[arch](width=width, in_channels=in_channels, **arch_options)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(parameter.numel() for parameter in module.parameters())
