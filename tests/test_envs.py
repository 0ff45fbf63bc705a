"""Conda environments (envs/*.yaml): they parse, are pinned, every rule names one that exists,
and each rule's environment provides every third-party module its script imports, directly
or through the refsr modules it uses. (Conda channels cannot be reached here, so the
environments are checked, not built.)"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
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
            found[device] = workflow_rules(tmp_path_factory.mktemp(f"probe-{device}"),
                                           config={"device": device})
        return found[device]

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
    assert not any("-e" in p.split() or p.startswith((".", "/")) for p in pip), "refsr comes from the checkout"


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
