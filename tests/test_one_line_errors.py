"""Issue 28, cases 5-19 and its "Also" items: inputs that ended in a traceback, a crash inside a
job or a half-done output, now a one-line error (``refsr: error: <file or key>: <problem>``,
exit 1) before any work, or a bounded, complete result. Cases 1-4 are in test_silently_wrong.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import arch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from refsr.cli import main
from refsr.core.errors import RefsrError

RNG = np.random.default_rng(2028)


def one_line_error(capsys, rc: int, needle: str | None = None) -> str:
    """The single stderr line of a failed command (asserting it is one ``refsr: error:`` line)."""
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith("refsr: matching reference bands")]
    assert rc == 1, err
    assert len(err) == 1 and err[0].startswith("refsr: error: "), err
    if needle is not None:
        assert needle in err[0], err[0]
    return err[0]


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (VGG features with some structure)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def save(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def checkpoint(path: Path, name: str = "srntt") -> Path:
    from refsr.models.checkpoint import arch_config, build_model, save_checkpoint

    torch.manual_seed(0)
    sizes = arch_config(name, arch(n_blocks=1, n_feats=8, n_blocks_transfer=[1, 1, 1]))
    save_checkpoint(path, build_model(name, sizes), name, sizes)
    return path


# ----------------------------------------------------------------------------- 9. reference memory


def test_case9_transfer_streams_the_reference_and_equals_the_whole_maps():
    """With a budget far below the reference's maps, transfer works in tiles and bands (several
    references, sizes not multiples of 4) and gives what matching and swapping whole maps gives."""
    from refsr.core.imageio import to_tensor
    from refsr.data.resize import down_up, upscale
    from refsr.features.vgg import load_vgg19
    from refsr.matching import SWAP_SCALES, correspond, extract_features, swap, transfer

    vgg = load_vgg19()
    lr_up = to_tensor(upscale(photo(22, 19, 1), 4))
    refs = [photo(171, 202, 2), photo(97, 130, 3)]
    dus = [down_up(r) for r in refs]
    corr0 = correspond(lr_up, [to_tensor(r) for r in refs], vgg, refs_down_up=[to_tensor(d) for d in dus])
    m0 = swap(corr0, [extract_features(vgg, to_tensor(r), tuple(SWAP_SCALES)) for r in refs],
              out_hw=tuple(lr_up.shape[-2:]))
    corr1, m1 = transfer(lr_up, refs, vgg, max_mb=0.5, refs_down_up=dus)  # uint8 arrays, tiled
    assert torch.equal(corr1.index, corr0.index) and corr1.ref_shapes == corr0.ref_shapes
    for layer in m0:
        torch.testing.assert_close(m1[layer], m0[layer], rtol=1e-5, atol=1e-5)


_PEAK = textwrap.dedent("""
    import resource, sys, numpy as np, torch
    from PIL import Image
    from refsr.core.imageio import to_tensor
    from refsr.data.resize import down_up, upscale
    from refsr.features.vgg import load_vgg19
    from refsr.matching import transfer
    torch.set_num_threads(1)
    h, w, max_mb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rng = np.random.default_rng(0)
    def photo(h, w):
        small = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
    vgg = load_vgg19()
    lr_up = to_tensor(upscale(photo(10, 10), 4))
    transfer(lr_up, [photo(48, 48)], vgg, max_mb=max_mb)  # warm up: libraries, allocator
    ref = photo(h, w)
    du = down_up(ref)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transfer(lr_up, [ref], vgg, max_mb=max_mb, refs_down_up=[du])
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
""")


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(h=st.integers(300, 700), w=st.integers(300, 900))
def test_case9_peak_memory_of_the_reference_path_is_bounded(h, w):
    """The extra peak RSS of transfer (measured in a fresh process) stays near --max-mb 16 for
    references whose whole VGG19 maps would take 3 to 11 times that (relu1_1 alone: 64 ch x 4 B
    per pixel, 50 to 160 MB here; the whole forward pass about 1 KB per pixel)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(h), str(w), "16"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    extra_mb = float(proc.stdout.split()[-1])
    whole_mb = h * w * 1024 / 2**20
    assert extra_mb < 64, f"{w}x{h} reference: {extra_mb:.0f} MB over the warm-up peak (whole maps: {whole_mb:.0f} MB)"


