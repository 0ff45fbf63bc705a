"""Released weights of published methods, converted into refsr checkpoints.

An importer reads the files a method's authors released (in their framework's layout) and
writes one refsr checkpoint per model it can build from them, ``{out_dir}/{model}.pt``; it
refuses a file that does not fit, naming the file and the first offending parameter. The
table below maps a source name (``refsr import-weights SOURCE``, the config's
``pretrained.<model>.source``) to its function; importing this module needs no torch.

:data:`RELEASES` says, for C2-Matching and MASA-SR, which released files each model needs and
where the authors publish them: :func:`check_files` (at DAG build) names the missing ones in one
line, ``refsr download-weights --only c2matching|masa`` says where to get them
(:func:`download_instructions`). Every importer of released files stores the name, size and
sha256 of each file it read in the checkpoint (``released_files``, :func:`file_record`); the rule
``import_weights`` writes the same list to ``released.json`` beside it, which
:func:`released_record` reads back.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from refsr.core.atomic import write_text
from refsr.core.errors import RefsrError, os_reason

#: source name -> ``"module:function(src, out_dir) -> {model: path}"``.
IMPORTERS: dict[str, str] = {
    "refsr": "refsr.models.importers.refsr:import_checkpoint",
    "srntt-official": "refsr.models.importers.srntt_official:import_released",
    "ttsr-official": "refsr.models.importers.ttsr_official:import_released",
    "c2matching-official": "refsr.models.importers.c2matching_official:import_released",
    "masa-official": "refsr.models.importers.masa_official:import_released",
}


#: Sources whose weights are of one recipe (``refsr`` keeps the checkpoint's own).
SOURCE_RECIPE: dict[str, str] = {"srntt-official": "official", "ttsr-official": "official",
                                 "c2matching-official": "official", "masa-official": "official"}


#: The models a source's weights can hold (a source not listed, such as ``refsr``: any model).
SOURCE_MODELS: dict[str, tuple[str, ...]] = {"srntt-official": ("srresnet", "srntt_l2", "srntt"),
                                             "ttsr-official": ("ttsr", "ttsr_rec"),
                                             "c2matching-official": ("c2matching", "c2matching_rec"),
                                             "masa-official": ("masa", "masa_rec")}


def check_source(source: str, where: str = "source") -> None:
    """A one-line error naming ``where`` unless ``source`` is a known importer (no import)."""
    if source not in IMPORTERS:
        raise RefsrError(where, f"unknown weights source {source!r}; choose one of {', '.join(IMPORTERS)}")


def check_config(config) -> None:
    """Every ``pretrained.<model>.source`` of a validated config names a known importer whose
    weights can hold that model (:data:`SOURCE_MODELS`) and are of the recipe the config runs
    that model in."""
    from refsr.models import registry

    for name, spec in config.get("pretrained", {}).items():
        where = f"config key pretrained.{name}.source"
        check_source(spec["source"], where=where)
        holds = SOURCE_MODELS.get(spec["source"])
        if holds is not None and name not in holds:
            raise RefsrError(where, f"{spec['source']} weights hold {', '.join(holds)}, not {name}; "
                                    f"give {name} weights of its own (source refsr, or train it here)")
        wanted = SOURCE_RECIPE.get(spec["source"])
        if wanted is not None and registry.recipe_of(name, config) != wanted:
            raise RefsrError(where, f"{spec['source']} gives {name} weights of recipe {wanted}, but the config "
                                    f"runs {name} in recipe {registry.recipe_of(name, config)} (set recipe: {wanted})")


@dataclass(frozen=True)
class Release:
    """Where a method's authors publish its weights and which files each model needs.

    ``files``: model -> the released file names the importer reads for it, the model's own file
    first (a ``pretrained.<model>.path`` may name it under any name; the others are read beside
    it). ``page``: where the authors' README links them; for both releases here a Google Drive
    folder, which has no stable per-file URL, so ``refsr download-weights`` prints where to get
    them instead (:func:`download_instructions`). ``place``: the folder the docs and that
    message suggest for them."""

    method: str
    repo: str
    page: str
    files: Mapping[str, tuple[str, ...]]
    place: str


#: Sources whose released files are checked at DAG build (:func:`check_files`) and recorded
#: with their sha256 (:func:`file_record`); a source not listed (``refsr``, ``srntt-official``,
#: ``ttsr-official``): its ``path`` must exist, and the importer checks what is inside.
RELEASES: dict[str, Release] = {
    "c2matching-official": Release(
        method="C2-Matching", repo="yumingj/C2-Matching",
        page="https://drive.google.com/drive/folders/1dTkXMzeBrHelVQUEx5zib5MdmvqDaSd9",
        files={"c2matching": ("c2_matching_restoration.pth", "feature_extraction.pth"),
               "c2matching_rec": ("c2_matching_restoration_mse.pth", "feature_extraction.pth")},
        place="weights/C2-Matching"),
    "masa-official": Release(
        method="MASA-SR", repo="dvlab-research/MASA-SR",
        page="https://drive.google.com/drive/folders/1O9Y4UK1PFoFKOsYTQqcQJCA_VvBWp29N",
        files={"masa": ("masa.pth",), "masa_rec": ("masa_rec.pth",)},
        place="weights/MASA-SR"),
}

#: ``refsr download-weights --only NAME`` of released weights -> their source.
DOWNLOADS: dict[str, str] = {"c2matching": "c2matching-official", "masa": "masa-official"}


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def released_names(source: str) -> list[str]:
    """Every file name the release of ``source`` consists of, in table order."""
    return list(dict.fromkeys(f for files in RELEASES[source].files.values() for f in files))


def pretrained_lines(source: str) -> str:
    """The ``pretrained:`` entries (YAML flow style) that point every model of ``source`` at
    the suggested folder."""
    rel = RELEASES[source]
    return ", ".join(f"{m}: {{source: {source}, path: {rel.place}}}" for m in rel.files)


def fetch_hint(source: str, files: list[str] | tuple[str, ...] | None = None,
               place: str | os.PathLike | None = None) -> str:
    """Where to get ``files`` (default: the whole release of ``source``) and where to put them
    (default: the suggested folder), in words (one line)."""
    rel = RELEASES[source]
    names = list(files) if files is not None else released_names(source)
    return (f"download {_and(names)} from {rel.method}'s Google Drive folder {rel.page} "
            f"(linked from github.com/{rel.repo}) into {str(place or rel.place).rstrip('/')}/")


def download_instructions(name: str) -> str:
    """The one line ``refsr download-weights --only NAME`` answers for released weights that have
    no stable URL: which files, from where, where to put them, the config lines."""
    source = DOWNLOADS[name]
    return (f"{RELEASES[source].method}'s released weights have no stable URL (the authors publish them in a "
            f"Google Drive folder), so refsr does not fetch them: {fetch_hint(source)}, then set pretrained: "
            f"{{{pretrained_lines(source)}}} (docs/methods/released.md)")


def find_released(folder: str | os.PathLike, name: str) -> Path | None:
    """The file of ``folder`` that the importers read as released file ``name``: that exact
    name, else (a ``.pth``/``.pt`` file) the same stem in any case with either suffix, as the
    released loaders' files are found; ``None`` if there is none."""
    folder, wanted = Path(folder), Path(name)
    exact = folder / name
    if exact.is_file():
        return exact
    if wanted.suffix not in (".pth", ".pt") or not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if (path.stem.lower() == wanted.stem.lower() and path.suffix.lower() in (".pth", ".pt")
                and path.is_file()):
            return path
    return None


