"""Joint augmentation: image and mask stay aligned, NumPy and torch agree, oracles from OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from oracles import iou

from fetalhead.config import get_config
from fetalhead.errors import FetalheadError
from fetalhead.transforms import (
    AugmentDraw,
    AugmentParams,
    BatchDraw,
    apply_batch,
    apply_pair,
    augment_batch,
    augment_pair,
    draw_batch,
    draw_pair,
    to_float,
)

H, W = 64, 96  # non-square on purpose: rotations must not shear


def asymmetric_mask(h: int = H, w: int = W) -> np.ndarray:
    """An off-centre ellipse plus a small square in one corner: no flip or rotation symmetry."""
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2 + 6, h // 2 - 3), (w // 5, h // 6), 25, 0, 360, 1, -1)
    m[h // 5 : h // 5 + 8, w // 6 : w // 6 + 10] = 1
    return m


def pair_from_mask(mask: np.ndarray) -> np.ndarray:
    """An image whose bright part is the mask: thresholding it recovers the mask."""
    return (mask * 200 + 20).astype(np.uint8)


def to_batch(arrs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrs)[:, None]).float()


def uint8_batch(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 images as a (B, 1, H, W) uint8 tensor, as the training cache holds them."""
    return torch.from_numpy(np.stack(images)[:, None])



def boundary_pixels(mask: np.ndarray) -> int:
    edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return int(edges.sum())


def test_params_from_config():
    cfg = get_config("default", quick=False, rotate_deg=7.0, hflip=False, scale=0.2)
    p = AugmentParams.from_config(cfg)
    assert (p.rotate_deg, p.hflip, p.vflip, p.scale, p.intensity) == (7.0, False, cfg.vflip, 0.2, cfg.intensity)
    assert AugmentParams(0, False, False, 0, 0).is_identity and not p.is_identity


def test_identity_draw_is_identity():
    mask = asymmetric_mask()
    image = np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)
    out_i, out_m = apply_pair(image, mask, AugmentDraw())
    np.testing.assert_array_equal(out_i, image)
    np.testing.assert_array_equal(out_m, mask)
    imgs, msks = to_float(uint8_batch([image])), to_batch([mask])
    ti, tm = apply_batch(imgs, msks, BatchDraw.from_draws([AugmentDraw()]))
    torch.testing.assert_close(ti, imgs, atol=1e-4, rtol=0)  # grid lands on pixel centres
    torch.testing.assert_close(tm, msks)
    ident = AugmentParams(0, False, False, 0, 0)
    ti, tm = augment_batch(imgs, msks, ident, torch.Generator().manual_seed(0))
    torch.testing.assert_close(ti, imgs, atol=0, rtol=0)
    i2, m2 = augment_pair(image, mask, ident, np.random.default_rng(0))
    np.testing.assert_array_equal(i2, image)
    np.testing.assert_array_equal(m2, mask)


@pytest.mark.parametrize("hflip,vflip", [(True, False), (False, True), (True, True)])
def test_flips_match_numpy_flip(hflip, vflip):
    mask = asymmetric_mask()
    image = pair_from_mask(mask)
    ref_m = mask[:, ::-1] if hflip else mask
    ref_m = ref_m[::-1] if vflip else ref_m
    ref_i = pair_from_mask(ref_m)
    draw = AugmentDraw(hflip=hflip, vflip=vflip)
    out_i, out_m = apply_pair(image, mask, draw)
    np.testing.assert_array_equal(out_m, ref_m)
    np.testing.assert_array_equal(out_i, ref_i)
    ti, tm = apply_batch(to_float(uint8_batch([image])), to_batch([mask]), BatchDraw.from_draws([draw]))
    np.testing.assert_array_equal(tm[0, 0].numpy().astype(np.uint8), ref_m)
    np.testing.assert_allclose(ti[0, 0].numpy() * 255, ref_i, atol=0.01)  # float rounding of the grid
    assert not np.array_equal(ref_m, mask)  # the shape really is asymmetric


def test_rotation_matches_opencv_rotation_matrix():
    """Independent oracle: cv2.getRotationMatrix2D (forward map, counter-clockwise degrees)."""
    mask = asymmetric_mask()
    for angle, scale in [(30.0, 1.0), (-17.0, 1.1), (90.0, 0.9)]:
        fwd = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, scale)
        ref = cv2.warpAffine(mask.astype(np.float32), fwd, (W, H), flags=cv2.INTER_LINEAR) > 0.5
        _, out = apply_pair(pair_from_mask(mask), mask, AugmentDraw(angle_deg=angle, scale=scale))
        assert np.count_nonzero(out != ref) <= 3, (angle, scale)


