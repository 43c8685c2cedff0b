"""Throughput of the CPU-profile encoders: train (forward + backward + SGD step) and eval samples/s.

Usage: python benchmarks/bench_models.py [--threads 2] [--batch 16] [--reps 5]
Prints one row per encoder with the median over ``--reps`` timed steps (after warm-up steps).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from seco_lab.models import build_encoder_2d, build_encoder_3d, count_parameters

CPU_PROFILE_ENCODERS: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
    ("resnet18 w0.25 small_input", lambda: build_encoder_2d("resnet18", 0.25, small_input=True), (3, 56, 56)),
    ("resnet18 w0.5 small_input", lambda: build_encoder_2d("resnet18", 0.5, small_input=True), (3, 56, 56)),
    ("tiny3d w1", lambda: build_encoder_3d("tiny3d"), (3, 8, 56, 56)),
    ("tiny3d w1", lambda: build_encoder_3d("tiny3d"), (3, 8, 64, 64)),
    ("r3d_18 w1", lambda: build_encoder_3d("r3d_18"), (3, 8, 64, 64)),
]


def samples_per_second(step: Callable[[], None], batch_size: int, warmup: int, reps: int) -> float:
    """Median samples/s over ``reps`` timed calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        rates.append(batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def benchmark(model: nn.Module, input_shape: tuple[int, ...], batch_size: int, warmup: int, reps: int) -> tuple[float, float]:
    inputs = torch.randn(batch_size, *input_shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(inputs).square().mean().backward()
        optimizer.step()

    def eval_step() -> None:
        with torch.inference_mode():
            model(inputs)

    model.train()
    train_rate = samples_per_second(train_step, batch_size, warmup, reps)
    model.eval()
    eval_rate = samples_per_second(eval_step, batch_size, warmup, reps)
    return train_rate, eval_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, median of {args.reps} reps")
    header = f"| {'encoder':<28} | {'input':<12} | {'params':>8} | {'dim':>4} | {'train /s':>9} | {'eval /s':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name, build, input_shape in CPU_PROFILE_ENCODERS:
        model = build()
        train_rate, eval_rate = benchmark(model, input_shape, args.batch, args.warmup, args.reps)
        shape_text = "x".join(map(str, input_shape))
        print(
            f"| {name:<28} | {shape_text:<12} | {count_parameters(model) / 1e6:>7.2f}M | {model.feature_dim:>4} "
            f"| {train_rate:>9.1f} | {eval_rate:>8.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
