"""``make bench-gpu``: the GPU figures in one short run (about 5 minutes on one GPU).

On CUDA, at the paper's network sizes: training iterations per second of every trainable
network (a synthetic batch: forward, L1 loss, backward, Adam step; the TTSR networks run their
own search) in fp32, TF32 and bf16 autocast, with the peak memory; inference seconds per image
(500x332 with one reference, and the ``ALL_STITCHED`` input: five references stitched into
2500x500); the exact matching's GFLOP/s and peak memory at 500x332 and 1000x1000; one DDP step
with NCCL under ``torchrun`` on every GPU present. Writes ``gpu.json`` and the rows between
the ``bench-gpu`` markers of BENCHMARKS.md.

``--dry`` runs every step on the CPU at tiny sizes, once, with gloo instead of NCCL: what the
tests run to check that the GPU run would go through.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from refsr.bench.config import bench_config, sized
from refsr.bench.measure import machine_info
from refsr.core.atomic import atomic_path
from refsr.core.errors import RefsrError
from refsr.core.markdown import markdown_table as md_table
from refsr.inference.levels import stitch_references
from refsr.inference.resolver import SuperResolver
from refsr.matching.exact import match_exact
from refsr.models import registry
from refsr.models.checkpoint import build_model, save_checkpoint

MARK_BEGIN, MARK_END = "<!-- bench-gpu:begin -->", "<!-- bench-gpu:end -->"
PRECISIONS = ("fp32", "tf32", "bf16")


class _Sizes:
    def __init__(self, dry: bool):
        self.dry = dry
        self.batch, self.patch = (2, 32) if dry else (9, 160)  # HR training patches (released: 9 x 160)
        self.warmup, self.iters = (0, 1) if dry else (2, 5)
        self.image = (48, 40) if dry else (500, 332)
        self.match_sizes = ((40, 40), (48, 48)) if dry else ((500, 332), (1000, 1000))
        self.stitch_side = 64 if dry else 500


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _precision(mode: str, device: torch.device):
    """TF32 switches for ``mode`` and the autocast context (bf16)."""
    tf32 = mode == "tf32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")


def _model_config(dry: bool) -> dict:
    cfg = sized(bench_config("config.yaml"), "default" if dry else "paper")
    cfg["recipe"] = "refsr"
    return cfg


def _timed(step: Callable[[], None], sizes: _Sizes, device: torch.device) -> float:
    for _ in range(sizes.warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(sizes.iters):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / sizes.iters


def train_rows(device: torch.device, sizes: _Sizes) -> list[dict]:
    """Training it/s and peak MB per trainable network and precision (synthetic batch)."""
    cfg = _model_config(sizes.dry)
    rows, seen = [], set()
    b, hr = sizes.batch, sizes.patch
    lr = torch.rand(b, 3, hr // 4, hr // 4, device=device)
    target = torch.rand(b, 3, hr, hr, device=device)
    maps = {"relu1_1": torch.rand(b, 64, hr, hr, device=device),
            "relu2_1": torch.rand(b, 128, hr // 2, hr // 2, device=device),
            "relu3_1": torch.rand(b, 256, hr // 4, hr // 4, device=device)}
    for model in registry.trainable():
        spec = registry.spec_for(model, cfg)
        key = (spec.architecture, spec.textures)
        if key in seen:  # srgan, srntt, ttsr: the networks of srresnet, srntt_l2, ttsr_rec
            continue
        seen.add(key)
        torch.manual_seed(0)
        net = build_model(model, registry.arch_config(model, cfg), recipe=spec.recipe).to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        for mode in PRECISIONS:
            def step(net=net, opt=opt, mode=mode, spec=spec):
                with _precision(mode, device):
                    if spec.textures == "learned":
                        out = net(lr * 2 - 1, target * 2 - 1, target * 2 - 1, target * 2 - 1)[0]
                    elif spec.uses_reference:
                        out = net(lr, maps)
                    else:
                        out = net(lr)
                    loss = F.l1_loss(out.float(), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            _peak_reset(device)
            s = _timed(step, sizes, device)
            rows.append({"model": model, "precision": mode, "batch": b, "patch_px": hr,
                         "it_per_s": round(1 / s, 3), "peak_mb": _peak_mb(device)})
        _precision("fp32", device)
        del net, opt
    return rows


def infer_rows(device: torch.device, sizes: _Sizes, tmp: Path) -> list[dict]:
    """Seconds per image at ``sizes.image`` with one reference and with ALL_STITCHED (5 refs)."""
    cfg = _model_config(sizes.dry)
    rng = np.random.RandomState(0)
    w, h = sizes.image
    lr = rng.randint(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    ref = rng.randint(0, 256, (h, w, 3), dtype=np.uint8)
    stitched = stitch_references([ref[: sizes.stitch_side, : sizes.stitch_side]] * 5, side=sizes.stitch_side)
    rows = []
    for model in ("srntt_l2", "ttsr_rec"):
        spec = registry.spec_for(model, cfg)
        arch = registry.arch_config(model, cfg)
        torch.manual_seed(0)
        path = tmp / f"{model}.pt"
        save_checkpoint(path, build_model(model, arch, recipe=spec.recipe), model, arch, recipe=spec.recipe)
        res = SuperResolver(str(path), model=model, device=str(device), tile=0)
        for level, refs in (("one reference", [ref]), ("ALL_STITCHED", [stitched])):
            _peak_reset(device)
            s = _timed(lambda res=res, refs=refs: res(lr, refs), sizes, device)
            rows.append({"model": model, "input": f"{w}x{h}", "level": level, "seconds": round(s, 4),
                         "peak_mb": _peak_mb(device)})
    return rows


def match_rows(device: torch.device, sizes: _Sizes) -> list[dict]:
    """Exact matching at relu3_1 of random features of the given HR sizes: GFLOP/s (nominal,
    patch-level) and peak MB, fp32 and TF32."""
    rows = []
    for w, h in sizes.match_sizes:
        g = torch.Generator(device="cpu").manual_seed(0)
        content = torch.rand(256, h // 4, w // 4, generator=g).to(device)
        ref = torch.rand(256, h // 4, w // 4, generator=g).to(device)
        n_in, n_ref = (h // 4) * (w // 4), (h // 4 - 2) * (w // 4 - 2)
        for mode in ("fp32", "tf32"):
            _precision(mode, device)
            _peak_reset(device)
            s = _timed(lambda c=content, r=ref: match_exact(c, [r]), sizes, device)
            rows.append({"hr_size": f"{w}x{h}", "precision": mode, "seconds": round(s, 4),
                         "gflop_per_s": round(2 * n_in * n_ref * 2304 / s / 1e9, 1), "peak_mb": _peak_mb(device)})
        _precision("fp32", device)
    return rows


def ddp_worker(dry: bool) -> None:
    """One DDP training step of srntt_l2 (under torchrun); rank 0 prints one JSON line."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    backend = "gloo" if dry else "nccl"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu") if dry else torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    sizes = _Sizes(dry)
    cfg = _model_config(dry)
    spec = registry.spec_for("srntt_l2", cfg)
    net = build_model("srntt_l2", registry.arch_config("srntt_l2", cfg), recipe=spec.recipe).to(device)
    ddp = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-4)
    b, hr = sizes.batch, sizes.patch
    lr = torch.rand(b, 3, hr // 4, hr // 4, device=device)
    maps = {"relu1_1": torch.rand(b, 64, hr, hr, device=device),
            "relu2_1": torch.rand(b, 128, hr // 2, hr // 2, device=device),
            "relu3_1": torch.rand(b, 256, hr // 4, hr // 4, device=device)}
    times = []
    for _ in range(1 if dry else 3):
        _sync(device)
        t0 = time.perf_counter()
        loss = F.l1_loss(ddp(lr, maps), torch.rand(b, 3, hr, hr, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    if rank == 0:
        print("DDP " + json.dumps({"backend": backend, "world_size": world, "batch_per_rank": b,
                                   "seconds_per_step": round(times[-1], 4)}), flush=True)
    dist.destroy_process_group()


def ddp_row(dry: bool, timeout: float = 240) -> dict:
    """Run :func:`ddp_worker` under ``torchrun`` on every GPU (one CPU process when ``dry``)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists():
        raise RefsrError("torchrun", "not found next to the Python interpreter nor on PATH")
    n = 1 if dry else torch.cuda.device_count()
    cmd = [torchrun, "--standalone", f"--nproc_per_node={n}", "-m", "refsr.bench.gpu", "--ddp-worker"]
    if dry:
        cmd.append("--dry")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DDP ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RefsrError("torchrun", f"the DDP step failed (exit {proc.returncode}): {tail}")
    return json.loads(lines[-1][4:])


def bench_gpu(dry: bool = False, out: str | os.PathLike | None = None, markdown: str | os.PathLike | None = None,
              log: Callable[[str], None] = lambda msg: None) -> dict:
    """Every GPU figure (see the module's docstring); ``dry``: on the CPU, tiny, once."""
    if not dry and not torch.cuda.is_available():
        raise RefsrError("bench gpu", "no CUDA device here (torch.cuda.is_available() is False); "
                                      "--dry checks the run on the CPU")
    device = torch.device("cpu" if dry else "cuda")
    sizes = _Sizes(dry)
    result = {"benchmark": "gpu", "dry": dry, "machine": machine_info(),
              "device": "cpu" if dry else torch.cuda.get_device_name(0),
              "gpus": 0 if dry else torch.cuda.device_count()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="refsr-bench-gpu-") as tmp:
        log("training steps")
        result["train"] = train_rows(device, sizes)
        log("inference")
        result["infer"] = infer_rows(device, sizes, Path(tmp))
    log("exact matching")
    result["matching"] = match_rows(device, sizes)
    log("one DDP step under torchrun")
    result["ddp"] = ddp_row(dry)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if out is not None:
        path = Path(out) / "gpu.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp_path:
            Path(tmp_path).write_text(json.dumps(result, indent=1) + "\n")
    if markdown is not None:
        update_markdown(Path(markdown), result)
    return result


def render(result: dict) -> str:
    """The Markdown rows of one run."""
    def mb(x):
        return "" if x is None else f"{x:.0f}"

    parts = [f"Measured on: {result['device']} x {result['gpus']}" + (" (dry run on the CPU, tiny sizes)" if result["dry"] else "")]
    parts.append(md_table(["model", "precision", "batch x patch", "it/s", "peak MB"],
                          [[r["model"], r["precision"], f"{r['batch']} x {r['patch_px']}", f"{r['it_per_s']:.2f}",
                            mb(r["peak_mb"])] for r in result["train"]]))
    parts.append(md_table(["model", "input", "level", "s / image", "peak MB"],
                          [[r["model"], r["input"], r["level"], f"{r['seconds']:.3f}", mb(r["peak_mb"])]
                           for r in result["infer"]]))
    parts.append(md_table(["HR size", "precision", "exact match s", "GFLOP/s (nominal)", "peak MB"],
                          [[r["hr_size"], r["precision"], f"{r['seconds']:.3f}", f"{r['gflop_per_s']:.0f}",
                            mb(r["peak_mb"])] for r in result["matching"]]))
    d = result["ddp"]
    parts.append(f"DDP ({d['backend']}, {d['world_size']} process(es), batch {d['batch_per_rank']} per rank): "
                 f"{d['seconds_per_step']:.3f} s per step.")
    return "\n\n".join(parts)


def update_markdown(path: Path, result: dict) -> None:
    text = path.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        raise RefsrError(path, f"no {MARK_BEGIN} ... {MARK_END} markers for the GPU rows")
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    body = "<!-- generated by `make bench-gpu`; do not edit by hand -->\n\n" + render(result)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(f"{head}{MARK_BEGIN}\n{body}\n{MARK_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m refsr.bench.gpu", description=__doc__.splitlines()[0])
    p.add_argument("--dry", action="store_true", help="on the CPU, tiny sizes, once: check that it would run")
    p.add_argument("--out", default="results/bench", help="folder for gpu.json")
    p.add_argument("--markdown", default=None, help="file whose bench-gpu rows are replaced (BENCHMARKS.md)")
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args.dry)
        return 0
    try:
        result = bench_gpu(args.dry, args.out, args.markdown, log=lambda m: print(m, file=sys.stderr, flush=True))
    except RefsrError as err:
        print(f"refsr bench gpu: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: result[k] for k in ("device", "gpus", "seconds", "ddp")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
