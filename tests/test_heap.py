"""refsr.core.heap: freed memory stays in the process, so a big tensor is not page-faulted in anew."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from refsr.core import heap
from refsr.core.errors import RefsrError

CHILD = """
import json, resource
import torch
from refsr.core.heap import keep_freed_memory
applied = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.rand(1, 16, 1024, 700)  # 45 MB: above glibc's largest mmap threshold (32 MB)
counts = []
for _ in range(6):  # what a forward pass does: new maps from old ones, the old ones freed
    before = faults()
    y = x
    for _ in range(3):
        y = (y * 1.5 - 0.2).relu()
    del y
    counts.append(faults() - before)
print(json.dumps({"applied": applied, "faults": counts}))
"""


def _child(setting: str) -> dict:
    env = dict(os.environ, REFSR_MALLOC=setting, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again():
    system, kept = _child("system"), _child("keep")
    pages = 16 * 1024 * 700 * 4 // 4096  # of one map
    assert system["applied"] is False and kept["applied"] is True
    # the defaults: every new map is a fresh mapping, all its pages fault, every pass
    assert min(system["faults"][1:]) > 2 * pages
    # kept: the first pass faults its maps in; later passes reuse those pages (the heap takes a
    # pass or two to settle: a freed block is reused once one of the right size is free)
    assert kept["faults"][0] > pages
    assert sum(kept["faults"][1:]) < sum(system["faults"][1:]) / 5


def test_bad_setting_is_one_line(monkeypatch):
    monkeypatch.setattr(heap, "_applied", None)
    monkeypatch.setenv(heap.ENV, "jemalloc")
    with pytest.raises(RefsrError, match=r"^REFSR_MALLOC: must be 'keep' or 'system', got 'jemalloc'$"):
        heap.keep_freed_memory()


def test_system_changes_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_applied", None)
    monkeypatch.setenv(heap.ENV, "system")
    assert heap.keep_freed_memory() is False
