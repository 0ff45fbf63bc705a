"""What every table caption states besides the table itself: protocol, weights, code, config."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refsr.core.config import digest
from refsr.evaluation.external import entries
from refsr.evaluation.protocol import protocol_from_config
from refsr.features.matconvnet import official_vgg_provenance
from refsr.features.vgg import resolve_source
from refsr.models import registry


def git_commit(repo_dir: str | os.PathLike | None = None) -> str:
    """``git rev-parse --short HEAD`` of ``repo_dir`` (+ ``-dirty`` with uncommitted
    changes to tracked files); ``"unknown"`` outside a repository or without git."""
    cwd = str(repo_dir) if repo_dir else None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=20)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        commit = head.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=20)
        return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _sha256_12(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def vgg_provenance(weights: str | os.PathLike | None = None) -> str:
    """Where the VGG19 weights come from (``REFSR_VGG19_WEIGHTS`` wins), with a file hash."""
    source, origin = resolve_source(weights)
    path = Path(source)
    if path.is_file():
        return f"{path.name} ({origin}, sha256 {_sha256_12(path)})"
    return f"{source} ({origin})"


def vgg_sentence(config: Mapping[str, Any]) -> str:
    """The VGG19 of every recipe in use, and the layer of the perceptual loss when a listed
    model trains with one (what the losses used, say the captions)."""
    recipes = {m: registry.recipe_of(m, config) for m in config["models"]}
    specs = {m: registry.get(m, recipe=r or None) for m, r in recipes.items()}
    uses_vgg = {m for m, s in specs.items() if s.uses_reference or {"perceptual", "texture"} & set(s.losses)}
    learned = sorted(m for m in uses_vgg if specs[m].textures == "learned")
    uses_vgg -= set(learned)  # TTSR: torchvision's VGG19 initialises its texture extractor
    official = sorted(m for m in uses_vgg if recipes[m] == "official")
    text = vgg_provenance(config.get("vgg19_weights"))
    if official:
        mat = (config.get("official") or {}).get("vgg19_mat")
        own = f"for recipe official ({', '.join(official)}): {official_vgg_provenance(mat, config.get('vgg19_weights'))}"
        text = f"{text} for recipe refsr; {own}" if uses_vgg - set(official) else own
    if any("perceptual" in specs[m].losses for m in specs if m not in learned):
        text += f"; perceptual loss at {config['loss']['perceptual_layer']}"
    if learned:
        text += f"; {', '.join(learned)}: texture extractor initialised from {vgg_provenance(config.get('vgg19_weights'))}"
        if any("perceptual" in specs[m].losses for m in learned):
            text += f", perceptual loss at {config['ttsr']['loss']['perceptual_layer']}"
    return text


def lpips_provenance(sidecars: Iterable[Mapping[str, Any]]) -> tuple[str, bool]:
    """One phrase for LPIPS over all evaluation jobs, and whether every job had it."""
    sources, reasons = set(), set()
    for meta in sidecars:
        info = meta.get("lpips", {})
        if info.get("available"):
            sources.add(str(info.get("source")))
        else:
            reasons.add(str(info.get("reason") or "unavailable"))
    if sources and not reasons:
        return f"LPIPS AlexNet weights: {'; '.join(sorted(sources))}", True
    if reasons and not sources:
        return f"LPIPS not computed (n/a): {'; '.join(sorted(reasons))}", False
    return (f"LPIPS mixed: weights {'; '.join(sorted(sources))} for some jobs, not computed for "
            f"others ({'; '.join(sorted(reasons))})", False)


def stlpips_provenance(sidecars: Iterable[Mapping[str, Any]]) -> str:
    """One phrase for ST-LPIPS over all evaluation jobs (its weights ship with its package)."""
    sources = {str(m["stlpips"]["source"]) for m in sidecars if m.get("stlpips", {}).get("enabled")}
    off = any(not m.get("stlpips", {}).get("enabled") for m in sidecars)
    if not sources:
        return "ST-LPIPS disabled (evaluation.stlpips: false)"
    text = f"ST-LPIPS (shift-tolerant, its own column, not LPIPS): {'; '.join(sorted(sources))}"
    return text + (" (disabled for some jobs)" if off else "")


#: What each recipe name means, for captions.
RECIPE_TEXT = {"refsr": "refsr = this project's CPU-friendly variant",
               "official": "official = the method's released code point by point"}


@dataclass
class Provenance:
    """What every caption states besides the table's own description."""

    protocol: str
    vgg19: str
    lpips: str
    commit: str
    config_hash: str
    datasets: dict[str, int] = field(default_factory=dict)  # name -> number of test images
    recipes: dict[str, str] = field(default_factory=dict)  # model -> recipe it ran with
    #: external method -> its row label (``Theirs (external)``) and where its images come from
    external: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: imported model -> the files its weights were read from, with their sha256
    released: dict[str, str] = field(default_factory=dict)

    def row(self, model: str) -> str:
        """A table row's name: the model and its recipe (``srntt (refsr)``), or an external
        method's label marked external."""
        if model in self.external:
            return self.external[model][0]
        return registry.row_label(model, self.recipes.get(model, ""))

    def external_sentence(self, methods: Sequence[str]) -> str:
        """Where the external methods among ``methods`` come from, as a caption sentence followed by a
        space (empty: none)."""
        ext = [m for m in methods if m in self.external]
        if not ext:
            return ""
        return ("External methods, scored from their own SR images (config external), not run by refsr: "
                + "; ".join(f"{self.external[m][0]} from {self.external[m][1]}" for m in ext) + ". ")

    def sentence(self, datasets: Sequence[str] | None = None) -> str:
        names = list(datasets) if datasets is not None else list(self.datasets)
        ds = ", ".join(f"{n} ({self.datasets.get(n, '?')} test images)" for n in names)
        used = sorted({r for r in self.recipes.values() if r})
        recipes = (f" Recipes (in brackets after each model): {', '.join(used)}"
                   f" ({'; '.join(RECIPE_TEXT.get(r, r) for r in used)}).") if used else ""
        imported = (" Imported weights: " + "; ".join(f"{m} from {files}" for m, files in self.released.items())
                    + ".") if self.released else ""
        return (f"Dataset: {ds}. Protocol: {self.protocol} VGG19 weights: {self.vgg19}. "
                f"{self.lpips}.{recipes}{imported} Code: git {self.commit}; config sha256 {self.config_hash}.")


