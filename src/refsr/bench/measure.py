"""What the benchmarks measure with: sizes, resident memory, fp32 GEMM throughput, the machine."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import threading
import time
from contextlib import contextmanager

import torch

from refsr.core.errors import RefsrError
from refsr.core.imageio import MIN_SIDE


def parse_size(text: str) -> tuple[int, int]:
    """``"500x332"`` -> ``(500, 332)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RefsrError("--hr-size", f"expected WIDTHxHEIGHT like 500x332, got {text!r}") from None
    if w < MIN_SIDE or h < MIN_SIDE:
        raise RefsrError("--hr-size", f"{w}x{h} is smaller than one relu3_1 patch ({MIN_SIDE}x{MIN_SIDE})")
    return w, h


def _rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak so far is the best available
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


@contextmanager
def rss_peak(interval: float = 0.001):
    """``with rss_peak() as peak: ...``; afterwards ``peak["mb"]`` is the highest resident
    memory above the level at entry, sampled every ``interval`` seconds in a thread."""
    out = {"mb": 0.0}
    base = _rss_mb()
    stop = threading.Event()
    top = [base]

    def sample():
        while not stop.is_set():
            top[0] = max(top[0], _rss_mb())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["mb"] = max(0.0, max(top[0], _rss_mb()) - base)


def gemm_seconds(n: int = 4096, a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> float:
    """Seconds of one fp32 ``n x n`` matmul (operands reused when given)."""
    a = torch.randn(n, n) if a is None else a
    b = torch.randn(n, n) if b is None else b
    t0 = time.perf_counter()
    torch.matmul(a, b)
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def machine_info() -> dict:
    """CPU, cores, threads, torch build: what the numbers depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info
