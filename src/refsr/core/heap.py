"""The process keeps the memory it frees, so big CPU tensors are not page-faulted in anew.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MB, adjusted at run
time) with a fresh ``mmap`` and hands it back to the kernel with ``munmap`` when it is freed.
PyTorch's CPU tensors come from ``malloc``; at CUFED5's sizes the full-resolution maps are larger
than that (one 64-channel float map of a 500x332 image: 42 MB), so every image's forward pass
asked the kernel for new zeroed pages again and again: on this project's 2-core machine,
about a million minor page faults and 2-3 s of system time per 500x332 TTSR image out of 6 s
(BENCHMARKS.md, "CUFED5 on a laptop"). :func:`keep_freed_memory` tells ``malloc`` to serve
every size from its heap and never to give freed memory back (``mallopt``: ``M_MMAP_MAX`` 0,
``M_TRIM_THRESHOLD`` at its maximum); the second image then reuses the first one's pages.

What it changes: time, never a value (where a tensor's memory comes from is not part of any
result). The resident size stays at its high-water mark until the process ends: right for the
one-job processes it is applied to (the ``refsr`` command and the Snakemake rules), which is why
it is not applied on import. ``REFSR_MALLOC=system`` leaves the C library's defaults (the test
suite sets it, so that its in-process memory measurements see what they allocate). Where the C
library is not glibc (macOS, musl) nothing is changed and the reason is logged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from refsr.core.errors import RefsrError

log = logging.getLogger(__name__)

ENV = "REFSR_MALLOC"
#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_TRIM_MAX = 2**31 - 1  # mallopt takes an int

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Keep freed memory in the process (see the module); True where applied. Idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    setting = os.environ.get(ENV, "keep").strip().lower()
    if setting not in ("keep", "system"):
        raise RefsrError(ENV, f"must be 'keep' or 'system', got {setting!r}")
    _applied = False
    if setting == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        log.info("malloc left at its defaults: no glibc mallopt here (%s)", exc)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, _TRIM_MAX)):
        log.info("malloc left at its defaults: mallopt refused the settings")
        return False
    _applied = True
    return True
