"""fetalhead.video: clips saved as video files, read a frame at a time."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
from video_files import LOSSY, flat_frames, write_clip

from fetalhead.data import IMAGE_SUFFIXES, frame_count, load_image
from fetalhead.errors import FetalheadError
from fetalhead.video import VIDEO_SUFFIXES, looks_like_video, read_video_frame, video_frames


@pytest.mark.parametrize("suffix", [".avi", ".mkv", ".mp4"])
def test_a_lossless_clip_gives_back_each_frame_exactly(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (60, 88), dtype=np.uint8) for _ in range(5)]
    clip = write_clip(tmp_path / f"clip{suffix}", frames)
    assert video_frames(clip) == frame_count(clip) == 5
    for k in (3, 1, 5, 2, 4):  # out of order: each read finds its own frame
        got = read_video_frame(clip, k)
        assert got.dtype == np.uint8 and got.shape == (60, 88)
        assert np.array_equal(got, frames[k - 1])
        assert np.array_equal(load_image(clip, k), frames[k - 1])


@pytest.mark.parametrize("suffix", sorted(LOSSY))
def test_a_lossy_clip_is_read_at_the_frame_asked_for(tmp_path, suffix):
    """Frames of a predicted codec (mp4v, MJPG) after a seek: the frame asked for, not its
    key frame's neighbour (frame k is at gray level 20 (k - 1))."""
    clip = write_clip(tmp_path / f"clip{suffix}", flat_frames(12), codec=LOSSY[suffix])
    assert video_frames(clip) == 12
    for k in (12, 1, 7, 6, 11, 2):
        assert read_video_frame(clip, k).mean() == pytest.approx(20 * (k - 1), abs=3)


