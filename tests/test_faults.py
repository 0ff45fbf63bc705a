"""Bad input and faults of the machine (issue 14): one test per case of the issue, named after
it. Every failure is exit status 1 with exactly one ``refsr: error:`` line on stderr, and
nothing is left behind."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import arch
from PIL import Image

from refsr.cli import main
from refsr.core.errors import RefsrError

REFSR = str(Path(sys.executable).parent / "refsr")
ARCH = arch(n_blocks=1, n_feats=8)


def one_line_error(capsys, rc: int, needle: str | None = None) -> str:
    """The single stderr line of a failed command (asserting it is one ``refsr: error:`` line)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1, err
    assert len(err) == 1 and err[0].startswith("refsr: error: "), err
    if needle is not None:
        assert needle in err[0], err[0]
    return err[0]


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries (atomic writes, write checks) left in ``folder``."""
    return sorted(p.name for p in Path(folder).rglob(".*"))


@pytest.fixture
def pics(tmp_path) -> dict[str, Path]:
    import skimage.data

    photo = skimage.data.astronaut()
    out = {}
    for name, (h, w) in {"hr": (64, 64), "lr": (16, 16), "one": (1, 1), "eleven": (11, 11),
                         "twelve": (12, 12), "odd": (77, 101)}.items():
        out[name] = tmp_path / f"{name}.png"
        Image.fromarray(photo[:h, :w]).save(out[name])
    return out


def srresnet_checkpoint(path: Path, sizes: dict | None = None) -> Path:
    from refsr.models.checkpoint import arch_config, build_model, save_checkpoint

    torch.manual_seed(0)
    sizes = arch_config("srresnet", sizes or ARCH)
    save_checkpoint(path, build_model("srresnet", sizes), "srresnet", sizes)
    return path


@contextlib.contextmanager
def unwritable(folder: Path):
    """``folder`` made unwritable: mode 555, or immutable (``chattr +i``) for root, whom modes
    do not stop; skips when neither works here."""
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root and chattr +i is not available: cannot make a folder unwritable")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


# ---------------------------------------------------------------- 1. outputs that cannot be written


@pytest.mark.parametrize("command", ["degrade", "sr"])
def test_case1_output_is_a_directory(command, pics, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    argv = (["degrade", str(pics["hr"]), str(out)] if command == "degrade"
            else ["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic", "--out", str(out)])
    line = one_line_error(capsys, main(argv))
    assert line == f"refsr: error: {out}: is a folder, expected an output file name"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["degrade", "sr"])
def test_case1_output_in_unwritable_directory(command, pics, tmp_path, capsys, monkeypatch):
    from refsr.inference import resolver

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(resolver.SuperResolver, "__init__", no_work)
    monkeypatch.setattr("refsr.data.resize.degrade", no_work)
    ckpt = srresnet_checkpoint(tmp_path / "srresnet.pt")
    with unwritable(tmp_path / "ro") as ro:
        for out in (ro / "x.png", ro / "sub" / "x.png"):
            argv = (["degrade", str(pics["hr"]), str(out)] if command == "degrade"
                    else ["sr", "--lr", str(pics["lr"]), "--checkpoint", str(ckpt), "--out", str(out)])
            line = one_line_error(capsys, main(argv), f"{ro}: cannot write in this folder (")
            assert line.endswith(")")
            assert list(ro.iterdir()) == []


def test_case1_output_under_a_file(pics, tmp_path, capsys):
    out = pics["hr"] / "x.png"  # the "folder" is an image file
    line = one_line_error(capsys, main(["degrade", str(pics["hr"]), str(out)]))
    assert line == f"refsr: error: {pics['hr']}: is not a folder, so {out} cannot be written"


def test_case1_fault_while_writing_is_one_line(pics, tmp_path, capsys, monkeypatch):
    def disk_full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half an image")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    out = tmp_path / "written.png"
    line = one_line_error(capsys, main(["degrade", str(pics["hr"]), str(out)]))
    assert line == f"refsr: error: {out}: cannot write (No space left on device)"
    assert not out.exists() and leftovers(tmp_path) == []


def test_case1_console_script_gives_no_traceback(pics, tmp_path):
    out = tmp_path / "dir"
    out.mkdir()
    proc = subprocess.run([REFSR, "degrade", str(pics["hr"]), str(out)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"refsr: error: {out}: is a folder, expected an output file name"]


def test_case1_rule_runner_turns_os_errors_into_one_line(tmp_path):
    from types import SimpleNamespace

    from refsr.stages.runner import run

    def stage(smk):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/locked.png")

    smk = SimpleNamespace(log=[str(tmp_path / "rule.log")], threads=1, rule="degrade")
    with pytest.raises(SystemExit) as exc:
        run(stage, smk)
    assert exc.value.code == 1
    errors = [ln for ln in (tmp_path / "rule.log").read_text().splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and errors[0].endswith("refsr: /data/locked.png: Permission denied")


def test_case1_rule_runner_keeps_tracebacks_of_bugs(tmp_path):
    from types import SimpleNamespace

    from refsr.stages.runner import run

    def stage(smk):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run(stage, SimpleNamespace(log=[str(tmp_path / "rule.log")], threads=1, rule="x"))


# ---------------------------------------------------------------- 2. output extensions


@pytest.mark.parametrize("name, got", [("out.xyz", "extension '.xyz'"), ("out", "no extension"),
                                       ("out.tmp", "extension '.tmp'")])
@pytest.mark.parametrize("command", ["degrade", "sr"])
def test_case2_unknown_or_missing_output_extension(command, name, got, pics, tmp_path, capsys):
    out = tmp_path / name
    argv = (["degrade", str(pics["hr"]), str(out)] if command == "degrade"
            else ["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic", "--out", str(out)])
    line = one_line_error(capsys, main(argv))
    assert line == (f"refsr: error: {out}: unsupported output: {got}; "
                    "use one of .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".png", ".PNG", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"])
def test_case2_every_listed_extension_is_written(suffix, pics, tmp_path, capsys):
    out = tmp_path / f"lr{suffix}"
    assert main(["degrade", str(pics["hr"]), str(out)]) == 0
    assert Image.open(out).size == (16, 16)


def test_case2_write_image_refuses_unknown_extension(tmp_path):
    from refsr.core.imageio import write_image

    with pytest.raises(RefsrError, match=r"x\.gif: unsupported output: extension '\.gif'"):
        write_image(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 3. damaged checkpoints


def test_case3_checkpoint_with_4kb_of_0xff_is_refused(pics, tmp_path, capsys):
    """The issue's reproduction: the middle of a default-width checkpoint is tensor data, which
    torch's zip reader does not check; the digest does."""
    ckpt = srresnet_checkpoint(tmp_path / "good.pt", arch(n_blocks=4))
    data = bytearray(ckpt.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = b"\xff" * 4096
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    out = tmp_path / "sr.png"
    line = one_line_error(capsys, main(["sr", "--lr", str(pics["lr"]), "--checkpoint", str(bad),
                                        "--out", str(out)]))
    assert line == (f"refsr: error: {bad}: integrity check failed: its digest does not match its "
                    "contents (the file is damaged or was modified after refsr wrote it)")
    assert not out.exists()
    assert main(["sr", "--lr", str(pics["lr"]), "--checkpoint", str(ckpt), "--out", str(out)]) == 0


def _raw_checkpoint(path: Path, version: int, poison: bool, digest: bool) -> Path:
    """A checkpoint written around ``save_checkpoint`` (as a damaged or foreign writer would)."""
    from refsr.models.checkpoint import arch_config, build_model, content_digest

    sizes = arch_config("srresnet", ARCH)
    state = build_model("srresnet", sizes).state_dict()
    if poison:
        state["extractor.head.weight"][0, 0, 0, 0] = float("nan")
    ckpt = {"format": "refsr-checkpoint", "version": version, "model": "srresnet", "recipe": "refsr",
            "arch_cfg": sizes, "state_dict": state}
    if digest:
        ckpt["digest"] = content_digest(ckpt)
    torch.save(ckpt, path)
    return path


def test_case3_nonfinite_weights_are_refused_even_with_a_valid_digest(tmp_path):
    from refsr.models.checkpoint import load_checkpoint

    path = _raw_checkpoint(tmp_path / "nan.pt", 2, poison=True, digest=True)
    with pytest.raises(RefsrError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path}: weight extractor.head.weight has 1 non-finite value(s) (NaN or "
                              "infinity) of 216: the checkpoint is unusable")


def test_case3_save_refuses_nonfinite_weights(tmp_path):
    from refsr.models.checkpoint import arch_config, build_model, save_checkpoint

    sizes = arch_config("srresnet", ARCH)
    model = build_model("srresnet", sizes)
    with torch.no_grad():
        model.extractor.head.bias[0] = float("inf")
    with pytest.raises(RefsrError, match="not saved: weight extractor.head.bias has 1 non-finite value"):
        save_checkpoint(tmp_path / "x.pt", model, "srresnet", sizes)
    assert list(tmp_path.iterdir()) == []


def test_case3_version2_without_digest_is_refused(tmp_path):
    from refsr.models.checkpoint import read_checkpoint

    path = _raw_checkpoint(tmp_path / "nodigest.pt", 2, poison=False, digest=False)
    with pytest.raises(RefsrError, match="integrity check failed: has no digest"):
        read_checkpoint(path)


def test_case3_version1_is_read_with_a_warning_and_reimported_with_a_digest(tmp_path, caplog):
    from refsr.models.checkpoint import CHECKPOINT_VERSION, content_digest, read_checkpoint
    from refsr.models.importers import import_weights

    old = _raw_checkpoint(tmp_path / "v1.pt", 1, poison=False, digest=False)
    read_checkpoint(old)
    assert "checkpoint version 1 has no integrity digest" in caplog.text
    written = import_weights("refsr", old, tmp_path / "imported")
    new = torch.load(written["srresnet"], weights_only=True)
    assert new["version"] == CHECKPOINT_VERSION == 2
    assert new["digest"] == content_digest(new)
    with pytest.raises(RefsrError, match="non-finite"):
        read_checkpoint(_raw_checkpoint(tmp_path / "v1nan.pt", 1, poison=True, digest=False))


def test_case3_digest_covers_metadata_and_every_tensor(tmp_path):
    from refsr.models.checkpoint import content_digest

    ckpt = torch.load(srresnet_checkpoint(tmp_path / "c.pt"), weights_only=True)
    ref = content_digest(ckpt)
    assert ckpt["digest"] == ref and len(ref) == 64
    changed = dict(ckpt, arch_cfg=dict(ckpt["arch_cfg"], n_blocks=2))
    assert content_digest(changed) != ref
    state = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    state["tail.weight"].view(-1)[7] = torch.nextafter(state["tail.weight"].view(-1)[7], torch.tensor(1.0))
    assert content_digest(dict(ckpt, state_dict=state)) != ref
    assert content_digest(dict(reversed(list(ckpt.items())))) == ref  # key order does not matter


def test_case3_damaged_training_state_is_ignored(tmp_path, caplog):
    from refsr.models.checkpoint import DIGEST_KEY

    state = tmp_path / "state.pt"
    torch.save({"fingerprint": "x", DIGEST_KEY: "0" * 64, "model": {}}, state)
    from refsr.training import trainer

    fake = type("T", (), {"state_path": state, "device": "cpu", "cfg": None})()
    trainer.Trainer._resume(fake)  # returns before touching the model: the digest does not match
    assert "ignoring training state" in caplog.text and "starting afresh" in caplog.text


# ---------------------------------------------------------------- 4. numeric options and --device


@pytest.mark.parametrize("extra, message", [
    (["--tile", "16", "--pad", "-5"], "--pad: must be an integer >= 0, got '-5'"),
    (["--tile", "-1"], "--tile: must be an integer >= 0, got '-1'"),
    (["--tile", "1.5"], "--tile: must be an integer, got '1.5'"),
    (["--max-mb", "nan"], "--max-mb: must be a finite number > 0, got 'nan'"),
    (["--max-mb", "inf"], "--max-mb: must be a finite number > 0, got 'inf'"),
    (["--max-mb", "0"], "--max-mb: must be a finite number > 0, got '0'"),
    (["--max-mb", "lots"], "--max-mb: must be a number, got 'lots'"),
    (["--device", "banana"], "--device: unknown device 'banana'; use cpu, cuda or cuda:N"),
    (["--device", "cpu:1"], "--device: unknown device 'cpu:1'; use cpu, cuda or cuda:N"),
])
def test_case4_bad_sr_options(extra, message, pics, tmp_path, capsys):
    out = tmp_path / "sr.png"
    argv = ["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic", "--out", str(out), *extra]
    assert one_line_error(capsys, main(argv)) == f"refsr: error: {message}"
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_case4_cuda_on_a_machine_without_gpu(pics, tmp_path, capsys):
    out = tmp_path / "sr.png"
    argv = ["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic", "--out", str(out), "--device", "cuda"]
    line = one_line_error(capsys, main(argv))
    assert line.startswith("refsr: error: --device: cuda requested but no CUDA device is available (torch ")
    assert not out.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_case4_cuda_with_a_gpu_runs(pics, tmp_path, capsys):
    ckpt = srresnet_checkpoint(tmp_path / "srresnet.pt")
    out = tmp_path / "sr.png"
    assert main(["sr", "--lr", str(pics["lr"]), "--checkpoint", str(ckpt), "--out", str(out),
                 "--device", "cuda"]) == 0
    n = torch.cuda.device_count()
    line = one_line_error(capsys, main(["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic",
                                        "--out", str(out), "--device", f"cuda:{n}"]))
    assert f"only {n} CUDA device(s) are visible" in line


@pytest.mark.parametrize("kwargs, message", [
    ({"tile": -1}, "tile: must be an integer >= 0 (0 = whole image), got -1"),
    ({"pad": -5}, "pad: must be an integer >= 0, got -5"),
    ({"max_mb": float("nan")}, "max_mb: must be a finite number > 0, got nan"),
    ({"max_mb": 0}, "max_mb: must be a finite number > 0, got 0"),
    ({"device": "banana"}, "device: unknown device 'banana'; use cpu, cuda or cuda:N"),
])
def test_case4_super_resolver_checks_its_arguments(kwargs, message):
    from refsr.inference.resolver import SuperResolver

    with pytest.raises(RefsrError) as exc:
        SuperResolver("bicubic", **kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("argv, message", [
    (["bench", "swap", "--repeats", "0"], "--repeats: must be an integer >= 1, got '0'"),
    (["bench", "swap", "--max-mb", "-1"], "--max-mb: must be a finite number > 0, got '-1'"),
    (["degrade", "a.png", "b.png", "--scale", "0"], "--scale: must be an integer >= 1, got '0'"),
])
def test_case4_other_numeric_options(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(capsys, main(argv)) == f"refsr: error: {message}"


# ---------------------------------------------------------------- 5. required options


def test_case5_sr_without_checkpoint_is_an_error(pics, tmp_path, capsys):
    out = tmp_path / "sr.png"
    line = one_line_error(capsys, main(["sr", "--lr", str(pics["lr"]), "--out", str(out)]))
    assert line == ("refsr: error: --checkpoint: required: a trained refsr checkpoint, or 'bicubic' "
                    "for bicubic upsampling")
    assert not out.exists()
    assert main(["sr", "--lr", str(pics["lr"]), "--checkpoint", "bicubic", "--out", str(out)]) == 0
    assert Image.open(out).size == (64, 64)


def test_case5_library_needs_a_checkpoint_too():
    from refsr.inference.resolver import SuperResolver

    with pytest.raises(RefsrError, match="checkpoint: required: a trained checkpoint of a model, or "
                                         "'bicubic'"):
        SuperResolver(None)
    assert SuperResolver(None, model="bicubic").name == "bicubic"


@pytest.mark.parametrize("argv, message", [
    ([], "command: required: one of degrade, sr, score, bench, download-weights, import-weights"),
    (["nope"], "command: invalid choice: 'nope' (choose from 'degrade', 'sr', 'score', 'bench', "
               "'download-weights', 'import-weights')"),
    (["sr"], "--lr, --checkpoint, --out: required, missing (see refsr sr --help)"),
    (["score", "a.png"], "hr: required: ground-truth HR image"),
    (["degrade", "a.png", "b.png", "--bogus"], "command line: unrecognized arguments: --bogus "
                                                 "(see refsr --help)"),
    (["sr", "--lr", "a.png", "--checkpoint", "bicubic", "--out", "b.png", "--resize", "x"],
     "--resize: invalid choice: 'x' (choose from 'matlab', 'pil')"),
])
def test_case5_usage_errors_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(capsys, main(argv)) == f"refsr: error: {message}"


# ---------------------------------------------------------------- 6. score options and sizes


def test_case6_score_scale_zero(pics, capsys):
    line = one_line_error(capsys, main(["score", str(pics["hr"]), str(pics["hr"]), "--scale", "0"]))
    assert line == "refsr: error: --scale: must be an integer >= 1, got '0'"


def test_case6_score_negative_crop_is_blamed_on_the_sign(pics, capsys):
    line = one_line_error(capsys, main(["score", str(pics["hr"]), str(pics["hr"]), "--crop", "-3"]))
    assert line == "refsr: error: --crop: must be an integer >= 0, got '-3'"


def test_case6_score_of_a_1x1_image_says_the_mod_crop_leaves_nothing(pics, capsys):
    one = pics["one"]
    line = one_line_error(capsys, main(["score", str(one), str(one), "--no-lpips"]))
    assert line == (f"refsr: error: {one}: HR image is 1x1: mod-cropping it to a multiple of --scale 4 "
                    "leaves nothing")


def test_case6_score_of_101x77_against_itself_says_hr_was_mod_cropped(pics, capsys):
    odd = pics["odd"]
    line = one_line_error(capsys, main(["score", str(odd), str(odd), "--no-lpips"]))
    assert line == (f"refsr: error: {odd} vs {odd}: size mismatch: SR is 101x77 but HR is 100x76 after "
                    "mod-cropping it from 101x77 to a multiple of --scale 4 (the protocol); an SR of "
                    "this HR's x4 LR is 100x76")
    assert main(["score", str(odd), str(odd), "--no-lpips", "--scale", "1"]) == 0


# ---------------------------------------------------------------- 7. degrade of tiny images


@pytest.mark.parametrize("name, size", [("one", "1x1"), ("eleven", "11x11")])
def test_case7_degrade_of_an_image_under_12px(name, size, pics, tmp_path, capsys):
    out = tmp_path / "lr_out.png"
    line = one_line_error(capsys, main(["degrade", str(pics[name]), str(out)]))
    assert line == f"refsr: error: {pics[name]}: HR image is {size}, smaller than the minimum 12x12"
    assert not out.exists()


def test_case7_degrade_of_12px_works(pics, tmp_path):
    out = tmp_path / "lr_out.png"
    assert main(["degrade", str(pics["twelve"]), str(out)]) == 0
    assert Image.open(out).size == (3, 3)


def test_case7_library_degrade_names_the_file_and_its_size():
    from refsr.data.resize import degrade

    with pytest.raises(RefsrError) as exc:
        degrade(np.zeros((3, 9, 3), np.uint8), 4, where="x.png")
    assert str(exc.value) == ("x.png: image is 9x3, too small to downscale by 4 (nothing is left after "
                              "mod-cropping it to a multiple of 4)")


# ---------------------------------------------------------------- 8. strict JSON


def _strict(line: str) -> dict:
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def test_case8_score_of_identical_images_is_strict_json(pics, capsys):
    assert main(["score", str(pics["hr"]), str(pics["hr"]), "--no-lpips", "--no-stlpips"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    scores = _strict(out[0])
    assert scores.pop("protocol") == "refsr" and scores.pop("protocol_fields")["crop"] == 4
    assert scores == {"psnr": None, "ssim": 1.0, "lpips": None, "stlpips": None,
                      "psnr_note": "identical images"}


def test_case8_score_of_different_images_has_no_note(pics, tmp_path, capsys):
    hr = np.asarray(Image.open(pics["hr"]))
    noisy = tmp_path / "noisy.png"
    Image.fromarray(hr ^ 1).save(noisy)
    assert main(["score", str(noisy), str(pics["hr"]), "--no-lpips"]) == 0
    scores = _strict(capsys.readouterr().out.strip())
    assert 40 < scores["psnr"] < 60 and "psnr_note" not in scores
