"""Stopping on a scheduler's request: SIGTERM (SLURM, Kubernetes, torchrun's shutdown) and SIGUSR1
(SLURM's advance warning, ``sbatch --signal=USR1@120``).

While ``fit`` trains, these signals only record that a stop was asked for; the training loop
then saves a checkpoint at the next step boundary (never inside an optimiser step) and raises
``TrainingStopped``. Under torchrun the processes agree on that step (see ``fit``). DataLoader
workers ignore the signals: a signal sent to the whole process group would otherwise kill
them mid-epoch and fail the step instead of stopping it. Ctrl-C (SIGINT) is left as it is.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingStopped(Exception):
    """Training stopped on a stop signal after saving a checkpoint that ``--resume`` continues."""

    def __init__(self, signal_name: str | None, step: int, total_steps: int, checkpoint_path: Path) -> None:
        self.signal_name = signal_name
        self.step = step
        self.total_steps = total_steps
        self.checkpoint_path = checkpoint_path
        cause = signal_name or "a stop signal sent to another process of the run"
        super().__init__(f"stopped by {cause} after step {step} of {total_steps}; "
                         f"checkpoint saved: {checkpoint_path}")


class StopRequests:
    """Context manager: while active, the stop signals set ``received`` (the first one's name)
    instead of ending the process; the previous handlers come back on exit. Outside the main
    thread, where Python cannot install signal handlers, it records nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous_handlers: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for stop_signal in STOP_SIGNALS:
                self._previous_handlers[stop_signal] = signal.signal(stop_signal, self._record)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for stop_signal, handler in self._previous_handlers.items():
            # None: a handler installed outside Python, which Python cannot put back; the default acts alike
            signal.signal(stop_signal, signal.SIG_DFL if handler is None else handler)
        self._previous_handlers.clear()

    def _record(self, signal_number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signal_number).name


def ignore_stop_signals() -> None:
    """Make this process (a DataLoader worker) ignore the stop signals; the training process
    decides when to stop, and its workers end with it."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
