"""How long Snakemake takes to build a CUFED5-sized DAG (``snakemake -n``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from refsr.bench.measure import median
from refsr.core.errors import RefsrError
from refsr.data.layout import EVAL_LEVELS
from refsr.models import registry
from refsr.models.importers import RELEASES, SOURCE_MODELS, released_names


def bench_dag(groups: int = 126, repeats: int = 2, snakefile: str = "workflow/Snakefile") -> dict:
    """Seconds of ``snakemake -n`` on a CUFED5-sized configuration (``groups`` test groups,
    every registered model, seven evaluation levels) over a fake CUFED5 folder of tiny images;
    the models run from released weights only get a stand-in weights folder (imported, not read)."""
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    with tempfile.TemporaryDirectory(prefix="refsr-bench-dag-") as tmp:
        tmp = Path(tmp)
        test_dir, train_dir = tmp / "CUFED5", tmp / "CUFED"
        test_dir.mkdir()
        img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
        for g in range(groups):
            for k in range(6):
                img.save(test_dir / f"{g:03d}_{k}.png")
        for sub in ("input", "ref"):
            (train_dir / sub).mkdir(parents=True)
            for i in range(4):
                img.save(train_dir / sub / f"{i:05d}.png")
        released = tmp / "released"
        released.mkdir()
        for source in RELEASES:  # stand-ins under the released names (the DAG build checks them)
            for name in released_names(source):
                (released / name).write_bytes(b"")
        pretrained = {m: {"source": next(s for s, held in SOURCE_MODELS.items() if m in held), "path": str(released)}
                      for m in registry.names() if registry.get(m).released_only}
        cfg = {"datasets": {"cufed5": {"kind": "cufed5", "test_dir": str(test_dir), "train_dir": str(train_dir)}},
               "train_dataset": "cufed5", "eval_datasets": ["cufed5"], "models": registry.names(),
               "pretrained": pretrained}
        cfg_path = tmp / "config.yaml"
        cfg_path.write_text(json.dumps(cfg))
        cmd = [exe, "-n", "-s", str(Path(snakefile).resolve()), "-d", str(tmp / "work"),
               "--configfile", str(cfg_path), "--cores", "1"]
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            ts.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RefsrError("bench dag", f"snakemake -n failed: {' | '.join(tail)}")
    jobs = None
    for line in proc.stdout.splitlines():
        if line.strip().startswith("total"):
            try:
                jobs = int(line.split()[-1])
            except ValueError:
                pass
    return {"benchmark": "dag", "groups": groups, "models": len(registry.names()), "levels": len(EVAL_LEVELS),
            "jobs": jobs, "seconds": median(ts), "repeats": repeats}
