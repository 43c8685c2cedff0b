"""Argument checks shared by the losses: every error names the loss, the argument and the problem."""

from __future__ import annotations

import numbers

from torch import Tensor, is_tensor


def check_embeddings(loss_name: str, arg_name: str, value: object, ndim: int | tuple[int, ...],
                     like: tuple[str, Tensor] | None = None) -> Tensor:
    """Require a floating-point tensor with ``ndim`` dimensions (one of them if a tuple) and no empty
    axis; ``like`` = (name, tensor) also requires that tensor's dtype."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if not is_tensor(value):
        raise TypeError(f"seco_lab/losses: {loss_name}: {arg_name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"seco_lab/losses: {loss_name}: {arg_name} must be floating point, got {value.dtype}")
    if like is not None and value.dtype != like[1].dtype:
        raise TypeError(f"seco_lab/losses: {loss_name}: {arg_name} is {value.dtype} but {like[0]} is {like[1].dtype}: "
                        "give every input the same dtype")
    if value.dim() not in allowed:
        raise ValueError(
            f"seco_lab/losses: {loss_name}: {arg_name} must have {' or '.join(map(str, allowed))} dims, "
            f"got shape {tuple(value.shape)}"
        )
    if value.numel() == 0:
        raise ValueError(f"seco_lab/losses: {loss_name}: {arg_name} is empty (shape {tuple(value.shape)})")
    return value


def check_dim_matches(loss_name: str, arg_name: str, value: Tensor, axis: int, expected: int, what: str) -> None:
    """Require ``value.shape[axis] == expected``; ``what`` says what the size means."""
    if value.shape[axis] != expected:
        raise ValueError(
            f"seco_lab/losses: {loss_name}: {arg_name} has shape {tuple(value.shape)}, "
            f"its axis {axis} ({what}) must be {expected}"
        )


def check_positive(loss_name: str, arg_name: str, value: float) -> float:
    """Require a strictly positive number (temperatures, margins)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"seco_lab/losses: {loss_name}: {arg_name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"seco_lab/losses: {loss_name}: {arg_name} must be > 0, got {value}")
    return float(value)
