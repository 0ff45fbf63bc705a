"""Conda environments (envs/*.yaml): they parse, are pinned, every rule names one that exists,
each rule's environment provides every third-party module its script imports, directly
or through the refsr modules it uses, and each has a post-deploy script that installs refsr
from the checkout (pip install -e, as the virtual environment has it). (Conda channels cannot
be reached here, so the environments are checked, not built; the post-deploy script is run
the way Snakemake runs it, in a stand-in environment.)"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import GPU_RULES, workflow_rules

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# Modules that are not the environment's business: the script preamble imports snakemake
# from Snakemake's own installation.
PROVIDED = {"snakemake", "__future__"}
# Import name -> distribution for modules not installed here (others are looked up).
KNOWN = {"cv2": "opencv-python-headless", "PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml",
         "sklearn": "scikit-learn"}


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """``rules(device)``: {rule: {conda, script, basedir, resources}} of the smoke config on
    that device, as Snakemake resolves them (conftest.workflow_rules)."""
    found: dict[str, dict] = {}

    def get(device: str) -> dict:
        if device not in found:
            found[device], exported[device] = workflow_rules(
                tmp_path_factory.mktemp(f"probe-{device}"), config={"device": device}, checkout=True)
        return found[device]

    exported: dict[str, str | None] = {}
    get.exported = exported  # REFSR_CHECKOUT as the Snakefile left it, per device probed
    return get


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _norm(re.split(r"[\s\[=<>!~;]", spec.strip(), maxsplit=1)[0])


def env_packages(path: Path) -> set[str]:
    """Normalised names of every package an environment file installs (conda and pip)."""
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_requirement_name(p) for p in dep.get("pip", []) if not p.startswith("-")}
        else:
            names.add(_requirement_name(dep))
    return names


def _module_file(module: str) -> Path | None:
    base = ROOT / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def third_party_imports(script: Path) -> frozenset[str]:
    """Top-level third-party modules imported by ``script`` and, transitively, by the refsr
    modules it imports (function-level imports included)."""
    found: set[str] = set()
    todo, seen = [(script, None)], set()
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside refsr
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module
                modules = [base] + [f"{base}.{a.name}" for a in node.names]  # names may be submodules
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "refsr":
                    file = _module_file(module)
                    if file is not None:
                        pkg = module if file.name == "__init__.py" else module.rpartition(".")[0]
                        todo.append((file, pkg))
                elif top not in sys.stdlib_module_names and top not in PROVIDED:
                    found.add(top)
    return frozenset(found)


@cache
def _installed() -> dict:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    dists = _installed().get(module)
    return _norm(dists[0] if dists else KNOWN.get(module, module))


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_parses_and_is_pinned(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["name"] and env["channels"] and "nodefaults" in env["channels"]
    deps = env["dependencies"]
    assert any(str(d).startswith("python=3.") for d in deps)
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    packages = [p for p in pip if not p.startswith("-")]
    assert packages and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+]*", p) for p in packages), packages
    assert not any("-e" in p.split() or p.startswith((".", "/")) for p in pip), (
        "refsr comes from the checkout through the post-deploy script")


def test_cpu_and_gpu_envs_pin_the_same_packages():
    def pins(name):
        env = yaml.safe_load((ROOT / "envs" / name).read_text())
        return sorted(p for d in env["dependencies"] if isinstance(d, dict) for p in d["pip"] if "==" in p)

    assert pins("refsr.yaml") == pins("refsr-gpu.yaml")
    cpu = (ROOT / "envs/refsr.yaml").read_text()
    gpu = (ROOT / "envs/refsr-gpu.yaml").read_text()
    assert "whl/cpu" in cpu and "whl/cpu" not in gpu  # CUDA build of torch only for the GPU rules


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_gpu_rules_are_the_rules_that_ask_for_a_gpu(device, rules):
    """conftest.GPU_RULES, which this file and tests/test_profiles.py use, is the workflow's
    set: the rules with a `gpu` resource (with either device)."""
    assert {name for name, rule in rules(device).items() if "gpu" in rule["resources"]} == GPU_RULES


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_rule_names_an_existing_env(device, rules):
    for name, rule in rules(device).items():
        if rule["script"] is None:
            assert name in ("all", "ablations")  # target rules: inputs only
            continue
        assert rule["conda"], f"rule {name} has no conda env"
        env = (Path(rule["basedir"]) / rule["conda"]).resolve()
        assert env.is_file(), f"rule {name}: {env} does not exist"
        expected = "refsr-gpu.yaml" if device == "cuda" and name in GPU_RULES else "refsr.yaml"
        assert env.name == expected, (name, env.name)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_each_rules_env_covers_what_its_script_imports(device, rules):
    checked = 0
    for name, rule in rules(device).items():
        if rule["script"] is None:
            continue
        script = (Path(rule["basedir"]) / rule["script"]).resolve()
        packages = env_packages((Path(rule["basedir"]) / rule["conda"]).resolve())
        missing = {m for m in third_party_imports(script) if distribution(m) not in packages}
        assert not missing, f"rule {name}: {rule['conda']} lacks {sorted(missing)} imported by {script.name}"
        checked += 1
    assert checked >= 10  # every rule with a script


def test_import_scan_follows_refsr_modules():
    """The scan sees lazy imports deep in the package (train -> vgg -> torchvision, lpips)."""
    found = third_party_imports(ROOT / "scripts" / "train.py")
    assert {"torch", "torchvision", "numpy"} <= found
    assert "lpips" in third_party_imports(ROOT / "scripts" / "evaluate.py")
    assert distribution("cv2") == "opencv-python-headless" and distribution("yaml") == "pyyaml"


def post_deploy_script(env_file: Path) -> Path:
    """The post-deploy script Snakemake runs after creating ``env_file``'s environment, found
    by Snakemake's own rule (``<env>.yaml`` -> ``<env>.post-deploy.sh`` beside it)."""
    from snakemake.sourcecache import LocalSourceFile

    aux = LocalSourceFile(str(env_file)).replace_suffix([".yaml", ".yml"], ".post-deploy.sh")
    return Path(aux.get_path_or_uri(secret_free=True))


