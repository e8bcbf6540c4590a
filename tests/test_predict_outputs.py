"""benchmarks/predict_outputs.py and `fetalhead.report.save_png`: predict's PNGs, lossless at the
zlib level it uses, and the script that times its steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scripts import load_benchmark

from fetalhead.errors import FetalheadError
from fetalhead.report import PNG_LEVEL, save_png


def test_a_png_holds_exactly_its_pixels_at_any_level(tmp_path):
    rng = np.random.default_rng(0)
    gray = (rng.random((54, 80)) > 0.5).astype(np.uint8) * 255
    rgb = rng.integers(0, 256, (54, 80, 3), dtype=np.uint8)
    sizes = {}
    for level in (0, PNG_LEVEL, 9):
        for name, pixels in (("gray", gray), ("rgb", rgb)):
            path = tmp_path / f"{name}_{level}.png"
            save_png(pixels, path, level)
            assert np.array_equal(np.asarray(Image.open(path)), pixels), (name, level)
        sizes[level] = (tmp_path / f"gray_{level}.png").stat().st_size
    assert sizes[0] > sizes[9]  # the level is the one asked for: 0 stores, 9 compresses


def test_the_script_end_to_end(tmp_path, capsys, hc18_dir):
    mod = load_benchmark("predict_outputs")
    out = tmp_path / "outputs.json"
    assert mod.main(["--images", "3", "--data", str(hc18_dir), "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_images"] == 3 and record["level_used"] == PNG_LEVEL and set(record["levels"]) == {"6", str(PNG_LEVEL)}
    for level in record["levels"].values():
        assert level["seconds_per_image"] > 0 and level["overlay_kib"] > level["mask_kib"] > 0
    assert record["per_image_s"]["6"] - record["per_image_s"][str(PNG_LEVEL)] == pytest.approx(
        record["levels"]["6"]["seconds_per_image"] - record["levels"][str(PNG_LEVEL)]["seconds_per_image"])
    assert "3 images: load" in capsys.readouterr().out
    assert mod.main(["--images", "3", "--data", str(hc18_dir), "--results", str(out)]) == 2  # never replaced
    assert mod.main(["--images", "0", "--results", str(tmp_path / "none.json")]) == 2


def test_a_png_that_reads_back_other_pixels_is_an_error(tmp_path, monkeypatch):
    mod = load_benchmark("predict_outputs")
    mask, overlay = np.zeros((20, 30), np.uint8), np.zeros((20, 30, 3), np.uint8)
    monkeypatch.setattr(mod, "save_png", lambda pixels, path, level: save_png(255 - pixels, path, level))
    with pytest.raises(FetalheadError, match="reads back other pixels"):
        mod.write_outputs([mask], [mask], [overlay], tmp_path, 1)
