"""The one exception type users see: a one-line message naming the file or key and the problem.

:func:`user_error` is the one place that turns the faults of the machine (``OSError`` and
its kin: a folder that is not writable, a full disk, a path that is a directory; running out
of memory) into that one line. The ``refsr`` command (``refsr.cli.main``) and every rule
(``refsr.stages.runner.run``) call it, so no such fault reaches a user as a traceback.
Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import os
import re


class RefsrError(Exception):
    """A user-facing error. ``str(err)`` is a single line: ``<file or key>: <problem>``."""

    def __init__(self, where, problem: str):
        self.where = " ".join(str(where).split())
        self.problem = " ".join(str(problem).split())  # force one line
        super().__init__(f"{self.where}: {self.problem}")


def os_reason(err: OSError) -> str:
    """The system's reason for ``err`` (``strerror``), in words."""
    if err.strerror:
        return err.strerror
    if err.errno:
        return os.strerror(err.errno)
    return str(err) or type(err).__name__


def user_error(exc: BaseException, where: object | None = None) -> RefsrError | None:
    """``exc`` as the one-line :class:`RefsrError` a user sees, or ``None`` for a bug.

    ``RefsrError`` is returned as it is; ``OSError`` (any subclass) names its file (or
    ``where``) and the system's reason; ``MemoryError`` and torch's out-of-memory errors (CUDA's, and the CPU
    allocator's ``RuntimeError``) say what ran out. ``where`` is the fallback for an error that names no file.
    """
    if isinstance(exc, RefsrError):
        return exc
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename not in (None, "") else where
        if exc.filename2 not in (None, ""):
            name = f"{name} -> {exc.filename2}"
        return RefsrError(name if name is not None else "I/O", os_reason(exc))
    if isinstance(exc, MemoryError):
        return RefsrError(where or "memory", "out of memory (try a smaller --max-mb / --tile or image)")
    if isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc):
        # torch's CPU allocator: "[enforce fail at alloc_cpu.cpp:..] . DefaultCPUAllocator: can't
        # allocate memory: you tried to allocate N bytes. Error code 12 (...)"
        m = re.search(r"tried to allocate (\d+) bytes", str(exc))
        size = f" ({int(m.group(1)) / 2**20:.0f} MB requested)" if m else ""
        return RefsrError(where or "memory", f"out of CPU memory{size}; try a smaller --max-mb / --tile or image")
    if type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("torch"):
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return RefsrError(where or "GPU memory", f"out of GPU memory ({first}); try a smaller tile or max_mb")
    return None
