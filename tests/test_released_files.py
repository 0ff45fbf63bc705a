"""Issue 24, scope 5: the released files of C2-Matching and MASA-SR. Missing ones are one line at
DAG build (the config key, the path, the files expected there, where to get them); the import
records the name, size and sha256 of every released file it read (``released.json`` beside the
checkpoint, and the checkpoint's ``released_files``); ``refsr download-weights --only
c2matching|masa`` says in one line which files to get from where, since they have no stable URL.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import SMOKE, planned_jobs, snakemake

from refsr.cli import main
from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.models import importers
from refsr.models.checkpoint import read_checkpoint
from refsr.models.importers import (
    DOWNLOADS,
    RELEASES,
    check_files,
    describe_record,
    released_record,
    write_released_record,
)

ROOT = Path(__file__).resolve().parents[1]
C2 = ROOT.parent / "shared" / "fixtures" / "c2matching-released"
MASA = ROOT.parent / "shared" / "fixtures" / "masa-released"
C2_DRIVE = "https://drive.google.com/drive/folders/1dTkXMzeBrHelVQUEx5zib5MdmvqDaSd9"
MASA_DRIVE = "https://drive.google.com/drive/folders/1O9Y4UK1PFoFKOsYTQqcQJCA_VvBWp29N"


def _needs(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"no released fixture at {folder}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fixture_sha256(folder: Path, name: str) -> str:
    """The sha256 the fixture's meta.json states for ``name`` (computed where it was made)."""
    meta = json.loads((folder / "meta.json").read_text())["files"]
    entry = meta.get(name) or meta["top"][name]
    return entry["sha256"]


def _error(config: dict) -> str:
    with pytest.raises(RefsrError) as exc:
        check_files(validate(config))
    return str(exc.value)


# ----------------------------------------------------------------------------- the table


def test_the_table_names_the_files_the_importers_read():
    from refsr.models.importers import c2matching_official, masa_official

    c2 = RELEASES["c2matching-official"].files
    for stem, model in c2matching_official.RELEASED_NAMES.items():
        assert c2[model] == (f"{stem}.pth", c2matching_official.EXTRACTOR_FILE)
    masa = RELEASES["masa-official"].files
    assert {model: files for model, files in masa.items()} == {
        model: (f"{stem}.pth",) for stem, model in masa_official.RELEASED_NAMES.items()}
    for source, release in RELEASES.items():
        assert set(release.files) == set(importers.SOURCE_MODELS[source])
    assert set(DOWNLOADS.values()) == set(RELEASES)


# ----------------------------------------------------------------------------- at DAG build


def test_a_missing_folder_is_one_line_naming_the_key_the_path_the_files_and_where():
    msg = _error({"pretrained": {"c2matching": {"source": "c2matching-official", "path": "missing/dir"}}})
    assert msg == ("config key pretrained.c2matching.path: missing/dir: not found; C2-Matching c2matching "
                   "needs c2_matching_restoration.pth and feature_extraction.pth in this folder; download "
                   "c2_matching_restoration.pth and feature_extraction.pth from C2-Matching's Google Drive "
                   f"folder {C2_DRIVE} (linked from github.com/yumingj/C2-Matching) into missing/dir/")
    msg = _error({"pretrained": {"masa_rec": {"source": "masa-official", "path": "w/masa_rec.pth"}}})
    assert msg.startswith("config key pretrained.masa_rec.path: w/masa_rec.pth: not found; MASA-SR masa_rec "
                          "needs the released masa_rec.pth here (any name); download masa_rec.pth from ")
    assert MASA_DRIVE in msg and msg.endswith(" into w/")


