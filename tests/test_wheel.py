"""The package owns its contract: a wheel, installed non-editable in a fresh environment and
run from outside the checkout, degrades, super-resolves and scores a photo (the config schema
is package data, not a file of the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What setuptools reads to build the wheel (the rest of the checkout is not the package's).
BUILD_FILES = ("pyproject.toml", "README.md", "setup.cfg", "setup.py", "MANIFEST.in", "LICENSE")


def _run(cmd, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _build_wheel(tmp: Path, env: dict) -> Path:
    """The wheel of this checkout, built offline from a copy of its sources (the build writes
    ``build/`` and ``*.egg-info`` beside them, so not into the checkout that others use)."""
    src = tmp / "source"
    src.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp / "dist", src], tmp, env)
    (wheel,) = (tmp / "dist").glob("refsr-*.whl")
    return wheel


def _fresh_venv(tmp: Path, env: dict) -> Path:
    """A new virtual environment that sees this environment's installed dependencies (a plain
    path line in a ``.pth``: that folder's own ``.pth`` files, the editable refsr's among them,
    are not processed) but not the editable refsr; its python."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   tmp, env).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(purelib, "_refsr_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_the_cli(tmp_path):
    import skimage.data
    from PIL import Image

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"

    wheel = _build_wheel(tmp_path, env)
    names = zipfile.ZipFile(wheel).namelist()
    assert "refsr/core/config.schema.yaml" in names and "refsr/py.typed" in names

    python = _fresh_venv(tmp_path, env)
    before = _run([python, "-c", "import importlib.util as u; print(u.find_spec('refsr'))"],
                  tmp_path, env).stdout.strip()
    assert before == "None", f"the new environment sees the development refsr: {before}"
    # pip of this environment, run by the new one's python: installs into the new one only
    # (--ignore-installed: it never looks at, let alone uninstalls, the editable refsr)
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel],
         tmp_path, env)
    where = json.loads(_run([python, "-c", "import json, refsr, refsr.core.config as c; "
                                           "print(json.dumps([refsr.__file__, str(c.SCHEMA_PATH)]))"],
                            tmp_path, env).stdout)
    venv = python.parent.parent
    for path in map(Path, where):
        assert path.is_relative_to(venv) and not path.is_relative_to(ROOT), path
    assert Path(where[1]).is_file()

    work = tmp_path / "work"  # outside the checkout: nothing there is refsr's
    work.mkdir()
    Image.fromarray(skimage.data.astronaut()[100:196, 180:276]).save(work / "HR.png")  # 96x96, a face
    refsr = python.parent / ("refsr.exe" if os.name == "nt" else "refsr")
    _run([refsr, "degrade", "HR.png", "LR.png"], work, env)
    assert Image.open(work / "LR.png").size == (24, 24)
    _run([refsr, "sr", "--lr", "LR.png", "--checkpoint", "bicubic", "--out", "SR.png"], work, env)
    assert Image.open(work / "SR.png").size == (96, 96)
    out = _run([refsr, "score", "SR.png", "HR.png", "--no-lpips"], work, env).stdout.strip().splitlines()
    assert len(out) == 1, out
    scores = json.loads(out[0])
    assert 20 < scores["psnr"] < 40 and 0.5 < scores["ssim"] < 1, scores
    assert scores["lpips"] is None
