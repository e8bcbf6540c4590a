"""benchmarks/video_codecs.py: images through lossy video codecs, and the script end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scripts import load_benchmark

HC18 = os.environ.get("HC18_DIR")


def test_a_frame_comes_back_through_each_codec_close_to_itself(tmp_path):
    mod = load_benchmark("video_codecs")
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(100, 10, (61, 97)), 0, 255).astype(np.uint8)  # odd sides
    assert mod.through_codec(image, None, tmp_path) is image
    for name in ("mp4v", "mjpeg"):
        seen = mod.through_codec(image, mod.CODECS[name], tmp_path)
        assert seen.dtype == np.uint8 and seen.shape[0] in (60, 61) and seen.shape[1] in (96, 97)
        assert 0 < mod.gray_change(seen, image) < 12  # lossy, not another picture
    shifted = np.roll(image, 5, axis=1)
    assert mod.gray_change(image, image) == 0 and mod.gray_change(shifted, image) > 5
    assert mod.gray_change(image[:60, :96], image) == 0  # the pixels both hold


@pytest.mark.skipif(not HC18, reason="HC18_DIR not set")
def test_the_script_end_to_end(tmp_path, capsys):
    mod = load_benchmark("video_codecs")
    out = tmp_path / "codecs.json"
    assert mod.main(["--model", "small", "--part", "val", "--limit", "3", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_images"] == 3 and set(record["codecs"]) == set(mod.CODECS)
    png = record["codecs"]["png"]
    assert png["hc_change_mm_mean"] == 0 and png["gray_change_mean"] == 0
    for name in ("mp4v", "mjpeg"):
        c = record["codecs"][name]
        assert c["hc_abs_error_mm"]["n"] == 3 and 0 < c["gray_change_mean"] < 10
        assert np.isfinite(c["hc_change_mm_mean"])
    assert "wrote" in capsys.readouterr().out
    assert mod.main(["--model", "small", "--limit", "3", "--results", str(out)]) != 0  # never replaced
    assert mod.main(["--model", "small", "--limit", "0", "--results", str(tmp_path / "new.json")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--limit must be at least 1" in err
