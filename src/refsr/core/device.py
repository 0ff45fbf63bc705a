"""The compute device a user asks for (``cpu``, ``cuda``, ``cuda:N``), checked before any work.

One function for the ``refsr`` command (``--device``), inference and training: an unknown
name or a GPU that is not there is a one-line :class:`RefsrError`, never torch's traceback
from deep inside the first tensor copy.
"""

from __future__ import annotations

import re

from refsr.core.errors import RefsrError

DEVICE_NAMES = "cpu, cuda or cuda:N"
_PATTERN = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def check_device(name: str, where: str = "device") -> str:
    """``name`` if it is a device of this machine; a one-line error naming ``where`` otherwise.

    torch is imported only for a CUDA name (checking ``cpu`` costs nothing).
    """
    text = str(name).strip().lower()
    m = _PATTERN.match(text)
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise RefsrError(where, f"unknown device {name!r}; use {DEVICE_NAMES}")
    if m.group(1) == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise RefsrError(where, f"{text} requested but no CUDA device is available "
                                f"(torch {torch.__version__}, {build})")
    index = int(m.group(2) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise RefsrError(where, f"{text} requested but only {count} CUDA device(s) are visible")
    return text


def torch_device(name: str, where: str = "device"):
    """:func:`check_device`, as a ``torch.device``."""
    import torch

    return torch.device(check_device(name, where))
