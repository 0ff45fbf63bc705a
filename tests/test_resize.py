"""The MATLAB-style bicubic imresize port, mod-crop and the degradation helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refsr.core.errors import RefsrError
from refsr.data.resize import (
    cubic,
    degrade,
    down_up,
    imresize,
    imresize_float,
    modcrop,
    resize_weights,
    upscale,
)

RNG = np.random.default_rng(0)

# Keys' cubic (a = -0.5) at multiples of 1/8, computed by hand:
#   |x| <= 1: 1.5|x|^3 - 2.5|x|^2 + 1        1 < |x| <= 2: -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2
CUBIC_AT = {
    0.0: 1.0, 0.125: 0.9638671875, 0.375: 0.7275390625, 0.5: 0.5625, 0.625: 0.3896484375,
    0.875: 0.0908203125, 1.0: 0.0, 1.125: -0.0478515625, 1.375: -0.0732421875, 1.5: -0.0625,
    1.625: -0.0439453125, 1.875: -0.0068359375, 2.0: 0.0, 2.5: 0.0, 7.0: 0.0,
}


def image(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- kernel and weights


@pytest.mark.parametrize("x,value", CUBIC_AT.items())
def test_cubic_hand_values(x: float, value: float):
    assert cubic(np.array([x]))[0] == pytest.approx(value, abs=1e-15)
    assert cubic(np.array([-x]))[0] == pytest.approx(value, abs=1e-15)  # even


def test_cubic_partition_of_unity():
    t = np.linspace(0, 1, 17)
    total = sum(cubic(t - n) for n in range(-3, 4))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("in_len,scale", [(40, 0.25), (37, 0.25), (53, 0.25), (7, 0.25), (10, 4.0),
                                          (13, 4.0), (9, 0.5), (11, 1 / 3)])
def test_weight_rows_sum_to_one(in_len: int, scale: float):
    out_len = math.ceil(in_len * scale - 1e-9)
    mat = resize_weights(in_len, out_len, scale)
    assert mat.shape == (out_len, in_len)
    np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-12)


def test_downscale_interior_taps_by_hand():
    """x1/4: kernel widened to 16 taps, weight 0.25 * cubic(0.25 * d) (these 16 already sum to 1).

    Output pixel 3 (1-based) is centred at input coordinate u = 3 / 0.25 + 0.5 * (1 - 4) = 10.5,
    so 0-based input columns 9 and 10 are at distance 0.5, columns 8 and 11 at 1.5, ...
    """
    mat = resize_weights(40, 10, 0.25)
    row = mat[2]
    for col, d in [(9, 0.5), (10, 0.5), (8, 1.5), (11, 1.5), (7, 2.5), (12, 2.5), (6, 3.5),
                   (13, 3.5), (5, 4.5), (14, 4.5), (4, 5.5), (15, 5.5), (3, 6.5), (16, 6.5),
                   (2, 7.5), (17, 7.5)]:
        assert row[col] == pytest.approx(0.25 * CUBIC_AT[0.25 * d], abs=1e-15), (col, d)
    assert row[9] == pytest.approx(0.240966796875, abs=1e-15)
    assert row[2] == pytest.approx(-0.001708984375, abs=1e-15)
    assert row[1] == 0.0 and row[18] == 0.0 and np.count_nonzero(row) == 16


def test_upscale_interior_taps_by_hand():
    """x4: plain cubic; output pixel 10 (1-based) sits at u = 10 / 4 + 0.375 = 2.875."""
    mat = resize_weights(10, 40, 4.0)
    expected = [CUBIC_AT[1.875], CUBIC_AT[0.875], CUBIC_AT[0.125], CUBIC_AT[1.125]]
    np.testing.assert_allclose(mat[9, :4], expected, atol=1e-15)
    assert not mat[9, 4:].any()


def _reference_weights(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """MATLAB's contributions(), one output pixel and one input index at a time (slow, obvious)."""

    def mirror(i: int) -> int:  # 1-based symmetric extension: ... 2 1 | 1 2 .. n | n n-1 ...
        period = 2 * in_len
        j = (i - 1) % period
        return j if j < in_len else period - 1 - j

    shrink = scale < 1
    width = 4.0 / scale if shrink else 4.0
    mat = np.zeros((out_len, in_len))
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(math.ceil(width) + 2)]
        if shrink:
            w = [scale * float(cubic(np.array([scale * (u - i)]))[0]) for i in idx]
        else:
            w = [float(cubic(np.array([u - i]))[0]) for i in idx]
        total = sum(w)
        for i, wi in zip(idx, w, strict=True):
            mat[x - 1, mirror(i)] += wi / total
    return mat


@pytest.mark.parametrize("in_len,out_len,scale", [(13, 4, 0.25), (13, 52, 4.0), (5, 2, 0.25),
                                                  (7, 3, 0.4), (3, 12, 4.0)])
def test_weights_match_a_loop_implementation(in_len: int, out_len: int, scale: float):
    np.testing.assert_allclose(resize_weights(in_len, out_len, scale),
                               _reference_weights(in_len, out_len, scale), atol=1e-12)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("method", ["matlab", "pil"])
def test_output_size_is_ceil(method: str):
    img = image(37, 53)
    assert imresize(img, 0.25, method).shape == (10, 14, 3)  # ceil(9.25), ceil(13.25)
    assert imresize(img, 4.0, method).shape == (148, 212, 3)
    assert imresize(image(40, 48), 0.25, method).shape == (10, 12, 3)
    assert imresize(image(1, 5), 0.25, method).shape == (1, 2, 3)