def test_a_folder_without_a_needed_file_is_one_line(tmp_path):
    _needs(C2)
    (tmp_path / "c2_matching_restoration.pth").symlink_to(C2 / "c2_matching_restoration.pth")
    msg = _error({"pretrained": {"c2matching": {"source": "c2matching-official", "path": str(tmp_path)}}})
    assert msg == (f"config key pretrained.c2matching.path: {tmp_path}: no feature_extraction.pth in this "
                   "folder; C2-Matching c2matching needs c2_matching_restoration.pth and feature_extraction.pth; "
                   f"download feature_extraction.pth from C2-Matching's Google Drive folder {C2_DRIVE} (linked "
                   f"from github.com/yumingj/C2-Matching) into {tmp_path}/")
    # the file itself given, its extractor not beside it
    msg = _error({"pretrained": {"c2matching": {"source": "c2matching-official",
                                                "path": str(tmp_path / "c2_matching_restoration.pth")}}})
    assert "no feature_extraction.pth beside it" in msg
    # the other model of the release needs its own restoration file
    (tmp_path / "feature_extraction.pth").symlink_to(C2 / "feature_extraction.pth")
    check_files(validate({"pretrained": {"c2matching": {"source": "c2matching-official", "path": str(tmp_path)}}}))
    msg = _error({"pretrained": {"c2matching_rec": {"source": "c2matching-official", "path": str(tmp_path)}}})
    assert "no c2_matching_restoration_mse.pth in this folder" in msg


def test_the_released_files_as_the_importers_find_them_pass():
    _needs(C2)
    _needs(MASA)
    check_files(validate({"pretrained": {
        "c2matching": {"source": "c2matching-official", "path": str(C2)},
        "masa": {"source": "masa-official", "path": str(MASA / "MASA.pth")}}}))
    # a folder: masa.pth found as MASA.pth (the importer matches the stem in any case)
    check_files(validate({"pretrained": {"masa": {"source": "masa-official", "path": str(MASA)}}}))
    assert "no masa_rec.pth in this folder" in _error(
        {"pretrained": {"masa_rec": {"source": "masa-official", "path": str(MASA)}}})


def test_other_sources_need_their_path_to_exist(tmp_path):
    msg = _error({"pretrained": {"srntt": {"source": "refsr", "path": str(tmp_path / "mine.pt")}}})
    assert msg == f"config key pretrained.srntt.path: {tmp_path / 'mine.pt'}: not found (the refsr weights of srntt)"


def _dag_config(wd: Path, pretrained: dict) -> str:
    shutil.copy(ROOT / "config.yaml", wd / "config.yaml")
    cfg = yaml.safe_load((ROOT / SMOKE).read_text())
    cfg["models"] = ["bicubic", *pretrained]
    cfg["pretrained"] = pretrained
    (wd / "released.yaml").write_text(yaml.safe_dump(cfg))
    return "released.yaml"


@pytest.mark.parametrize("case", ["folder", "file"])
def test_snakemake_stops_at_dag_build_with_one_line(tmp_path, case):
    if case == "folder":
        given, expect = "missing/dir", ("config key pretrained.c2matching.path: missing/dir: not found; "
                                        "C2-Matching c2matching needs c2_matching_restoration.pth and "
                                        "feature_extraction.pth in this folder")
    else:
        _needs(C2)
        (tmp_path / "weights").mkdir()
        (tmp_path / "weights" / "c2_matching_restoration.pth").symlink_to(C2 / "c2_matching_restoration.pth")
        given, expect = "weights", ("config key pretrained.c2matching.path: weights: no feature_extraction.pth "
                                    "in this folder")
    cfg = _dag_config(tmp_path, {"c2matching": {"source": "c2matching-official", "path": given}})
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # Snakemake's own note about the --configfile aside, the one line
    lines = [x for x in out.splitlines() if x.strip() and not x.startswith("Config file config.yaml is extended")]
    assert len(lines) == 1, out
    assert lines[0].startswith(f"refsr: invalid configuration: {expect}") and C2_DRIVE in lines[0], out
    assert "MissingInputException" not in out and "Traceback" not in out


def test_the_dag_imports_into_a_checkpoint_and_its_record(tmp_path):
    _needs(C2)
    cfg = _dag_config(tmp_path, {"c2matching": {"source": "c2matching-official", "path": str(C2)}})
    jobs = planned_jobs(tmp_path, [cfg], targets=["results/imported/c2matching/released.json"])
    assert [j.output for j in jobs["import_weights"]] == [
        ("results/imported/c2matching/checkpoint.pt", "results/imported/c2matching/released.json")]
    assert jobs["import_weights"][0].input == (str(C2),)


# ----------------------------------------------------------------------------- sha256 of the files read