def test_case9_approximate_matching_refuses_a_reference_over_the_budget(tmp_path, capsys):
    lr, ref = save(tmp_path / "lr.png", photo(20, 20)), save(tmp_path / "big ref.png", photo(400, 300))
    ckpt = checkpoint(tmp_path / "srntt.pt")
    argv = ["sr", "--lr", str(lr), "--ref", str(ref), "--checkpoint", str(ckpt), "--out",
            str(tmp_path / "sr.png"), "--match-mode", "approximate", "--max-mb", "1"]
    line = one_line_error(capsys, main(argv), str(ref))
    assert "8 MB" in line and "--max-mb" in line and "matching.max_mb" in line and "exact" in line
    assert not (tmp_path / "sr.png").exists()


# ----------------------------------------------------------------------------- 5. tiny images


@pytest.mark.parametrize("side", [12, 16, 20])
def test_case5_tiny_image_score_is_one_line(side, tmp_path, capsys):
    """ST-LPIPS of an image under its networks' smallest side is NaN with a reason (the score
    command, the evaluate stage and the metric alike), never a traceback from its padding."""
    from refsr.evaluation.stlpips import MIN_SIDE, STLPIPSMetric

    sr, hr = save(tmp_path / "sr.png", photo(side, side, 1)), save(tmp_path / "hr.png", photo(side, side, 2))
    rc = main(["score", str(sr), str(hr), "--no-lpips", "--scale", "1", "--crop", "0"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)
    assert out["stlpips"] is None and f"needs both sides >= {MIN_SIDE['alex']} px" in out["stlpips_reason"]
    assert str(sr) in out["stlpips_reason"] and out["psnr"] is not None
    metric = STLPIPSMetric("vgg")
    value = metric(photo(side, side), photo(side, side, 3))
    assert (side < MIN_SIDE["vgg"]) == np.isnan(value) and metric.skipped == (side < MIN_SIDE["vgg"])


# ----------------------------------------------------------------------------- 6. CPU out of memory

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
           "you tried to allocate 10737418240 bytes. Error code 12 (Cannot allocate memory)")


def _rule(tmp_path, stage, name="infer"):
    from types import SimpleNamespace

    from refsr.stages.runner import run

    smk = SimpleNamespace(log=[str(tmp_path / "rule.log")], threads=1, rule=name)
    with pytest.raises(SystemExit) as exc:
        run(stage, smk)
    lines = (tmp_path / "rule.log").read_text().splitlines()
    return exc.value.code, [ln for ln in lines if " ERROR " in ln], lines


def test_case6_cpu_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    from refsr.core.errors import user_error
    from refsr.inference.resolver import SuperResolver

    err = user_error(RuntimeError(CPU_OOM), where="x.png")
    assert str(err) == "x.png: out of CPU memory (10240 MB requested); try a smaller --max-mb / --tile or image"
    assert user_error(RuntimeError("shape mismatch")) is None  # a bug keeps its traceback

    def oom(*args, **kwargs):
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(SuperResolver, "__call__", oom)
    lr = save(tmp_path / "lr.png", photo(16, 16))
    argv = ["sr", "--lr", str(lr), "--checkpoint", "bicubic", "--out", str(tmp_path / "sr.png")]
    one_line_error(capsys, main(argv), "out of CPU memory (10240 MB requested)")
    assert not (tmp_path / "sr.png").exists()

    def stage(smk):
        raise RuntimeError(CPU_OOM)

    code, errors, _ = _rule(tmp_path, stage)
    assert code == 1 and len(errors) == 1 and errors[0].endswith("refsr: rule infer: out of CPU memory "
                                                                 "(10240 MB requested); try a smaller "
                                                                 "--max-mb / --tile or image")


def test_also_ctrl_c_in_a_rule_is_one_log_line_and_exit_130(tmp_path):
    def stage(smk):
        raise KeyboardInterrupt

    code, errors, lines = _rule(tmp_path, stage, "train")
    assert code == 130 and len(errors) == 1 and errors[0].endswith("refsr: rule train interrupted")
    assert not any("Traceback" in ln for ln in lines)


# ----------------------------------------------------------------------------- 7, 8, 10. import-weights


