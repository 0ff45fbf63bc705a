"""SRNTT patch matching and feature swapping (DESIGN §4), streamed and memory-bounded.

Conventions (all feature maps are ``C x H x W`` or ``1 x C x H x W``):

* **Candidates** are the valid ``p x p`` patches (stride 1, no padding) of each reference's
  relu3_1 map ``C x Hr x Wr``: a ``(Hr-p+1) x (Wr-p+1)`` *patch grid*. Grid cell
  ``(gy, gx)`` is the patch with top-left ``(gy, gx)``, i.e. centre ``(gy + p//2, gx + p//2)``.
  Patches of several references are numbered consecutively: reference 0's grid in
  row-major order, then reference 1's, ... (``Correspondence.offsets``).
* **Content** patches are taken around *every* content position: the content map is
  zero-padded by ``p//2`` first (what the official SRNTT code does with its ``'SAME'``
  convolution), so the correspondence has the content's full ``H x W`` size. Border
  patches thus contain zeros; they only lower the score, never the argmax's validity.
* ``score`` is SRNTT's ``S*``: ``<content_patch, cand_patch / |cand_patch|>``, maximised
  over all candidates (ties go to the lowest index). ``cosine`` is ``score / |content_patch|``
  (0 for an all-zero content patch), the mean of which the similarity tiers use.
* **Swapping** at relu3_1 / relu2_1 / relu1_1 (scale ``s`` = 1 / 2 / 4 relative to relu3_1)
  puts, for content position ``(y, x)``, the ``p*s x p*s`` patch of the *original*
  reference's map whose top-left is ``(gy*s, gx*s)`` at the output location whose top-left
  is ``((y - p//2)*s, (x - p//2)*s)``; parts falling outside the output are dropped, and
  every output pixel is the mean of the patches covering it (border pixels have fewer).

Memory: the ``N_content x N_ref`` score matrix is never built. :func:`chunk_size` picks
content and candidate chunk sizes whose patch matrices and score block fit in ``max_mb``;
:func:`match` keeps a running max/argmax over the chunks. Swapping folds bands of content
rows whose gathered patches fit in ``max_mb``. Outside the budget are only tensors of the
inputs' or outputs' own size (the zero-padded content copy, the ``H x W`` running state,
the swapped maps and their overlap counts).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from refsr.atomic import atomic_path
from refsr.errors import RefsrError
from refsr.resize import down_up

#: Norm floor for patch normalisation (``tf.nn.l2_normalize``'s 1e-12 on the squared norm).
EPS = 1e-6
#: Swapped layers and their scale relative to relu3_1.
SWAP_SCALES = {"relu3_1": 1, "relu2_1": 2, "relu1_1": 4}
#: Image pixels per relu3_1 position.
RELU3_STRIDE = 4
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Correspondence:
    """Best reference patch for every content position at relu3_1.

    ``index``: ``H x W`` int64, flat index into the concatenated patch grids of all references.
    ``score``: ``H x W`` SRNTT ``S*``. ``cosine``: ``H x W`` best-match cosine (``None`` when
    loaded from a cache file, which stores only what training needs).
    ``ref_shapes``: each reference's relu3_1 map size ``(Hr, Wr)``. ``patch``: patch side.
    """

    index: Tensor
    score: Tensor
    ref_shapes: tuple[tuple[int, int], ...]
    cosine: Tensor | None = None
    patch: int = 3

    @property
    def grid_shapes(self) -> tuple[tuple[int, int], ...]:
        """Patch-grid size ``(Hr - p + 1, Wr - p + 1)`` of each reference."""
        p = self.patch
        return tuple((h - p + 1, w - p + 1) for h, w in self.ref_shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each reference's block of flat indices, plus the total at the end."""
        out = [0]
        for gh, gw in self.grid_shapes:
            out.append(out[-1] + gh * gw)
        return tuple(out)

    @property
    def ref_id(self) -> Tensor:
        """``H x W`` int64: which reference each content position was matched to."""
        bounds = torch.tensor(self.offsets[1:-1], dtype=self.index.dtype, device=self.index.device)
        return torch.bucketize(self.index, bounds, right=True)

    @property
    def grid_pos(self) -> tuple[Tensor, Tensor]:
        """``(gy, gx)``: patch-grid cell (= patch top-left) in the matched reference."""
        rid = self.ref_id
        starts = torch.tensor(self.offsets[:-1], device=self.index.device)[rid]
        widths = torch.tensor([gw for _, gw in self.grid_shapes], device=self.index.device)[rid]
        local = self.index.long() - starts
        return local // widths, local % widths

    @property
    def pos(self) -> tuple[Tensor, Tensor]:
        """``(y, x)``: matched patch centre in the reference's relu3_1 map."""
        gy, gx = self.grid_pos
        return gy + self.patch // 2, gx + self.patch // 2

    def to(self, device: str | torch.device) -> Correspondence:
        """A copy with all tensors on ``device``."""
        cos = None if self.cosine is None else self.cosine.to(device)
        return replace(self, index=self.index.to(device), score=self.score.to(device), cosine=cos)


