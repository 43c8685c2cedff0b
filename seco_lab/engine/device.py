"""Device choice, mixed precision and memory layout: all CUDA decisions of the trainer."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from seco_lab.engine.config import DEVICE_CHOICES, DEVICE_PATTERN


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine."""


def resolve_device(spec: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    ``"cuda"`` means ``cuda:<local_rank>`` (one GPU per torchrun process); ``"cuda:N"`` is taken
    as is in one process and refused among ``world_size > 1`` processes (they would all share
    GPU N). Asking for CUDA without it, or for a missing GPU index, raises ``DeviceError``.
    """
    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec):
        raise DeviceError(f"unknown device {spec!r}: choose {DEVICE_CHOICES}")
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available on this machine "
            f"(use device='auto' or 'cpu')"
        )
    if spec.startswith("cuda:") and world_size > 1:
        raise DeviceError(
            f"device {spec!r} for {world_size} processes: each process takes the GPU of its LOCAL_RANK, so use "
            f"device 'cuda' or 'auto' (and CUDA_VISIBLE_DEVICES to choose which GPUs)"
        )
    index = int(spec.split(":")[1]) if spec.startswith("cuda:") else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device 'cuda:{index}' requested but only {count} CUDA device(s) exist"
                          + ("" if spec.startswith("cuda:") else f" (LOCAL_RANK is {local_rank}: start at most "
                                                                 f"{count} processes per machine)"))
    return torch.device("cuda", index)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """Mixed-precision dtype: None on CPU or with ``amp=False``; bfloat16 on a CUDA device with
    native bfloat16 (compute capability 8.0 or newer), else float16 (which then needs a
    ``GradScaler``). ``torch.cuda.is_bf16_supported()`` is not the test: it also says yes on
    older GPUs that only emulate bfloat16, slowly and without tensor cores."""
    if not amp or device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def build_grad_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A ``GradScaler`` enabled only for float16 autocast (bfloat16 and float32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


@contextlib.contextmanager
def cuda_kernel_choice(device: torch.device, deterministic: bool) -> Iterator[None]:
    """While training on CUDA: cuDNN's autotuner, which picks the fastest kernels by timing them
    (two runs of one seed, or a resumed run and an uninterrupted one, may then differ in the
    last bits), or with ``deterministic`` deterministic kernels only (same seed, same weights,
    at some cost in speed; ops that have none warn). The global flags are restored afterwards.
    Nothing changes on a CPU, whose kernels are deterministic anyway."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn.benchmark, cudnn.deterministic = not deterministic, deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for reproducible matmuls
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def channels_last_format(tensor: torch.Tensor) -> torch.memory_format | None:
    """``channels_last`` for 4D (N, C, H, W), ``channels_last_3d`` for 5D (N, C, T, H, W), else None."""
    if tensor.ndim == 4:
        return torch.channels_last
    if tensor.ndim == 5:
        return torch.channels_last_3d
    return None


def module_to_channels_last(module: nn.Module) -> nn.Module:
    """Store 4D/5D parameters and buffers (conv weights) in the matching channels-last layout."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        memory_format = channels_last_format(tensor)
        if memory_format is not None:
            tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return module


def frames_channels_last(frames: torch.Tensor) -> torch.Tensor:
    """(B, K, C, H, W) stacks of frames laid out so that every frame is channels-last, and so is
    ``frames.flatten(0, 1)``, a view: (B * K, C, H, W) for a 2D encoder."""
    return frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def move_batch(batch: dict[str, Any], device: torch.device, channels_last: bool,
               frame_encoder: bool = False) -> dict[str, Any]:
    """Copy every tensor of ``batch`` to ``device`` (non-blocking from pinned memory on CUDA);
    with ``channels_last`` floating tensors get a channels-last layout: 4D (N, C, H, W) frames
    ``channels_last``, 5D tensors ``channels_last_3d`` as (N, C, T, H, W) clips, or, for a
    ``frame_encoder`` (a 2D encoder), channels-last frames of (B, K, C, H, W) stacks."""
    if not isinstance(batch, dict):
        raise TypeError(f"a training batch must be a dict of tensors (the dataset's items are dicts, which the "
                        f"loader stacks), got {type(batch).__name__}: make dataset[i] return a dict")
    non_blocking = device.type == "cuda"
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor):
            moved[key] = value
            continue
        memory_format = channels_last_format(value) if channels_last and value.is_floating_point() \
            else None
        if memory_format is None:
            moved[key] = value.to(device, non_blocking=non_blocking)
        elif memory_format == torch.channels_last_3d and frame_encoder:
            moved[key] = frames_channels_last(value.to(device, non_blocking=non_blocking))
        else:
            moved[key] = value.to(device, non_blocking=non_blocking, memory_format=memory_format)
    return moved
