"""Training-step benchmark of each method on a profile's real data and encoders.

For SeCo, CVRL and DualVar (and the supervised baseline) it measures, on the same batch shapes:

* ``bare``    — the encoder work a step cannot avoid: trunk forward + backward on the views that
  get gradients, trunk forward without gradient on the key views (SeCo);
* ``step``    — the method's full step (heads, losses, optimiser, EMA, queue) on in-memory batches;
* ``loader``  — the full step fed by the real DataLoader (decoding, or the frame store, plus
  augmentation in worker processes).

It prints videos/s (median over steps), the ratios step ÷ bare and loader ÷ step, and the peak
resident memory of this process and of its worker processes. The three timings alternate in
rounds (``--rounds``, ``--steps`` steps of each per round) and each ratio is the median of the
rounds' ratios, so a machine that slows down or speeds up during the run moves both sides of a
ratio alike. In a round the loader-fed steps start by draining the batches the workers
prefetched while the other timings ran; those steps are not timed. A second table helps read the
loader ratio: the CPU time a worker spends making one video's views (one thread), the CPU time
(all threads) and the wall time of the in-memory step per video, and the CPU time the step
leaves unused on this machine's cores per video (cores x wall - CPU). That idle figure is a
rough guide, not a bound: on some CPUs the workers kept up with views costing more than it. A
worker also collates each batch into shared memory, which the views column leaves out
(``benchmarks/bench_views.py`` measures it).
The workers are niced (``--worker-nice``, default the training config's) so that they run in
the time the step leaves rather than take cores from the step's threads.

Like the command line, it lets idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless
set), which matters when workers share the cores with the training threads.

Usage: ``python benchmarks/bench_training.py [--profile standard] [--data data/synth-standard]
[--rounds 5] [--steps 8] [--methods seco,cvrl,dualvar,supervised] [--worker-nice N]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from seco_lab.environment import configure_cpu_environment

configure_cpu_environment()  # before torch is imported

import torch  # noqa: E402

from bench_views import method_and_train_dataset, view_cpu_seconds  # noqa: E402  (this folder is on the path of a script run)
from seco_lab.engine.schedule import build_optimizer
from seco_lab.engine.config import TrainConfig
from seco_lab.engine.workers import lower_worker_priority
from seco_lab.methods.pretrain import train_config
from seco_lab.paths import synth_dataset_dir
from seco_lab.video.index import load_dataset


def time_steps(step, batches, steps: int) -> float:
    """Median wall time of ``step`` over ``steps`` in-memory batches."""
    times = []
    for index in range(steps):
        start = time.perf_counter()
        step(batches[index % len(batches)])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_loader_steps(step, batches: Iterator, steps: int, drain: int) -> float:
    """Median wall time from one loader batch to the next over ``steps`` steps, after ``drain``
    untimed steps that use up what the workers prefetched."""
    for _ in range(drain):
        step(next(batches))
    times, start = [], time.perf_counter()
    for _ in range(steps):
        step(next(batches))
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return statistics.median(times)


def endless(loader: torch.utils.data.DataLoader) -> Iterator:
    """The loader's batches, epoch after epoch (its workers persist, as in training)."""
    while True:
        yield from loader


def step_cpu_seconds(step, batches, steps: int, warmup: int = 2) -> float:
    """Median process CPU time (all threads) of one step on in-memory batches, over ``steps``
    steps after ``warmup`` untimed ones."""
    times = []
    for index in range(warmup + steps):
        start = time.process_time()
        step(batches[index % len(batches)])
        times.append(time.process_time() - start)
    return statistics.median(times[warmup:])