# ----------------------------------------------------------------------------- helpers


def _as_chw(t: Tensor, what: str) -> Tensor:
    """Accept ``C x H x W`` or ``1 x C x H x W``."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{what}: expected C x H x W or 1 x C x H x W, got {tuple(t.shape)}")
    return t


def _kernel_offsets(width: int, k: int, device: torch.device) -> Tensor:
    """Flat offsets ``dy * width + dx`` of a ``k x k`` patch, in F.unfold order (row-major)."""
    d = torch.arange(k, device=device)
    return (d[:, None] * width + d[None, :]).reshape(-1)


def _gather(flat: Tensor, idx: Tensor) -> Tensor:
    """Patches ``(C * k*k) x n`` from ``flat`` (``C x HW``) at index grid ``idx`` (``k*k x n``).

    The layout (channel-major, then kernel position) is F.unfold's, so it feeds F.fold.
    """
    return flat[:, idx].reshape(-1, idx.shape[1])


def chunk_size(n_content: int, patch_dim: int, max_mb: float = 256,
               patch_area: int = 9, itemsize: int = 4) -> tuple[int, int]:
    """``(content_chunk, ref_chunk)`` so that one block of :func:`match` fits in ``max_mb``.

    One block holds the content patches ``nc x patch_dim``, the candidate patches
    ``nr x patch_dim``, the score block ``nc x nr``, their gather indices and norms and the
    block max/argmax; :func:`block_bytes` is that total. Content positions take at most half
    the budget; the rest sizes the candidate chunk. Never below 1 x 1.
    """
    budget = max(0, int(max_mb * 2**20))
    per_c, per_r = _per_content(patch_dim, patch_area, itemsize), _per_ref(patch_dim, patch_area, itemsize)
    nc = max(1, min(n_content, (budget // 2) // per_c))
    nr = max(1, (budget - nc * per_c) // (per_r + itemsize * nc))
    return int(nc), int(nr)


def _per_content(patch_dim: int, patch_area: int, itemsize: int) -> int:
    """Bytes per content position in a block: patch, gather index, norm, block max + argmax."""
    return patch_dim * itemsize + patch_area * 8 + itemsize + itemsize + 8


def _per_ref(patch_dim: int, patch_area: int, itemsize: int) -> int:
    """Bytes per candidate in a block: patch, gather index, norm."""
    return patch_dim * itemsize + patch_area * 8 + itemsize


def block_bytes(nc: int, nr: int, patch_dim: int, patch_area: int = 9, itemsize: int = 4) -> int:
    """Peak extra bytes of one matching block of ``nc`` content x ``nr`` candidate patches."""
    return (nc * _per_content(patch_dim, patch_area, itemsize)
            + nr * _per_ref(patch_dim, patch_area, itemsize) + nc * nr * itemsize)


def _block_max(content_patches: Tensor, ref_patches: Tensor) -> tuple[Tensor, Tensor]:
    """Max and first argmax over candidates of ``content^T @ ref`` (``D x nc``, ``D x nr``)."""
    scores = content_patches.T @ ref_patches  # nc x nr: the only score block alive
    return scores.max(dim=1)


# ----------------------------------------------------------------------------- matching


def _check_refs(content: Tensor, refs: list[Tensor], patch: int) -> list[Tensor]:
    """Validate channel counts and sizes; return refs as ``C x Hr x Wr``."""
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be a positive odd number, got {patch}")
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    out = []
    for i, ref in enumerate(refs):
        ref = _as_chw(ref, f"reference {i}")
        if ref.shape[0] != content.shape[0]:
            raise ValueError(f"reference {i} has {ref.shape[0]} channels, content {content.shape[0]}")
        if ref.shape[1] < patch or ref.shape[2] < patch:
            raise RefsrError("reference", f"reference {i}: feature map {ref.shape[2]}x{ref.shape[1]} "
                                          f"is smaller than one {patch}x{patch} patch")
        out.append(ref.to(device=content.device, dtype=content.dtype))
    return out


@torch.no_grad()
def match(content: Tensor, refs: list[Tensor], patch: int = 3, max_mb: float = 256) -> Correspondence:
    """SRNTT matching of every content position against all references' patches.

    ``content``: ``C x H x W`` (φ(LR↑) at relu3_1); ``refs``: list of ``C x Hr x Wr``
    (φ(Ref↓↑)), sizes free. Streams over chunks (see :func:`chunk_size`); deterministic.
    No gradients flow (S* is a constant weight in SRNTT's texture loss).
    """
    content = _as_chw(content, "content")
    refs = _check_refs(content, refs, patch)
    C, H, W = content.shape
    if H < 1 or W < 1:
        raise RefsrError("lr", f"content feature map is empty ({W}x{H})")
    r, dev = patch // 2, content.device
    padded = F.pad(content[None], (r, r, r, r))[0]  # zero padding, see module docstring
    flat_c, pw = padded.reshape(C, -1), W + 2 * r
    off_c = _kernel_offsets(pw, patch, dev)
    itemsize = content.element_size()
    nc, nr = chunk_size(H * W, C * patch * patch, max_mb, patch * patch, itemsize)

    best = torch.full((H * W,), -torch.inf, dtype=content.dtype, device=dev)
    arg = torch.zeros(H * W, dtype=torch.int64, device=dev)
    cnorm = torch.empty(H * W, dtype=content.dtype, device=dev)
    for c0 in range(0, H * W, nc):
        pos = torch.arange(c0, min(c0 + nc, H * W), device=dev)
        cp = _gather(flat_c, off_c[:, None] + ((pos // W) * pw + pos % W)[None, :])
        cnorm[c0:c0 + pos.numel()] = cp.norm(dim=0)
        _scan_refs(cp, refs, patch, nr, best[c0:c0 + pos.numel()], arg[c0:c0 + pos.numel()])
    cosine = torch.where(cnorm > EPS, best / cnorm.clamp_min(EPS), torch.zeros_like(best))
    return Correspondence(index=arg.view(H, W), score=best.view(H, W),
                          ref_shapes=tuple((int(t.shape[1]), int(t.shape[2])) for t in refs),
                          cosine=cosine.view(H, W), patch=patch)


def _scan_refs(cp: Tensor, refs: list[Tensor], patch: int, nr: int,
               best: Tensor, arg: Tensor) -> None:
    """Update running ``best``/``arg`` (views) of content patches ``cp`` over all candidates."""
    base = 0
    for ref in refs:
        C, Hr, Wr = ref.shape
        gh, gw = Hr - patch + 1, Wr - patch + 1
        flat_r, off_r = ref.reshape(C, -1), _kernel_offsets(Wr, patch, ref.device)
        for r0 in range(0, gh * gw, nr):
            g = torch.arange(r0, min(r0 + nr, gh * gw), device=ref.device)
            rp = _gather(flat_r, off_r[:, None] + ((g // gw) * Wr + g % gw)[None, :])
            rp.div_(rp.norm(dim=0).clamp_min(EPS))
            vals, idx = _block_max(cp, rp)
            better = vals > best  # strict: earlier chunks win ties
            best.copy_(torch.where(better, vals, best))
            arg.copy_(torch.where(better, idx + (base + r0), arg))
        base += gh * gw


# ----------------------------------------------------------------------------- swapping


def _stitch(corr: Correspondence, maps: list[Tensor], s: int, max_mb: float) -> Tensor:
    """Overlap-averaged swapped map ``C x H*s x W*s`` from reference maps at scale ``s``."""
    H, W = corr.index.shape
    p, dev = corr.patch, corr.index.device
    r, k = p // 2, p * s
    C = maps[0].shape[0]
    flat = maps[0].reshape(C, -1) if len(maps) == 1 else torch.cat([m.reshape(C, -1) for m in maps], 1)
    sizes = torch.tensor([0] + [m.shape[1] * m.shape[2] for m in maps[:-1]], device=dev)
    bases = sizes.cumsum(0)
    widths = torch.tensor([m.shape[2] for m in maps], device=dev)

    rid = corr.ref_id.reshape(-1)
    gy, gx = (t.reshape(-1) for t in corr.grid_pos)
    wl = widths[rid]
    start = bases[rid] + gy * s * wl + gx * s  # flat index of each patch's top-left
    d = torch.arange(k, device=dev)
    dy, dx = d.repeat_interleave(k), d.repeat(k)

    canvas = torch.zeros(1, C, (H + 2 * r) * s, (W + 2 * r) * s, dtype=flat.dtype, device=dev)
    row_bytes = W * (k * k * (C * flat.element_size() + 24)) + C * s * s * (W + 2 * r) * flat.element_size()
    rows = max(1, int(max_mb * 2**20) // row_bytes)
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        sel = slice(y0 * W, y1 * W)
        idx = start[sel][None, :] + dy[:, None] * wl[sel][None, :] + dx[:, None]
        band = F.fold(_gather(flat, idx)[None], output_size=((y1 - y0 + 2 * r) * s, (W + 2 * r) * s),
                      kernel_size=k, stride=s)
        canvas[:, :, y0 * s:(y1 + 2 * r) * s] += band
    ones = torch.ones(1, k * k, H * W, dtype=flat.dtype, device=dev)
    count = F.fold(ones, output_size=canvas.shape[-2:], kernel_size=k, stride=s)
    crop = (slice(None), slice(None), slice(r * s, (r + H) * s), slice(r * s, (r + W) * s))
    return (canvas[crop] / count[crop])[0]


@torch.no_grad()
def swap(corr: Correspondence, ref_feats: list[dict[str, Tensor]],
         out_hw: tuple[int, int] | None = None, max_mb: float = 256) -> dict[str, Tensor]:
    """Swapped feature maps ``M`` (``1 x C x h x w``) at relu3_1, relu2_1 and relu1_1.

    ``ref_feats[i]`` holds φ(Ref_i) (the original reference, not Ref↓↑) for the layers to
    swap; the layers present in every dict among relu3_1/relu2_1/relu1_1 are produced.
    ``out_hw`` is the content *image* size (LR↑); each layer's map is ``out_hw // stride``
    (stride 4/2/1), default ``4H x 4W``. When the image side is not a multiple of 4 the extra
    rows/columns at relu2_1/relu1_1 replicate the last stitched ones. ``M`` is a constant
    target (no gradients).
    """
    H, W = corr.index.shape
    out_h, out_w = out_hw if out_hw is not None else (RELU3_STRIDE * H, RELU3_STRIDE * W)
    if (out_h // RELU3_STRIDE, out_w // RELU3_STRIDE) != (H, W):
        raise ValueError(f"out_hw {out_hw} does not match the {H}x{W} relu3_1 correspondence")
    if len(ref_feats) != len(corr.ref_shapes):
        raise ValueError(f"{len(ref_feats)} reference feature sets for {len(corr.ref_shapes)} references")
    out = {}
    for layer, s in SWAP_SCALES.items():
        if not all(layer in f for f in ref_feats):
            continue
        maps = [_as_chw(f[layer], f"reference {i} {layer}").to(corr.index.device)
                for i, f in enumerate(ref_feats)]
        for i, (m, (h3, w3)) in enumerate(zip(maps, corr.ref_shapes, strict=True)):
            if m.shape[1] < h3 * s or m.shape[2] < w3 * s:
                raise ValueError(f"reference {i} {layer} is {tuple(m.shape[1:])}, "
                                 f"needs at least {(h3 * s, w3 * s)}")
        M = _stitch(corr, maps, s, max_mb)
        th, tw = out_h * s // RELU3_STRIDE, out_w * s // RELU3_STRIDE
        if (th, tw) != M.shape[1:]:
            M = F.pad(M[None], (0, tw - M.shape[2], 0, th - M.shape[1]), mode="replicate")[0]
        out[layer] = M[None]
    return out


# ----------------------------------------------------------------------------- images


def _as_image(img: Tensor, what: str) -> Tensor:
    """Accept ``3 x H x W`` or ``1 x 3 x H x W`` in [0, 1]; return ``1 x 3 x H x W``."""
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"{what}: expected 1 x 3 x H x W, got {tuple(img.shape)}")
    return img


def _check_ref_image(ref: Tensor, i: int) -> None:
    h, w = ref.shape[-2:]
    side = 3 * RELU3_STRIDE
    if h < side or w < side:
        raise RefsrError("reference", f"reference {i} is {w}x{h} px, smaller than one 3x3 patch "
                                      f"at relu3_1 ({side}x{side} px)")


def ref_down_up(ref: Tensor, scale: int = 4) -> Tensor:
    """``Ref↓↑``: MATLAB bicubic down and up by ``scale`` on the uint8 image (mod-cropped).

    ``ref`` is ``1 x 3 x H x W`` in [0, 1]; returns the same layout, dtype and device.
    """
    ref = _as_image(ref, "reference")
    arr = (ref[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = torch.from_numpy(np.ascontiguousarray(down_up(arr, scale))).permute(2, 0, 1)[None]
    return out.to(device=ref.device, dtype=ref.dtype) / 255


def _features(vgg, img: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
    """Run ``vgg`` without gradients and check that it provides ``layers``."""
    with torch.no_grad():
        feats = vgg(img)
    missing = [name for name in layers if name not in feats]
    if missing:
        raise RefsrError("vgg", f"the feature extractor lacks {', '.join(missing)}; load it with "
                                f"load_vgg19(layers={layers})")
    return feats


def correspond(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
               refs_down_up: list[Tensor] | None = None) -> Correspondence:
    """Match φ(LR↑) against φ(Ref↓↑) at relu3_1 for images in [0, 1] (``1 x 3 x H x W``).

    ``refs`` are the original references (any sizes >= 12 px); their ``Ref↓↑`` is made with
    :func:`ref_down_up` unless given in ``refs_down_up`` (same order, e.g. from a cache).
    """
    lr_up = _as_image(lr_up, "lr_up")
    if min(lr_up.shape[-2:]) < RELU3_STRIDE:
        raise RefsrError("lr", f"LR↑ image {lr_up.shape[-1]}x{lr_up.shape[-2]} px is smaller "
                               f"than one relu3_1 position ({RELU3_STRIDE} px)")
    refs = [_as_image(ref, f"reference {i}") for i, ref in enumerate(refs)]
    if not refs:
        raise RefsrError("reference", "at least one reference is needed")
    for i, ref in enumerate(refs):
        _check_ref_image(ref, i)
    if refs_down_up is None:
        refs_down_up = [ref_down_up(ref) for ref in refs]
    elif len(refs_down_up) != len(refs):
        raise ValueError(f"{len(refs_down_up)} Ref↓↑ images for {len(refs)} references")
    for i, (ref, prepared) in enumerate(zip(refs, refs_down_up, strict=True)):
        if tuple(d // RELU3_STRIDE for d in ref.shape[-2:]) != \
                tuple(d // RELU3_STRIDE for d in prepared.shape[-2:]):
            raise ValueError(f"Ref↓↑ {i} is {tuple(prepared.shape[-2:])}, reference "
                             f"{tuple(ref.shape[-2:])}: their relu3_1 grids differ")
    layer = ("relu3_1",)
    content = _features(vgg, lr_up, layer)["relu3_1"]
    cands = [_features(vgg, _as_image(r, "Ref↓↑"), layer)["relu3_1"] for r in refs_down_up]
    return match(content, cands, patch=3, max_mb=max_mb)


def transfer(lr_up: Tensor, refs: list[Tensor], vgg, max_mb: float = 256,
             refs_down_up: list[Tensor] | None = None) -> tuple[Correspondence, dict[str, Tensor]]:
    """:func:`correspond` then :func:`swap` with φ(Ref) at relu1_1, relu2_1, relu3_1."""
    corr = correspond(lr_up, refs, vgg, max_mb=max_mb, refs_down_up=refs_down_up)
    layers = tuple(SWAP_SCALES)
    ref_feats = [_features(vgg, _as_image(ref, "reference"), layers) for ref in refs]
    return corr, swap(corr, ref_feats, out_hw=tuple(lr_up.shape[-2:]), max_mb=max_mb)


# ----------------------------------------------------------------------------- cache


def save_correspondence(path: str | Path, corr: Correspondence) -> None:
    """Write ``corr`` atomically as a compressed ``.npz``: int32 index, fp16 S*, grid shapes.

    ``cosine`` is not stored (training needs only index and S*).
    """
    score = corr.score.detach().cpu().numpy().astype(np.float16)
    if not np.isfinite(score).all():
        raise RefsrError(path, "S* does not fit in float16 (non-finite after conversion)")
    arrays = dict(index=corr.index.cpu().numpy().astype(np.int32), score=score,
                  ref_shapes=np.asarray(corr.ref_shapes, dtype=np.int32).reshape(-1, 2),
                  patch=np.int32(corr.patch), version=np.int32(_FORMAT_VERSION))
    # Writing through a file object stops numpy from appending ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_correspondence(path: str | Path, device: str | torch.device = "cpu") -> Correspondence:
    """Read a file written by :func:`save_correspondence` (``cosine`` is ``None``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in ("index", "score", "ref_shapes", "patch", "version")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RefsrError(path, f"not a readable correspondence file ({type(err).__name__}: {err})") from None
    if int(arrays["version"]) != _FORMAT_VERSION:
        raise RefsrError(path, f"correspondence format version {int(arrays['version'])}, "
                               f"expected {_FORMAT_VERSION}")
    index, score, shapes = arrays["index"], arrays["score"], arrays["ref_shapes"]
    corr = Correspondence(index=torch.from_numpy(index.astype(np.int64)).to(device),
                          score=torch.from_numpy(score.astype(np.float32)).to(device),
                          ref_shapes=tuple((int(h), int(w)) for h, w in shapes.reshape(-1, 2)),
                          patch=int(arrays["patch"]))
    if index.ndim != 2 or score.shape != index.shape or not corr.ref_shapes:
        raise RefsrError(path, f"inconsistent shapes: index {index.shape}, score {score.shape}")
    if index.size and (index.min() < 0 or index.max() >= corr.offsets[-1]):
        raise RefsrError(path, "patch index out of range for the stored reference grids")
    return corr
