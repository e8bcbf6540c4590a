"""benchmarks/clip_reading.py: a long clip read frame after frame, end to end."""

from __future__ import annotations

import json

import numpy as np
from scripts import load_benchmark

import fetalhead.video as video


def test_the_speckle_clip_moves_one_pixel_per_frame(tmp_path):
    mod = load_benchmark("clip_reading")
    clip = mod.write_speckle_clip(tmp_path / "c.mp4", frames=4, gop=2)
    first, third = video.read_video_frame(clip, 1), video.read_video_frame(clip, 3)
    assert first.shape == mod.SHAPE
    moved = np.abs(np.roll(first, 2, axis=1).astype(int) - third).mean()
    still = np.abs(first.astype(int) - third).mean()
    assert moved < still / 3  # frame 3 is frame 1 shifted by two pixels, through a lossy codec


def test_the_script_end_to_end(tmp_path, capsys):
    mod = load_benchmark("clip_reading")
    out = tmp_path / "reading.json"
    assert mod.main(["--frames", "12", "--gop", "6", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["clip"]["frames"] == 12 and record["bare_opencv_pass"]["frames"] == 12
    assert record["kept_open"]["opens"] == 1  # one open for the twelve frames in turn
    assert record["seek_per_frame"]["opens"] == 12
    assert record["seek_per_frame_over_kept_open"] > 0
    assert "12 frames" in capsys.readouterr().out
    assert mod.main(["--frames", "12", "--results", str(out)]) == 2  # a stored result is never replaced
    assert "exists" in capsys.readouterr().err
