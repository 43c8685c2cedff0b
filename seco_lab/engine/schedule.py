"""Learning-rate schedule (linear warm-up then cosine, per iteration) and optimiser set-up."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from seco_lab.engine.config import TrainConfig


def lr_at(step: int, total_steps: int, warmup_steps: int, base: float) -> float:
    """Learning rate used by optimisation step ``step`` (0-based).

    Warm-up (``step < warmup_steps``): ``base * (step + 1) / warmup_steps``, so the first step
    already moves and the last warm-up step reaches ``base``.
    Then cosine: ``base * 0.5 * (1 + cos(pi * t))`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)`` in [0, 1).
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"lr_at: need total_steps >= 1 and 0 <= warmup_steps <= total_steps, "
            f"got total_steps={total_steps}, warmup_steps={warmup_steps}"
        )
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(progress, 1.0)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> LambdaLR:
    """``LambdaLR`` applying ``lr_at`` per iteration; call ``.step()`` after every optimiser step."""
    lr_at(0, total_steps, warmup_steps, 1.0)  # validates the arguments

    def factor(step: int) -> float:
        return lr_at(step, total_steps, warmup_steps, 1.0)

    return LambdaLR(optimizer, factor)


def scaled_lr(base_lr: float, global_batch: int, lr_scaling_batch: int) -> float:
    """Linear scaling rule: ``base_lr * global_batch / lr_scaling_batch`` (0: no scaling)."""
    if lr_scaling_batch == 0:
        return base_lr
    return base_lr * global_batch / lr_scaling_batch


def parameter_groups(module: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict]:
    """Two optimiser groups: weights with decay, and biases/norm parameters (ndim <= 1) without
    (with it too when ``decay_norm_and_bias``: the groups stay two, so a checkpoint's optimiser
    state fits either way).

    Frozen parameters (``requires_grad=False``, e.g. an EMA key encoder) are left out.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in module.parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": weight_decay if decay_norm_and_bias else 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over ``parameter_groups``, at the scaled learning rate."""
    groups = parameter_groups(module, cfg.weight_decay, cfg.decay_norm_and_bias)
    if not groups:
        raise ValueError(f"{type(module).__name__} has no trainable parameters to optimise")
    lr = scaled_lr(cfg.base_lr, cfg.batch_size, cfg.lr_scaling_batch)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999))