def test_grayscale_2d_input():
    g = RNG.integers(0, 256, (20, 16), dtype=np.uint8)
    assert imresize(g, 0.25).shape == (5, 4)
    assert imresize(g, 0.25, "pil").shape == (5, 4)


def test_modcrop():
    img = image(37, 53)
    assert modcrop(img, 4).shape == (36, 52, 3)
    np.testing.assert_array_equal(modcrop(img, 4), img[:36, :52])
    assert modcrop(image(40, 48), 4).shape == (40, 48, 3)
    assert modcrop(image(39, 41), 3).shape == (39, 39, 3)


def test_degrade_returns_cropped_hr_and_quarter_lr():
    hr = image(37, 53)
    hr_c, lr = degrade(hr, 4)
    assert hr_c.shape == (36, 52, 3) and lr.shape == (9, 13, 3)
    np.testing.assert_array_equal(hr_c, hr[:36, :52])
    np.testing.assert_array_equal(lr, imresize(hr_c, 0.25))
    assert lr.dtype == np.uint8


def test_down_up_and_upscale_sizes():
    img = image(40, 44)
    assert down_up(img).shape == img.shape
    assert down_up(image(37, 53)).shape == (36, 52, 3)  # the mod-cropped size
    assert down_up(img, method="pil").shape == img.shape
    assert upscale(image(9, 13)).shape == (36, 52, 3)


def test_degrade_rejects_bad_scale_and_tiny_images():
    with pytest.raises(RefsrError, match="scale"):
        degrade(image(16, 16), 2.5)
    with pytest.raises(RefsrError, match="scale"):
        degrade(image(16, 16), 0)
    with pytest.raises(RefsrError, match="too small"):
        degrade(image(3, 16), 4)


def test_unknown_method():
    for call in (lambda: imresize(image(8, 8), 0.25, "lanczos"),
                 lambda: degrade(image(8, 8), 4, "nearest"),
                 lambda: upscale(image(8, 8), 4, "cv2")):
        with pytest.raises(RefsrError, match=r"^resize: unknown method '\w+'; choose one of matlab, pil$"):
            call()


def test_non_uint8_rejected():
    with pytest.raises(TypeError):
        imresize(np.zeros((8, 8, 3), np.float32), 0.25)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("method", ["matlab", "pil"])
@pytest.mark.parametrize("value", [0, 1, 77, 254, 255])
def test_constant_stays_constant(method: str, value: int):
    img = np.full((37, 53, 3), value, np.uint8)
    assert (imresize(img, 0.25, method) == value).all()
    assert (imresize(img, 4.0, method) == value).all()
    _, lr = degrade(img, 4, method)
    assert (lr == value).all() and (down_up(img, 4, method) == value).all()


def test_linear_ramp_reproduced_in_the_interior():
    """Keys' cubic reproduces linear functions exactly, away from the mirrored borders."""
    h, w = 12, 16
    a, by, bx = 20.0, 3.0, 5.0
    yy, xx = np.mgrid[1:h + 1, 1:w + 1].astype(np.float64)  # 1-based pixel centres
    lr = a + by * yy + bx * xx
    up = imresize_float(lr[..., None], 4.0)[..., 0]
    assert up.shape == (48, 64)
    u_y = np.arange(1, 49) / 4 + 0.375  # output centres in input coordinates
    u_x = np.arange(1, 65) / 4 + 0.375
    expected = a + by * u_y[:, None] + bx * u_x[None, :]
    inner = (slice(8, -8), slice(8, -8))  # >= 2 input pixels from every border
    np.testing.assert_allclose(up[inner], expected[inner], atol=1e-9)
    # the uint8 path rounds once, at the end
    up8 = imresize(np.clip(np.rint(lr), 0, 255).astype(np.uint8)[..., None].repeat(3, axis=2), 4.0)
    assert np.abs(up8[inner][..., 0] - expected[inner]).max() <= 0.5 + 1e-9


def test_downscale_of_linear_ramp_is_the_ramp_at_output_centres():
    """x1/4 of a ramp: the (symmetric, normalised) kernel returns the ramp at u = 4x - 1.5."""
    x = np.arange(1, 65, dtype=np.float64)
    ramp = np.tile(2.0 * x, (8, 1))[..., None]
    out = imresize_float(ramp, 0.25)[..., 0]
    u = 4 * np.arange(1, 17) - 1.5
    np.testing.assert_allclose(out[0, 2:-2], 2.0 * u[2:-2], atol=1e-9)


def test_pil_differs_from_matlab_on_a_textured_image():
    img = image(40, 48)
    m, p = imresize(img, 0.25, "matlab"), imresize(img, 0.25, "pil")
    assert m.shape == p.shape
    assert not np.array_equal(m, p)
    # both are bicubic low-passes of the same picture: close on average
    assert np.abs(m.astype(int) - p.astype(int)).mean() < 10


def test_matlab_downscale_is_deterministic_and_rounded_once():
    img = image(40, 48)
    out = imresize(img, 0.25)
    np.testing.assert_array_equal(out, imresize(img, 0.25))
    exact = imresize_float(img, 0.25)
    np.testing.assert_array_equal(out, np.clip(np.rint(exact), 0, 255).astype(np.uint8))