def _import(model: str, source: str, src: Path, out: Path) -> Path:
    """The import_weights stage as the rule runs it (its snakemake object's fields)."""
    from refsr.stages.import_weights import main as stage

    smk = SimpleNamespace(params=SimpleNamespace(job={"source": source, "recipe": "official"}),
                          wildcards=SimpleNamespace(model=model), input=[str(src)],
                          output=SimpleNamespace(checkpoint=str(out / "checkpoint.pt"),
                                                 released=str(out / "released.json")))
    stage(smk)
    return out


def test_released_json_records_every_file_read_with_its_sha256(tmp_path, vgg_weights):
    _needs(C2)
    out = _import("c2matching", "c2matching-official", C2, tmp_path / "c2matching")
    record = released_record(out / "released.json")
    names = ["c2_matching_restoration.pth", "feature_extraction.pth"]
    assert record == {"model": "c2matching", "source": "c2matching-official",
                      "files": [{"name": n, "bytes": (C2 / n).stat().st_size, "sha256": _sha256(C2 / n)}
                                for n in names]}
    assert [f["sha256"] for f in record["files"]] == [_fixture_sha256(C2, n) for n in names]
    ckpt = read_checkpoint(out / "checkpoint.pt")
    assert ckpt["released_files"] == record["files"]  # the same list inside the checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "released.json"]  # no temporaries
    text = describe_record(record)
    assert text.startswith(f"c2_matching_restoration.pth ({(C2 / names[0]).stat().st_size} bytes, sha256 "
                           f"{_fixture_sha256(C2, names[0])})")


def test_released_json_of_masa(tmp_path):
    _needs(MASA)
    out = _import("masa", "masa-official", MASA / "MASA.pth", tmp_path / "masa")
    record = released_record(out / "released.json")
    assert record == {"model": "masa", "source": "masa-official",
                      "files": [{"name": "MASA.pth", "bytes": (MASA / "MASA.pth").stat().st_size,
                                 "sha256": _fixture_sha256(MASA, "MASA.pth")}]}
    assert read_checkpoint(out / "checkpoint.pt")["released_files"] == record["files"]


def test_a_damaged_record_is_one_line(tmp_path):
    bad = tmp_path / "released.json"
    bad.write_text('{"model": "masa", "files": []}')
    with pytest.raises(RefsrError) as exc:
        released_record(bad)
    assert str(exc.value) == f'{bad}: expected {{"model", "source", "files": [{{"name", "bytes", "sha256"}}]}}'
    bad.write_text("{")
    with pytest.raises(RefsrError, match="not JSON"):
        released_record(bad)
    with pytest.raises(RefsrError, match="cannot read"):
        released_record(tmp_path / "absent.json")
    files = [{"name": "masa.pth", "bytes": 3, "sha256": "0" * 64}]
    write_released_record(tmp_path / "ok.json", "masa", "masa-official", files)
    assert released_record(tmp_path / "ok.json")["files"] == files


# ----------------------------------------------------------------------------- download-weights


@pytest.mark.parametrize("name", ["masa", "c2matching"])
def test_download_weights_says_where_the_released_files_are(name, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    assert main(["download-weights", "--only", "vgg19", "--only", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert not (tmp_path / "hub").exists()  # nothing fetched before the refusal
    source = DOWNLOADS[name]
    rel = RELEASES[source]
    assert line.startswith(f"refsr: error: download-weights --only {name}: {rel.method}'s released weights "
                           "have no stable URL")
    assert rel.page in line and all(f in line for f in importers.released_names(source))
    # the config lines it prints are valid pretrained entries of this source
    text = line[line.index("pretrained: {"):line.rindex(" (docs/")]
    pretrained = yaml.safe_load(text)["pretrained"]
    assert pretrained == {m: {"source": source, "path": rel.place} for m in rel.files}
    importers.check_config(validate({"models": ["bicubic", *pretrained], "pretrained": pretrained}))
    if name == "masa":
        assert line == (
            "refsr: error: download-weights --only masa: MASA-SR's released weights have no stable URL (the "
            "authors publish them in a Google Drive folder), so refsr does not fetch them: download masa.pth and "
            f"masa_rec.pth from MASA-SR's Google Drive folder {MASA_DRIVE} (linked from "
            "github.com/dvlab-research/MASA-SR) into weights/MASA-SR/, then set pretrained: {masa: {source: "
            "masa-official, path: weights/MASA-SR}, masa_rec: {source: masa-official, path: weights/MASA-SR}} "
            "(docs/methods/released.md)")
