"""Case 9 of issue 14: config problems are caught when the DAG is built (``snakemake -n``), with
the one line the ``build_dataset`` job would give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.data import build_to
from refsr.data.checks import EMBEDDED_PHOTOS, check_datasets

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def config_with(name: str, dataset: dict) -> dict:
    return {"datasets": {name: dataset}, "train_dataset": name, "eval_datasets": [name]}


def problem(config: dict) -> str:
    """The one-line message of validating ``config`` and checking its datasets."""
    with pytest.raises(RefsrError) as exc:
        check_datasets(validate(config))
    return str(exc.value)


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"),
                           "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)


def job_message(tmp_path: Path, config: dict) -> str:
    """What the build_dataset job says for the config's train dataset."""
    cfg = validate(config)
    name = cfg["train_dataset"]
    with pytest.raises(RefsrError) as exc:
        build_to(name, cfg["datasets"][name], tmp_path / "built", 4)
    assert not (tmp_path / "built").exists()
    return str(exc.value)


def test_case9_dataset_without_kind_names_kind():
    msg = problem(config_with("mine", {"hr_dir": "x", "refs_dir": "y"}))
    assert msg == ("config key datasets.mine.kind: required: one of embedded, cufed5, folder, sun80, "
                   "urban100, manga109, wrsr")


@pytest.mark.parametrize("extra, state", [({}, "neither is set"),
                                          ({"refs_dir": "a", "pairs_csv": "b"}, "both are set")])
def test_case9_folder_needs_exactly_one_of_refs_dir_and_pairs_csv(extra, state, tmp_path):
    cfg = config_with("mine", {"kind": "folder", "hr_dir": str(tmp_path), **extra})
    assert problem(cfg) == f"config key datasets.mine: give exactly one of refs_dir and pairs_csv ({state})"
    # the builder, called as a library with an unvalidated config, says the same
    with pytest.raises(RefsrError) as exc:
        build_to("mine", cfg["datasets"]["mine"], tmp_path / "built", 4)
    assert str(exc.value) == f"config key datasets.mine: give exactly one of refs_dir and pairs_csv ({state})"


def test_case9_missing_required_key_names_it_and_what_it_takes():
    msg = problem(config_with("c5", {"kind": "cufed5"}))
    assert msg.startswith("config key datasets.c5.test_dir: required: CUFED5 folder holding 000_0.png")


@pytest.mark.parametrize("dataset, message", [
    ({"kind": "folder", "hr_dir": "{tmp}/nope", "refs_dir": "{tmp}"},
     "{tmp}/nope: folder not found (from datasets.mine.hr_dir)"),
    ({"kind": "folder", "hr_dir": "{tmp}", "refs_dir": "{tmp}/refs"},
     "{tmp}/refs: folder not found (from datasets.mine.refs_dir)"),
    ({"kind": "folder", "hr_dir": "{tmp}", "pairs_csv": "{tmp}"},
     "{tmp}: not a file (from datasets.mine.pairs_csv)"),
    ({"kind": "folder", "hr_dir": "{tmp}", "refs_dir": "{tmp}", "train_dir": "{tmp}/train"},
     "{tmp}/train: folder not found (from datasets.mine.train_dir)"),
    ({"kind": "cufed5", "test_dir": "{tmp}/CUFED5"}, "{tmp}/CUFED5: folder not found (from datasets.mine.test_dir)"),
    ({"kind": "embedded", "test_photos": ["coffee", "astronaut"], "train_photos": ["astronaut", "brick"]},
     "datasets.mine.train_photos: overlaps the test photos: ['astronaut']"),
    ({"kind": "embedded", "test_photos": ["coffee", "cat"], "train_photos": ["chelsea"]},
     "datasets.mine.train_photos: overlaps the test photos: ['chelsea'] (cat is chelsea)"),
    ({"kind": "embedded", "test_photos": ["coffee", "coffee"]}, "datasets.mine.test_photos: lists 'coffee' twice"),
    ({"kind": "embedded", "test_photos": ["coffee", "kitten"]},
     "datasets.mine.test_photos: unknown photo(s) ['kitten']; scikit-image ships " + ", ".join(EMBEDDED_PHOTOS)),
    ({"kind": "embedded", "train_photos": ["download_all"]},
     "datasets.mine.train_photos: unknown photo(s) ['download_all']; scikit-image ships "
     + ", ".join(EMBEDDED_PHOTOS)),
    ({"kind": "sun80", "test_dir": "{tmp}"},
     "{tmp}/Sun_Hays_SR_groundtruth: folder not found: a Sun80 folder holds Sun_Hays_SR_groundtruth/ "
     "(the HR images) and Sun_Hays_SR_scenematches/ (their scene matches)"),
    ({"kind": "urban100", "test_dir": "{tmp}/Urban100"}, "{tmp}/Urban100: folder not found (from datasets.mine.test_dir)"),
    ({"kind": "manga109", "test_dir": "{tmp}", "groups": 110},
     "datasets.mine.groups: 110 is more than the 109 images of the set"),
    ({"kind": "wrsr", "test_dir": "{tmp}"},
     "{tmp}/input: folder not found: a WR-SR folder holds input/ (001.png ..) and ref/ (001_ref.png ..)"),
], ids=["hr_dir", "refs_dir", "pairs_csv", "train_dir", "cufed5", "overlap", "alias", "twice", "unknown",
        "not-a-photo", "sun80", "urban100", "manga109", "wrsr"])
def test_case9_dry_run_fails_with_the_jobs_message(dataset, message, tmp_path):
    tmp = tmp_path.resolve()
    dataset = {k: v.format(tmp=tmp) if isinstance(v, str) else v for k, v in dataset.items()}
    message = message.format(tmp=tmp)
    cfg = config_with("mine", dataset)
    assert problem(cfg) == message
    assert job_message(tmp_path, cfg) == message
    if (dataset.get("kind") == "folder" and "nope" in dataset.get("hr_dir", "")
            or dataset.get("kind") == "sun80"):  # real dry runs
        proc = dry_run(tmp_path, cfg)
        assert proc.returncode != 0
        assert f"refsr: invalid configuration: {message}" in proc.stderr + proc.stdout
        assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("dataset", [
    {"kind": "embedded", "test_photos": ["coffee", "rocket"], "train_photos": ["brick", "coffee"]},
    {"kind": "embedded", "test_photos": ["coffee", "nope"]},
], ids=["overlap", "unknown"])
def test_case9_dry_run_of_embedded_photos(dataset, tmp_path):
    proc = dry_run(tmp_path, config_with("embedded", dataset))
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "refsr: invalid configuration: datasets.embedded." in out and "Traceback" not in out
    assert not (tmp_path / "results").exists()


def test_case9_unused_datasets_are_not_checked(tmp_path):
    cfg = validate({"datasets": {"embedded": {"kind": "embedded"},
                                 "elsewhere": {"kind": "cufed5", "test_dir": "/no/such/folder"}}})
    check_datasets(cfg)  # elsewhere is neither trained on nor evaluated


@pytest.mark.parametrize("name", EMBEDDED_PHOTOS)
def test_every_embedded_photo_loads_offline(name):
    from refsr.data.embedded import load_photo

    photo = load_photo(name)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 48
