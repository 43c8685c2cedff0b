"""What every method shares: the ``Method`` interface, the registry and input preparation.

A method is an ``nn.Module`` made of an encoder, heads and losses. Its ``forward(batch)`` is
one training step's loss (the shared engine calls it through DistributedDataParallel), its
``view_maker()`` turns one video into the views that step needs (run in DataLoader workers,
so it is a light, picklable object), ``after_step()`` runs after each optimiser step (EMA
updates), and ``encoder()`` is the trunk every evaluation protocol uses.

Used in one's own loop, a step is ``out = method(batch)``, ``out["loss"].backward()``, the
optimiser's step, then ``method.after_step()``. In ``eval()`` mode ``forward`` gives the same
losses with BatchNorm's running statistics and changes no state: the key queues (SeCo, DualVar's
``moco`` variant) take new keys only in training mode.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from seco_lab.transforms.functional import frame_differences, stabilize_clip, stabilize_pairs

# What an encoder is fed: RGB frames, differences of consecutive frames (motion only), or those
# differences after undoing the camera's shift between the two frames (``stabilize_pairs``).
INPUT_MODES = ("rgb", "frame_differences", "stabilized_differences")

_REGISTRY: dict[str, type["Method"]] = {}


class Method(nn.Module):
    """Base class: subclasses set ``name`` and ``encoder_kind`` and implement the hooks."""

    name: ClassVar[str]
    encoder_kind: ClassVar[str]  # "2d" (frame encoder) or "3d" (clip encoder)

    def view_maker(self) -> Callable[[Any, np.random.Generator], dict[str, Tensor]]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def encoder(self) -> nn.Module:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step; nothing to do unless the method keeps an EMA."""

    def load_start_weights(self) -> None:
        """Load the weights a new run starts from when the config names any (SeCo's
        ``init_checkpoint``). Called by ``pretrain`` on a fresh run only: a resumed run takes its
        checkpoint's weights, and evaluation rebuilds the method from a checkpoint's state."""

    def has_unused_parameters(self) -> bool:
        """Whether some trainable parameters get no gradient (a switched-off loss); DDP must know."""
        return False

    def replicated_buffers(self) -> tuple[str, ...]:
        """Names of buffers that every process updates identically (key queues filled with keys
        gathered from all processes): DDP need not re-send them from rank 0 at every step."""
        return ()


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def method_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def build_method(name: str, config: dict[str, Any]) -> Method:
    """Build method ``name`` from a run's full config (``"data"`` and ``name`` sections)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(method_names())}")
    for section in ("data", name):
        if section not in config:
            raise ValueError(f"config for method {name!r} lacks its {section!r} section")
    return _REGISTRY[name](config)


def losses_in_float32(reference: Tensor) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``reference``'s device type, for a method's losses. Inside the
    trainer's mixed-precision region autocast runs ``matmul``/``bmm`` in bfloat16 or float16 even on
    float32 inputs, so contrastive logits (dot products divided by a small temperature) would
    lose their precision; computed in here, from embeddings cast with ``.float()``, they keep it."""
    return torch.autocast(reference.device.type, enabled=False)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters receive no gradient (a momentum key encoder)."""
    twin = copy.deepcopy(module)
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    return twin


@torch.no_grad()
def momentum_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """EMA of parameters only: ``target <- momentum * target + (1 - momentum) * source``."""
    for target_param, source_param in zip(target.parameters(), source.parameters()):
        target_param.mul_(momentum).add_(source_param.detach(), alpha=1.0 - momentum)


def check_input_mode(mode: str) -> str:
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown input_mode {mode!r}: choose one of {', '.join(INPUT_MODES)}")
    return mode


def uses_differences(input_mode: str) -> bool:
    """Whether ``input_mode`` feeds an encoder differences of consecutive frames (stabilized or not)."""
    return check_input_mode(input_mode) != "rgb"


def view_normalisation(section: dict[str, Any], input_mode: str) -> dict[str, Any]:
    """``mean``/``std`` for the training views of an encoder configured by ``section`` (its method's
    config section), read as evaluation reads them (``InputSpec.from_config``) so that one setting
    governs both: None for frame differences (evaluated unnormalised), the section's own values
    when it names them (``cvrl.mean``), else none (the recipe's default stays)."""
    if uses_differences(input_mode):
        return {"mean": None, "std": None}
    return {key: section[key] for key in ("mean", "std") if key in section}


def frames_to_sample(num_frames: int, input_mode: str) -> int:
    """How many of a video's frames a frame sampler may pick from.

    With frame differences a picked frame t is read with frame t + 1 and becomes their
    difference, so the last frame cannot be picked (its difference would be all zero): ``L - 1``
    of ``L`` frames (1 for a one-frame video, whose difference is zero whatever is picked).
    """
    return max(num_frames - 1, 1) if uses_differences(input_mode) else num_frames


def stabilized(frames: Tensor, input_mode: str, paired: bool) -> Tensor:
    """Frames as read ``(N, C, H, W)``, with the camera's shifts undone for
    ``"stabilized_differences"`` (unchanged otherwise): ``paired`` frames come as (t, t + 1)
    pairs (``frame_pairs``), each frame t + 1 aligned to its t; otherwise they are one clip of
    consecutive frames, all aligned to the first. Call it before augmentation, on the decoded
    pixels, where the camera's shifts are whole pixels."""
    if check_input_mode(input_mode) != "stabilized_differences":
        return frames
    return stabilize_pairs(frames) if paired else stabilize_clip(frames)


def read_view_frames(video: Any, indices: np.ndarray, input_mode: str, paired: bool) -> Tensor:
    """The frames a view maker's views start from: ``video.read(indices)`` ``(N, C, H, W)`` uint8,
    ``stabilized`` for ``input_mode``; the camera's shifts come from the video's frame store when it
    has them (``video.camera_steps``), which gives the same frames as estimating them here."""
    frames = video.read(indices)
    if check_input_mode(input_mode) != "stabilized_differences":
        return frames
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    reference, moving = (indices[0::2], indices[1::2]) if paired else (indices[:-1], indices[1:])
    known = video.camera_steps(reference, moving) if hasattr(video, "camera_steps") else None  # None: search
    return stabilize_pairs(frames, shifts=known) if paired else stabilize_clip(frames, steps=known)


def frame_pairs(indices: np.ndarray, num_frames: int) -> np.ndarray:
    """Frames ``(2T,)`` to read for ``T`` frame differences: t, t + 1 for each picked t (clamped
    to the last frame, which only a one-frame video reaches)."""
    indices = np.asarray(indices, dtype=np.int64)
    return np.stack([indices, np.minimum(indices + 1, num_frames - 1)], axis=1).reshape(-1)  # (T, 2) -> (2T,)


def clip_frames_to_read(clip_frames: int, input_mode: str) -> int:
    """Frames a clip sampler must draw for a clip of ``clip_frames`` encoder inputs: one more with
    frame differences (T + 1 frames give T differences, each inside the video)."""
    return clip_frames + 1 if uses_differences(input_mode) else clip_frames


def finish_clip(clip: Tensor, input_mode: str) -> Tensor:
    """An augmented clip ``(T', C, H, W)`` as the encoder sees it: ``(C, T, H, W)``.

    With frame differences the ``T' = T + 1`` frames become ``T`` differences, so static
    appearance (background, the object's colour) cancels and only motion remains.
    """
    if uses_differences(input_mode):
        clip = frame_differences(clip)  # (T, C, H, W)
    return clip.permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)