def _snakemake_runs(script: Path, workdir: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``script`` as Snakemake 9 does (snakemake/deployment/conda.py, Env.create and
    execute_deployment_script): a copy at <conda prefix>/<hash>.post-deploy.sh, run by the
    interpreter of its shebang from Snakemake's working directory, in the activated environment."""
    copy = workdir / ".snakemake" / "conda" / "0123abcd.post-deploy.sh"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(script, copy)  # follows the link of the GPU environment's script, as Snakemake does
    first = copy.read_text().splitlines()[0]
    interpreter = first[2:].strip() if first.startswith("#!") else "sh"
    return subprocess.run(f"{interpreter} {copy}", shell=True, cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def _stand_in_env(tmp: Path) -> Path:
    """A stand-in for the conda environment: a fresh virtual environment that sees this one's
    installed packages (pip, setuptools, the pinned dependencies) through a plain path line,
    which leaves this environment's editable refsr out. Its prefix."""
    prefix = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", prefix], check=True)
    purelib = subprocess.run([prefix / "bin" / "python", "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(purelib, "_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return prefix


def _activated(prefix: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "REFSR_CHECKOUT", "PYTHONNOUSERSITE")}
    return {**env, "CONDA_PREFIX": str(prefix), "PATH": f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONNOUSERSITE": "1", **extra}


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_each_env_has_a_post_deploy_script(env_file):
    script = post_deploy_script(env_file)
    assert script.is_file(), f"{env_file.name}: no {script.name} beside it (refsr is not installed)"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")  # Snakemake runs its shebang's interpreter
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # one script for both environments (the GPU one's is a link)
    assert script.resolve() == post_deploy_script(ROOT / "envs" / "refsr.yaml").resolve()
    # its build backend is pinned (no build isolation: nothing is fetched after the environment)
    assert "setuptools" in env_packages(env_file)


def test_post_deploy_installs_the_checkout_editable(tmp_path):
    checkout = tmp_path / "checkout"  # a copy: the install writes src/refsr.egg-info
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    prefix, workdir = _stand_in_env(tmp_path), tmp_path / "workdir"
    workdir.mkdir()
    python = prefix / "bin" / "python"
    where = [python, "-c", "import importlib.util as u; s = u.find_spec('refsr'); print(s and s.origin)"]
    assert subprocess.run(where, cwd=tmp_path, env=_activated(prefix), capture_output=True,
                          text=True).stdout.strip() == "None"

    script = post_deploy_script(ROOT / "envs" / "refsr-gpu.yaml")
    proc = _snakemake_runs(script, workdir, _activated(prefix, REFSR_CHECKOUT=str(checkout)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    origin = subprocess.run(where, cwd=tmp_path, env=_activated(prefix), capture_output=True,
                            text=True).stdout.strip()
    assert Path(origin) == checkout / "src" / "refsr" / "__init__.py"  # editable: the checkout's own files
    cli = subprocess.run([prefix / "bin" / "refsr", "--help"], cwd=tmp_path, env=_activated(prefix),
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "degrade" in cli.stdout, cli.stderr


@pytest.mark.parametrize("checkout", [None, "not-a-checkout"])
def test_post_deploy_without_the_checkout_fails_with_one_line(tmp_path, checkout):
    prefix = _stand_in_env(tmp_path)
    extra = {} if checkout is None else {"REFSR_CHECKOUT": str(tmp_path / checkout)}
    proc = _snakemake_runs(ROOT / "envs" / "refsr.post-deploy.sh", tmp_path, _activated(prefix, **extra))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "REFSR_CHECKOUT" in proc.stderr
    assert not list(prefix.rglob("__editable__*refsr*"))


def test_snakefile_tells_the_post_deploy_script_the_checkout(rules):
    rules("cpu")
    exported = rules.exported["cpu"]
    assert exported is not None and Path(exported).resolve() == ROOT
