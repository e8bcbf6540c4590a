"""The masks `fetalhead.data` reads reproduce the CSV head circumference on all 999 images."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fetalhead.data import load_mask, read_training_csv, training_pairs
from fetalhead.ellipse import hc_from_mask
from fetalhead.paths import repo_root


@pytest.mark.slow
def test_hc_from_every_real_mask_matches_the_csv(hc18_dir):
    table = read_training_csv(hc18_dir)
    annotations = [ann for _, ann in training_pairs(hc18_dir)]

    def hc(i: int) -> float:  # at ORIGINAL resolution, so the CSV pixel size applies
        return hc_from_mask(load_mask(annotations[i]), table["pixel_size_mm"][i])

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        measured = np.array(list(pool.map(hc, range(len(table)))))
    assert len(measured) == 999 and np.isfinite(measured).all()
    diff = measured - table["hc_mm"].to_numpy()
    print(f"HC from mask - CSV over {len(diff)} images: mean |d| {np.abs(diff).mean():.3f} mm, "
          f"max |d| {np.abs(diff).max():.3f} mm, mean d {diff.mean():+.3f} mm")
    assert np.abs(diff).mean() <= 1.0
    assert np.abs(diff).max() <= 3.0  # the data README reports 2.4 mm at most
    stored = json.loads((repo_root() / "results" / "annotation" / "offset.json").read_text())["all"]
    assert (len(diff), diff.mean(), np.abs(diff).max(), int((diff < 0).sum())) == pytest.approx(
        (stored["n_images"], stored["mean_mm"], stored["max_abs_mm"], stored["n_mask_smaller"]), abs=1e-9)
