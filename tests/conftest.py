"""Shared fixtures: offline VGG19 weights, the repository root, tiny images, the workflow (one
smoke run for the whole session, the jobs a dry run plans, each rule as Snakemake sees it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_VGG = ROOT.parent / "shared" / "weights" / "vgg19_imagenet_conv1_1-conv3_1.pth"

if "REFSR_VGG19_WEIGHTS" not in os.environ and SHARED_VGG.is_file():
    os.environ["REFSR_VGG19_WEIGHTS"] = str(SHARED_VGG)
# The C library's malloc in the test process and what it starts, so that in-process memory
# measurements see what they allocate (refsr.core.heap; tests/test_heap.py sets its own).
os.environ.setdefault("REFSR_MALLOC", "system")


@pytest.fixture(scope="session")
def vgg_weights() -> str:
    """Path of offline VGG19 (conv1_1..conv3_1) weights; skip when none are available."""
    path = os.environ.get("REFSR_VGG19_WEIGHTS")
    if not path or not Path(path).is_file():
        pytest.skip("no offline VGG19 weights (set REFSR_VGG19_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(0)


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    """VGG19 up to relu3_1 with the offline weights (skips when there are none)."""
    from refsr.features.vgg import load_vgg19

    return load_vgg19(("relu1_1", "relu2_1", "relu3_1"))


# ----------------------------------------------------------------------------- config helpers
# Code receives validated config values (defaults from the schema); tests build theirs the
# same way, overriding only what they change.


def arch(**overrides) -> dict:
    """The schema's ``arch`` section with ``overrides``."""
    from refsr.core.config import defaults

    return {**defaults("arch"), **overrides}


def spy_score_blocks(monkeypatch) -> list[tuple[int, int, int, int]]:
    """Record the shape of every score block the exact search computes (pixel-product rows and
    columns, score rows and columns), for the memory-budget tests."""
    from refsr.matching import exact

    seen, real = [], exact._score_block

    def spy(pix, ni, nj, shifts, scale, mask, out):
        seen.append((pix.shape[0], pix.shape[1], ni, nj))
        return real(pix, ni, nj, shifts, scale, mask, out)

    monkeypatch.setattr(exact, "_score_block", spy)
    return seen


def small_checkpoint(tmp_path, name: str, perturb: bool = True) -> str:
    """A :func:`perturbed_checkpoint` of any trainable model at a tiny size (1 block, 8 features)."""
    from refsr.core.config import defaults
    from refsr.models.checkpoint import arch_config

    if name.startswith("ttsr"):
        sizes = {**defaults("ttsr.arch"), "n_blocks": [1, 1, 1, 1], "n_feats": 8}
        sizes = {k: sizes[k] for k in ("n_blocks", "n_feats", "res_scale")}
    else:
        sizes = arch_config(name, arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1]))
    return perturbed_checkpoint(tmp_path / f"{name}.pt", name, sizes, perturb)


def perturbed_checkpoint(path, name: str, sizes: dict, perturb: bool = True) -> str:
    """A checkpoint of model ``name`` at ``sizes`` (seed 0), its weights moved by 1 % noise so
    that it is not exactly its initialisation (bicubic, for a residual model)."""
    import torch

    from refsr.models.checkpoint import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(name, sizes)
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(path, model, name, sizes)
    return str(path)


def train_config(model: str, recipe: str = "refsr", **overrides):
    """:class:`~refsr.training.config.TrainConfig` of ``model`` in ``recipe`` from the schema's
    defaults, with fields replaced by ``overrides`` (``arch``/``loss``/``disc``/``options``
    dicts are merged)."""
    import dataclasses

    from refsr.core.config import validate
    from refsr.models import registry
    from refsr.training.config import config_for

    cfg = config_for(model, validate({"recipe": recipe}))
    for key in ("arch", "loss", "disc", "options"):
        if key in overrides:
            merged = {**getattr(cfg, key), **overrides.pop(key)}
            if key == "arch":
                merged = {k: merged[k] for k in registry.get(model, recipe=cfg.recipe).arch_keys}
            overrides[key] = merged
    return dataclasses.replace(cfg, **overrides)


