"""benchmarks/clip_reading.py: a long clip, cine loop and TIFF stack read frame after frame, end to end."""

from __future__ import annotations

import json

import numpy as np
from scripts import load_benchmark

import fetalhead.video as video


def test_the_speckle_clip_moves_one_pixel_per_frame(tmp_path):
    mod = load_benchmark("clip_reading")
    frames = mod.speckle_frames(4)
    assert frames.shape == (4, *mod.SHAPE) and np.array_equal(np.roll(frames[0], 3, axis=1), frames[3])
    clip = mod.write_speckle_clip(tmp_path / "c.mp4", frames, gop=2)
    first, third = video.read_video_frame(clip, 1), video.read_video_frame(clip, 3)
    moved = np.abs(np.roll(first, 2, axis=1).astype(int) - third).mean()
    still = np.abs(first.astype(int) - third).mean()
    assert moved < still / 3  # frame 3 is frame 1 shifted by two pixels, through a lossy codec


def test_the_script_end_to_end(tmp_path, capsys):
    mod = load_benchmark("clip_reading")
    out = tmp_path / "reading.json"
    assert mod.main(["--frames", "12", "--gop", "6", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["frames"] == 12 and record["video"]["bare_opencv_pass"]["frames"] == 12
    for reader in ("video", "dicom", "tiff"):
        r = record[reader]
        assert r["kept"]["opens"] == 1, reader  # one open (or parse) for the twelve frames in turn
        assert r["afresh"]["opens"] == 12, reader
        assert r["afresh_over_kept"] > 0
    assert "video: 12 frames" in capsys.readouterr().out
    assert mod.main(["--frames", "12", "--results", str(out)]) == 2  # a stored result is never replaced
    assert "exists" in capsys.readouterr().err
