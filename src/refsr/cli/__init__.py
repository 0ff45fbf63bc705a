"""The ``refsr`` command line: degrade, sr, score, bench, download-weights, import-weights.

Every command exits with status 1 and one line ``refsr: error: <file or option>: <problem>``
on bad input or a fault of the machine (:func:`refsr.core.errors.user_error`), checks its
outputs before it starts (``refsr.cli.args``), and writes them atomically (nothing partial
is left behind). Options take the validating types of ``refsr.cli.args``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from refsr.cli.args import (
    Parser,
    boolean,
    device,
    nonneg_int,
    output_dir,
    output_file,
    output_image,
    positive_float,
    positive_int,
)
from refsr.core.errors import RefsrError, user_error
from refsr.core.heap import keep_freed_memory
from refsr.evaluation.protocol import PRESETS


def _cmd_degrade(args) -> None:
    from refsr.core.imageio import MIN_SIDE, check_min_size, read_image, write_image
    from refsr.data.resize import degrade

    hr = read_image(args.hr)
    check_min_size(hr, args.hr, "HR image")
    (h, w), lr_min = hr.shape[:2], MIN_SIDE // 4  # the smallest LR refsr sr takes
    if min(h, w) // args.scale < lr_min:
        raise RefsrError("--scale", f"{args.scale} makes the {w}x{h} image {args.hr} a {w // args.scale}x"
                                    f"{h // args.scale} LR, under the smallest usable LR ({lr_min}x{lr_min}); "
                                    f"use --scale {min(h, w) // lr_min} at most")
    _, lr = degrade(hr, args.scale, args.resize, where=args.hr)
    write_image(args.lr, lr)


def _choices(dotted: str) -> list[str]:
    """The values the schema allows for a config key (an option's choices)."""
    from refsr.core.config import schema

    node = schema()
    for part in dotted.split("."):
        node = node["properties"][part]
    return list(node["enum"])


def sr_config(args) -> dict:
    """The inference job spec (:func:`refsr.pipeline.jobs.resolver`) of ``refsr sr``: the
    options over the schema's defaults (the model is the checkpoint's, so ``--model`` or none)."""
    from refsr.core.config import validate
    from refsr.pipeline import jobs

    cfg = validate({"resize": args.resize,
                    "inference": {"tile": args.tile, "pad": args.pad, "dtype": args.dtype},
                    "matching": {"mode": args.match_mode},
                    "reference": {"align": args.align,
                                  "degrade": "bicubic" if args.match_sisr is None else "sr_model"}})
    spec = {**jobs.resolver(cfg, args.model), "device": args.device}  # cuda:N too
    if spec["reference"] is not None and "sisr_model" in spec["reference"]:
        spec["reference"]["sisr_model"] = None  # --match-sisr: whichever single-image model it holds
    return spec


def _progress_to_stderr(name: str) -> None:
    """Let logger ``name``'s progress lines (:func:`refsr.core.progress.progress`) reach stderr."""
    import logging

    logger = logging.getLogger(name)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("refsr: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _cmd_sr(args) -> None:
    from refsr.core.imageio import MIN_SIDE, check_min_size, read_image, write_image
    from refsr.inference.resolver import SuperResolver

    lr = read_image(args.lr)
    check_min_size(lr, args.lr, "LR image", min_side=MIN_SIDE // 4)
    _progress_to_stderr("refsr.matching.transfer")  # a large reference's bands show progress
    refs = [read_image(r) for r in args.ref or []]
    for path, ref in zip(args.ref or [], refs, strict=True):
        check_min_size(ref, path, "reference")
    # --match-sisr: reference.degrade sr_model (match SISR(LR) against SISR(Ref↓))
    try:
        resolver = SuperResolver.from_config(sr_config(args), args.checkpoint, args.match_sisr, max_mb=args.max_mb)
    except RefsrError as err:  # the config key of the pipeline is the option and its file here
        if err.where != "reference.sisr_model":
            raise
        raise RefsrError(f"--match-sisr {args.match_sisr}", err.problem) from None
    names = list(args.ref or [])
    if args.stitch and refs:
        from refsr.inference.levels import stitch_references

        refs = [stitch_references(refs, [Path(r) for r in args.ref])]
        names = [f"--stitch of {', '.join(names)}"]
    if refs and not resolver.uses_reference:
        print(f"refsr: note: {resolver.name} is a single-image model; --ref ignored", file=sys.stderr)
    write_image(args.out, resolver(lr, refs, names=names))
    if args.align != "none" and resolver.uses_reference:
        print(f"refsr: alignment: {resolver.align_stats.summary()}", file=sys.stderr)


def _json_number(x: float):
    """A strict-JSON number: NaN and infinities become null (the caller says why)."""
    return x if math.isfinite(x) else None


def _mod_cropped_hr(args):
    """The HR of ``refsr score``, mod-cropped to ``--scale`` as the protocol says; one-line
    errors that say so when that leaves nothing or makes it differ from the SR."""
    from refsr.core.imageio import read_image
    from refsr.data.resize import modcrop

    sr, full = read_image(args.sr), read_image(args.hr)
    hr = modcrop(full, args.scale)
    (h, w), (ch, cw) = full.shape[:2], hr.shape[:2]
    if ch == 0 or cw == 0:
        raise RefsrError(args.hr, f"HR image is {w}x{h}: mod-cropping it to a multiple of --scale "
                                  f"{args.scale} leaves nothing")
    if sr.shape[:2] != hr.shape[:2] and (ch, cw) != (h, w):
        raise RefsrError(f"{args.sr} vs {args.hr}",
                         f"size mismatch: SR is {sr.shape[1]}x{sr.shape[0]} but HR is {cw}x{ch} after "
                         f"mod-cropping it from {w}x{h} to a multiple of --scale {args.scale} (the "
                         f"protocol); an SR of this HR's x{args.scale} LR is {cw}x{ch}")
    return sr, hr


def _cmd_score(args) -> None:
    from refsr.evaluation.lpips import LPIPSMetric
    from refsr.evaluation.protocol import resolve_protocol
    from refsr.evaluation.stlpips import STLPIPSMetric

    protocol = resolve_protocol(args.protocol, args.scale, "matlab", where="--protocol", crop=args.crop,
                                y_channel=False if args.rgb else None, y_formula=args.y_formula,
                                round_y=args.round_y)
    sr, hr = _mod_cropped_hr(args)
    metric = None if args.no_lpips else LPIPSMetric(allow_download=not args.offline)
    st = None if args.no_stlpips else STLPIPSMetric(args.stlpips_net)
    scores = protocol.score_pair(sr, hr, metric, stlpips_metric=st, sr_name=args.sr, hr_name=args.hr)
    out = {k: _json_number(float(v)) for k, v in scores.items()}
    out["protocol"] = protocol.preset
    out["protocol_fields"] = {k: v for k, v in protocol.to_dict().items() if k not in ("preset", "resize")}
    if math.isinf(float(scores["psnr"])):
        out["psnr_note"] = "identical images"
    if metric is not None and not metric.available:
        out["lpips_reason"] = metric.reason
    if st is not None and st.skipped:
        out["stlpips_reason"] = st.reason
    print(json.dumps(out, allow_nan=False))


def _cmd_bench(args) -> None:
    from refsr.bench.measure import parse_size
    from refsr.bench.suite import bench_all
    from refsr.bench.swap import bench_swap

    if args.what == "cufed5":
        from refsr.bench.cufed5 import bench_cufed5

        for row in bench_cufed5(args.groups, tuple(args.model or ()) or None, before=not args.no_before,
                                released_ttsr_path=args.released_ttsr, dtype=args.dtype,
                                log=lambda msg: print(msg, file=sys.stderr, flush=True)):
            print(json.dumps(row), flush=True)
        return
    if args.what == "all":
        bench_all(args.out, markdown=None if args.no_markdown else args.markdown, quick=args.quick,
                  log=lambda msg: print(msg, file=sys.stderr, flush=True))
        return
    w, h = parse_size(args.hr_size)
    print(json.dumps(bench_swap(w, h, max_mb=args.max_mb, repeats=args.repeats, mode=args.mode,
                                compare=args.compare, memory=not args.no_memory)))


def _cmd_download_weights(args) -> None:
    from refsr.features.weights import download
    from refsr.models.importers import DOWNLOADS, download_instructions

    released = [name for name in args.only or () if name in DOWNLOADS]
    if released:  # checked before anything is fetched: no stable URL, so one line saying what to do
        raise RefsrError(f"download-weights --only {released[0]}", download_instructions(released[0]))
    paths = download(args.only or None, progress=not args.quiet)
    print(json.dumps({name: str(path) for name, path in paths.items()}))


def _cmd_import_weights(args) -> None:
    from refsr.models.importers import import_weights

    written = import_weights(args.source, args.src, args.out, model=args.model)
    print(json.dumps({model: str(path) for model, path in written.items()}))


def build_parser() -> Parser:
    from refsr.core.config import defaults
    from refsr.models.importers import IMPORTERS

    p = Parser(prog="refsr", description="Reference-based super-resolution (SRNTT).")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("degrade", help="HR -> LR by bicubic downscaling (HR mod-cropped first)")
    d.add_argument("hr", help="HR image (at least 12x12)")
    d.add_argument("lr", type=output_image, help="LR image to write (.png, .jpg, .bmp, .tif, .webp)")
    d.add_argument("--scale", type=positive_int, default=defaults("scale"))
    d.add_argument("--resize", choices=["matlab", "pil"], default=defaults("resize"))
    d.set_defaults(func=_cmd_degrade)

    s = sub.add_parser("sr", help="super-resolve an LR image x4, borrowing texture from references")
    s.add_argument("--lr", required=True, help="LR input image")
    s.add_argument("--ref", action="append", help="reference image (repeat for several: one search "
                                                  "over all of them, the ALL level)")
    s.add_argument("--stitch", action="store_true",
                   help="paste the references into one image as TTSR/SRNTT's CUFED5 test input does "
                        "(each top-left in a black 500x500 canvas, stacked; the ALL_STITCHED level)")
    s.add_argument("--checkpoint", required=True,
                   help="a trained refsr checkpoint, or 'bicubic' for bicubic upsampling")
    s.add_argument("--model", help="expected model name (the checkpoint must be of this model)")
    s.add_argument("--out", required=True, type=output_image,
                   help="SR image to write (.png, .jpg, .bmp, .tif, .webp)")
    s.add_argument("--device", type=device, default=defaults("device"), help="cpu, cuda or cuda:N")
    s.add_argument("--max-mb", type=positive_float, default=defaults("matching.max_mb"),
                   help="memory budget of the reference path: features, patch matching, stitching (MB)")
    s.add_argument("--match-mode", choices=_choices("matching.mode"), default=defaults("matching.mode"),
                   help="SRNTT patch matching: exact, or approximate (about 10x faster, >= 99%% of exact S*)")
    s.add_argument("--align", choices=_choices("reference.align"), default=defaults("reference.align"),
                   help="warp each reference into the input's frame by a RANSAC homography first, "
                        "then (homography_then_flow) refine it by dense optical flow "
                        "(a poor fit keeps it unwarped; the count is printed)")
    s.add_argument("--match-sisr", metavar="CHECKPOINT",
                   help="match in the SR domain (reference.degrade sr_model): this single-image model's "
                        "SISR(LR) against SISR(Ref↓) instead of bicubic LR↑ against Ref↓↑")
    s.add_argument("--tile", type=nonneg_int, default=defaults("inference.tile"),
                   help="LR tile side for the network (0 = whole image)")
    s.add_argument("--pad", type=nonneg_int, default=defaults("inference.pad"),
                   help="LR context pixels around each tile")
    s.add_argument("--dtype", choices=_choices("inference.dtype"), default=defaults("inference.dtype"),
                   help="the network pass in fp32 or bf16 autocast (inference.dtype; auto = bf16 on CUDA)")
    s.add_argument("--resize", choices=_choices("resize"), default=defaults("resize"))
    s.set_defaults(func=_cmd_sr)

    c = sub.add_parser("score", help="PSNR/SSIM (under a protocol preset), LPIPS and ST-LPIPS of SR "
                                     "against HR, as JSON")
    c.add_argument("sr", help="SR image")
    c.add_argument("hr", help="ground-truth HR image")
    c.add_argument("--protocol", choices=list(PRESETS), default="refsr",
                   help="evaluation protocol preset (docs: Evaluation); the options "
                        "below override its fields")
    c.add_argument("--crop", type=nonneg_int, default=None,
                   help="border pixels cropped before PSNR/SSIM (default: the preset's)")
    c.add_argument("--scale", type=positive_int, default=defaults("scale"),
                   help="HR is mod-cropped to a multiple of this")
    c.add_argument("--rgb", action="store_true", help="PSNR/SSIM on RGB instead of Y")
    c.add_argument("--y-formula", choices=["matlab", "ttsr"], default=None,
                   help="luma formula (default: the preset's)")
    c.add_argument("--round-y", type=boolean, default=None,
                   help="true/false: round Y to an integer (default: the preset's)")
    c.add_argument("--no-stlpips", action="store_true", help="skip ST-LPIPS (reported as null)")
    c.add_argument("--stlpips-net", choices=["alex", "vgg"], default="alex", help="ST-LPIPS trunk")
    c.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as null)")
    c.add_argument("--offline", action="store_true", help="never try to download LPIPS weights")
    c.set_defaults(func=_cmd_score)

    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="what", required=True)
    bs = bsub.add_parser("swap", help="patch matching + swapping at a CUFED5-like size; one JSON line")
    bs.add_argument("--hr-size", default="500x332")
    bs.add_argument("--max-mb", type=positive_float, default=defaults("matching.max_mb"),
                    help="memory budget of the matching (MB)")
    bs.add_argument("--repeats", type=positive_int, default=3)
    bs.add_argument("--mode", choices=["exact", "approximate"], default="exact", help="matching mode timed")
    bs.add_argument("--compare", action="store_true",
                    help="also time the other mode and the naive full-matrix reference (where it fits) "
                         "side by side, with the fp32 GEMM throughput")
    bs.add_argument("--no-memory", action="store_true",
                    help="skip the peak-memory measurement (a fresh subprocess per method)")
    bs.set_defaults(func=_cmd_bench)
    ba = bsub.add_parser("all", help="the benchmark suite: results/bench/*.json and the BENCHMARKS.md table")
    ba.add_argument("--out", type=output_dir, default="results/bench", help="folder for the JSON results")
    ba.add_argument("--markdown", type=output_file((".md",)), default="BENCHMARKS.md",
                    help="file whose generated table is replaced")
    ba.add_argument("--no-markdown", action="store_true", help="write only the JSON results")
    ba.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke test)")
    ba.set_defaults(func=_cmd_bench)
    bc = bsub.add_parser("cufed5", help="the full CUFED5 evaluation of the released models (4 models x 126 "
                                        "groups x 9 levels), timed on a sample of groups and extrapolated; "
                                        "JSON lines, the last with total_minutes")
    bc.add_argument("--groups", type=positive_int, default=2, help="groups timed (of 126)")
    bc.add_argument("--model", action="append", help="time only this model (repeat for several); "
                                                     "default srntt_l2, srntt, ttsr_rec, ttsr")
    bc.add_argument("--no-before", action="store_true",
                    help="skip the run without shared features (the timing before, and the output comparison)")
    bc.add_argument("--released-ttsr", metavar="DIR",
                    help="a checkout of researchmm/TTSR: its own forward timed beside ours (one reference)")
    bc.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="inference.dtype of the timed run (the run before is fp32; its outputs are compared)")
    bc.set_defaults(func=_cmd_bench)

    w = sub.add_parser("download-weights", help="fetch the ImageNet weights the pipeline uses into the "
                                                "torch hub cache (for offline compute nodes); one JSON line")
    w.add_argument("--only", action="append",
                   choices=["vgg19", "lpips_alex", "vgg19_matconvnet", "c2matching", "masa"],
                   help="fetch only this one (repeat for several); default: vgg19 and lpips_alex. "
                        "vgg19_matconvnet is MatConvNet's imagenet-vgg-verydeep-19.mat (510 MB, MD5-checked), "
                        "the official recipe's VGG19. c2matching, masa: the authors' released weights sit in "
                        "Google Drive folders (no stable URL): it says which files to get from where and "
                        "exits 1")
    w.add_argument("--quiet", action="store_true", help="no download progress bar")
    w.set_defaults(func=_cmd_download_weights)

    i = sub.add_parser("import-weights", help="convert released weights of a published method into "
                                              "refsr checkpoints (OUT/{model}.pt); one JSON line")
    i.add_argument("source", choices=sorted(IMPORTERS), help="the format of the released weights")
    i.add_argument("src", help="the released file or folder")
    i.add_argument("--out", required=True, type=output_dir, help="folder for the refsr checkpoints")
    i.add_argument("--model", default=None,
                   help="the model a released file holds when its name does not say: ttsr|ttsr_rec "
                        "(ttsr-official: not TTSR.pt or TTSR-rec.pt), c2matching|c2matching_rec, masa|masa_rec")
    i.set_defaults(func=_cmd_import_weights)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 1 with one ``refsr: error:`` line on bad input or a
    fault of the machine, 130 when interrupted."""
    try:
        args = build_parser().parse_args(argv)
        if args.command != "bench":  # the benchmarks choose (refsr.bench.cufed5 times both)
            keep_freed_memory()
        args.func(args)
    except KeyboardInterrupt:
        print("refsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user_error decides; a bug is re-raised
        err = user_error(exc)
        if err is None:
            raise
        print(f"refsr: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
