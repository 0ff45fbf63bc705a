"""C2-Matching as released (refsr.models.c2matching, refsr.models.importers.c2matching_official):
every stage against the outputs of the released code (``../shared/fixtures/c2matching-released/``,
skipped when absent), the DCN layout against an explicit transcription of DCNv2's CUDA kernel,
the streamed matching against one full correlation, the importer's one-line refusals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import deform_conv2d

from refsr.core.errors import RefsrError
from refsr.models.c2matching import (
    C2Matching,
    DynAgg,
    feature_match_index,
    index_to_flow,
    pre_offsets,
    released_inputs,
    released_test_path,
    super_resolve,
)
from refsr.models.importers import import_weights
from refsr.models.importers.c2matching_official import load, model_of

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "c2matching-released"
RESTORATION, EXTRACTOR, VGG = "c2_matching_restoration.pth", "feature_extraction.pth", "vgg19_features.pth"


def _fixture() -> Path:
    if not (FIXTURE / RESTORATION).is_file():
        pytest.skip(f"the released C2-Matching fixture is absent ({FIXTURE})")
    return FIXTURE


def _load(name: str):
    return torch.load(_fixture() / name, map_location="cpu", weights_only=True)


def _png(name: str) -> np.ndarray:
    return np.asarray(Image.open(_fixture() / name).convert("RGB"))


@pytest.fixture(scope="module")
def released():
    """The fixture's networks, loaded strictly, and one run on the fixture's inputs."""
    _fixture()
    net = C2Matching().eval()
    net.net_g.load_state_dict(_load(RESTORATION), strict=True)
    net.net_extractor.load_state_dict(_load(EXTRACTOR), strict=True)
    net.vgg.features.load_state_dict({k.removeprefix("features."): v for k, v in _load(VGG).items()}, strict=True)
    inp = _load("inputs.pt")
    probes: dict = {}
    hooks = [net.net_g.get_submodule(name).register_forward_hook(
        lambda mod, args, out, name=name: probes.__setitem__(name, out.detach().clone()))
        for name in _probe_modules()]
    try:
        out = net(inp["img_in_lq"], inp["img_in_up"], inp["img_ref"])
    finally:
        for h in hooks:
            h.remove()
    return net, inp, out, dict(net.last_intermediates), probes


def _probe_modules() -> list[str]:
    names = ["content_extractor"]
    for stage in ("small", "medium", "large"):
        names += [f"dyn_agg_restore.{stage}_offset_conv2", f"dyn_agg_restore.{stage}_dyn_agg.conv_offset_mask",
                  f"dyn_agg_restore.{stage}_dyn_agg", f"dyn_agg_restore.tail_{stage}"]
    return names


def _small_net(seed: int = 0) -> C2Matching:
    """Random weights, small restoration trunk; offsets and masks far from their zero init."""
    torch.manual_seed(seed)
    net = C2Matching(ngf=8, n_blocks=1, groups=8).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("vgg."):
                continue
            if "conv_offset_mask" in name:
                p.normal_(0, 0.02) if p.dim() == 4 else p.uniform_(-1, 1)
            elif p.dim() == 4:
                p.normal_(0, (2 / p[0].numel()) ** 0.5)
            else:
                p.uniform_(-0.05, 0.05)
        for p in net.vgg.parameters():
            p.normal_(0, (2 / p[0].numel()) ** 0.5) if p.dim() == 4 else p.uniform_(-0.05, 0.05)
    return net


# ----------------------------------------------------------------------------- against the released code


def test_released_state_dicts_load_strictly():
    net = C2Matching()
    g, e = _load(RESTORATION), _load(EXTRACTOR)
    assert len(g) == 296 and len(e) == 24
    net.net_g.load_state_dict(g, strict=True)
    net.net_extractor.load_state_dict(e, strict=True)
    listed = [line.split("\t")[1] for line in (FIXTURE / "keys.txt").read_text().splitlines()
              if line.startswith(RESTORATION)]
    assert list(net.net_g.state_dict()) == listed  # same names, same order as the released network


def test_preprocessing_is_the_released_datasets():
    inputs, size = released_inputs(_png("hr.png"), _png("ref.png"))
    theirs = _load("inputs.pt")
    assert size == (80, 96)
    for key in ("img_in_lq", "img_in_up", "img_ref", "img_in"):
        assert torch.equal(inputs[key], theirs[key]), key


def test_contrastive_features(released):
    _, _, _, inter, _ = released
    theirs = _load("contras_feats.pt")
    for key in ("dense_features1", "dense_features2"):
        diff = (inter[key] - theirs[key]).abs().max().item()
        assert diff <= 1e-5, (key, diff)  # measured: 0.0 (bit for bit)


def test_matching_indices_and_offsets(released):
    _, _, _, inter, _ = released
    theirs = _load("matching.pt")
    differ = int((inter["max_idx"][0] != theirs["max_idx"]).sum())
    # near ties exist (one top1-top2 gap below 1e-5, two below 1e-4); measured: 0 positions differ
    assert differ <= 2, f"{differ} of {theirs['max_idx'].numel()} max_idx positions differ"
    if differ == 0:
        for layer in ("relu3_1", "relu2_1", "relu1_1"):
            assert torch.equal(inter["pre_offset"][layer], theirs[f"offset_{layer}"].float()), layer


def test_max_val_with_input_norm():
    """``norm_input`` only rescales max_val (discarded by the released code); it matches too."""
    feats = _load("contras_feats.pt")
    c, h, w = feats["dense_features1"][0].shape
    fi = F.normalize(feats["dense_features1"][0].reshape(c, -1), dim=0).view(c, h, w)
    fr = F.normalize(feats["dense_features2"][0].reshape(c, -1), dim=0).view(c, h, w)
    idx, val = feature_match_index(fi, fr, norm_input=True)
    theirs = _load("matching.pt")
    assert torch.equal(idx, theirs["max_idx"])
    assert (val - theirs["max_val"]).abs().max().item() < 1e-5


def test_reference_vgg_features(released):
    _, _, _, inter, _ = released
    assert (inter["ref_feat"]["relu3_1"] - _load("ref_vgg_relu3_1.pt")["relu3_1"]).abs().max().item() <= 1e-5
    probes = _load("probes.pt")["ref_vgg"]
    for layer, probe in probes.items():
        ours = inter["ref_feat"][layer]
        assert (ours.mean(dim=(0, 2, 3)) - probe["channel_mean"]).abs().max().item() < 1e-5, layer
        y, x = probe["crop_yx"]
        assert (ours[..., y:y + 3, x:x + 3] - probe["crop"]).abs().max().item() < 1e-5, layer


def test_restoration_submodules_match_probes(released):
    _, _, _, _, ours = released
    probes = _load("probes.pt")["restoration"]
    for name, out in ours.items():
        probe = probes[f"{name} (output)"]
        y, x = probe["crop_yx"]
        assert (out.mean(dim=(0, 2, 3)) - probe["channel_mean"]).abs().max().item() < 1e-4, name
        assert (out[..., y:y + 3, x:x + 3] - probe["crop"]).abs().max().item() < 1e-4, name


def test_dcn_offsets_and_masks_match_probes(released):
    net, _, _, inter, ours = released
    probes = _load("probes.pt")["dcn"]
    for stage, layer in (("small", "relu3_1"), ("medium", "relu2_1"), ("large", "relu1_1")):
        dcn = net.net_g.dyn_agg_restore.get_submodule(f"{stage}_dyn_agg")
        feat = F.leaky_relu(ours[f"dyn_agg_restore.{stage}_offset_conv2"], 0.1)
        offset, mask = dcn.offset_mask(feat, inter["pre_offset"][layer])
        for what, t in (("offset (kernel input: learned + reordered pre_offset)", offset),
                        ("mask (kernel input, after sigmoid)", mask)):
            probe = probes[f"{stage}_dyn_agg {what}"]
            y, x = probe["crop_yx"]
            assert (t.mean(dim=(0, 2, 3)) - probe["channel_mean"]).abs().max().item() < 1e-4, (stage, what)
            assert (t[..., y:y + 3, x:x + 3] - probe["crop"]).abs().max().item() < 1e-4, (stage, what)


def test_output_before_clamp(released):
    _, _, out, _, _ = released
    theirs = _load("out_sr.pt")
    diff = (out - theirs).abs().max().item()
    assert diff < 1e-5, diff  # measured: 2.4e-7


def test_released_test_path_png(released):
    net = released[0]
    sr = released_test_path(net, _png("hr.png"), _png("ref.png"))
    theirs = _png("sr_released_test.png")
    assert sr.shape == theirs.shape
    diff = np.abs(sr.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and int((diff > 0).sum()) <= 10, f"{int((diff > 0).sum())} values differ"  # measured: 0


def test_pipeline_entry_on_the_released_lr(released):
    """``super_resolve`` given the LR the released test made (no padding here) gives its PNG."""
    net = released[0]
    sr = super_resolve(net, _png("lr.png"), [_png("ref.png")])
    assert np.array_equal(sr, _png("sr_released_test.png"))


# ----------------------------------------------------------------------------- other sizes (held-out shape)


def _full_match(fi: torch.Tensor, fr: torch.Tensor, p: int = 3) -> torch.Tensor:
    """One full correlation (every normalised reference patch at once), argmax (first maximum)."""
    c = fr.shape[0]
    pat = fr.unfold(1, p, 1).unfold(2, p, 1).permute(1, 2, 0, 3, 4).reshape(-1, c, p, p)
    pat = pat / (pat.flatten(1).norm(dim=1) + 1e-5).view(-1, 1, 1, 1)
    return F.conv2d(fi[None], pat)[0].argmax(dim=0)


def test_padding_and_odd_lr_sizes():
    """HR 68x52 with a 65x61 reference (mod-crop 64x60, both padded to 68x60, LR 17x15, odd)."""
    net = _small_net()
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (68, 52, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (65, 61, 3), dtype=np.uint8)
    inputs, size = released_inputs(hr, ref)
    assert size == (68, 52)
    assert inputs["img_in_lq"].shape[-2:] == (17, 15) and inputs["img_ref"].shape[-2:] == (68, 60)
    assert inputs["img_in_up"].shape[-2:] == (68, 60) and inputs["img_in"].shape[-2:] == (68, 52)
    # the LR is made after padding: it differs from the unpadded HR's LR near the pad
    assert inputs["img_ref"][..., 64:, :].abs().max() == 0 and inputs["img_in_lq"][..., :, 14:].abs().max() == 0
    sr = released_test_path(net, hr, ref)
    assert sr.shape == (68, 52, 3) and sr.dtype == np.uint8
    inter = net.last_intermediates
    fi, fr = inter["dense_features1"][0], inter["dense_features2"][0]
    assert fi.shape[-2:] == (17, 15)
    c = fi.shape[0]
    fin = F.normalize(fi.reshape(c, -1), dim=0).view_as(fi)
    frn = F.normalize(fr.reshape(c, -1), dim=0).view_as(fr)
    assert torch.equal(inter["max_idx"][0], _full_match(fin, frn))
    assert inter["pre_offset"]["relu1_1"].shape == (1, 9, 68, 60, 2)


def test_index_to_flow_and_shifts():
    max_idx = torch.tensor([[0, 5], [7, 2]])  # patch grid 2 x 2 ... of a 4 x 4 map: w' = 2
    flow = index_to_flow(max_idx)
    assert flow.shape == (1, 4, 4, 2)
    # [x, y] = (idx mod 2 - x, idx div 2 - y)
    assert flow[0, 0, 0].tolist() == [0, 0] and flow[0, 0, 1].tolist() == [0, 2]
    assert flow[0, 1, 0].tolist() == [1, 2] and flow[0, 1, 1].tolist() == [-1, 0]
    assert flow[0, 2:].abs().sum() == 0 and flow[0, :, 2:].abs().sum() == 0
    pre = pre_offsets(flow)
    assert pre["relu3_1"].shape == (9, 4, 4, 2) and pre["relu1_1"].shape == (9, 16, 16, 2)
    # copy k = 3i + j: flow(y - i, x - j), zero filled; relu1_1: x4 nearest, x4 values, shift 4i, 4j
    assert torch.equal(pre["relu3_1"][4, 1:, 1:], flow[0, :3, :3]) and pre["relu3_1"][4, 0].abs().sum() == 0
    up = flow[0].repeat_interleave(4, 0).repeat_interleave(4, 1) * 4
    assert torch.equal(pre["relu1_1"][5, 4:, 8:], up[:12, :8])


def test_super_resolve_pads_and_takes_the_first_reference():
    net = _small_net(1)
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    big = rng.integers(0, 256, (75, 58, 3), dtype=np.uint8)  # taller than LR↑ (52 x 68), narrower
    other = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    one = super_resolve(net, lr, [big])
    assert one.shape == (52, 68, 3) and one.dtype == np.uint8
    assert net.last_intermediates["dense_features1"].shape[-2:] == (18, 17)  # (72 x 68) / 4
    assert np.array_equal(super_resolve(net, lr, [big, other]), one)
    assert np.array_equal(net.super_resolve(lr, [big], max_mb=2), one)  # the matching streamed: same image
    raw = super_resolve(net, lr, [big], return_float=True)
    assert raw.shape == (1, 3, 52, 68)
    assert np.array_equal(np.round(raw[0].clamp(0, 1).permute(1, 2, 0).numpy() * np.float32(255)), one)
    with pytest.raises(RefsrError, match="needs a reference"):
        super_resolve(net, lr, [])


def test_quantisation_rounds_half_to_even():
    from refsr.models.c2matching import quantise

    out = torch.tensor([0.5, 1.5, 2.5, 253.5, -3.0, 300.0]).div(255).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    q = quantise(out)[0, :, 0]
    assert q.tolist() == [0, 2, 2, 254, 0, 255]


# ----------------------------------------------------------------------------- streamed matching


def test_streamed_matching_bounded_and_exact():
    torch.manual_seed(3)
    c, h, w = 64, 46, 53
    fi = F.normalize(torch.randn(c, h, w), dim=0)
    fr = F.normalize(torch.randn(c, 41, 57), dim=0)
    full_idx, full_val = feature_match_index(fi, fr)  # the released chunking: one block here
    stats: dict = {}
    small_idx, small_val = feature_match_index(fi, fr, max_mb=2, stats=stats)
    assert stats["peak_block_bytes"] <= 2 * 2**20
    chunk, rows = stats["plan"]
    assert chunk < 39 * 55 and rows < h - 2  # both the reference patches and the input rows are split
    assert torch.equal(small_idx, full_idx)
    assert torch.equal(full_idx, _full_match(fi, fr))
    assert (small_val - full_val).abs().max().item() < 1e-5
    # the released chunking over several chunks (its 2**29 elements scaled down) agrees as well
    from refsr.models import c2matching

    old = c2matching.RELEASED_BLOCK
    c2matching.RELEASED_BLOCK = 101 * h * w
    try:
        assert torch.equal(feature_match_index(fi, fr)[0], full_idx)
    finally:
        c2matching.RELEASED_BLOCK = old


def test_streamed_matching_ties_go_to_the_earliest_patch():
    """A reference periodic in x (period 4): equal patches 4 apart; every chunking keeps the first."""
    torch.manual_seed(4)
    c = 16
    base = torch.randn(c, 12, 4)
    fr = F.normalize(base.repeat(1, 1, 5), dim=0)  # 12 x 20, grid 10 x 18
    fi = fr[:, 2:11, 3:15].clone()
    gw = 18
    want = None
    for max_mb in (None, 1.0, 0.1, 0.05):  # 0.05: chunks of 17 patches (< a period row), bands of 2
        idx, _ = feature_match_index(fi, fr, max_mb=max_mb)
        assert ((idx % gw) < 4).all(), max_mb  # the first of each group of equal patches
        want = idx if want is None else want
        assert torch.equal(idx, want), max_mb


# ----------------------------------------------------------------------------- the DCN layout


def _dcn_transcription(x, offset, mask, weight, bias, pad=1):
    """DCNv2's ``modulated_deformable_im2col`` + GEMM, written out: offset channel
    ``g*2*K + 2k`` = dy, ``+1`` = dx, mask channel ``g*K + k``; a sample counts when
    ``-1 < h < H`` and ``-1 < w < W``; bilinear corners outside the map read 0."""
    n, c, hh, ww = x.shape
    o, _, kh, kw = weight.shape
    k_all = kh * kw
    dg = offset.shape[1] // (2 * k_all)
    cpg = c // dg
    ys = torch.arange(hh, dtype=x.dtype).view(1, hh, 1)
    xs = torch.arange(ww, dtype=x.dtype).view(1, 1, ww)
    cols = x.new_zeros(n, c, k_all, hh, ww)
    for g in range(dg):
        xg = x[:, g * cpg:(g + 1) * cpg].reshape(n, cpg, hh * ww)
        for i in range(kh):
            for j in range(kw):
                k = i * kw + j
                h = ys - pad + i + offset[:, g * 2 * k_all + 2 * k]
                w = xs - pad + j + offset[:, g * 2 * k_all + 2 * k + 1]
                inside = (h > -1) & (w > -1) & (h < hh) & (w < ww)
                h0, w0 = torch.floor(h), torch.floor(w)
                lh, lw = h - h0, w - w0
                val = x.new_zeros(n, cpg, hh, ww)
                for dy, dx, wt in ((0, 0, (1 - lh) * (1 - lw)), (0, 1, (1 - lh) * lw),
                                   (1, 0, lh * (1 - lw)), (1, 1, lh * lw)):
                    yy, xx = h0 + dy, w0 + dx
                    ok = (yy >= 0) & (yy <= hh - 1) & (xx >= 0) & (xx <= ww - 1)
                    flat = (yy.clamp(0, hh - 1) * ww + xx.clamp(0, ww - 1)).long().view(n, 1, -1)
                    got = torch.gather(xg, 2, flat.expand(n, cpg, -1)).view(n, cpg, hh, ww)
                    val += got * (wt * ok).unsqueeze(1)
                cols[:, g * cpg:(g + 1) * cpg, k] = val * (inside * mask[:, g * k_all + k]).unsqueeze(1)
    return torch.einsum("ock,nckhw->nohw", weight.reshape(o, c, k_all), cols) + bias.view(1, -1, 1, 1)


def _adversarial_offsets(n, ch, hh, ww, gen):
    off = torch.randn(n, ch, hh, ww, generator=gen, dtype=torch.float64) * 3
    pick = torch.randint(0, 6, off.shape, generator=gen)
    ys = torch.arange(hh, dtype=torch.float64).view(1, 1, hh, 1)
    xs = torch.arange(ww, dtype=torch.float64).view(1, 1, 1, ww)
    is_y = (torch.arange(ch) % 2 == 0).view(1, ch, 1, 1)
    pos = torch.where(is_y, ys, xs)
    size = torch.where(is_y, torch.tensor(float(hh)), torch.tensor(float(ww)))
    off = torch.where(pick == 1, torch.round(off), off)  # exact integers
    off = torch.where(pick == 2, -1 - pos, off)  # lands on exactly -1 (before the tap's -1 + i)
    off = torch.where(pick == 3, size - pos, off)  # lands on exactly H / W
    off = torch.where(pick == 4, off * 40, off)  # far out of range
    return torch.where(pick == 5, torch.round(off) + 0.5, off)  # half-integers


@pytest.mark.parametrize("n,c,hh,ww,o,dg", [(2, 16, 9, 11, 8, 4), (1, 64, 7, 5, 32, 8), (1, 24, 13, 6, 24, 8)])
def test_torchvision_deform_conv_is_dcnv2(n, c, hh, ww, o, dg):
    gen = torch.Generator().manual_seed(n * 1000 + c + hh)
    x = torch.randn(n, c, hh, ww, generator=gen, dtype=torch.float64)
    weight = torch.randn(o, c, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(o, generator=gen, dtype=torch.float64)
    offset = _adversarial_offsets(n, 2 * dg * 9, hh, ww, gen)
    mask = torch.rand(n, dg * 9, hh, ww, generator=gen, dtype=torch.float64)
    ours = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    ref = _dcn_transcription(x, offset, mask, weight, bias)
    assert (ours - ref).abs().max().item() < 1e-10
    swapped = offset.view(n, dg * 9, 2, hh, ww).flip(2).reshape_as(offset)
    assert (deform_conv2d(x, swapped, weight, bias, padding=1, mask=mask) - ref).abs().max().item() > 0.1


def test_dyn_agg_adds_the_pre_offsets_as_released():
    """DCN_sep_pre_multi_offset: offsets = first 2/3 of conv_offset_mask, + pre-offset copy k as
    (y, x) on channels 2(g*9+k), 2(g*9+k)+1 of every group; mask = sigmoid of the last third."""
    torch.manual_seed(5)
    dcn = DynAgg(16, 8, groups=4).double()
    with torch.no_grad():
        dcn.conv_offset_mask.weight.normal_(0, 0.05)
        dcn.conv_offset_mask.bias.uniform_(-1, 1)
        dcn.bias.uniform_(-0.1, 0.1)
    x = torch.randn(1, 16, 10, 12, dtype=torch.float64)
    feat = torch.randn(1, 16, 10, 12, dtype=torch.float64)
    pre = torch.randint(-6, 7, (1, 9, 10, 12, 2)).double()
    out = dcn(x, feat, pre)
    raw = dcn.conv_offset_mask(feat)
    o1, o2, m = torch.chunk(raw, 3, dim=1)
    offset = torch.cat((o1, o2), dim=1).clone()
    for g in range(4):
        for k in range(9):
            offset[:, 2 * (g * 9 + k)] += pre[:, k, ..., 1]
            offset[:, 2 * (g * 9 + k) + 1] += pre[:, k, ..., 0]
    ref = _dcn_transcription(x, offset, torch.sigmoid(m), dcn.weight, dcn.bias)
    assert (out - ref).abs().max().item() < 1e-10


# ----------------------------------------------------------------------------- the importer


def _copy(tmp: Path, restoration: str = RESTORATION, extractor: bool = True, **edits) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    state = dict(_load(RESTORATION))
    for key, value in edits.items():
        key = key.replace("__", ".")
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save(state, tmp / restoration)
    if extractor:
        torch.save(_load(EXTRACTOR), tmp / EXTRACTOR)
    return tmp


def test_import_released_folder_and_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_VGG19_WEIGHTS", str(_fixture() / VGG))
    written = import_weights("c2matching-official", FIXTURE, tmp_path / "out")
    assert set(written) == {"c2matching"}
    net, ckpt = load(written["c2matching"])
    assert ckpt["model"] == "c2matching" and ckpt["recipe"] == "official"
    assert ckpt["arch_cfg"] == {"ngf": 64, "n_blocks": 16, "groups": 8}
    theirs = {**{f"net_g.{k}": v for k, v in _load(RESTORATION).items()},
              **{f"net_extractor.{k}": v for k, v in _load(EXTRACTOR).items()},
              **{f"vgg.{k}": v for k, v in _load(VGG).items()}}
    ours = net.state_dict()
    assert set(ours) == set(theirs) | {"vgg.mean", "vgg.std"}
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())  # so the outputs are those tested above


def test_import_legacy_container_with_module_prefix(tmp_path, monkeypatch):
    """PyTorch 1.4 wrote the legacy (non-zip) container; DataParallel leaves ``module.``."""
    monkeypatch.setenv("REFSR_VGG19_WEIGHTS", str(_fixture() / VGG))
    src = tmp_path / "released"
    src.mkdir()
    state = {f"module.{k}": v for k, v in _load(RESTORATION).items()}
    torch.save(state, src / "c2_matching_restoration_mse.pth", _use_new_zipfile_serialization=False)
    torch.save(_load(EXTRACTOR), src / EXTRACTOR, _use_new_zipfile_serialization=False)
    assert model_of(src / "c2_matching_restoration_mse.pth") == "c2matching_rec"
    # one file, its model named by --model (any name); the extractor read beside it
    renamed = src / "generator.pth"
    (src / "c2_matching_restoration_mse.pth").rename(renamed)
    written = import_weights("c2matching-official", renamed, tmp_path / "out", model="c2matching_rec")
    assert set(written) == {"c2matching_rec"}
    net, ckpt = load(written["c2matching_rec"])
    assert ckpt["model"] == "c2matching_rec" and ckpt["imported_from"] == str(renamed)
    for key, value in _load(RESTORATION).items():
        assert torch.equal(net.net_g.state_dict()[key], value), key
    for key, value in _load(EXTRACTOR).items():
        assert torch.equal(net.net_extractor.state_dict()[key], value), key


@pytest.mark.parametrize("edit,match", [
    ({"dyn_agg_restore__extra__weight": torch.zeros(3)}, r"key dyn_agg_restore\.extra\.weight: unexpected"),
    ({"dyn_agg_restore__head_small__0__weight": torch.zeros(64, 300, 3, 3)},
     r"key dyn_agg_restore\.head_small\.0\.weight: shape \(64, 300, 3, 3\), expected \(64, 320, 3, 3\)"),
    ({"dyn_agg_restore__tail_large__2__bias": None}, r"key dyn_agg_restore\.tail_large\.2\.bias: missing"),
])
def test_importer_refuses_a_file_that_is_not_the_released_network(tmp_path, monkeypatch, edit, match):
    monkeypatch.setenv("REFSR_VGG19_WEIGHTS", str(_fixture() / VGG))
    src = _copy(tmp_path / "src", **edit)
    with pytest.raises(RefsrError, match=match) as err:
        import_weights("c2matching-official", src, tmp_path / "out")
    assert "\n" not in str(err.value) and RESTORATION in str(err.value)
    assert not (tmp_path / "out" / "c2matching.pt").exists()


def test_importer_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_VGG19_WEIGHTS", str(_fixture() / VGG))
    # the extractor missing
    src = _copy(tmp_path / "a", extractor=False)
    with pytest.raises(RefsrError, match="feature_extraction.pth: the released contrastive extractor"):
        import_weights("c2matching-official", src, tmp_path / "out")
    # an extractor that is another network (the VGG19 state dict)
    torch.save(_load(VGG), src / EXTRACTOR)
    with pytest.raises(RefsrError, match=r"feature_extraction\.pth: key features\.0\.weight: unexpected"):
        import_weights("c2matching-official", src, tmp_path / "out")
    # another file of tensors in place of the restoration weights
    wrong = _copy(tmp_path / "c")
    torch.save(_load("contras_feats.pt"), wrong / RESTORATION)
    with pytest.raises(RefsrError, match=r"c2_matching_restoration\.pth: key dense_features1: unexpected"):
        import_weights("c2matching-official", wrong, tmp_path / "out")
    # not a state dict at all
    (src / EXTRACTOR).write_bytes(b"not a pickle")
    with pytest.raises(RefsrError, match="not a readable PyTorch state dict") as err:
        import_weights("c2matching-official", src, tmp_path / "out")
    assert "\n" not in str(err.value)
    # a folder without restoration files; a file of an unknown name without --model
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RefsrError, match="no released C2-Matching restoration file"):
        import_weights("c2matching-official", empty, tmp_path / "out")
    other = _copy(tmp_path / "b", restoration="weights.pth")
    with pytest.raises(RefsrError, match=re.escape("--model c2matching|c2matching_rec")):
        import_weights("c2matching-official", other / "weights.pth", tmp_path / "out")
    with pytest.raises(RefsrError, match="c2matching_rec, not 'srntt'"):
        import_weights("c2matching-official", other / "weights.pth", tmp_path / "out", model="srntt")


def test_load_refuses_other_checkpoints(tmp_path):
    from refsr.models.checkpoint import save_checkpoint
    from refsr.models.srresnet import SRResNet

    cfg = {"n_blocks": 1, "n_feats": 8, "residual_over_bicubic": False, "res_scale": 1.0}
    save_checkpoint(tmp_path / "s.pt", SRResNet(**cfg), "srresnet", cfg)
    with pytest.raises(RefsrError, match="checkpoint of model 'srresnet', expected c2matching or c2matching_rec"):
        load(tmp_path / "s.pt")