def released_files(source: str, model: str, path: str | os.PathLike) -> list[Path]:
    """The released files importer ``source`` reads for ``model`` from ``path`` (the folder, or
    the model's own file with the others beside it); a one-line error naming ``path``, the files
    expected and where to get them when one is missing."""
    path, rel = Path(path), RELEASES[source]
    needed = rel.files[model]
    if not path.exists():
        if path.suffix.lower() in (".pth", ".pt"):  # the model's own file, named by the config
            others = f", with {_and(needed[1:])} beside it" if needed[1:] else ""
            raise RefsrError(path, f"not found; {rel.method} {model} needs the released {needed[0]} here "
                                   f"(any name){others}; {fetch_hint(source, needed, path.parent)}")
        raise RefsrError(path, f"not found; {rel.method} {model} needs {_and(needed)} in this folder; "
                               f"{fetch_hint(source, needed, path)}")
    if path.is_file():
        folder, found, wanted = path.parent, [path], needed[1:]
    else:
        folder, found, wanted = path, [], needed
    missing = []
    for name in wanted:
        hit = find_released(folder, name)
        if hit is None:
            missing.append(name)
        else:
            found.append(hit)
    if missing:
        here = "beside it" if path.is_file() else "in this folder"
        raise RefsrError(path, f"no {_and(missing)} {here}; {rel.method} {model} needs "
                               f"{_and(needed)}; {fetch_hint(source, missing, folder)}")
    return found


def check_files(config) -> None:
    """Every ``pretrained.<model>.path`` of a validated config exists and, for a source of
    :data:`RELEASES`, holds the released files that model needs (:func:`released_files`): one
    line naming the config key, the path, the files expected and where to get them, at DAG
    build instead of Snakemake's missing-input report. Relative paths are relative to the
    working directory, as the workflow's inputs."""
    for name, spec in config.get("pretrained", {}).items():
        where = f"config key pretrained.{name}.path"
        source, path = spec["source"], Path(spec["path"])
        try:
            if source in RELEASES and name in RELEASES[source].files:
                released_files(source, name, path)
            elif not path.exists():
                raise RefsrError(path, f"not found (the {source} weights of {name})")
        except RefsrError as err:
            raise RefsrError(where, str(err)) from None


