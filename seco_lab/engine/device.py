"""Device choice, mixed precision and memory layout: all CUDA decisions of the trainer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seco_lab.engine.config import DEVICE_CHOICES, DEVICE_PATTERN


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine."""


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    ``"cuda"`` means ``cuda:<local_rank>`` (one GPU per torchrun process); ``"cuda:N"`` is taken
    as is. Asking for CUDA without it, or for a missing GPU index, raises ``DeviceError``.
    """
    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec):
        raise DeviceError(f"unknown device {spec!r}: choose {DEVICE_CHOICES}")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available on this machine "
            f"(use device='auto' or 'cpu')"
        )
    index = local_rank if spec == "cuda" else int(spec.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device 'cuda:{index}' requested but only {count} CUDA device(s) exist")
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


def move_batch(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Copy every tensor of ``batch`` to ``device`` (non-blocking from pinned memory on CUDA);
    floating 4D/5D tensors get a channels-last layout when ``channels_last`` is set."""
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
        else:
            moved[key] = value.to(device, non_blocking=non_blocking, memory_format=memory_format)
    return moved
