"""The annotation offset script: its summary on constructed rows, end to end on a synthetic HC18
folder, its bad inputs, and the stored record against the shipped constants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark

from fetalhead.ellipse import ANNOTATION_BIAS_MM, ANNOTATION_BIAS_PX
from fetalhead.paths import repo_root
from fetalhead.split import LABELLED_PARTS

STORED = repo_root() / "results" / "annotation" / "offset.json"


@pytest.fixture(scope="module")
def mod():
    return load_benchmark("annotation_offset")


def _rows(offset_px: np.ndarray, px: np.ndarray, part: str) -> pd.DataFrame:
    """Rows like `mask_hcs`: masks that measure `offset_px` pixels of circumference too much."""
    hc = np.linspace(150.0, 250.0, len(px))
    return pd.DataFrame({"part": part, "filename": [f"{part}{i}" for i in range(len(px))],
                         "pixel_size_mm": px, "hc_mm": hc, "hc_mask_mm": hc + offset_px * px})


def test_a_fixed_offset_in_pixels_is_found_and_removed(mod):
    px = np.array([0.05, 0.1, 0.15, 0.2, 0.25])
    d = pd.concat([_rows(np.full(5, ANNOTATION_BIAS_PX), px, p) for p in LABELLED_PARTS], ignore_index=True)
    r = mod.summarise(d)
    assert r["estimated_on_train"]["per_pixel_px"] == pytest.approx(ANNOTATION_BIAS_PX)
    assert r["estimated_on_train"]["additive_mm"] == pytest.approx(ANNOTATION_BIAS_PX * 0.15)  # the median
    for summary in [*r["parts"].values(), r["all"]]:
        assert summary["mean_mm"] == pytest.approx(ANNOTATION_BIAS_PX * px.mean())
        assert summary["max_abs_mm"] == pytest.approx(ANNOTATION_BIAS_PX * 0.25)
        assert summary["n_mask_smaller"] == 0
        left = summary["mae_left_mm"]
        assert left["per_pixel"] == pytest.approx(0.0, abs=1e-9)
        assert left["additive"] == pytest.approx(np.abs(ANNOTATION_BIAS_PX * px - ANNOTATION_BIAS_MM).mean())
        assert left["uncorrected"] == pytest.approx(summary["mean_mm"])
    assert r["all"]["n_images"] == 15


def test_the_estimate_comes_from_the_train_part_only(mod):
    px = np.full(4, 0.1)
    d = pd.concat([_rows(np.full(4, 2.0), px, "train"), _rows(np.array([-9.0, -9.0, -9.0, 0.0]), px, "val"),
                   _rows(np.full(4, -9.0), px, "test")], ignore_index=True)
    r = mod.summarise(d)  # over all twelve rows the estimate would be -9 px
    assert r["estimated_on_train"]["per_pixel_px"] == pytest.approx(2.0)
    assert r["estimated_on_train"]["additive_mm"] == pytest.approx(0.2)
    assert r["parts"]["val"]["n_mask_smaller"] == 3  # an equal HC is not smaller
    assert r["all"]["n_mask_smaller"] == 7
    assert r["parts"]["val"]["mean_mm"] == pytest.approx(-0.675)


def test_a_mask_without_a_head_is_an_error(mod):
    d = _rows(np.zeros(3), np.full(3, 0.1), "train")
    d.loc[1, "hc_mask_mm"] = np.nan
    with pytest.raises(Exception, match="without a head"):
        mod.offsets(d)


def test_end_to_end_on_synthetic_hc18(mod, synthetic_hc18, tmp_path, capsys):
    out = tmp_path / "offset.json"
    assert mod.main(["--data", str(synthetic_hc18), "--results", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["all"]["n_images"] == sum(r["parts"][p]["n_images"] for p in LABELLED_PARTS) >= 6
    # drawn ellipses have no sonographer's line: no offset, and the HC18 correction overshoots
    px = pd.read_csv(synthetic_hc18 / "training_set_pixel_size_and_HC.csv")["pixel size(mm)"]
    assert abs(r["all"]["mean_mm"]) < 2 * np.pi * 0.3 * px.max()
    assert abs(r["estimated_on_train"]["per_pixel_px"]) < 2 * np.pi * 0.3
    assert r["all"]["mae_left_mm"]["per_pixel"] > r["all"]["mae_left_mm"]["uncorrected"]
    assert r["command"].startswith("python benchmarks/annotation_offset.py --data")
    assert "wrote" in capsys.readouterr().out


def test_bad_inputs_give_one_line_and_keep_files(mod, synthetic_hc18, tmp_path, capsys):
    out = tmp_path / "offset.json"
    out.write_text("mine")
    assert mod.main(["--data", str(synthetic_hc18), "--results", str(out)]) == 2
    assert out.read_text() == "mine"
    new = tmp_path / "new.json"
    assert mod.main(["--data", str(tmp_path / "nowhere"), "--results", str(new)]) == 2
    assert not new.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_the_shipped_constants_are_the_stored_train_estimates():
    r = json.loads(STORED.read_text())
    assert r["shipped"] == {"ANNOTATION_BIAS_PX": ANNOTATION_BIAS_PX, "ANNOTATION_BIAS_MM": ANNOTATION_BIAS_MM}
    assert round(r["estimated_on_train"]["per_pixel_px"], 3) == ANNOTATION_BIAS_PX
    assert round(r["estimated_on_train"]["additive_mm"], 3) == ANNOTATION_BIAS_MM
    assert r["all"]["n_images"] == 999
