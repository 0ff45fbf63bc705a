"""Reference pre-alignment (refsr.inference.align) and the known-correspondence accuracy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from refsr.core.errors import RefsrError
from refsr.core.imageio import to_tensor
from refsr.data.resize import degrade, upscale
from refsr.inference.align import AlignStats, ReferenceAligner, degenerate
from refsr.matching import transfer
from refsr.matching.accuracy import match_accuracy, true_cells

SIDE = 160


def _hr() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[40:40 + SIDE, 150:150 + SIDE])


def _known_view(photo: np.ndarray, x0: int, y0: int, side: int, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``side`` view of ``photo`` whose corners sit at ``corners`` (photo px), and the
    homography from the HR window (origin ``x0, y0``) to that view's pixels."""
    dst = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    view_to_photo = cv2.getPerspectiveTransform(dst, np.float32(corners))
    view = cv2.warpPerspective(photo, view_to_photo, (side, side), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)
    hr_to_photo = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], float)
    return view, np.linalg.inv(view_to_photo) @ hr_to_photo


@pytest.fixture(scope="module")
def warped_pair():
    photo = skimage.data.astronaut()
    x0, y0 = 150, 40
    # A strong viewpoint change: the view rotated by 25 degrees, its content at 0.8x scale, and
    # a perspective tilt (corners moved by up to 6 % of the side).
    t = np.deg2rad(25)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * SIDE / 2 / 0.8
    tilt = np.array([[-10, 6], [8, -4], [0, 9], [5, -7]], float)
    c = unit @ rot.T + tilt + [x0 + SIDE / 2, y0 + SIDE / 2]
    ref, h_true = _known_view(photo, x0, y0, SIDE, c)
    hr = photo[y0:y0 + SIDE, x0:x0 + SIDE]
    _, lr = degrade(np.ascontiguousarray(hr), 4)
    return upscale(lr, 4), ref, h_true


def test_homography_recovered_and_reference_warped(warped_pair):
    lr_up, ref, h_true = warped_pair
    a = ReferenceAligner("homography", min_inliers=15)(lr_up, ref)
    assert a.aligned, a.status
    h = a.homography / a.homography[2, 2]
    pts = np.float64([[[20, 20]], [[140, 30]], [[80, 80]], [[30, 140]], [[140, 140]]])
    err = np.abs(cv2.perspectiveTransform(pts, h) - cv2.perspectiveTransform(pts, h_true / h_true[2, 2]))
    assert err.mean() < 2.0 and err.max() < 6.0  # px in the reference (RANSAC threshold 5 px)
    assert a.image.shape == lr_up.shape
    # The warped reference is registered with the input: far closer to LR↑ than the raw view.
    d_raw = np.abs(ref.astype(float) - lr_up).mean()
    d_warp = np.abs(a.image.astype(float) - lr_up)[16:-16, 16:-16].mean()
    assert d_warp < 0.5 * d_raw


def test_warped_reference_matches_better(warped_pair, vgg):
    lr_up, ref, h_true = warped_pair
    a = ReferenceAligner("homography")(lr_up, ref)
    assert a.aligned
    lr_t = to_tensor(lr_up)
    raw, _ = transfer(lr_t, [to_tensor(ref)], vgg)
    warped, _ = transfer(lr_t, [to_tensor(a.image)], vgg)
    acc_raw, n_raw = match_accuracy(raw, h_true)
    # In the warped frame the truth is H_est^-1 · H_true (warped(q) = ref(H_est q)).
    acc_warp, n_warp = match_accuracy(warped, np.linalg.inv(a.homography) @ h_true)
    assert n_raw > 100 and n_warp > 100
    assert acc_warp > acc_raw + 0.2, (acc_raw, acc_warp)
    assert warped.score.mean() > raw.score.mean()


def test_unrelated_photo_keeps_unwarped_reference_and_is_counted(warped_pair):
    lr_up, _, _ = warped_pair
    other = np.ascontiguousarray(skimage.data.coffee()[100:100 + SIDE, 200:200 + SIDE])
    aligner, stats = ReferenceAligner("homography", min_inliers=15), AlignStats()
    a = aligner(lr_up, other)
    stats.add(a)
    assert not a.aligned and a.status.startswith("fallback")
    assert a.image is other
    stats.add(aligner(lr_up, warped_pair[1]))
    assert stats.as_dict()["attempted"] == 2
    assert stats.as_dict()["fallback"] == 1 and stats.as_dict()["aligned"] == 1