def protocol(**overrides):
    """The default evaluation protocol with fields replaced by ``overrides``."""
    import dataclasses

    from refsr.core.config import defaults
    from refsr.evaluation.protocol import protocol_from_config

    return dataclasses.replace(protocol_from_config(defaults()), **overrides)


def write_tiers_csv(path, levels_by_group):
    """A tiers CSV (the tiers stage's columns) where each group has one reference, named after
    its level, at each level of ``levels_by_group[group]`` (an empty list: no reference)."""
    import pandas as pd

    from refsr.similarity.tiers import assign_tiers, write_tiers

    rows = [{"group": g, "ref": lv, "level": lv, "local_inliers": 10 - i, "vgg_cosine": 0.9 - 0.1 * i}
            for g, levels in levels_by_group.items() for i, lv in enumerate(levels)]
    df = pd.DataFrame(rows, columns=["group", "ref", "level", "local_inliers", "vgg_cosine"])
    write_tiers(assign_tiers(df, "per_image"), path)
    return path


# ----------------------------------------------------------------------------- real photos
# A small `folder` dataset from photos scikit-image ships: each HR image is a window of a
# photo; its candidates, from the most to the least related: the same window shifted a little
# (for the motorcycle, the real right stereo view), shifted more, a larger window half over
# it, another region of the photo, then unrelated photos.

PHOTO_GROUPS = {"motorcycle": (170, 300), "astronaut": (40, 180), "coffee": (200, 50)}
UNRELATED = ("rocket", "camera", "chelsea")


def _photo(name: str):
    import numpy as np
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    img = getattr(skimage.data, name)()
    return np.dstack([img] * 3) if img.ndim == 2 else img