def test_positive_angle_is_counter_clockwise_on_screen():
    mask = np.zeros((H, W), np.uint8)
    cy, cx = (H - 1) // 2, (W - 1) // 2
    mask[cy - 1 : cy + 2, cx + 20 : cx + 23] = 1  # a dot right of the centre
    draw = AugmentDraw(angle_deg=90.0)
    _, out = apply_pair(pair_from_mask(mask), mask, draw)
    _, tm = apply_batch(to_batch([mask]), to_batch([mask]), BatchDraw.from_draws([draw]))
    for m in (out, tm[0, 0].numpy()):
        ys, xs = np.nonzero(m)
        assert ys.mean() < cy - 15 and abs(xs.mean() - (W - 1) / 2) < 2  # moved up, not down


def test_numpy_and_torch_give_the_same_geometry():
    mask = asymmetric_mask()
    image = pair_from_mask(mask)
    draws = [
        AugmentDraw(angle_deg=30.0),
        AugmentDraw(angle_deg=30.0, hflip=True),
        AugmentDraw(angle_deg=-45.0, scale=1.15, vflip=True),
        AugmentDraw(angle_deg=12.0, scale=0.85, hflip=True, vflip=True, gain=1.1, bias=-0.05),
    ]
    ti, tm = apply_batch(to_float(uint8_batch([image] * len(draws))), to_batch([mask] * len(draws)),
                         BatchDraw.from_draws(draws))
    for k, d in enumerate(draws):
        ni, nm = apply_pair(image, mask, d)
        assert iou(nm, tm[k, 0].numpy()) > 0.95, d
        assert np.count_nonzero(nm != tm[k, 0].numpy().astype(np.uint8)) <= 0.1 * boundary_pixels(nm)
        np.testing.assert_allclose(ti[k, 0].numpy() * 255, ni, atol=2.0)  # rounding to uint8
        # a flip really changed the result (the check is not blind to flips)
        if d.hflip or d.vflip:
            _, unflipped = apply_pair(image, mask, AugmentDraw(angle_deg=d.angle_deg, scale=d.scale))
            assert iou(nm, unflipped) < 0.8


