"""Any method's own outputs (config ``external``, kind outputs) and the benchmark table.

Issue 24, scope 3 and 4: an external folder of SR images is checked (missing, unreadable,
mis-sized: all in one line, at DAG build too), copied into the pipeline's layout and evaluated
like a model; pointed at the pipeline's own SR folder of a model, its evaluation CSV is that
model's, byte for byte. The benchmark table lists it, labelled external, with the same SR under
every protocol preset.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SMOKE, copy_of_run, snakemake, write_tiers_csv
from PIL import Image

from refsr.core import config as refsr_config
from refsr.core.errors import RefsrError
from refsr.data import layout
from refsr.evaluation import external
from refsr.evaluation.external import ExternalOutputs, collect, problems
from refsr.models import registry
from refsr.similarity.tiers import read_tiers


def _config(**ext) -> dict:
    return refsr_config.validate({"external": {"theirs": {"kind": "outputs", "path": "x", **ext}}})


@pytest.mark.parametrize("ext, key, needle", [
    ({"pattern": "{group}/{lvl}.png"}, "pattern", "unknown field {lvl}"),
    ({"pattern": "{level}.png"}, "pattern", "names no test image"),
    ({"pattern": "{group}.png"}, "levels", "stand for one level"),
    ({"pattern": "{group}.png", "levels": ["L1", "L2"]}, "levels", "stand for one level"),
    ({"levels": ["ALL_STITCHED"]}, "levels", "ALL_STITCHED is not in evaluation.levels"),
    ({"level_names": {"L2": "2"}, "levels": ["L1"]}, "level_names", "L2 is not one of its levels"),
    ({"path": "a/{split}"}, "path", "only {dataset}"),
], ids=["field", "no-image", "no-level", "two-levels", "not-evaluated", "level-name", "path-field"])
def test_a_bad_entry_is_one_line_naming_its_key(ext, key, needle):
    cfg = _config(**ext)
    cfg["evaluation"]["levels"] = ["L1", "L2", "LR", "HR"]
    with pytest.raises(RefsrError) as err:
        external.check_config(cfg, registry.names())
    assert str(err.value).startswith(f"config key external.theirs.{key}: ") and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_a_registry_name_or_several_datasets_without_dataset_in_the_path_is_refused():
    cfg = refsr_config.validate({"external": {"srntt": {"kind": "outputs", "path": "x"}}})
    with pytest.raises(RefsrError, match="external.srntt: srntt is a model of the registry"):
        external.check_config(cfg, registry.names())
    cfg = _config()
    cfg["eval_datasets"] = ["a", "b"]
    with pytest.raises(RefsrError, match=r"external.theirs.path: 2 datasets are evaluated"):
        external.check_config(cfg, registry.names())


def test_layouts_and_level_names_say_where_each_image_is():
    ext = ExternalOutputs("t", "out/{dataset}", "flat", level_names={"L1": "1"})
    assert ext.file("cufed5", "007", 7, "L1") == Path("out/cufed5/007_1.png")
    assert ext.file("cufed5", "007", 7, "L2") == Path("out/cufed5/007_L2.png")
    assert ExternalOutputs("t", "o", "by_level").file("d", "a", 0, "HR") == Path("o/HR/a.png")
    assert ExternalOutputs("t", "o", "{index:03d}_sr.png", levels=("L1",)).file("d", "x", 5, "L1") \
        == Path("o/005_sr.png")
    assert ext.row_label == "t (external)"


def _dataset(root: Path) -> tuple[layout.Dataset, pd.DataFrame]:
    """Two test images (32x24 and 30x20 HR: the latter crops to 28x20); a has L1 and L2, b only L1."""
    root.mkdir(parents=True, exist_ok=True)
    groups = []
    for name, (w, h) in {"a": (32, 24), "b": (30, 20)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / f"{name}.png")
        groups.append(layout.TestGroup(name, root / f"{name}.png", refs={"L1": root / f"{name}.png"}))
    groups[0].refs["L2"] = root / "a.png"
    write_tiers_csv(root / "tiers.csv", {"a": ["L1", "L2"], "b": ["L1"]})
    return layout.Dataset("toy", root, groups), read_tiers(root / "tiers.csv")


def _write(path: Path, w: int, h: int, value: int = 7) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def test_every_problem_is_listed_at_once_and_nothing_is_written(tmp_path):
    ds, tiers = _dataset(tmp_path / "data")
    folder = tmp_path / "theirs"
    _write(folder / "a_L1.png", 32, 24)
    _write(folder / "a_L2.png", 31, 24)  # mis-sized
    (folder / "b_L1.png").write_bytes(b"not a png")  # unreadable
    ext = ExternalOutputs("theirs", str(folder), "flat", levels=("L1", "L2", "HR"))
    found = problems(ext, ds, tiers, ["L1", "L2", "HR"], 4)
    # b has no L2 (structurally absent): not expected
    assert found == ["a_L2.png is 31x24, the HR 32x24", "a_HR.png missing", "b_L1.png unreadable",
                     "b_HR.png missing"]
    out = tmp_path / "sr"
    with pytest.raises(RefsrError) as err:
        collect(ext, ds, tiers, ["L1", "L2", "HR"], 4, out)
    assert "4 problem(s): a_L2.png is 31x24" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_collect_writes_the_pipeline_layout_pixel_for_pixel(tmp_path):
    ds, tiers = _dataset(tmp_path / "data")
    folder = tmp_path / "theirs"
    _write(folder / "L1" / "a.png", 32, 24, 11)
    _write(folder / "L1" / "b.png", 28, 20, 12)  # the scale-cropped HR's size
    ext = ExternalOutputs("theirs", str(folder), "by_level", levels=("L1",))
    assert collect(ext, ds, tiers, ["L1"], 4, tmp_path / "sr") == 2
    got = np.asarray(Image.open(tmp_path / "sr" / "b" / "L1.png"))
    assert got.shape == (20, 28, 3) and (got == 12).all()
    assert sorted(p.relative_to(tmp_path / "sr").as_posix() for p in (tmp_path / "sr").rglob("*.png")) \
        == ["a/L1.png", "b/L1.png"]


# ----------------------------------------------------------------------------- in the pipeline


def _with_external(wd: Path, ext: dict) -> Path:
    cfg = yaml.safe_load((wd / SMOKE).read_text())
    cfg["external"] = ext
    path = wd / "configs" / "external.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_an_external_copy_of_a_models_outputs_reproduces_its_evaluation(smoke_run, tmp_path):
    """The smoke run's own srresnet SR folder, as an external method: the same evaluation CSV,
    byte for byte; the tables label it external; the benchmark table appears with it; a
    second external with only L1 (flat names) shows n/g at the other levels."""
    wd = copy_of_run(smoke_run, tmp_path / "run")
    theirs = tmp_path / "theirs"
    shutil.copytree(wd / "results/sr/embedded/srresnet", theirs)
    flat = tmp_path / "flat"
    flat.mkdir()
    for group in (wd / "results/sr/embedded/srresnet").iterdir():
        if group.is_dir():
            shutil.copy(group / "L1.png", flat / f"{group.name}_1.png")
    cfg = _with_external(wd, {
        "mine": {"kind": "outputs", "path": str(theirs), "label": "SRResNet again", "source": "the smoke run"},
        "onlyl1": {"kind": "outputs", "path": str(flat), "pattern": "flat", "levels": ["L1"],
                   "level_names": {"L1": "1"}}})
    snakemake(wd, "results/tables/main.md", "results/tables/benchmark.md", "--cores", "2", "--configfile", cfg)
    ev = wd / "results/eval/embedded"
    assert (ev / "mine.csv").read_bytes() == (ev / "srresnet.csv").read_bytes()
    l1 = pd.read_csv(ev / "onlyl1.csv", dtype={"image": str})
    assert set(l1["level"]) == {"L1"}
    ref = pd.read_csv(ev / "srresnet.csv", dtype={"image": str})
    assert l1.equals(ref[ref["level"] == "L1"].reset_index(drop=True))
    main = (wd / "results/tables/main.md").read_text()
    assert "| SRResNet again (external) |" in main and "from the smoke run" in main
    per_level = (wd / "results/tables/per_level.md").read_text()
    row = next(x for x in per_level.splitlines() if x.startswith("| onlyl1 (external)"))
    assert row.count("n/g") == len(yaml.safe_load((wd / SMOKE).read_text()).get("evaluation", {}).get(
        "levels", refsr_config.defaults("evaluation.levels"))) - 1
    bench = (wd / "results/tables/benchmark.md").read_text()
    assert "SRResNet again (external)" in bench and "external images (the smoke run)" in bench
    presets = pd.read_csv(ev / "presets/mine.csv")
    assert set(presets["preset"]) == {"refsr", "ttsr", "basicsr", "mmagic"}
    # the refsr preset's L1 scores are the evaluation's own
    same = presets[(presets["preset"] == "refsr") & (presets["level"] == "L1")]["psnr"].to_numpy()
    assert np.allclose(same, ref[ref["level"] == "L1"]["psnr"].to_numpy(), atol=1e-6)

    # a missing image and a mis-sized one: one line at DAG build, both named
    (flat / "astronaut_1.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "chelsea_1.png")
    proc = snakemake(wd, "-n", "--configfile", cfg, check=False)
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("refsr:")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr
    assert "external.onlyl1.path" in lines[0] and "astronaut_1.png missing" in lines[0] \
        and "chelsea_1.png is 8x8" in lines[0]


def test_benchmark_table_compares_a_published_number_under_its_own_preset_only():
    """TTSR-rec.pt's published L1 number (preset ttsr, PIL LR) is set beside our ttsr-preset L1
    score when the run's LR is PIL, whatever the run's own protocol; with MATLAB LR it says why
    not; a row without a refsr model says so."""
    from refsr.evaluation.protocol import resolve_protocol
    from refsr.report import paper
    from refsr.report.benchmark import benchmark_table
    from refsr.report.provenance import Provenance

    summary = pd.DataFrame([{"dataset": "cufed5", "model": "ttsr_rec", "level": lv, "n_images": 2, "n_level": 2,
                             "n_missing": 0, "psnr": 26.0, "ssim": 0.8, "lpips": np.nan, "stlpips": 0.1,
                             "psnr_n": 2, "ssim_n": 2, "lpips_n": 0, "stlpips_n": 2, "given": True}
                            for lv in ("L1", "ALL_STITCHED")])
    presets = pd.DataFrame([{"dataset": "cufed5", "model": "ttsr_rec", "preset": p, "level": lv, "n": 2,
                             "psnr": 26.5 if p == "ttsr" else 26.0, "ssim": 0.81}
                            for p in ("refsr", "ttsr", "basicsr", "mmagic") for lv in ("L1", "ALL_STITCHED")])
    prov = Provenance("protocol", "vgg", "lpips", "abc", "hash", datasets={"cufed5": 2})
    pub = next(p for p in paper.PUBLISHED if p.model == "ttsr_rec" and p.level == "L1")
    for resize, comparable in (("pil", True), ("matlab", False)):
        table = benchmark_table(summary, presets, ["ttsr_rec"], ["cufed5"], prov, ["L1", "ALL_STITCHED"],
                                {"ttsr_rec": "imported weights (ttsr-official)"},
                                resolve_protocol("refsr", 4, resize), "cufed5", False)
        rows = pd.read_csv(io.StringIO(table.csv))
        row = rows[(rows["part"] == "published") & (rows["published_method"] == pub.method)].iloc[0]
        assert bool(row["comparable"]) is comparable, row["why_not"]
        if comparable:
            assert row["psnr"] == pytest.approx(26.5) and row["delta_psnr"] == pytest.approx(26.5 - pub.psnr)
        else:
            assert "LR resize differs" in row["why_not"] and np.isnan(row["psnr"])
        assert "Only 2 of the 126 CUFED5 test groups" in table.md
        no_model = rows[(rows["part"] == "published") & rows["method"].isna()]
        assert (no_model["why_not"].str.startswith("not run here")).all()
    assert set(rows[rows["part"] == "preset"]["preset"]) == {"refsr", "ttsr", "basicsr", "mmagic"}


def test_the_benchmark_config_plans_every_released_model_on_both_sets_without_training(tmp_path):
    """configs/benchmark.yaml, with its folders in place (stand-in files: a dry run reads no
    weights): nothing trains, every model is imported once, every method is evaluated on CUFED5
    and WR-SR and scored under the presets, and the tables rule writes the benchmark table."""
    from conftest import planned_jobs

    from refsr.models.importers import RELEASES, released_names

    wd = tmp_path / "bench"
    shutil.copytree(Path(__file__).resolve().parents[1] / "configs", wd / "configs")
    for k in range(6):
        _write(wd / "data/CUFED5" / f"000_{k}.png", 16, 16)
    _write(wd / "data/WR-SR/input/001.png", 16, 16)
    _write(wd / "data/WR-SR/ref/001_ref.png", 16, 16)
    (wd / "released/SRNTT").mkdir(parents=True)
    folders = {"c2matching-official": "C2-Matching", "masa-official": "MASA-SR"}
    stand_ins = [f"{folders[source]}/{name}" for source in RELEASES for name in released_names(source)]
    for name in stand_ins + ["TTSR/TTSR-rec.pt", "TTSR/TTSR.pt"]:
        (wd / "released" / name).parent.mkdir(parents=True, exist_ok=True)
        (wd / "released" / name).write_bytes(b"")
    small = wd / "configs/small.yaml"
    small.write_text(yaml.safe_dump({"datasets": {
        "cufed5": {"kind": "cufed5", "test_dir": "data/CUFED5", "groups": 1},
        "wrsr": {"kind": "wrsr", "test_dir": "data/WR-SR", "groups": 1}}}))
    jobs = planned_jobs(wd, ["configs/benchmark.yaml", "configs/small.yaml"])
    cfg = yaml.safe_load((wd / "configs/benchmark.yaml").read_text())
    assert "train" not in jobs and "correspondence" not in jobs
    assert sorted(j.wildcards["model"] for j in jobs["import_weights"]) == sorted(cfg["pretrained"])
    pairs = {(j.wildcards["dataset"], j.wildcards["model"]) for j in jobs["evaluate_presets"]}
    assert pairs == {(ds, m) for ds in ("cufed5", "wrsr") for m in cfg["models"]}
    assert "results/tables/benchmark.md" in jobs["tables"][0].output
    assert "results/imported/c2matching/released.json" in jobs["tables"][0].input
