"""Source ``refsr``: a refsr checkpoint from elsewhere (another machine, a colleague), checked
and copied in as it is (rewritten in the current checkpoint version, with its digest)."""

from __future__ import annotations

from pathlib import Path

from refsr.models.checkpoint import RESERVED_KEYS, load_checkpoint, save_checkpoint


def import_checkpoint(src: Path, out_dir: Path) -> dict[str, Path]:
    """``src`` (a refsr checkpoint file) rebuilt, verified and written to ``out_dir/{model}.pt``."""
    model, ckpt = load_checkpoint(src)
    extra = {k: v for k, v in ckpt.items() if k not in RESERVED_KEYS}
    out = Path(out_dir) / f"{ckpt['model']}.pt"
    save_checkpoint(out, model, ckpt["model"], ckpt["arch_cfg"], extra={**extra, "imported_from": str(src)},
                    recipe=ckpt.get("recipe"))
    return {ckpt["model"]: out}