def code_version() -> str:
    """The code that made a table: the git commit of the checkout the refsr package runs from
    (``-dirty`` with changes), or the package version for an installed release."""
    commit = git_commit(Path(__file__).resolve().parents[1])
    if commit != "unknown":
        return commit
    try:
        from importlib.metadata import version

        return f"refsr {version('refsr')}"
    except Exception:  # noqa: BLE001 - metadata missing: nothing better to say
        return "unknown"


#: The captions' config hash (sha256 of the keys-sorted JSON, 12 hex digits).
config_hash = digest


def build_provenance(config: Mapping[str, Any], metas: Mapping, evals: Mapping,
                     hashed: str | None = None, released: Mapping[str, str] | None = None) -> tuple[Provenance, bool]:
    """The caption facts of a table; ``hashed``: the config hash as the job spec computed it
    (default: the hash of ``config``); ``released``: imported model -> its files and sha256
    (:func:`refsr.models.importers.describe_record`)."""
    lp_text, lp_ok = lpips_provenance(metas.values())
    lp_text = f"{lp_text}. {stlpips_provenance(metas.values())}"
    datasets: dict[str, int] = {}
    for (ds, _), df in evals.items():
        datasets[ds] = max(datasets.get(ds, 0), int(df["image"].nunique()))
    prov = Provenance(protocol=protocol_from_config(config).describe(),
                      vgg19=vgg_sentence(config), lpips=lp_text,
                      commit=code_version(), config_hash=hashed or digest(config),
                      datasets=datasets,
                      recipes={m: registry.recipe_of(m, config) for m in config["models"]},
                      external={n: (e.row_label, e.source or str(e.path)) for n, e in entries(config).items()},
                      released=dict(released or {}))
    return prov, lp_ok