@pytest.fixture
def srntt_release(tmp_path):
    """A synthetic released SRNTT folder (upscale.npz, srntt_init.npz, srntt.npz)."""
    from test_official_import import draw, save_npz, transfer_vars, upscale_vars

    root = tmp_path / "released"
    root.mkdir()
    rng = np.random.default_rng(5)
    save_npz(root / "upscale.npz", upscale_vars(1, 8), draw(upscale_vars(1, 8), rng))
    for name in ("srntt_init.npz", "srntt.npz"):
        save_npz(root / name, transfer_vars(4, 8), draw(transfer_vars(4, 8), rng))
    return root


def _edit_npz(path: Path, edit) -> None:
    arrays = edit(list(np.load(path, allow_pickle=True)["params"]))
    arr = np.empty(len(arrays), dtype=object)
    arr[:] = arrays
    np.savez(path, params=arr)


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.import-")]


def test_case8_srntt_release_with_a_damaged_third_file_writes_nothing(srntt_release, tmp_path, capsys):
    _edit_npz(srntt_release / "srntt.npz", lambda a: a[:-1])
    out = tmp_path / "weights"
    one_line_error(capsys, main(["import-weights", "srntt-official", str(srntt_release), "--out", str(out)]),
                   "srntt.npz")
    _nothing_written(out)
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")  # what was there stays
    one_line_error(capsys, main(["import-weights", "srntt-official", str(srntt_release), "--out", str(out)]))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_case8_ttsr_folder_with_one_bad_file_writes_nothing(tmp_path, capsys):
    from refsr.models.ttsr import TTSR

    src = tmp_path / "ttsr"
    src.mkdir()
    torch.manual_seed(0)
    torch.save(TTSR(n_blocks=[1, 1, 1, 1], n_feats=8, res_scale=1.0).state_dict(), src / "TTSR-rec.pt")
    (src / "TTSR.pt").write_bytes(b"\xff" * 4096)
    out = tmp_path / "weights"
    one_line_error(capsys, main(["import-weights", "ttsr-official", str(src), "--out", str(out)]), "TTSR.pt")
    _nothing_written(out)
    (src / "TTSR.pt").unlink()
    assert main(["import-weights", "ttsr-official", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ttsr_rec.pt"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".weights.import-")]


def test_case7_import_weights_on_a_full_disk_is_one_line_and_writes_nothing(srntt_release, tmp_path, capsys,
                                                                            monkeypatch):
    import refsr.models.checkpoint as checkpoint_module

    real_save, calls = torch.save, []

    def full_disk(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) < 3:
            return real_save(obj, path, *args, **kwargs)
        Path(path).write_bytes(b"PK\x03\x04partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    out = tmp_path / "weights"
    line = one_line_error(capsys, main(["import-weights", "srntt-official", str(srntt_release), "--out",
                                        str(out)]), "srntt.pt: cannot write the checkpoint (PytorchStreamWriter "
                                                    "failed writing file data/0: file write failed; ")
    assert "MB free on its disk)" in line and "inline_container" not in line
    _nothing_written(out)


def test_case10_nan_in_released_weights_names_the_input_file_and_parameter(srntt_release, tmp_path, capsys):
    def poison(arrays):
        arrays[0] = arrays[0].copy()
        arrays[0].flat[3] = np.nan
        return arrays

    _edit_npz(srntt_release / "upscale.npz", poison)
    out = tmp_path / "weights"
    line = one_line_error(capsys, main(["import-weights", "srntt-official", str(srntt_release), "--out",
                                        str(out)]))
    assert line.startswith(f"refsr: error: {srntt_release / 'upscale.npz'}: parameter ")
    assert "1 non-finite value(s)" in line and "diverged" not in line and str(out) not in line
    _nothing_written(out)


# ----------------------------------------------------------------------------- 12. not a file


def test_case12_checkpoint_folder_or_symlink_loop_is_not_not_found(tmp_path, capsys):
    lr = save(tmp_path / "lr.png", photo(16, 16))
    folder = tmp_path / "ckpts"
    folder.mkdir()
    loop = tmp_path / "loop.pt"
    loop.symlink_to(tmp_path / "loop2.pt")
    (tmp_path / "loop2.pt").symlink_to(loop)
    for ckpt, problem in ((folder, "is a directory, expected a checkpoint file"),
                          (loop, "cannot open the checkpoint (Too many levels of symbolic links)"),
                          (tmp_path / "absent.pt", "checkpoint not found")):
        argv = ["sr", "--lr", str(lr), "--checkpoint", str(ckpt), "--out", str(tmp_path / "sr.png")]
        assert one_line_error(capsys, main(argv)) == f"refsr: error: {ckpt}: {problem}"
    argv = ["import-weights", "refsr", str(folder), "--out", str(tmp_path / "out")]
    assert one_line_error(capsys, main(argv)) == f"refsr: error: {folder}: is a directory, expected a checkpoint file"


# ----------------------------------------------------------------------------- 13, 14. sizes


def test_case13_degrade_scale_that_leaves_no_usable_lr_is_refused(tmp_path, capsys):
    hr, out = save(tmp_path / "photo.png", photo(120, 160)), tmp_path / "lr.png"
    line = one_line_error(capsys, main(["degrade", str(hr), str(out), "--scale", "100"]))
    assert line == (f"refsr: error: --scale: 100 makes the 160x120 image {hr} a 1x1 LR, under the smallest "
                    f"usable LR (3x3); use --scale 40 at most")
    assert not out.exists()
    assert main(["degrade", str(hr), str(out), "--scale", "40"]) == 0
    assert Image.open(out).size == (4, 3)


def test_case14_bench_swap_at_the_smallest_size_runs(capsys):
    assert main(["bench", "swap", "--hr-size", "12x12", "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["content_positions"] == 9 and out["hr_size"] == "12x12"


# ----------------------------------------------------------------------------- 11. --match-sisr


def test_case11_match_sisr_with_a_reference_based_checkpoint_names_the_option_and_file(tmp_path, capsys):
    lr, ref = save(tmp_path / "lr.png", photo(16, 16)), save(tmp_path / "ref.png", photo(64, 64))
    ckpt = checkpoint(tmp_path / "srntt.pt")
    argv = ["sr", "--lr", str(lr), "--ref", str(ref), "--checkpoint", str(ckpt), "--match-sisr", str(ckpt),
            "--out", str(tmp_path / "sr.png")]
    line = one_line_error(capsys, main(argv))
    assert line == f"refsr: error: --match-sisr {ckpt}: must be a single-image model, got srntt"


# ----------------------------------------------------------------------------- 17, 18. DAG build


def test_case17_pretrained_source_that_cannot_hold_the_model_is_refused_at_validation():
    from refsr.core.config import validate
    from refsr.models import importers

    cfg = validate({"recipe": "official", "pretrained": {"srntt": {"source": "ttsr-official", "path": "TTSR.pt"}}})
    with pytest.raises(RefsrError) as exc:
        importers.check_config(cfg)
    assert str(exc.value) == ("config key pretrained.srntt.source: ttsr-official weights hold ttsr, ttsr_rec, "
                              "not srntt; give srntt weights of its own (source refsr, or train it here)")
    for source, model in (("srntt-official", "srntt_l2"), ("ttsr-official", "ttsr"), ("refsr", "srntt")):
        importers.check_config(validate({"recipe": "official", "models": ["bicubic", model],
                                         "pretrained": {model: {"source": source, "path": "x"}}}))


def _folder_config(tmp_path, **extra):
    from refsr.core.config import validate

    for sub in ("hr", "refs"):
        (tmp_path / sub).mkdir(exist_ok=True)
    mine = {"kind": "folder", "hr_dir": str(tmp_path / "hr"), "refs_dir": str(tmp_path / "refs"), **extra}
    return validate({"datasets": {"mine": mine}, "train_dataset": "mine", "eval_datasets": ["mine"],
                     "models": ["bicubic", "srresnet"]})


def test_case18_train_dataset_without_training_pairs_is_refused_at_validation(tmp_path):
    from refsr.models.registry import check_config

    with pytest.raises(RefsrError) as exc:
        check_config(_folder_config(tmp_path))
    assert str(exc.value) == ("datasets.mine.train_dir: required: this config trains srresnet on train_dataset "
                              "mine, which has no training pairs without train_dir (a folder of input/ and ref/)")
    (tmp_path / "train").mkdir()
    check_config(_folder_config(tmp_path, train_dir=str(tmp_path / "train")))
    cfg = _folder_config(tmp_path)
    check_config({**cfg, "models": ["bicubic"]})  # nothing trained here: no pairs needed
    check_config({**cfg, "pretrained": {"srresnet": {"source": "refsr", "path": "x.pt"}}})


# ----------------------------------------------------------------------------- 16. level defaults


def test_case16_level_defaults_follow_the_evaluated_levels():
    from refsr.core.config import validate

    ev = validate({"evaluation": {"levels": ["L1", "LR", "HR"]}})["evaluation"]
    assert ev["main_level"] == "L1" and ev["grid_levels"] == ["L1"]
    ev = validate({"evaluation": {"levels": ["LR", "HR"]}})["evaluation"]
    assert ev["main_level"] == "LR" and ev["grid_levels"] == ["LR", "HR"]
    ev = validate({"evaluation": {"levels": ["L5", "L3", "ALL"]}})["evaluation"]
    assert ev["grid_levels"] == ["L3", "L5"] and ev["main_level"] == "L5"
    ev = validate({})["evaluation"]  # the schema's defaults are unchanged
    assert ev["main_level"] == "L1" and ev["grid_levels"] == ["L1", "L3", "L5"]
    with pytest.raises(RefsrError) as exc:  # set by the user: still an error
        validate({"evaluation": {"levels": ["L1", "LR", "HR"], "grid_levels": ["L3"]}})
    assert str(exc.value) == "config key evaluation.grid_levels: 'L3' is not one of evaluation.levels (L1, LR, HR)"
    with pytest.raises(RefsrError, match="evaluation.main_level"):
        validate({"evaluation": {"levels": ["LR", "HR"], "main_level": "L1"}})


# ----------------------------------------------------------------------------- 15. dataset names

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _dry_run(tmp_path: Path, edit) -> subprocess.CompletedProcess:
    import shutil

    import yaml

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    cfg = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    edit(cfg)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "-s", str(ROOT / "workflow/Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(tmp_path / "mine.yaml")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_case15_dataset_named_with_regex_characters_plans_jobs(tmp_path):
    def rename(cfg):
        cfg["datasets"] = {"a+b": cfg["datasets"]["embedded"]}
        cfg["train_dataset"], cfg["eval_datasets"] = "a+b", ["a+b"]
        cfg["evaluation"] = {"levels": ["L1", "LR", "HR"]}  # case 16: grid_levels follows them

    proc = _dry_run(tmp_path, rename)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "build_dataset" in proc.stdout and "a+b" in proc.stdout


@pytest.mark.parametrize("name, bad", [("a/b", "holds '/'"), (".hidden", "starts with '.'"), ("", "is empty"),
                                       (" ", "is empty")])
def test_case15_dataset_name_that_is_no_folder_name_is_refused_at_validation(name, bad):
    from refsr.core.config import validate

    with pytest.raises(RefsrError) as exc:
        validate({"datasets": {name: {"kind": "embedded"}}, "train_dataset": name, "eval_datasets": [name]})
    assert str(exc.value).endswith(f": a dataset name is a folder name; {name!r} {bad}")


# ----------------------------------------------------------------------------- 19 and Also


def test_case19_reference_subfolders_are_warned_about_and_staging_is_removed(tmp_path, caplog):
    import logging

    from refsr.data import build_to

    hr_dir, refs = tmp_path / "hr", tmp_path / "refs"
    (refs / "photo" / "more").mkdir(parents=True)
    hr_dir.mkdir()
    save(hr_dir / "photo.png", photo(64, 64, 1))
    save(refs / "photo" / "near.png", photo(64, 64, 2))
    save(refs / "photo" / "more" / "far.png", photo(64, 64, 3))
    root = tmp_path / "results" / "data" / "mine"
    with caplog.at_level(logging.WARNING):
        ds = build_to("mine", {"kind": "folder", "hr_dir": str(hr_dir), "refs_dir": str(refs)}, root)
    assert [list(g.refs) for g in ds.groups] == [["near"]]
    warned = [r.getMessage() for r in caplog.records if "sub-folder(s) ignored" in r.getMessage()]
    assert warned == [f"{refs / 'photo'}: 1 sub-folder(s) ignored (only the images directly in it are "
                      f"references): more"]
    assert sorted(p.name for p in root.parent.iterdir()) == ["mine"]  # no empty .mine.staging/
