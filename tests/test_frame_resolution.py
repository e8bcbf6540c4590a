"""benchmarks/frame_resolution.py: one scan at other resolutions, and the script end to end on a few images."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scripts import load_benchmark

HC18 = os.environ.get("HC18_DIR")


def test_resizing_keeps_the_shape_asked_for():
    mod = load_benchmark("frame_resolution")
    image = np.arange(540 * 800, dtype=np.uint32).reshape(540, 800).astype(np.uint8)
    assert mod.resized(image, 2.0).shape == (1080, 1600) and mod.resized(image, 0.5).shape == (270, 400)
    assert mod.resized(image, 1.0) is image


@pytest.mark.skipif(not HC18, reason="HC18_DIR not set")
def test_the_script_measures_each_factor_against_the_image_as_stored(tmp_path, capsys):
    mod = load_benchmark("frame_resolution")
    out = tmp_path / "res.json"
    assert mod.main(["--model", "small", "--part", "val", "--limit", "3", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_images"] == 3 and set(record["factors"]) == {"0.5", "1", "2"}
    same = record["factors"]["1"]
    assert same["hc_change_mm"]["mean"] == 0 and same["hc_change_abs_max_mm"] == 0
    for name in ("0.5", "2"):
        f = record["factors"][name]
        assert f["hc_abs_error_mm"]["n"] == 3 and np.isfinite(f["hc_change_mm"]["mean"])
        # the correction that follows the network's pixels moves HC less than a fixed one
        assert abs(f["hc_change_mm"]["mean"]) < abs(f["hc_change_fixed_mm"]["mean"])
    assert "wrote" in capsys.readouterr().out
    assert mod.main(["--model", "small", "--limit", "3", "--results", str(out)]) != 0  # never replaced
    assert "Traceback" not in capsys.readouterr().err