def test_align_none_is_identity_and_bad_mode_is_one_line_error(warped_pair):
    lr_up, ref, _ = warped_pair
    a = ReferenceAligner("none")(lr_up, ref)
    assert a.image is ref and a.status == "identity"
    with pytest.raises(RefsrError, match="reference.align"):
        ReferenceAligner("flow")


def _non_rigid_view():
    """A view the homography cannot register alone: a 10-degree rotation at 0.9x scale, then a
    smooth non-rigid displacement of up to 4 px (parallax-like); the HR window, its LR↑ and the view."""
    photo = skimage.data.astronaut()
    x0, y0 = 150, 40
    t = np.deg2rad(10)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * SIDE / 2 / 0.9
    view, _ = _known_view(photo, x0, y0, SIDE, unit @ rot.T + [x0 + SIDE / 2, y0 + SIDE / 2])
    gx, gy = np.meshgrid(np.arange(SIDE, dtype=np.float32), np.arange(SIDE, dtype=np.float32))
    dx, dy = 4 * np.sin(2 * np.pi * gy / SIDE), 3 * np.cos(2 * np.pi * gx / SIDE)
    view = cv2.remap(view, gx + dx, gy + dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    hr = np.ascontiguousarray(photo[y0:y0 + SIDE, x0:x0 + SIDE])
    return hr, upscale(degrade(hr, 4)[1], 4), view


def test_flow_refines_what_the_homography_leaves():
    """homography_then_flow: on a view with a non-rigid displacement, the flow-refined reference
    is much closer to the HR than the homography-warped one (its residual error less than half);
    the count of refined references is kept; a fallback is not refined; it is deterministic."""
    hr, lr_up, view = _non_rigid_view()
    err = lambda im: np.abs(im.astype(float) - hr)[16:-16, 16:-16].mean()  # noqa: E731
    h = ReferenceAligner("homography")(lr_up, view)
    stats = AlignStats()
    f = ReferenceAligner("homography_then_flow")(lr_up, view)
    stats.add(f)
    assert h.aligned and f.aligned and f.flow_px > 1.0 and h.flow_px is None
    assert err(f.image) < 0.5 * err(h.image), (err(h.image), err(f.image))
    np.testing.assert_array_equal(f.image, ReferenceAligner("homography_then_flow")(lr_up, view).image)
    other = np.ascontiguousarray(skimage.data.coffee()[100:100 + SIDE, 200:200 + SIDE])
    fb = ReferenceAligner("homography_then_flow")(lr_up, other)
    stats.add(fb)
    assert fb.image is other and fb.flow_px is None
    assert stats.as_dict() == {"attempted": 2, "aligned": 1, "fallback": 1, "flow_refined": 1,
                               **{k: 1 for k in stats.as_dict() if k.startswith("fallback:")}}
    assert "then refined by optical flow: 1" in stats.summary()


def test_flow_is_clipped_to_max_flow():
    from refsr.inference.align import refine_by_flow

    hr, lr_up, view = _non_rigid_view()
    warped = ReferenceAligner("homography")(lr_up, view).image
    moved = lambda im: np.abs(im.astype(float) - warped)[16:-16, 16:-16].mean()  # noqa: E731
    free, med_free = refine_by_flow(lr_up, warped, 4, max_flow=16.0)
    clipped, med = refine_by_flow(lr_up, warped, 4, max_flow=0.5)
    assert med_free > 1.0 and med <= 0.5
    assert moved(clipped) < 0.5 * moved(free)


def test_align_modes_agree_across_schema_cli_and_aligner():
    from refsr.cli import build_parser
    from refsr.core.config import schema
    from refsr.inference.align import ALIGN_MODES

    ref = schema()["properties"]["reference"]["properties"]
    assert tuple(ref["align"]["enum"]) == ALIGN_MODES
    assert tuple(ref["per_model"]["additionalProperties"]["enum"]) == ALIGN_MODES
    items = schema()["properties"]["ablations"]["items"]["properties"]
    assert tuple(items["align"]["enum"]) == ALIGN_MODES
    sr = build_parser()._subparsers._group_actions[0].choices["sr"]
    assert tuple(next(a for a in sr._actions if a.dest == "align").choices) == ALIGN_MODES


def test_degenerate_homographies():
    assert degenerate(np.eye(3), 100, 100, 4.0) is None
    assert "scale" in degenerate(np.diag([10.0, 10.0, 1.0]), 100, 100, 4.0)
    assert "fold" in degenerate(np.diag([-1.0, 1.0, 1.0]), 100, 100, 4.0)
    assert degenerate(np.array([[1, 0, 0], [0, 1, 0], [-0.02, 0, 1.0]]), 100, 100, 4.0) is not None


def test_accuracy_of_the_identity_match():
    """A correspondence that matches every cell to itself is 100 % correct under H = I, and
    0 % under a shift of three cells."""
    from refsr.matching.correspondence import Correspondence

    gh, gw = 10, 12
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    # Patch-grid cell = centre - 1 (patch 3): clamp to the valid grid.
    idx = np.clip(ys - 1, 0, gh - 3) * (gw - 2) + np.clip(xs - 1, 0, gw - 3)
    corr = Correspondence(torch.from_numpy(idx), torch.ones(gh, gw), ((gh, gw),))
    acc, n = match_accuracy(corr, np.eye(3))
    assert n == gh * gw and acc == 1.0
    shift = np.array([[1, 0, 12.0], [0, 1, 0], [0, 0, 1]])
    acc, n = match_accuracy(corr, shift)
    assert n == gh * (gw - 3) and acc == 0.0
    assert true_cells(np.eye(3), (2, 2))[1, 1].tolist() == [1.5, 1.5]


def test_sr_cli_align_homography_warps_and_reports(warped_pair, tmp_path, vgg_weights, capsys):
    """``refsr sr --align homography``: a registered reference changes the SR output and the
    count is printed; an unrelated one falls back (counted), and --align none is the default."""
    from PIL import Image
    from test_infer import _ckpt

    from refsr.cli import main

    lr_up, ref, _ = warped_pair
    lr = degrade(_hr(), 4)[1]
    Image.fromarray(lr).save(tmp_path / "lr.png")
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(np.ascontiguousarray(skimage.data.coffee()[:SIDE, :SIDE])).save(tmp_path / "other.png")
    ckpt = _ckpt(tmp_path, "srntt_l2")
    base = ["sr", "--lr", str(tmp_path / "lr.png"), "--checkpoint", ckpt, "--tile", "0"]
    assert main([*base, "--ref", str(tmp_path / "ref.png"), "--out", str(tmp_path / "none.png")]) == 0
    capsys.readouterr()
    assert main([*base, "--ref", str(tmp_path / "ref.png"), "--ref", str(tmp_path / "other.png"),
                 "--align", "homography", "--out", str(tmp_path / "h.png")]) == 0
    assert "1 of 2 references warped by a homography, 1 kept unwarped" in capsys.readouterr().err
    assert main([*base, "--ref", str(tmp_path / "ref.png"), "--align", "homography",
                 "--out", str(tmp_path / "h1.png")]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("none.png", "h1.png"))
    assert a.shape == b.shape and not np.array_equal(a, b)
    capsys.readouterr()
    assert main([*base, "--ref", str(tmp_path / "ref.png"), "--align", "homography_then_flow",
                 "--out", str(tmp_path / "f1.png")]) == 0
    assert "then refined by optical flow: 1" in capsys.readouterr().err
    assert not np.array_equal(b, np.asarray(Image.open(tmp_path / "f1.png")))


def test_config_reference_section_per_model_override():
    from refsr.core.config import validate
    from refsr.inference.align import ReferenceAligner
    from refsr.pipeline import jobs

    def make_aligner(cfg, model):  # the aligner an infer job of ``model`` runs with
        spec = jobs.infer(cfg, model)
        return ReferenceAligner.from_config(spec["reference"], spec["scale"])

    cfg = validate({"reference": {"align": "none", "per_model": {"srntt": "homography"}, "min_inliers": 30}})
    assert make_aligner(cfg, "srntt").mode == "homography"
    assert make_aligner(cfg, "srntt_l2").mode == "none"
    assert make_aligner(cfg, "srntt").min_inliers == 30
    flow = make_aligner(validate({"scale": 4, "reference": {"align": "homography_then_flow", "max_flow": 8}}), "srntt")
    assert (flow.mode, flow.max_flow, flow.scale) == ("homography_then_flow", 8, 4)
    with pytest.raises(RefsrError, match="reference"):
        validate({"reference": {"align": "flow"}})