def bare_encoder_step(method, batch: dict[str, torch.Tensor]) -> None:
    """Trunk work only: forward+backward on the views with gradients, forward on key views."""
    trunk = method.encoder()
    if method.name == "seco":
        trunk(batch["xq"]).sum().backward()
        with torch.no_grad():
            trunk(torch.cat([batch["x1"], batch["x2"], batch["x3"]]))
    elif method.name == "cvrl":
        trunk(torch.cat([batch["v1"], batch["v2"]])).sum().backward()
    elif method.name == "dualvar":
        # the step encodes v2 and a shuffled copy of it: the same cost as v2 twice
        trunk(torch.cat([batch["v0"], batch["v1"], batch["v2"], batch["v2"]])).sum().backward()
    else:
        x = batch["x"]
        trunk(x.flatten(0, 1) if x.dim() == 5 and method.encoder_kind == "2d" else x).sum().backward()
    trunk.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--data", default=None)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=8, help="timed steps of each kind per round")
    parser.add_argument("--methods", default="seco,cvrl,dualvar,supervised")
    parser.add_argument("--worker-nice", type=int, default=None,
                        help="nice value added to the loader workers (default: the training config's; 0: off)")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be at least 1, got {args.rounds} and {args.steps}")
    torch.manual_seed(0)
    data_root = Path(args.data) if args.data else synth_dataset_dir("standard" if args.profile != "smoke" else "smoke")
    spec, _ = load_dataset(data_root, progress=False)
    print(f"profile {args.profile}, data {data_root}, {len(spec.split('train'))} train videos, "
          f"torch threads {torch.get_num_threads()}")
    header = f"{'method':<11}{'batch':>6}{'bare v/s':>10}{'step v/s':>10}{'loader v/s':>11}{'step/bare':>10}{'loader/step':>12}"
    rows, cpu_rows = [], []
    for name in args.methods.split(","):
        config, method, dataset = method_and_train_dataset(name, args.profile, data_root)
        cfg: TrainConfig = train_config(config)
        batch_size = cfg.batch_size
        views_cpu = view_cpu_seconds(dataset, items=40)  # before any loader worker runs beside it
        worker_nice = cfg.worker_nice if args.worker_nice is None else args.worker_nice
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                                             worker_init_fn=lower_worker_priority(worker_nice))
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == 3:
                break
        optimizer = build_optimizer(method, cfg)
        method.train()

        def full_step(batch):
            loss = method(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.after_step()

        for batch in batches:  # one-off allocations, outside every timing
            full_step(batch)
        loaded_batches = endless(loader)
        drain = cfg.num_workers * 2  # DataLoader's default prefetch_factor
        rounds = []  # (bare, step, loader) seconds per step, one tuple per round
        for _ in range(args.rounds):
            rounds.append((
                time_steps(lambda b: bare_encoder_step(method, b), batches, args.steps),
                time_steps(full_step, batches, args.steps),
                time_loader_steps(full_step, loaded_batches, args.steps, drain),
            ))
        bare, step, loaded = (batch_size / statistics.median(column) for column in zip(*rounds))
        step_over_bare = statistics.median(b / s for b, s, _ in rounds)
        loader_over_step = statistics.median(s / lo for _, s, lo in rounds)
        step_cpu = step_cpu_seconds(full_step, batches, args.steps) / batch_size
        rows.append((name, batch_size, bare, step, loaded, step_over_bare, loader_over_step))
        cpu_rows.append((name, views_cpu, step_cpu, 1.0 / step))
        print(f"  {name}: done ({cfg.num_workers} workers, niceness +{worker_nice})", flush=True)
    print(header)
    for name, batch_size, bare, step, loaded, step_over_bare, loader_over_step in rows:
        print(f"{name:<11}{batch_size:>6}{bare:>10.0f}{step:>10.0f}{loaded:>11.0f}"
              f"{step_over_bare:>10.2f}{loader_over_step:>12.2f}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"\n{'method':<11}{'views CPU ms/video':>20}{'step CPU ms/video':>19}{'step wall ms/video':>20}"
          f"{f'idle CPU ms/video ({cores} cores)':>32}")
    for name, views_cpu, step_cpu, step_wall in cpu_rows:
        idle = cores * step_wall - step_cpu
        print(f"{name:<11}{views_cpu * 1e3:>20.2f}{step_cpu * 1e3:>19.2f}{step_wall * 1e3:>20.2f}{idle * 1e3:>32.2f}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: main process {own:.0f} MiB, largest worker {workers:.0f} MiB")


if __name__ == "__main__":
    main()
