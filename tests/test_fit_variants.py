"""Ways from the mask to the HC: each variant on constructed images where the right answer is
known, and the script end to end on tiny models."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark

from fetalhead.ellipse import Ellipse, annotation_bias_mm, fit_ellipse

PX = 0.1  # mm per pixel
SHAPE = (270, 400)


@pytest.fixture(scope="module")
def mod():
    return load_benchmark("fit_variants")


def _hc(e: Ellipse) -> float:
    return e.circumference * PX - float(annotation_bias_mm(PX))


def _scan(head: Ellipse, ring_px: float = 0.0) -> np.ndarray:
    """A uint8 image: grey tissue, a bright skull band whose outer edge is `ring_px` outside
    the head ellipse, a dark brain inside it."""
    image = np.full(SHAPE, 60, np.uint8)
    outer = Ellipse(head.cx, head.cy, head.a + ring_px, head.b + ring_px, head.angle_rad)
    inner = Ellipse(head.cx, head.cy, head.a + ring_px - 6, head.b + ring_px - 6, head.angle_rad)
    image[outer.to_mask(SHAPE) > 0] = 200
    image[inner.to_mask(SHAPE) > 0] = 30
    return image


HEAD = Ellipse(200.0, 135.0, 120.0, 90.0, 0.3)


def test_every_variant_measures_a_clean_head_within_one_per_cent(mod):
    mask = HEAD.to_mask(SHAPE)
    prob = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
    got = mod.variants(prob, _scan(HEAD), PX)
    assert set(got) == set(mod.VARIANTS)
    for name, hc in got.items():
        assert hc == pytest.approx(_hc(HEAD), rel=0.01), name
    assert all(math.isnan(v) for v in mod.variants(np.zeros(SHAPE, np.float32), _scan(HEAD), PX).values())


def test_the_no_data_aware_fit_ignores_the_edge_of_a_black_box(mod):
    image = _scan(HEAD)
    image[150:, 270:] = 0  # a black box over the lower right of the head, as on many HC18 scans
    mask = HEAD.to_mask(SHAPE)
    mask[150:, 270:] = 0  # the network follows the lack of signal
    plain = _hc(fit_ellipse(mask))
    aware = mod.hc_no_data_aware(mask, image, PX)
    assert _hc(HEAD) - plain > 1.5  # the box's straight edges pull the plain fit in (3 %)
    assert aware == pytest.approx(_hc(HEAD), rel=0.005)
    assert mod.no_data(image)[200, 350] and not mod.no_data(image)[135, 200]


def test_image_edges_move_the_outline_to_the_skulls_outer_edge(mod):
    image = _scan(HEAD, ring_px=3.0)  # the outer edge 3 px outside the fitted ellipse
    got = mod.hc_image_edges(HEAD, image, PX)
    bigger = Ellipse(HEAD.cx, HEAD.cy, HEAD.a + 3, HEAD.b + 3, HEAD.angle_rad)
    px_of_radius = 2 * math.pi * PX  # mm of HC per px of radius
    assert got == pytest.approx(_hc(bigger), abs=0.6 * px_of_radius)  # the step, to within a pixel's half
    assert got - _hc(HEAD) > 2 * px_of_radius
    assert math.isnan(mod.hc_image_edges(None, image, PX))


def test_the_sharpest_fit_leaves_out_a_blurred_bulge(mod):
    mask = HEAD.to_mask(SHAPE)
    bulge = Ellipse(310.0, 135.0, 25.0, 40.0, 0.0).to_mask(SHAPE)  # a soft, unsure bulge on the right
    prob = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
    soft = cv2.GaussianBlur(bulge.astype(np.float32), (0, 0), 8.0)
    prob = np.maximum(prob, 0.7 * soft / soft.max())  # above 0.5 in its middle, with gentle slopes
    both = (prob > 0.5).astype(np.uint8)
    assert both.sum() > mask.sum()  # the bulge is in the mask
    sharp = mod.hc_sharpest(both, prob, PX)
    plain = mod.hc_sharpest(both, prob, PX, keep=1.0)
    assert abs(sharp - _hc(HEAD)) < abs(plain - _hc(HEAD))


def test_moments_of_a_filled_ellipse(mod):
    e = Ellipse(200.0, 135.0, 80.0, 50.0, 1.0)
    assert mod.hc_moments(e.to_mask(SHAPE), PX) == pytest.approx(_hc(e), rel=0.01)
    assert math.isnan(mod.hc_moments(np.zeros(SHAPE, np.uint8), PX))


def test_summary_by_hand(mod):
    table = pd.DataFrame({"hc_true_mm": [100.0, 200.0, 300.0],
                          **{f"hc_{v}_mm": [101.0, 190.0, np.nan] for v in mod.VARIANTS}})
    s = mod.summary(table)["moments"]
    assert s["hc_abs_error_mm"] == pytest.approx(5.5) and s["hc_error_mm"] == pytest.approx(-4.5)
    assert s["n_gross"] == 2  # one off by 10 mm, one not measured
    assert s["hc_abs_error_offset_removed_mm"] == pytest.approx(5.5)  # median offset -4.5: |5.5|, |-5.5|


def test_the_script_end_to_end_on_tiny_models(mod, make_synthetic_hc18, cache_tmp, tmp_path, capsys):
    oof = load_benchmark("out_of_fold")
    root = make_synthetic_hc18(size=(64, 96), per_part=4)
    out = tmp_path / "oof"
    assert oof.main(["--quick", "--folds", "2", "--seconds", "2", "--out", str(out), "--data", str(root)]) == 0
    stored = tmp_path / "results" / "fit.json"
    stored.parent.mkdir()
    assert mod.main(["--rows", str(out / oof.OOF_CSV), "--models", str(out), "--data", str(root),
                     "--results", str(stored)]) == 0
    table = pd.read_csv(stored.with_suffix(".csv"))
    rows = pd.read_csv(out / oof.OOF_CSV)
    assert list(table["filename"]) == list(rows["filename"])
    # the library variant is the measurement the out-of-fold rows hold: the same path
    np.testing.assert_allclose(table["hc_library_mm"], rows["hc_pred_mm"], rtol=1e-9, equal_nan=True)
    record = json.loads(stored.read_text())
    assert set(record["variants"]) == set(mod.VARIANTS) and record["n_images"] == len(rows)
    assert "library: HC mean abs. diff." in capsys.readouterr().out


def test_missing_rows_are_a_one_line_error(mod, make_synthetic_hc18, tmp_path, capsys):
    result = tmp_path / "r.json"
    rc = mod.main(["--rows", str(tmp_path / "none.csv"), "--results", str(result),
                   "--data", str(make_synthetic_hc18(size=(64, 96), per_part=2))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "out_of_fold.py" in err[0]
    assert not result.exists()


@pytest.mark.parametrize("case", ["columns", "stored"])
def test_rows_without_the_columns_or_a_stored_result_are_one_line_errors(mod, tmp_path, capsys, case):
    rows, result = tmp_path / "rows.csv", tmp_path / "r.json"
    pd.DataFrame({"filename": ["001_HC.png"], "pixel_size_mm": [0.1]}).to_csv(rows, index=False)  # no fold
    if case == "stored":
        result.write_text("{}")  # a stored result is never replaced
    rc = mod.main(["--rows", str(rows), "--models", str(tmp_path / "none"), "--results", str(result)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert ("no column fold" if case == "columns" else "exists") in err[0]
    assert not result.exists() if case == "columns" else result.read_text() == "{}"