def test_colour_becomes_luma_as_for_images(tmp_path):
    import cv2

    rgb = np.zeros((40, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50  # R, G, B
    clip = tmp_path / "colour.avi"
    writer = cv2.VideoWriter(str(clip), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 5, (64, 40), isColor=True)
    writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    assert read_video_frame(clip)[0, 0] == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def test_a_clip_of_one_frame_is_read_as_it_is(tmp_path):
    clip = write_clip(tmp_path / "still.avi", flat_frames(1, step=0))
    assert frame_count(clip) == 1
    assert read_video_frame(clip).shape == (96, 128)
    assert read_video_frame(clip, 7).shape == (96, 128)  # as a still image ignores a frame


def test_a_clip_of_more_frames_needs_its_frame(tmp_path):
    clip = write_clip(tmp_path / "sweep.avi", flat_frames(3))
    with pytest.raises(FetalheadError, match=r"sweep.avi: a video of 3 frames; choose the frame you measure "
                                             r"\(predict --frame N, 1 to 3, or --frame all\)"):
        load_image(clip)
    for k in (0, 4):
        with pytest.raises(FetalheadError, match=rf"no frame {k} in this video of 3 frames \(1 to 3\)"):
            read_video_frame(clip, k)


def test_videos_are_known_by_suffix_and_by_content(tmp_path):
    assert set(VIDEO_SUFFIXES) <= set(IMAGE_SUFFIXES)  # folders list them
    mp4 = write_clip(tmp_path / "a.mp4", flat_frames(2), codec="mp4v")
    avi = write_clip(tmp_path / "b.avi", flat_frames(2))
    mkv = write_clip(tmp_path / "c.mkv", flat_frames(2))
    for clip in (mp4, avi, mkv):
        renamed = clip.rename(tmp_path / f"{clip.stem}_export.bin")
        assert looks_like_video(renamed.read_bytes()[:132], renamed)
        assert frame_count(renamed) == 2
        assert read_video_frame(renamed, 2).mean() == pytest.approx(20, abs=3)
        assert load_image(renamed, 2).mean() == pytest.approx(20, abs=3)  # the image path finds it too
    png = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(png)
    webp = tmp_path / "x.webp"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(webp)
    for still in (png, webp):  # RIFF, but WebP: not a video
        assert not looks_like_video(still.read_bytes()[:132], still)
        assert frame_count(still) == 1


def test_the_frame_count_is_read_again_when_the_file_changes(tmp_path):
    clip = write_clip(tmp_path / "c.avi", flat_frames(4))
    assert video_frames(clip) == 4
    write_clip(tmp_path / "c.avi", flat_frames(6))
    os.utime(clip, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new time even on a coarse clock
    assert video_frames(clip) == 6


@pytest.mark.parametrize("case", ["truncated", "garbage", "empty", "missing"])
def test_a_broken_video_is_one_error_and_nothing_printed(tmp_path, case, capfd):
    whole = write_clip(tmp_path / "whole.mp4", flat_frames(8), codec="mp4v").read_bytes()
    clip = tmp_path / "broken.mp4"
    if case == "truncated":
        clip.write_bytes(whole[: len(whole) // 3])
    elif case == "garbage":
        clip.write_bytes(b"not a video at all, only text" * 40)
    elif case == "empty":
        clip.write_bytes(b"")
    capfd.readouterr()
    expected = {"truncated": "not a video FFmpeg can decode", "garbage": "not a video FFmpeg can decode",
                "empty": "empty file (0 bytes)", "missing": "missing file"}[case]
    with pytest.raises(FetalheadError, match=re.escape(expected)):
        frame_count(clip)
    with pytest.raises(FetalheadError, match=re.escape(expected)):
        load_image(clip, 1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # FFmpeg's and OpenCV's own messages are silenced


def test_a_broken_video_is_named_as_it_was_given(tmp_path, monkeypatch):
    (tmp_path / "clip.mp4").write_bytes(b"not a video at all, only text" * 40)
    monkeypatch.chdir(tmp_path)
    for read in (frame_count, lambda path: load_image(path, 1)):
        with pytest.raises(FetalheadError) as caught:
            read("clip.mp4")
        assert str(caught.value).startswith("clip.mp4: "), str(caught.value)


def test_a_stream_that_does_not_seek_is_read_up_to_the_frame(tmp_path, monkeypatch):
    import fetalhead.video as video

    clip = write_clip(tmp_path / "clip.mp4", flat_frames(9), codec="mp4v")
    monkeypatch.setattr(video, "_seek", lambda cap, index: False)
    for k in (9, 1, 5):
        assert read_video_frame(clip, k).mean() == pytest.approx(20 * (k - 1), abs=3)



def _count_opens(monkeypatch) -> list[str]:
    """Each time fetalhead.video opens a clip from now on: its file name."""
    import fetalhead.video as video

    opened: list[str] = []
    real = video._open

    def counting(path, name=None):
        opened.append(path.name)
        return real(path, name)

    monkeypatch.setattr(video, "_open", counting)
    return opened


def test_reading_each_frame_in_turn_opens_the_clip_once(tmp_path, monkeypatch):
    import fetalhead.video as video

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64), dtype=np.uint8) for _ in range(7)]
    clip = write_clip(tmp_path / "sweep.mkv", frames)
    assert video_frames(clip) == 7  # counted before the opens are
    opened = _count_opens(monkeypatch)
    for k in range(1, 8):
        assert np.array_equal(load_image(clip, k), frames[k - 1])
    assert opened == ["sweep.mkv"]
    assert not video._kept.holds(clip)  # let go after its last frame


def test_a_clip_kept_open_still_gives_the_frame_asked_for(tmp_path, monkeypatch):
    """Kept open only while read in order from its first frame: jumps back and forth, another
    clip in between, the file replaced; each read gives its own frame."""
    import fetalhead.video as video

    rng = np.random.default_rng(2)
    a = [rng.integers(0, 256, (48, 64), dtype=np.uint8) for _ in range(6)]
    b = [rng.integers(0, 256, (48, 64), dtype=np.uint8) for _ in range(4)]
    clip_a, clip_b = write_clip(tmp_path / "a.avi", a), write_clip(tmp_path / "b.avi", b)
    assert (video_frames(clip_a), video_frames(clip_b)) == (6, 4)  # counted before the opens are
    opened = _count_opens(monkeypatch)
    reads = [(clip_a, a, 1), (clip_a, a, 2), (clip_b, b, 1), (clip_a, a, 3), (clip_a, a, 4), (clip_a, a, 2),
             (clip_b, b, 3), (clip_b, b, 1), (clip_b, b, 2)]
    for clip, frames, k in reads:
        assert np.array_equal(read_video_frame(clip, k), frames[k - 1]), (clip.name, k)
    # a 1-2 kept, b 1 kept; a 3, a 4, a 2, b 3 out of order: each opened; b 1-2 kept
    assert opened == ["a.avi", "b.avi", "a.avi", "a.avi", "a.avi", "b.avi", "b.avi"]
    assert video._kept.holds(clip_b) and not video._kept.holds(clip_a)
    read_video_frame(clip_a, 5)
    assert not video._kept.holds(clip_a) and not video._kept.holds(clip_b)  # out of order: nothing kept open
    assert np.array_equal(read_video_frame(clip_a, 1), a[0])  # kept open before frame 2
    new = [255 - f for f in a]
    os.replace(write_clip(tmp_path / "new.avi", new), clip_a)  # saved over it, as a new file
    os.utime(clip_a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert np.array_equal(read_video_frame(clip_a, 2), new[1])  # the new file's, not the open one's


def test_a_renamed_clip_read_at_a_frame_is_not_read_whole(tmp_path, monkeypatch):
    """A clip known by its first bytes, read frame by frame: FFmpeg reads the file, the
    image path never loads all of it into memory."""
    import fetalhead.data as data

    clip = write_clip(tmp_path / "sweep.avi", flat_frames(4)).rename(tmp_path / "sweep_export.bin")
    loaded: list[str] = []
    real = data.np.fromfile
    monkeypatch.setattr(data.np, "fromfile", lambda path, *a, **k: loaded.append(str(path)) or real(path, *a, **k))
    for k in range(1, 5):
        assert load_image(clip, k).mean() == pytest.approx(20 * (k - 1), abs=3)
    assert loaded == []