def candidate_windows(name: str, y: int, x: int, side: int):
    """(ref name, image) candidates of the HR window ``(y, x, side)`` of photo ``name``,
    most related first: 7 of them."""
    import numpy as np
    import skimage.data

    photo = _photo(name)
    s, d = side, side // 16
    ry = y + 2 * s if y + 3 * s <= photo.shape[0] else max(0, y - 2 * s)  # another region
    near = (skimage.data.stereo_motorcycle()[1][y + d:y + d + s, x - 4 * d:x - 4 * d + s]
            if name == "motorcycle" else photo[y + d:y + d + s, x + 2 * d:x + 2 * d + s])
    out = [("near", near),
           ("shifted", photo[y + 4 * d:y + 4 * d + s, x + 5 * d:x + 5 * d + s]),
           ("partial", photo[y + s // 2:y + s // 2 + s + 2 * d, x + s // 2:x + s // 2 + s + 2 * d]),
           ("region", photo[ry:ry + s, x + s:x + 2 * s])]
    out += [(f"other_{u}", _photo(u)[100:100 + s + 8, 120:120 + s + 8]) for u in UNRELATED]
    return [(r, np.ascontiguousarray(img)) for r, img in out]


def make_photo_folder(root, counts, side=96):
    """``root/hr/{group}.png`` and ``root/refs/{group}/*.png``; ``counts`` maps a group (a key
    of :data:`PHOTO_GROUPS`) to its number of candidates: 0..7, taken from
    :func:`candidate_windows` keeping both ends (the nearest and the unrelated ones).
    Returns {group: [ref names, most related first]}."""
    from PIL import Image

    hr_dir, refs_dir = root / "hr", root / "refs"
    hr_dir.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for name, n in counts.items():
        y, x = PHOTO_GROUPS[name]
        Image.fromarray(_photo(name)[y:y + side, x:x + side]).save(hr_dir / f"{name}.png")
        cands = candidate_windows(name, y, x, side)
        keep = {3: [0, 2, 4], 5: [0, 1, 2, 4, 5]}.get(n, list(range(n)))
        (refs_dir / name).mkdir(parents=True, exist_ok=True)
        chosen[name] = [cands[i][0] for i in keep]
        for i in keep:
            Image.fromarray(cands[i][1]).save(refs_dir / name / f"{cands[i][0]}.png")
    return chosen


# ----------------------------------------------------------------------------- the workflow
# Tests drive the workflow the way a user does (the `snakemake` executable next to this
# Python, in a working directory holding the project's configs) and ask Snakemake itself what
# a dry run would do (planned_jobs) instead of reading its printed plan.

SNAKEFILE = ROOT / "workflow" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SMOKE = "configs/smoke.yaml"

#: The rules that ask for a GPU (a `gpu` resource): with `device: cuda` they run in the GPU
#: environment (tests/test_envs.py) and profiles/slurm must size them (tests/test_profiles.py).
#: tests/test_envs.py checks that this is exactly the workflow's set.
GPU_RULES = frozenset({"train", "train_variant", "infer", "evaluate", "ablation_variant"})


def snakemake(wd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake -s workflow/Snakefile -d wd *args``, run in ``wd``; fails the test with
    Snakemake's output when it fails and ``check``."""
    proc = subprocess.run([SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(wd), *map(str, args)],
                          cwd=wd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n"
                             f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def project_workdir(path: Path) -> Path:
    """``path`` as a user's checkout would be: the project's config.yaml and configs/, the
    (empty) dataset folders they name and stand-ins of the released weights they import, under
    the released names (the DAG build checks that those exist; a dry run reads none)."""
    import yaml

    from refsr.models.importers import RELEASES, released_names

    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yaml", path / "config.yaml")
    shutil.copytree(ROOT / "configs", path / "configs")
    for cfg in [path / "config.yaml", *(path / "configs").glob("*.yaml")]:
        loaded = yaml.safe_load(cfg.read_text()) or {}
        for ds in loaded.get("datasets", {}).values():
            for key in ("test_dir", "train_dir", "hr_dir", "refs_dir"):
                if ds.get(key):
                    (path / ds[key]).mkdir(parents=True, exist_ok=True)
            for sub in ("input", "ref") if ds.get("kind") == "wrsr" else ():  # its layout's folders
                (path / ds["test_dir"] / sub).mkdir(parents=True, exist_ok=True)
        for entry in loaded.get("pretrained", {}).values():
            weights = path / entry["path"]
            if weights.suffix in (".pt", ".pth", ".npz"):
                weights.parent.mkdir(parents=True, exist_ok=True)
                weights.touch()
                continue
            weights.mkdir(parents=True, exist_ok=True)
            for name in released_names(entry["source"]) if entry["source"] in RELEASES else ():
                (weights / name).touch()
    return path


@dataclass(frozen=True)
class Job:
    """A job of a dry run's plan: its wildcards, input and output files (relative to the
    working directory, as Snakemake names them)."""

    wildcards: dict
    input: tuple
    output: tuple


# A dry run through Snakemake's API (snakemake.api: workflow -> dag -> execute_workflow with
# the dryrun pseudo-executor, the code path of `snakemake -n`), then the DAG's jobs that need
# to run. In a subprocess: the API changes the working directory and sets up Snakemake's
# logging. `WorkflowApi._workflow` (the DAG behind the API) is not public API, as in
# tests/test_envs.py: if a Snakemake upgrade moves it, this probe is what needs updating.
# `needrun_jobs(exclude_finished=False)`: the dry run marks the jobs it "ran" as finished.
_PLAN_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings
snakefile, workdir, args = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
with SnakemakeApi(OutputSettings(dryrun=True, quiet={Quietness.ALL})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile,
                      config_settings=ConfigSettings(configfiles=[Path(p) for p in args["configfiles"]]),
                      workdir=workdir)
    wf.dag(DAGSettings(targets=frozenset(args["targets"]))).execute_workflow(
        executor="local", pseudo_executor="dryrun")
    jobs = [{"rule": j.rule.name, "wildcards": dict(j.wildcards_dict),
             "input": [str(f) for f in j.input], "output": [str(f) for f in j.output]}
            for j in wf._workflow.dag.needrun_jobs(exclude_finished=False)]
print("PLANNED=" + json.dumps(jobs))
"""


def planned_jobs(workdir: Path, configfiles=(), targets=()) -> dict[str, list[Job]]:
    """The jobs, by rule, that ``snakemake -n [targets] --configfile configfiles`` in
    ``workdir`` would run ({} when there is nothing to be done); each rule's jobs sorted by
    their wildcards. Fails the test, with Snakemake's messages, when the DAG cannot be built."""
    args = {"configfiles": [str(Path(workdir, c)) for c in configfiles], "targets": list(targets)}
    proc = subprocess.run([sys.executable, "-c", _PLAN_PROBE, str(SNAKEFILE), str(workdir),
                           json.dumps(args)], capture_output=True, text=True, cwd=workdir)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PLANNED=")), None)
    assert proc.returncode == 0 and line, proc.stdout[-6000:] + proc.stderr[-6000:]
    jobs: dict[str, list[Job]] = {}
    for job in json.loads(line[len("PLANNED="):]):
        jobs.setdefault(job["rule"], []).append(
            Job(job["wildcards"], tuple(job["input"]), tuple(job["output"])))
    return {rule: sorted(js, key=lambda j: sorted(j.wildcards.items())) for rule, js in sorted(jobs.items())}


def wildcards(jobs: list[Job], name: str) -> list[str]:
    """The values of wildcard ``name`` in ``jobs``, sorted."""
    return sorted(j.wildcards[name] for j in jobs)


# Each rule as Snakemake resolves it, without building a DAG (subprocess, like _PLAN_PROBE).
_RULES_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
snakefile, workdir, args = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), snakefile=snakefile,
                      config_settings=ConfigSettings(configfiles=[Path(p) for p in args["configfiles"]],
                                                     config=args["config"]),
                      workdir=workdir)._workflow
    print("RULES=" + json.dumps({r.name: {"conda": r.conda_env, "script": r.script,
                                          "basedir": str(r.basedir),
                                          "resources": sorted(k for k in r.resources if not k.startswith("_"))}
                                 for r in wf.rules}))
    import os
    print("CHECKOUT=" + json.dumps(os.environ.get("REFSR_CHECKOUT")))  # what the Snakefile exports
"""


def workflow_rules(workdir: Path, configfiles=(SMOKE,), config: dict | None = None,
                   checkout: bool = False):
    """{rule: {conda, script, basedir, resources (the names it declares)}} of the workflow
    with ``configfiles`` (relative to the project root) and ``config`` overrides; with
    ``checkout``, also the REFSR_CHECKOUT the Snakefile exports (for the conda post-deploy)."""
    args = {"configfiles": [str(ROOT / c) for c in configfiles], "config": config or {}}
    proc = subprocess.run([sys.executable, "-c", _RULES_PROBE, str(SNAKEFILE), str(workdir),
                           json.dumps(args)], capture_output=True, text=True, cwd=workdir)
    lines = {x.split("=", 1)[0]: x.split("=", 1)[1] for x in proc.stdout.splitlines()
             if x.startswith(("RULES=", "CHECKOUT="))}
    assert "RULES" in lines, proc.stdout + proc.stderr
    rules = json.loads(lines["RULES"])
    return (rules, json.loads(lines["CHECKOUT"])) if checkout else rules


# ----------------------------------------------------------------------------- the smoke run
# The smoke pipeline (configs/smoke.yaml: every rule of `snakemake` on tiny data and networks)
# is trained once per test session. Tests that only read its results or ask what a dry run
# would do use it as it is (smoke_run); tests that run more jobs on top of it work on their
# own copy (copy_of_run): Snakemake sees the copy as finished (the copy keeps the files'
# times and the .snakemake metadata; tests/test_workflow.py checks it).


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, vgg_weights) -> Path:
    """Working directory of the smoke pipeline run to the end (`snakemake --cores 2` on
    configs/smoke.yaml). Read-only: copy it (copy_of_run) to run more jobs."""
    wd = project_workdir(tmp_path_factory.mktemp("smoke_run"))
    snakemake(wd, "--cores", "2", "--configfile", SMOKE)
    return wd


def copy_of_run(run: Path, dst: Path) -> Path:
    """A copy of the finished run ``run`` at ``dst`` (results, configs and .snakemake
    metadata, files' times kept), which Snakemake sees as finished too."""
    shutil.copytree(run, dst, symlinks=True)
    return dst


def tiny_training_set(root: Path) -> Path:
    """``root``: a tiny embedded dataset (one test photo, four 48-px training pairs) with its LR
    images, for the training tests (no VGG needed for srresnet)."""
    from refsr.data import build_to
    from refsr.data.lr import write_lr

    cfg = dict(kind="embedded", test_photos=["astronaut"], train_photos=["brick", "retina"],
               hr_size=48, train_size=48, train_pairs=4, seed=0)
    write_lr(build_to("tiny", cfg, root, 4), root / "lr")
    return root
