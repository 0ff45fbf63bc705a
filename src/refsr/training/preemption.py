"""Preemption: SLURM's SIGTERM (or SIGUSR1) makes training save its state and stop.

:func:`preemption_signals` traps the signals while training runs; the trainer polls it
after every iteration, saves the state and raises :class:`Preempted` (a
:class:`~refsr.core.errors.RefsrError`: the job exits non-zero), so that Snakemake's retry
resumes from the saved state.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from refsr.core.errors import RefsrError


class Preempted(RefsrError):
    """Training stopped on a signal after saving its state; the job fails so that a retry resumes."""


#: Signals that ask training to checkpoint and stop. SLURM sends SIGTERM on preemption, at the
#: time limit and on ``scancel`` (then SIGKILL after KillWait/GraceTime, 30 s by default);
#: SIGUSR1 is the customary "checkpoint and requeue" signal of cluster launchers.
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@contextlib.contextmanager
def preemption_signals(signals=PREEMPTION_SIGNALS) -> Iterator[Callable[[], int]]:
    """Within the block ``signals`` only record their arrival; yields ``stop_requested()``: the
    number of the first signal received, 0 if none. Previous handlers are restored on exit.
    Outside the main thread, where Python cannot install handlers, nothing is trapped."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    received: list[int] = []

    def handler(signum, _frame):
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield lambda: received[0] if received else 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
