"""Work spread over processes comes back in order, from other processes, with its errors."""

import functools
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _processes import all_ended
from seco_lab.video import io
from seco_lab.video.parallel import results_in_order


def _square_after(delay: float, value: int) -> tuple[int, int]:
    time.sleep(delay)
    return value * value, os.getpid()


def _fail_on(bad: int, value: int) -> int:
    if value == bad:
        raise ValueError(f"value {value} refused")
    return value


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_results_come_in_the_order_of_the_calls_whatever_finishes_first(processes):
    """The first calls take longest, so other processes finish later calls before them."""
    delays = [0.2, 0.1, 0.05] + [0.0] * 30
    calls = [functools.partial(_square_after, delay, value) for value, delay in enumerate(delays)]
    results = list(results_in_order(calls, processes))
    assert [square for square, _ in results] == [value * value for value in range(len(delays))]
    workers = {pid for _, pid in results}
    if processes == 1:
        assert workers == {os.getpid()}
    else:
        assert os.getpid() not in workers and 1 < len(workers) <= processes


@pytest.mark.parametrize("processes", [1, 2])
def test_an_error_in_a_call_is_raised_in_its_turn(processes):
    calls = [functools.partial(_fail_on, 5, value) for value in range(40)]
    received = []
    with pytest.raises(ValueError, match="value 5 refused"):
        for result in results_in_order(calls, processes):
            received.append(result)
    assert received == [0, 1, 2, 3, 4]


def test_no_calls_and_bad_process_counts():
    assert list(results_in_order([], 2)) == []
    with pytest.raises(ValueError, match="processes must be >= 1"):
        list(results_in_order([functools.partial(_fail_on, 1, 0)], 0))


def _decoder_threads(path: str) -> tuple[str, int, int]:
    """How a video at ``path`` would be probed here: FFmpeg's thread type and count, torch's threads."""
    container, stream = io._open_video(Path(path), whole_file=True)
    try:
        return str(stream.thread_type), stream.codec_context.thread_count, torch.get_num_threads()
    finally:
        container.close()


def test_each_process_of_a_pool_decodes_and_computes_on_one_thread(tmp_path):
    """Two processes probing 320x240 mpeg4 with FFmpeg's threads each took 5.2-5.9 s, on one thread
    3.4-4.1 s: the processes already use the cores."""
    path = tmp_path / "large.avi"
    io.write_video(path, np.zeros((3, 240, 320, 3), dtype=np.uint8), codec="mpeg4")
    assert path.stat().st_size and 320 * 240 >= io.THREADED_PROBE_MIN_PIXELS
    thread_type, _, _ = _decoder_threads(str(path))
    assert "AUTO" in thread_type.upper(), "this process decodes a frame this large on FFmpeg's threads"
    in_pool = list(results_in_order([functools.partial(_decoder_threads, str(path))] * 2, 2))
    assert all(count == 1 and torch_threads == 1 for _, count, torch_threads in in_pool)
    assert "AUTO" in _decoder_threads(str(path))[0].upper(), "the caller's own decoding is unchanged"


KILLED_CALLER = textwrap.dedent("""
    import functools, multiprocessing, os, signal, threading, time
    from seco_lab.video.parallel import results_in_order

    if __name__ == "__main__":
        def kill_when_started():
            time.sleep(3)  # both processes are inside time.sleep(120)
            print(*[child.pid for child in multiprocessing.active_children()], flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=kill_when_started).start()
        list(results_in_order([functools.partial(time.sleep, 120)] * 4, 2))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_the_processes_end_when_the_calling_process_is_killed_outright(tmp_path):
    """A notebook kernel or training run killed while indexing or caching frames (SIGKILL, the
    out-of-memory killer) left its processes decoding on, and they ignore SIGTERM."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED_CALLER)
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == -9, completed.stderr
    processes = [int(pid) for pid in completed.stdout.split()]
    assert len(processes) == 2, completed.stdout
    assert all_ended(processes, within_s=20)  # without it they sleep on for two minutes
    assert "Traceback" not in completed.stderr


def test_work_spreads_over_the_usable_cores_only_where_processes_are_forked(monkeypatch):
    from seco_lab.engine import workers
    from seco_lab.video import parallel

    monkeypatch.setattr(workers, "usable_cores", lambda: 6)
    assert [parallel.default_processes(calls) for calls in (0, 1, 4, 100)] == [1, 1, 4, 6]
    monkeypatch.setattr(parallel.sys, "platform", "darwin")
    assert parallel.default_processes(100) == 1


def _mark_then_sleep(folder: str, number: int, seconds: float) -> int:
    Path(folder, str(number)).touch()
    time.sleep(seconds)
    return number


def test_no_call_runs_on_once_the_results_stop_early(tmp_path):
    """A caller that stops reading (or gets an error, or Ctrl-C) leaves no call running or queued:
    the generator dataset's clean-up ran while processes still wrote into its folder, and a
    frame-store build that gave up kept decoding in the background."""
    calls = [functools.partial(_mark_then_sleep, str(tmp_path), number, 0.5) for number in range(40)]
    results = results_in_order(calls, 2)
    assert next(results) == 0
    results.close()
    started = set(os.listdir(tmp_path))
    time.sleep(1.5)  # three calls' time: queued calls would have started by now
    assert set(os.listdir(tmp_path)) == started and len(started) < 40


KILLED_PROCESS = textwrap.dedent("""
    import functools, os, signal, time
    from concurrent.futures.process import BrokenProcessPool
    from seco_lab.video.parallel import results_in_order

    def frames_or_death(number):
        if number == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # the out-of-memory killer
        time.sleep(0.5)  # the other process is inside a call when this one dies
        return bytes(1 << 20)  # more than a pipe holds: a process writing it blocks until it is read

    if __name__ == "__main__":
        try:
            list(results_in_order([functools.partial(frames_or_death, n) for n in range(12)], 2, description="caching"))
        except BrokenProcessPool as error:
            print(type(error).__name__, error, flush=True)
""")


def test_a_pool_process_killed_outright_raises_and_the_caller_can_exit(tmp_path):
    """The surviving process blocked writing a result no one read, and ignored the SIGTERM the
    executor sends: the caller never exited."""
    script = tmp_path / "killed_process.py"
    script.write_text(KILLED_PROCESS)
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("BrokenProcessPool caching: one of its 2 processes ended in the middle of a call")


def _start_then_report(caller: int, folder: str) -> None:
    from seco_lab.video import parallel

    parallel._start_process(caller)
    Path(folder, "went on").touch()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_a_process_whose_caller_ended_before_it_started_ends_at_once(tmp_path):
    """Killed between the fork and the request to end with it, the caller would leave the process
    waiting for calls for ever."""
    from seco_lab.video.parallel import pool_context

    context = pool_context()
    for caller, goes_on in ((os.getpid(), True), (os.getpid() + 1, False)):
        folder = tmp_path / str(caller)
        folder.mkdir()
        process = context.Process(target=_start_then_report, args=(caller, str(folder)))
        process.start()
        process.join(60)
        assert process.exitcode == 0 and (folder / "went on").exists() == goes_on
