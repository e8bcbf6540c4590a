"""benchmarks/frame_shapes.py: canvases of other shapes, and the script end to end on a few images."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scripts import load_benchmark

from fetalhead.frame import FramePad

HC18 = os.environ.get("HC18_DIR")


def test_canvases_have_the_shape_asked_for():
    mod = load_benchmark("frame_shapes")
    assert mod.canvas_padding((540, 800), None) == FramePad(0, 0, 0, 0)
    assert mod.canvas_padding((540, 800), 3 / 4) == FramePad(30, 30, 0, 0)  # 600x800
    assert mod.canvas_padding((540, 800), 1.0) == FramePad(130, 130, 0, 0)  # 800x800
    assert mod.canvas_padding((540, 800), 9 / 16) == FramePad(0, 0, 80, 80)  # 540x960


@pytest.mark.skipif(not HC18, reason="HC18_DIR not set")
def test_the_script_measures_both_ways_and_hc18_frames_alike(tmp_path, capsys):
    mod = load_benchmark("frame_shapes")
    out = tmp_path / "shapes.json"
    assert mod.main(["--model", "small", "--part", "val", "--limit", "3", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_images"] == 3 and set(record["canvases"]) == set(mod.CANVASES)
    hc18 = record["canvases"]["hc18"]
    assert hc18["padded"] == hc18["resized as it is"]  # an HC18 frame is not padded
    square = record["canvases"]["square"]
    assert square["canvas_of_a_540x800_image"] == [800, 800]
    assert square["padded"] != square["resized as it is"]
    for way in ("padded", "resized as it is"):
        assert square[way]["hc_abs_error_mm"]["n"] == 3 and np.isfinite(square[way]["ellipse_dice"]["mean"])
    assert "wrote" in capsys.readouterr().out
    # an existing record is never replaced, and bad input is one line
    assert mod.main(["--model", "small", "--limit", "3", "--results", str(out)]) != 0
    assert mod.main(["--model", "small", "--limit", "0", "--results", str(tmp_path / "new.json")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--limit must be at least 1" in err
    assert not (tmp_path / "new.json").exists()
