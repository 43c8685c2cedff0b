"""Training engine shared by every method: ``fit``, its config, checkpoints, history, DDP helpers."""

from seco_lab.engine.checkpoint import CheckpointError, load_checkpoint
from seco_lab.engine.config import TrainConfig, TrainConfigError
from seco_lab.engine.device import DeviceError, autocast_dtype, resolve_device
from seco_lab.engine.distributed import (
    all_gather_no_grad, all_gather_with_grad, is_distributed, rank, shuffle_bn_forward, world_size,
)
from seco_lab.engine.history import load_history
from seco_lab.engine.preemption import TrainingStopped
from seco_lab.engine.schedule import lr_at, parameter_groups
from seco_lab.engine.trainer import TrainResult, fit

__all__ = [
    "CheckpointError", "DeviceError", "TrainConfig", "TrainConfigError", "TrainResult", "TrainingStopped",
    "all_gather_no_grad", "all_gather_with_grad", "autocast_dtype", "fit", "is_distributed",
    "load_checkpoint", "load_history", "lr_at", "parameter_groups", "rank", "resolve_device",
    "shuffle_bn_forward", "world_size",
]