def file_record(path: str | os.PathLike) -> dict:
    """``{"name", "bytes", "sha256"}`` of a released file as read (name without its folder)."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        size = path.stat().st_size
    except OSError as err:
        raise RefsrError(path, f"cannot read ({os_reason(err)})") from None
    return {"name": path.name, "bytes": int(size), "sha256": h.hexdigest()}


#: Checkpoint key (an ``extra`` of :func:`refsr.models.checkpoint.save_checkpoint`) holding the
#: :func:`file_record` of every released file an importer read for that checkpoint.
RELEASED_FILES_KEY = "released_files"


def write_released_record(path: str | os.PathLike, model: str, source: str, files: list[dict]) -> Path:
    """``{"model", "source", "files": [{"name", "bytes", "sha256"}]}`` as JSON at ``path``, atomically."""
    record = {"model": model, "source": source, "files": [dict(f) for f in files]}
    write_text(path, json.dumps(record, indent=1) + "\n")
    return Path(path)


def released_record(path: str | os.PathLike) -> dict:
    """The record the rule import_weights writes beside an imported checkpoint
    (``results/imported/{model}/released.json``): ``{"model", "source", "files": [{"name",
    "bytes", "sha256"}, ...]}``, checked; a one-line error naming the file otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except OSError as err:
        raise RefsrError(path, f"cannot read ({os_reason(err)})") from None
    except ValueError as err:
        raise RefsrError(path, f"not JSON ({err})") from None
    ok = (isinstance(record, dict) and isinstance(record.get("model"), str)
          and isinstance(record.get("source"), str) and isinstance(record.get("files"), list)
          and all(isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("bytes"), int)
                  and isinstance(f.get("sha256"), str) and len(f["sha256"]) == 64 for f in record["files"]))
    if not ok:
        raise RefsrError(path, 'expected {"model", "source", "files": [{"name", "bytes", "sha256"}]}')
    return record


def describe_record(record: Mapping) -> str:
    """A record in words for a caption, one ``NAME (N bytes, sha256 HEX)`` per file, ``; ``-joined."""
    return "; ".join(f"{f['name']} ({f['bytes']} bytes, sha256 {f['sha256']})" for f in record["files"])


def importer(source: str, where: str = "source") -> Callable[[Path, Path], dict[str, Path]]:
    """The import function of ``source``."""
    check_source(source, where)
    module, _, fn = IMPORTERS[source].partition(":")
    return getattr(importlib.import_module(module), fn)


#: Sources whose files do not say which model they hold by themselves: ``model=`` of
#: :func:`import_weights` (``refsr import-weights --model``) may name it, one of these.
MODEL_CHOICES: dict[str, tuple[str, ...]] = {"ttsr-official": ("ttsr", "ttsr_rec"),
                                             "c2matching-official": ("c2matching", "c2matching_rec"),
                                             "masa-official": ("masa", "masa_rec")}


def import_weights(source: str, src: str | os.PathLike, out_dir: str | os.PathLike,
                   model: str | None = None) -> dict[str, Path]:
    """Convert the released weights at ``src`` into refsr checkpoints in ``out_dir``; ``model``
    names the model the file holds, for a source of :data:`MODEL_CHOICES` only.

    All or nothing: the checkpoints are written into a temporary folder beside ``out_dir`` and
    moved in only once every conversion succeeded (a damaged file or a full disk leaves
    ``out_dir`` as it was)."""
    src = Path(src)
    if not src.exists():
        raise RefsrError(src, "released weights not found")
    convert = importer(source)
    kwargs = {}
    if model is not None:
        choices = MODEL_CHOICES.get(source)
        if choices is None:
            raise RefsrError("--model", f"{source} weights say which model they hold; --model applies only to "
                                        f"{', '.join(MODEL_CHOICES)}")
        if model not in choices:
            raise RefsrError("--model", f"{source} weights hold {' or '.join(choices)}, not {model!r}")
        kwargs["model"] = model
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.import-", dir=out_dir.parent))
    except OSError as err:
        raise RefsrError(out_dir, f"cannot write ({os_reason(err)})") from None
    try:
        written = convert(src, staging, **kwargs)
        out_dir.mkdir(parents=True, exist_ok=True)
        moved = {}
        for name, path in written.items():
            moved[name] = out_dir / Path(path).name
            os.replace(path, moved[name])
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)
