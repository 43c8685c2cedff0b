"""The benchmark scripts start (their imports still resolve against the library) and their
timing helpers hold for small step counts."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def test_there_are_benchmarks_to_check():
    assert {path.stem for path in BENCHMARKS} >= {"bench_training", "bench_data", "bench_curriculum", "seed_spread"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=[path.stem for path in BENCHMARKS])
def test_a_benchmark_script_starts_and_describes_its_options(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--help" in result.stdout


def test_step_cpu_time_is_the_median_of_the_timed_steps_after_the_warm_up_ones(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS[0].parent))  # as for a script run: its folder's modules import
    spec = importlib.util.spec_from_file_location("bench_training", BENCHMARKS[0].parent / "bench_training.py")
    bench_training = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_training)
    seen = []
    seconds = bench_training.step_cpu_seconds(seen.append, batches=["a", "b", "c"], steps=1, warmup=2)
    assert seen == ["a", "b", "c"] and seconds >= 0.0
