"""Given weights instead of training: the import_weights rule, the DAG, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import arch, planned_jobs, wildcards

from refsr.cli import main
from refsr.core.config import validate
from refsr.core.errors import RefsrError
from refsr.models import importers, registry
from refsr.models.checkpoint import arch_config, build_model, load_checkpoint, save_checkpoint
from refsr.stages.import_weights import import_one

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(path: Path, model: str) -> Path:
    sizes = arch_config(model, arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1]))
    torch.manual_seed(0)
    save_checkpoint(path, build_model(model, sizes), model, sizes)
    return path


def test_refsr_source_round_trip(tmp_path, capsys):
    src = _checkpoint(tmp_path / "mine.pt", "srntt")
    assert main(["import-weights", "refsr", str(src), "--out", str(tmp_path / "out")]) == 0
    written = json.loads(capsys.readouterr().out)
    assert list(written) == ["srntt"]
    model, ckpt = load_checkpoint(written["srntt"], expected="srntt")
    assert ckpt["imported_from"] == str(src)
    out = import_one("srntt", "refsr", src, tmp_path / "imported" / "checkpoint.pt")
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["checkpoint.pt"]
    with pytest.raises(RefsrError, match="hold no srresnet"):
        import_one("srresnet", "refsr", src, tmp_path / "other" / "checkpoint.pt")
    assert not (tmp_path / "other" / "checkpoint.pt").exists()


def test_import_weights_cli_errors(tmp_path, capsys):
    assert main(["import-weights", "refsr", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "released weights not found" in err[0]


def test_config_checks_names_and_sources():
    importers.check_config(validate({"pretrained": {"srntt": {"source": "refsr", "path": "x.pt"}}}))
    with pytest.raises(RefsrError, match="pretrained.srntt.source"):
        importers.check_config(validate({"pretrained": {"srntt": {"source": "nope", "path": "x"}}}))
    with pytest.raises(RefsrError, match="pretrained.bicubic"):
        registry.check_config(validate({"pretrained": {"bicubic": {"source": "refsr", "path": "x"}}}))
    assert registry.with_ancestors(["srntt"], given=["srntt"]) == ["srntt"]
    assert registry.with_ancestors(["srntt"]) == ["srresnet", "srntt_l2", "srntt"]


def _plan(tmp_path, **overrides) -> dict:
    """The jobs a dry run plans in ``tmp_path`` with the smoke config and ``overrides``."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    cfg = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    cfg.update(overrides)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return planned_jobs(tmp_path, ["c.yaml"])


def test_dag_imports_instead_of_training(tmp_path):
    _checkpoint(tmp_path / "released.pt", "srntt")
    given = {"srntt": {"source": "refsr", "path": str(tmp_path / "released.pt")}}
    jobs = _plan(tmp_path, models=["bicubic", "srntt"], pretrained=given)
    assert "train" not in jobs and "correspondence" not in jobs, jobs
    assert [j.output for j in jobs["import_weights"]] == [("results/imported/srntt/checkpoint.pt",
                                                           "results/imported/srntt/released.json")]
    infer = {j.wildcards["model"]: j.input for j in jobs["infer"]}
    assert "results/imported/srntt/checkpoint.pt" in infer["srntt"]


def test_released_srntt_weights_need_the_official_recipe():
    with pytest.raises(RefsrError, match="srntt-official gives srntt weights of recipe official"):
        importers.check_config(validate({"pretrained": {"srntt": {"source": "srntt-official", "path": "SRNTT"}}}))
    importers.check_config(validate({"recipe": "official",
                                     "pretrained": {"srntt": {"source": "srntt-official", "path": "SRNTT"}}}))


def test_import_stage_refuses_a_checkpoint_of_another_recipe(tmp_path):
    src = _checkpoint(tmp_path / "mine.pt", "srntt")  # recipe refsr
    with pytest.raises(RefsrError, match="srntt weights of recipe refsr, but the config runs srntt in recipe official"):
        import_one("srntt", "refsr", src, tmp_path / "imported" / "checkpoint.pt", recipe="official")
    assert not (tmp_path / "imported" / "checkpoint.pt").exists()


def test_dag_evaluates_the_released_weights(tmp_path):
    released = tmp_path / "SRNTT"
    released.mkdir()
    given = {m: {"source": "srntt-official", "path": str(released)} for m in ("srresnet", "srntt_l2", "srntt")}
    jobs = _plan(tmp_path, recipe="official", models=["bicubic", "srresnet", "srntt_l2", "srntt"],
                 pretrained=given)
    assert wildcards(jobs["import_weights"], "model") == ["srntt", "srntt_l2", "srresnet"]
    assert "train" not in jobs and "correspondence" not in jobs, jobs


def test_dag_sisr_training_maps_wait_for_the_sisr_model(tmp_path):
    jobs = _plan(tmp_path, recipe="official", official={"training_maps": "sisr"})
    assert "results/models/srresnet/checkpoint.pt" in jobs["correspondence"][0].input


def test_dag_evaluates_released_ttsr_weights_without_training(tmp_path):
    (tmp_path / "TTSR.pt").write_bytes(b"")  # the DAG only needs the path to exist
    given = {"ttsr": {"source": "ttsr-official", "path": str(tmp_path / "TTSR.pt")}}
    jobs = _plan(tmp_path, models=["bicubic", "ttsr"], pretrained=given, recipe="official")  # released = official
    assert "train" not in jobs and "correspondence" not in jobs, jobs
    assert [j.output for j in jobs["import_weights"]] == [("results/imported/ttsr/checkpoint.pt",
                                                           "results/imported/ttsr/released.json")]