def test_random_augmentation_keeps_image_and_mask_aligned():
    mask = asymmetric_mask()
    image = pair_from_mask(mask)
    params = AugmentParams(rotate_deg=40.0, hflip=True, vflip=True, scale=0.2, intensity=0.1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        img, m = augment_pair(image, mask, params, rng)
        assert set(np.unique(m)) <= {0, 1}
        # bright = 200*g + b >= 150 and dark <= 22*1.1 + 26 < 60: threshold at 100
        assert np.count_nonzero((img > 100) != (m > 0)) <= 0.2 * boundary_pixels(m) + 2
    n = 16
    imgs, msks = to_float(uint8_batch([image] * n)), to_batch([mask] * n)
    gen = torch.Generator().manual_seed(3)
    ti, tm = augment_batch(imgs, msks, params, gen)
    assert ti.shape == imgs.shape and tm.shape == msks.shape
    assert set(torch.unique(tm).tolist()) <= {0.0, 1.0}
    distinct = {tm[k].numpy().tobytes() for k in range(n)}
    assert len(distinct) == n  # a different draw per sample
    for k in range(n):
        m = tm[k, 0].numpy().astype(np.uint8)
        assert np.count_nonzero((ti[k, 0].numpy() * 255 > 100) != (m > 0)) <= 0.2 * boundary_pixels(m) + 2


def _draws(params: AugmentParams, n: int = 4000) -> tuple[BatchDraw, list[AugmentDraw]]:
    """`n` draws of `params` from each implementation (torch batch, numpy list), seeded."""
    rng = np.random.default_rng(0)
    return draw_batch(params, n, torch.Generator().manual_seed(0)), [draw_pair(params, rng) for _ in range(n)]


def test_draws_have_the_requested_distribution():
    params = AugmentParams(rotate_deg=20.0, hflip=True, vflip=False, scale=0.1, intensity=0.1)
    tb, nb = _draws(params)
    for name, lo, hi in [("angle_deg", -20, 20), ("scale", 0.9, 1.1), ("gain", 0.9, 1.1), ("bias", -0.1, 0.1)]:
        t = getattr(tb, name).numpy()
        v = np.array([getattr(d, name) for d in nb])
        for x in (t, v):  # uniform on [lo, hi]: mean and standard deviation (hi - lo) / sqrt(12)
            assert x.min() >= lo - 1e-6 and x.max() <= hi + 1e-6
            assert abs(x.mean() - (lo + hi) / 2) < 0.05 * (hi - lo)
            assert abs(x.std() - (hi - lo) / np.sqrt(12)) < 0.05 * (hi - lo)
    assert abs(tb.hflip.mean().item() - 0.5) < 0.05
    assert abs(np.mean([d.hflip for d in nb]) - 0.5) < 0.05
    assert tb.vflip.sum().item() == 0 and not any(d.vflip for d in nb)


def test_draws_are_independent_of_each_other():
    # each parameter has its own random number: no two are correlated, and the four flip
    # combinations are equally likely (1/4 each), in both implementations
    tb, nb = _draws(AugmentParams(rotate_deg=20.0, hflip=True, vflip=True, scale=0.1, intensity=0.1))
    fields = ("angle_deg", "scale", "hflip", "vflip", "gain", "bias")
    for cols in ([getattr(tb, f).numpy().astype(float) for f in fields],
                 [np.array([float(getattr(d, f)) for d in nb]) for f in fields]):
        r = np.corrcoef(np.stack(cols))
        assert np.abs(r - np.eye(len(fields))).max() < 0.06  # about 4 standard errors
        h, v = cols[2].astype(bool), cols[3].astype(bool)
        for both in (h & v, h & ~v, ~h & v, ~h & ~v):
            assert abs(both.mean() - 0.25) < 0.03


def test_intensity_is_clipped_to_the_unit_range():
    # x' = clip(g x + b, 0, 1): a strong gain saturates the bright end, a negative bias the dark
    image = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (H, W // 64 + 1))[:, :W]  # every grey level
    mask = asymmetric_mask()
    x = image.astype(np.float64) / 255.0
    draws = [AugmentDraw(gain=1.5, bias=0.2), AugmentDraw(gain=0.8, bias=-0.3)]
    ti, _ = apply_batch(to_float(uint8_batch([image] * 2)), to_batch([mask] * 2), BatchDraw.from_draws(draws))
    for k, d in enumerate(draws):
        expected = np.clip(d.gain * x + d.bias, 0.0, 1.0)
        assert (expected == 0).any() or (expected == 1).any()  # the clip really matters here
        ni, _ = apply_pair(image, mask, d)
        np.testing.assert_allclose(ni, np.rint(expected * 255), atol=1)
        np.testing.assert_allclose(ti[k, 0].numpy(), expected, atol=1e-4)  # grid on pixel centres


def test_same_seed_same_batch():
    mask = asymmetric_mask()
    imgs, msks = to_float(uint8_batch([pair_from_mask(mask)] * 4)), to_batch([mask] * 4)
    params = AugmentParams()
    a = augment_batch(imgs, msks, params, torch.Generator().manual_seed(5))
    b = augment_batch(imgs, msks, params, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_bad_shapes_raise():
    with pytest.raises(FetalheadError):
        apply_pair(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8), AugmentDraw())
    with pytest.raises(FetalheadError):
        augment_batch(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), AugmentParams(), torch.Generator())


def test_show_pair_overlays_the_mask():
    from matplotlib.figure import Figure

    from fetalhead.viz import show_pair

    mask = asymmetric_mask()
    image, m = augment_pair(pair_from_mask(mask), mask, AugmentParams(), np.random.default_rng(0))
    fig = show_pair(image, m, title="augmented")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "augmented"
    assert len(fig.axes[0].get_images()) == 2  # the image and the tinted mask
    ax = Figure().add_subplot()
    assert show_pair(image, None, ax=ax) is ax.get_figure() and len(ax.get_images()) == 1
    with pytest.raises(ValueError):
        show_pair(image, m[:10])


def test_to_float_makes_a_new_tensor_and_takes_uint8_only():
    images = uint8_batch([pair_from_mask(asymmetric_mask())])
    before = images.clone()
    x = to_float(images)
    assert x.dtype == torch.float32 and x.data_ptr() != images.data_ptr()
    torch.testing.assert_close(x, before.float() / 255)
    assert torch.equal(images, before)  # the input is left as it was
    with pytest.raises(FetalheadError, match="uint8"):
        to_float(x)  # twice would have divided by 255 again


def test_augmentation_refuses_images_of_the_wrong_kind():
    mask = asymmetric_mask()
    image = pair_from_mask(mask)
    with pytest.raises(FetalheadError, match="uint8 image"):
        augment_pair(image / 255.0, mask, AugmentParams(), np.random.default_rng(0))
    with pytest.raises(FetalheadError, match="uint8 image"):
        apply_pair(image.astype(np.uint16), mask, AugmentDraw())
    for params in (AugmentParams(), AugmentParams(0, False, False, 0, 0)):  # the identity path too
        with pytest.raises(FetalheadError, match="float images"):
            augment_batch(uint8_batch([image]), to_batch([mask]), params, torch.Generator().manual_seed(0))
