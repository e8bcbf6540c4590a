"""The command line, end to end: every subcommand in-process (`cli.main([...])`, fast) and the
important ones in a subprocess (`python -m fetalhead ...`, the real thing, C-level stderr
included).

Bad input must give exit code 1 (2 for a malformed command line), exactly ONE stderr line
`fetalhead: error: ...`, no traceback, and leave every file as it was: each bad-input test
snapshots the whole temporary folder (paths, bytes, modification times) before and after.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dicom_files import region, write_dicom
from pages import linked
from PIL import Image
from test_predict import build_tiny_checkpoint, synthetic_tiny_model
from video_files import flat_frames, write_clip

from fetalhead import cli
from fetalhead.ellipse import SUBMISSION_COLUMNS

HC18 = os.environ.get("HC18_DIR")
needs_data = pytest.mark.skipif(not HC18, reason="HC18_DIR not set")
REPO = Path(__file__).resolve().parents[1]
PRED_COLUMNS = ["filename", "status", "quality", "pixel_size_mm", "hc_mm", "hc_low_mm", "hc_high_mm",
                "hc_raw_mm", "center_x_px", "center_y_px", "semi_axes_a_px", "semi_axes_b_px",
                "angle_rad", "center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm",
                "bpd_mm", "ofd_mm", "cephalic_index", "head_shape", "ga_weeks", "ga_in_range", "ga_low_weeks", "ga_high_weeks", "q_ellipse_iou",
                "q_one_component", "q_border_contact", "q_band_px", "q_hc_band_mm", "q_flip_agreement", "model"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    if not HC18:
        pytest.skip("HC18_DIR not set")
    return build_tiny_checkpoint(tmp_path_factory.getbasetemp() / "tiny_model")


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(synthetic HC18 folder, tiny checkpoint trained on it): predict without the real data."""
    return synthetic_tiny_model(tmp_path_factory.getbasetemp() / "synthetic_tiny")


def _save_untrained(path: Path, bias: float | None = None) -> Path:
    """An untrained base-4 checkpoint (no data needed); with `bias`, the output layer is
    zeroed and its bias set, so every logit equals `bias`."""
    from fetalhead.checkpoint import save_checkpoint
    from fetalhead.config import get_config
    from fetalhead.model import build_model

    cfg = get_config("cpu", quick=False, image_size=(64, 96), base_channels=4)
    torch.manual_seed(0)
    model = build_model(cfg)
    if bias is not None:
        with torch.no_grad():
            model.outc.conv.weight.zero_()
            model.outc.conv.bias.fill_(bias)
    return save_checkpoint(path, model, cfg, epoch=1)


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    return _save_untrained(tmp_path_factory.mktemp("untrained") / "model.pt")


def run(argv, capfd) -> tuple[int, str, str]:
    """cli.main in this process; stdout and stderr captured at the file-descriptor level."""
    code = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def run_subprocess(argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "fetalhead", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its bytes (files) and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.read_bytes() if p.is_file() else None, st.st_mtime_ns)
    return out


def assert_one_line_error(code: int, err: str, expected: int, words: str) -> None:
    assert code == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fetalhead: error: ") and words in lines[0], lines[0]
    assert "Traceback" not in err


def _png(path: Path, shape=(64, 96), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _test_set_images(root: Path, folder: Path, n: int) -> list[Path]:
    """Copies in `folder` of the first `n` official test images of the HC18 folder `root`."""
    from fetalhead.data import image_path, read_test_csv

    folder.mkdir(parents=True, exist_ok=True)
    names = list(read_test_csv(root)["filename"][:n])
    return [Path(shutil.copy(image_path(f, test_set=True, root=root), folder / f)) for f in names]


# ----------------------------------------------------------------------------- help, parsing


def test_help_for_every_subcommand(capfd):
    for sub in ("download", "prepare-cache", "train", "export", "evaluate", "predict", "submit", "main", "compare", "cards",
                "bench"):
        code, out, err = run([sub, "--help"], capfd)
        assert code == 0 and out.startswith(f"usage: fetalhead {sub}") and err == "", sub
    code, out, _ = run(["--version"], capfd)
    assert code == 0 and out.startswith("fetalhead ")


def test_usage_errors_are_one_line_with_exit_code_2(capfd):
    for argv, words in [([], "required"), (["frobnicate"], "invalid choice"),
                        (["train", "--preset", "huge"], "invalid choice"),
                        (["train", "--set", "width=16"], "unknown setting 'width'"),
                        (["train", "--seed", "-1"], "seed=-1: must be at least 0"),
                        (["prepare-cache", "--size", "abc", "--out", "x"], "HEIGHTxWIDTH"),
                        (["evaluate", "--limit", "0"], "at least 1"),
                        (["compare", "--predictions", "p.csv", "--out", "o"], "--hc-csv"),
                        (["bench", "--target", "2"], "at most 1"),  # a Dice never reached
                        (["export", "--checkpoint", "a.pt", "--out", "b.pt", "--run", ""], "the run's name")]:
        code, _, err = run(argv, capfd)
        assert_one_line_error(code, err, 2, words)


def test_subprocess_help_and_one_line_usage_error(tmp_path):
    res = run_subprocess(["--help"], tmp_path)
    assert res.returncode == 0 and "predict" in res.stdout and res.stderr == ""
    res = run_subprocess(["predict", str(tmp_path), "--out", tmp_path / "o", "--pixel-size", "-1"], tmp_path)
    assert_one_line_error(res.returncode, res.stderr, 2, "positive")
    assert not (tmp_path / "o").exists()


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("fetalhead")
    if not script.exists():
        pytest.skip("package not installed with pip (no console script)")
    res = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("fetalhead ")


# ----------------------------------------------------------------------------- predict: bad input


def _case(tmp: Path, name: str, ckpt: Path) -> tuple[list, int, str]:
    """(argv, exit code, words of the message) of one bad-input case built under `tmp`.
    Every case also names good images first: a lazy check would have written their outputs."""
    good = [_png(tmp / "in" / "a.png", seed=1), _png(tmp / "in" / "b.png", seed=2)]
    out = tmp / "out"
    base = ["--out", out, "--checkpoint", ckpt, "--quiet"]
    px = ["--pixel-size", "0.1"]
    csv = tmp / "px.csv"
    if name == "missing path":
        return ["predict", *good, tmp / "nope.png", *px, *base], 1, "no such file"
    if name == "folder without images":
        (tmp / "empty").mkdir()
        (tmp / "empty" / "notes.txt").write_text("x")
        return ["predict", *good, tmp / "empty", *px, *base], 1, "no images"
    if name == "empty file":
        (tmp / "e.png").write_bytes(b"")
        return ["predict", *good, tmp / "e.png", *px, *base], 1, "empty file"
    if name == "truncated file":
        data = good[0].read_bytes()
        (tmp / "t.png").write_bytes(data[: len(data) // 2])
        return ["predict", *good, tmp / "t.png", *px, *base], 1, "truncated"
    if name == "not an image":
        (tmp / "n.png").write_text("hello, this is text\n" * 20)
        return ["predict", *good, tmp / "n.png", *px, *base], 1, "not an image"
    if name == "tiny image":
        return ["predict", *good, _png(tmp / "tiny.png", (20, 20)), *px, *base], 1, "too small"
    if name == "huge image":
        big = tmp / "huge.png"
        Image.fromarray(np.zeros((40, 8200), np.uint8)).save(big)
        return ["predict", *good, big, *px, *base], 1, "too large"
    if name == "duplicate stems":
        return ["predict", *good, _png(tmp / "other" / "a.png"), *px, *base], 1, "same name stem"
    if name == "an input under an output's name":
        mask_named = _png(tmp / "in" / "a_mask.png", seed=3)
        return (["predict", *good, mask_named, *px, "--out", tmp / "in", "--checkpoint", ckpt, "--quiet", "--overwrite"],
                1, "a_mask.png is an input image, and an output of the same name would replace it")
    if name == "a frame's outputs named as an image's":
        loop = tmp / "in" / "x.png"
        frames = [Image.open(g).convert("L") for g in good]
        frames[0].save(loop, save_all=True, append_images=frames[1:])
        still = _png(tmp / "in" / "x_f002.png", seed=4)
        return (["predict", loop, still, *px, *base, "--frame", "all"], 1,
                "x.png (frame 2) and " + str(still) + " would both write x_f002_mask.png")
    if name == "a name too long for its outputs":
        long = _png(tmp / "in" / ("x" * 245 + ".png"), seed=6)  # 249 bytes: its _overlay.png would be 257
        return ["predict", long, *px, *base], 1, "would be a file name longer than 255 bytes; rename it"
    if name == "names that differ only in case":
        upper = _png(tmp / "in" / "A.png", seed=5)
        return (["predict", *good, upper, *px, *base], 1,
                "would both write A_mask.png on a file system that ignores case (macOS, Windows)")
    if name == "pixel size zero":
        return ["predict", *good, "--pixel-size", "0", *base], 2, "positive"
    if name == "pixel size negative":
        return ["predict", *good, "--pixel-size", "-0.2", *base], 2, "positive"
    if name == "pixel size not a number":
        return ["predict", *good, "--pixel-size", "abc", *base], 2, "not a number"
    if name == "pixel size nan":
        return ["predict", *good, "--pixel-size", "nan", *base], 2, "finite"
    if name == "pixel size implausible":
        return ["predict", *good, "--pixel-size", "12", *base], 2, "implausible"
    if name == "pixel size missing":
        return ["predict", *good, *base], 1, "a.png: no pixel size (no --pixel-size MM or --pixel-csv FILE given"
    if name == "image not in pixel csv":
        csv.write_text("filename,pixel size(mm)\na.png,0.1\n")
        return ["predict", *good, "--pixel-csv", csv, *base], 1, "b.png: no pixel size"
    if name == "pixel csv missing":
        return ["predict", *good, "--pixel-csv", tmp / "none.csv", *base], 1, "no such file"
    if name == "pixel csv bad value":
        csv.write_text("filename,pixel size(mm)\na.png,0.1\nb.png,-3\n")
        return ["predict", *good, "--pixel-csv", csv, *base], 1, "line 3"
    if name == "pixel csv without a pixel column":
        csv.write_text("filename,hc\na.png,0.1\nb.png,0.2\n")
        return ["predict", *good, "--pixel-csv", csv, *base], 1, "no pixel size column"
    if name == "ga not an age":
        return ["predict", *good, *px, *base, "--ga", "22+9"], 2, "write weeks+days (22+3) or weeks (22.4)"
    if name == "ga beyond pregnancy":
        return ["predict", *good, *px, *base, "--ga", "52"], 2, "above 0 and at most 45 weeks"
    if name == "ga and ga csv":
        csv.write_text("filename,ga\na.png,22+3\nb.png,30\n")
        return ["predict", *good, *px, *base, "--ga", "22", "--ga-csv", csv], 2, "not allowed with argument"
    if name == "image not in ga csv":
        csv.write_text("filename,ga\na.png,22+3\n")
        return ["predict", *good, *px, *base, "--ga-csv", csv], 1, "b.png: not in"
    if name == "ga csv bad value":
        csv.write_text("filename,ga\na.png,22+3\nb.png,soon\n")
        return ["predict", *good, *px, *base, "--ga-csv", csv], 1, "line 3: gestational age 'soon'"
    if name == "ga csv without an age column":
        csv.write_text("filename,hc\na.png,22\nb.png,30\n")
        return ["predict", *good, *px, *base, "--ga-csv", csv], 1, "no gestational age column"
    if name == "checkpoint missing":
        return ["predict", *good, *px, "--out", out, "--checkpoint", tmp / "no.pt"], 1, "no such file"
    if name == "checkpoint not a checkpoint":
        (tmp / "junk.pt").write_bytes(os.urandom(2000))
        return ["predict", *good, *px, "--out", out, "--checkpoint", tmp / "junk.pt"], 1, "not a fetalhead checkpoint"
    if name == "checkpoint of another architecture":
        ck = torch.load(ckpt, weights_only=True)
        ck["config"]["base_channels"] = 16
        torch.save(ck, tmp / "other.pt")
        return ["predict", *good, *px, "--out", out, "--checkpoint", tmp / "other.pt"], 1, "do not match"
    if name == "out under a file":
        (tmp / "file").write_text("x")
        return ["predict", *good, *px, "--out", tmp / "file" / "sub", "--checkpoint", ckpt], 1, "is a file"
    if name == "out is a file":
        (tmp / "file").write_text("x")
        return ["predict", *good, *px, "--out", tmp / "file", "--checkpoint", ckpt], 1, "not a folder"
    if name == "existing outputs":
        out.mkdir()
        (out / "b_mask.png").write_bytes(b"precious")
        return ["predict", *good, *px, *base], 1, "use --overwrite"
    if name == "existing overlay":
        out.mkdir()
        (out / "a_overlay.png").write_bytes(b"precious")
        return ["predict", *good, *px, *base], 1, "a_overlay.png exists"
    if name == "existing page":
        out.mkdir()
        (out / "index.html").write_text("a page of the user's own")
        return ["predict", *good, *px, *base], 1, "index.html exists"
    if name == "batch size zero":
        return ["predict", *good, *px, *base, "--batch-size", "0"], 2, "at least 1"
    gray = np.zeros((64, 96), np.uint8)
    if name == "dicom cine loop":
        scan = write_dicom(tmp / "cine.dcm", np.zeros((3, 64, 96), np.uint8), photometric="MONOCHROME2")
        return ["predict", *good, scan, *px, *base], 1, "cine.dcm: a cine loop of 3 frames; choose the frame"
    if name == "dicom frame beyond the cine loop":
        scan = write_dicom(tmp / "cine.dcm", np.zeros((3, 64, 96), np.uint8), photometric="MONOCHROME2")
        return (["predict", *good, scan, *px, *base, "--frame", "4"], 1,
                "cine.dcm: no frame 4 in this cine loop of 3 frames (1 to 3)")
    if name == "dicom frame zero":
        return ["predict", *good, *px, *base, "--frame", "0"], 2, "at least 1"
    if name == "frame neither a number nor all":
        return ["predict", *good, *px, *base, "--frame", "every"], 2, "'every' is not a whole number"
    if name == "frame range from zero":
        return ["predict", *good, *px, *base, "--frame", "0-3"], 2, "'0' must be at least 1"
    if name == "frame range of words":
        return ["predict", *good, *px, *base, "--frame", "2-x"], 2, "'x' is not a whole number"
    if name == "frame negative":
        return ["predict", *good, *px, *base, "--frame=-1"], 2, "'-1' is not a frame number from 1 nor a range FIRST-LAST"
    if name == "frame range without its end":
        return ["predict", *good, *px, *base, "--frame", "2-"], 2, "'2-' is not a frame number from 1 nor a range"
    if name == "dicom without an image":
        (tmp / "junk.dcm").write_bytes(bytes(range(256)) * 4)
        return ["predict", *good, tmp / "junk.dcm", *px, *base], 1, "junk.dcm: a DICOM file without an image"
    if name == "dicom truncated":
        data = write_dicom(tmp / "full.dcm", gray, regions=[region(0.01)]).read_bytes()
        (tmp / "full.dcm").unlink()
        (tmp / "cut.dcm").write_bytes(data[: len(data) - 3000])
        return ["predict", *good, tmp / "cut.dcm", *px, *base], 1, "cut.dcm: cannot decode its pixel data"
    if name == "dicom non-square pixels":
        scan = write_dicom(tmp / "rect.dcm", gray, regions=[region(0.01, 0.02)])
        return ["predict", *good, scan, *px, *base], 1, "rect.dcm: non-square pixels (0.1 x 0.2 mm"
    if name == "video without a frame":
        clip = write_clip(tmp / "sweep.avi", flat_frames(3, shape=(64, 96)))
        return ["predict", *good, clip, *px, *base], 1, "sweep.avi: a video of 3 frames; choose the frame"
    if name == "video frame beyond the clip":
        clip = write_clip(tmp / "sweep.mkv", flat_frames(3, shape=(64, 96)))
        return ["predict", *good, clip, *px, *base, "--frame", "5"], 1, "sweep.mkv: no frame 5 in this video of 3 frames"
    if name == "video truncated":
        data = write_clip(tmp / "whole.mp4", flat_frames(6, shape=(64, 96)), codec="mp4v").read_bytes()
        (tmp / "whole.mp4").unlink()
        (tmp / "cut.mp4").write_bytes(data[: len(data) // 3])
        return ["predict", *good, tmp / "cut.mp4", *px, *base, "--frame", "all"], 1, "cut.mp4: not a video FFmpeg can decode"
    if name == "video without a pixel size":
        clip = write_clip(tmp / "clip.avi", flat_frames(2, shape=(64, 96)))
        csv.write_text("filename,pixel size(mm)\na.png,0.1\nb.png,0.1\n")
        return (["predict", *good, clip, "--pixel-csv", csv, *base, "--frame", "1"], 1,
                "clip.avi: no pixel size")
    csv.write_text("filename,pixel size(mm)\na.png,0.1\nb.png,0.1\n")  # the PNGs only: a DICOM file falls back to its own
    if name == "dicom regions disagree":
        scan = write_dicom(tmp / "two.dcm", gray, regions=[region(0.01), region(0.03)])
        return (["predict", *good, scan, "--pixel-csv", csv, *base], 1,
                "two.dcm: its ultrasound regions have different pixel sizes (0.1 x 0.1, 0.3 x 0.3 mm)")
    if name == "dicom implausible pixel size":
        scan = write_dicom(tmp / "far.dcm", gray, regions=[region(0.5)])
        return (["predict", *good, scan, "--pixel-csv", csv, *base], 1,
                "far.dcm: the file's pixel size 5 mm is implausible")
    raise AssertionError(name)


BAD_INPUTS = [
    "missing path", "folder without images", "empty file", "truncated file", "not an image",
    "tiny image", "huge image", "duplicate stems", "an input under an output's name",
    "a frame's outputs named as an image's", "names that differ only in case", "a name too long for its outputs",
    "pixel size zero", "pixel size negative",
    "pixel size not a number", "pixel size nan", "pixel size implausible", "pixel size missing",
    "image not in pixel csv", "pixel csv missing", "pixel csv bad value",
    "pixel csv without a pixel column", "ga not an age", "ga beyond pregnancy", "ga and ga csv",
    "image not in ga csv", "ga csv bad value", "ga csv without an age column", "checkpoint missing", "checkpoint not a checkpoint",
    "checkpoint of another architecture", "out under a file", "out is a file", "existing outputs",
    "existing overlay", "existing page", "batch size zero", "dicom cine loop", "dicom frame beyond the cine loop",
    "dicom frame zero", "frame neither a number nor all", "frame range from zero", "frame range of words",
    "frame negative", "frame range without its end", "dicom without an image",
    "dicom truncated", "dicom non-square pixels", "dicom regions disagree", "dicom implausible pixel size",
    "video without a frame", "video frame beyond the clip", "video truncated", "video without a pixel size",
]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_predict_bad_input(name, tmp_path, capfd, untrained_checkpoint):
    argv, expected, words = _case(tmp_path, name, untrained_checkpoint)
    before = snapshot(tmp_path)
    code, out, err = run(argv, capfd)
    assert_one_line_error(code, err, expected, words)
    assert snapshot(tmp_path) == before  # nothing written, nothing left behind


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_predict_read_only_output_folder(tmp_path, capfd, untrained_checkpoint):
    image = _png(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        before = snapshot(tmp_path)
        code, _, err = run(["predict", image, "--pixel-size", "0.1", "--out", locked / "out",
                            "--checkpoint", untrained_checkpoint], capfd)
        assert_one_line_error(code, err, 1, "permission")
        assert snapshot(tmp_path) == before
    finally:
        locked.chmod(stat.S_IRWXU)


def test_subprocess_truncated_png_gives_one_clean_line(tmp_path, untrained_checkpoint):
    # In a subprocess so that anything a C library prints to the real stderr is seen.
    good = _png(tmp_path / "a.png")
    data = good.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    before = snapshot(tmp_path)
    res = run_subprocess(["predict", good, tmp_path / "t.png", "--pixel-size", "0.1", "--out",
                          tmp_path / "out", "--checkpoint", untrained_checkpoint], tmp_path)
    assert_one_line_error(res.returncode, res.stderr, 1, "truncated")
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- predict: success


def _unusual_modes(src: Path, folder: Path) -> list[Path]:
    """The same image as 16-bit gray, RGB, RGBA, palette PNG and as JPEG."""
    gray = np.asarray(Image.open(src).convert("L"))
    files = {
        "g16.png": Image.fromarray(gray.astype(np.uint16) * 257),
        "rgb.png": Image.fromarray(np.stack([gray] * 3, -1)),
        "rgba.png": Image.fromarray(np.dstack([gray] * 3 + [np.full_like(gray, 255)])),
        "pal.png": Image.fromarray(gray).convert("P"),
        "jpeg.jpg": Image.fromarray(gray),
    }
    for name, im in files.items():
        im.save(folder / name)
    return [folder / n for n in files]


def test_predict_images_and_unusual_modes(tmp_path, capfd, synthetic_tiny):
    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 3)
    w, h = Image.open(images[0]).size
    extra = _unusual_modes(images[0], tmp_path / "in")
    out = tmp_path / "out"
    code, stdout, err = run(["predict", tmp_path / "in", "--pixel-size", "0.12", "--out", out,
                             "--checkpoint", ckpt, "--quiet", "--batch-size", "3"], capfd)
    assert code == 0, err
    assert err == "" and "for 8 images" in stdout
    df = pd.read_csv(out / "predictions.csv")
    assert list(df.columns) == PRED_COLUMNS
    assert (df["model"] == str(ckpt)).all()  # a checkpoint without a training run: named by its file
    assert f"Measured by checkpoint {ckpt} (preset " in (out / "index.html").read_text()
    assert sorted(df["filename"]) == sorted(p.name for p in images + extra)
    assert (df["pixel_size_mm"] == 0.12).all()
    assert set(df["status"]) <= {"ok", "review", "no head found"}
    measured = df["status"] != "no head found"
    assert df.loc[measured, "quality"].between(0, 1).all() and df.loc[~measured, "quality"].isna().all()
    for p in images + extra:
        mask = np.asarray(Image.open(out / f"{p.stem}_mask.png"))
        overlay = np.asarray(Image.open(out / f"{p.stem}_overlay.png"))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
        assert overlay.shape == (h, w, 3)
    ok = df[measured]
    assert len(ok) > 0 and np.isfinite(ok["hc_mm"]).all()
    assert np.allclose(ok["semi_axes_a_mm"], ok["semi_axes_a_px"] * 0.12, rtol=1e-5)
    # the diameters are the head ellipse's axes, outline to outline
    assert np.allclose(ok["ofd_mm"], 2 * ok["semi_axes_a_mm"]) and np.allclose(ok["bpd_mm"], 2 * ok["semi_axes_b_mm"])
    assert np.allclose(ok["cephalic_index"], 100 * ok["semi_axes_b_mm"] / ok["semi_axes_a_mm"])
    assert set(ok["head_shape"]) <= {"dolichocephalic", "normal", "brachycephalic"}
    assert df.loc[~measured, "bpd_mm"].isna().all()
    # The mode conversions give the same prediction as the original PNG (JPEG is lossy).
    by = df.set_index("filename")
    for name in ("g16.png", "rgb.png", "rgba.png", "pal.png"):
        assert by.loc[name, "hc_mm"] == pytest.approx(by.loc[images[0].name, "hc_mm"], rel=1e-3, nan_ok=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", "predictions.csv"] + [f"{p.stem}_{k}.png" for p in images + extra for k in ("mask", "overlay")])
    page = (out / "index.html").read_text()  # the page shows every overlay it links, by name
    assert sorted(linked(page)) == sorted(f"{p.stem}_overlay.png" for p in images + extra)


def test_predict_dicom_measures_with_its_own_pixel_size(tmp_path, capfd, synthetic_tiny):
    """A DICOM export of a scan measures as the PNG of the same pixels with --pixel-size set to
    the size its ultrasound region stores; --pixel-size overrides it (with a warning), and so
    does a --pixel-csv row, while an image missing from the CSV falls back to the file's own."""
    root, ckpt = synthetic_tiny
    png = _test_set_images(root, tmp_path / "png", 1)[0]
    gray = np.asarray(Image.open(png).convert("L"))
    scan = write_dicom(tmp_path / "dcm" / "scan.dcm", gray, regions=[region(0.015, box=(0, 0, 90, 60)),
                                                                     region(0.2, spatial_format=4, units=4)])
    bare = write_dicom(tmp_path / "dcm" / "bare", gray, pixel_spacing=[0.15, 0.15])  # no suffix, no region

    said = {}

    def measured(argv: list, out: str) -> pd.DataFrame:
        code, stdout, err = run(["predict", *argv, "--out", tmp_path / out, "--checkpoint", ckpt, "--quiet"], capfd)
        assert code == 0, err
        said[out] = stdout
        return pd.read_csv(tmp_path / out / "predictions.csv").set_index("filename")

    as_png = measured([png, "--pixel-size", "0.15"], "o_png")
    as_dicom = measured([tmp_path / "dcm", bare], "o_dcm")  # the folder gives scan.dcm; bare named itself
    assert sorted(as_dicom.index) == ["bare", "scan.dcm"]
    assert "for 2 images" in said["o_dcm"] and "(2 with the pixel size their file stores" in said["o_dcm"]
    assert "their file stores" not in said["o_png"]
    assert list(as_dicom["pixel_size_mm"]) == pytest.approx([0.15, 0.15])
    for name in ("scan.dcm", "bare"):
        assert as_dicom.loc[name, "hc_mm"] == pytest.approx(as_png.loc[png.name, "hc_mm"], rel=1e-6)
        assert as_dicom.loc[name, "status"] == as_png.loc[png.name, "status"]
    code, _, err = run(["predict", scan, "--pixel-size", "0.3", "--out", tmp_path / "o_given",
                        "--checkpoint", ckpt, "--quiet"], capfd)
    assert code == 0
    assert err.strip() == ("fetalhead: warning: scan.dcm: measured with the given pixel size 0.3 mm, "
                           "not the 0.15 mm the file stores")
    given = pd.read_csv(tmp_path / "o_given" / "predictions.csv").iloc[0]
    assert given["hc_mm"] == pytest.approx(2 * as_png.loc[png.name, "hc_mm"], rel=1e-6)
    two = write_dicom(tmp_path / "two" / "two.dcm", gray, regions=[region(0.015), region(0.03)])
    code, _, err = run(["predict", two, "--pixel-size", "0.3", "--out", tmp_path / "o_two",  # its own: unusable
                        "--checkpoint", ckpt, "--quiet"], capfd)
    assert code == 0 and err == "", err
    assert pd.read_csv(tmp_path / "o_two" / "predictions.csv").iloc[0]["hc_mm"] == pytest.approx(given["hc_mm"], rel=1e-6)
    (tmp_path / "px.csv").write_text("filename,pixel size(mm)\nbare,0.075\n")
    by_csv = measured([scan, bare, "--pixel-csv", tmp_path / "px.csv"], "o_csv")
    assert by_csv.loc["bare", "pixel_size_mm"] == pytest.approx(0.075)
    assert by_csv.loc["scan.dcm", "pixel_size_mm"] == pytest.approx(0.15)
    assert by_csv.loc["bare", "hc_mm"] == pytest.approx(as_png.loc[png.name, "hc_mm"] / 2, rel=1e-6)
    assert "(1 with the pixel size their file stores" in said["o_csv"]
    study = tmp_path / "study"  # an export's files, named by their UIDs: found by content, named whole
    for uid in ("1.2.840.113619.2.55.3", "1.2.840.113619.2.55.4"):
        write_dicom(study / uid, gray, regions=[region(0.015)])
    measured([study], "o_study")
    assert sorted(p.name for p in (tmp_path / "o_study").glob("*_mask.png")) == [
        "1.2.840.113619.2.55.3_mask.png", "1.2.840.113619.2.55.4_mask.png"]
    # a cine loop whose second frame is the scan: --frame 2 measures it; the single-frame file
    # beside it is read as it is
    clip = write_dicom(tmp_path / "clip" / "clip.dcm", np.stack([np.zeros_like(gray), gray, 255 - gray]),
                       photometric="MONOCHROME2", regions=[region(0.015)])
    framed = measured([clip, scan, "--frame", "2"], "o_clip")
    for name in ("clip.dcm", "scan.dcm"):
        assert framed.loc[name, "hc_mm"] == pytest.approx(as_png.loc[png.name, "hc_mm"], rel=1e-6)
    assert framed.loc["clip.dcm", "frame"] == 2 and np.isnan(framed.loc["scan.dcm", "frame"])
    # --frame all: a row and outputs per frame of the loop, the still file as it is
    every = measured([clip, scan, "--frame", "all"], "o_all").reset_index()
    assert list(zip(every["filename"], every["frame"].fillna(0).astype(int), strict=True)) == [
        ("clip.dcm", 1), ("clip.dcm", 2), ("clip.dcm", 3), ("scan.dcm", 0)]
    assert "for 4 measurements" in said["o_all"]
    second = every[(every["filename"] == "clip.dcm") & (every["frame"] == 2)].iloc[0]
    assert second["hc_mm"] == pytest.approx(as_png.loc[png.name, "hc_mm"], rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "o_all").glob("*_mask.png")) == [
        "clip_f001_mask.png", "clip_f002_mask.png", "clip_f003_mask.png", "scan_mask.png"]
    code, stdout, err = run(["predict", clip, scan, "--frame", "all", "--out", tmp_path / "o_loud", "--checkpoint",
                             ckpt], capfd)
    assert code == 0, err
    assert re.search(r"^  scan\.dcm: HC [\d.]+ mm", stdout, re.M)  # the still file beside the loop: its line too
    loop = every[(every["filename"] == "clip.dcm") & (every["status"] != "no head found")]
    said_frame = re.search(r"clip\.dcm: (\d) of 3 frames measured; the highest quality score is frame (\d)'s "
                           r"\(([\d.]+), (ok|review)\): HC ([\d.]+) mm", stdout)
    assert said_frame and int(said_frame[1]) == len(loop)
    named = loop[loop["frame"] == int(said_frame[2])].iloc[0]
    key = lambda r: (r["status"] == "ok", r["quality"])  # noqa: E731
    assert key(named) == max(key(r) for _, r in loop.iterrows())  # an ok frame before any flagged one
    assert (float(said_frame[3]), said_frame[4]) == (round(named["quality"], 2), named["status"])
    assert float(said_frame[5]) == pytest.approx(named["hc_mm"], abs=0.05)


def test_predict_measures_a_video_clip_frame_by_frame(tmp_path, capfd, synthetic_tiny):
    """A clip saved as a video whose second frame is a scan: --frame 2 measures it as the PNG of
    the same pixels; --frame all gives a row and outputs per frame and names the best one."""
    root, ckpt = synthetic_tiny
    png = _test_set_images(root, tmp_path / "png", 1)[0]
    gray = np.asarray(Image.open(png).convert("L"))
    clip = write_clip(tmp_path / "clips" / "sweep.avi", [np.zeros_like(gray), gray, np.flipud(gray)])

    def measured(argv: list, out: str, quiet: bool = True) -> tuple[pd.DataFrame, str]:
        code, stdout, err = run(["predict", *argv, "--pixel-size", "0.15", "--out", tmp_path / out,
                                 "--checkpoint", ckpt, *["--quiet"] * quiet], capfd)
        assert code == 0, err
        return pd.read_csv(tmp_path / out / "predictions.csv"), stdout

    as_png = measured([png], "o_png")[0].iloc[0]
    framed = measured([clip, "--frame", "2"], "o_two")[0].iloc[0]
    assert (framed["filename"], framed["frame"]) == ("sweep.avi", 2)
    assert framed["hc_mm"] == pytest.approx(as_png["hc_mm"], rel=1e-6)
    assert framed["status"] == as_png["status"]
    every, said = measured([tmp_path / "clips", "--frame", "all"], "o_all", quiet=False)  # a folder lists the clip
    assert list(every["frame"]) == [1, 2, 3] and set(every["filename"]) == {"sweep.avi"}
    assert every.loc[1, "hc_mm"] == pytest.approx(as_png["hc_mm"], rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "o_all").glob("*_overlay.png")) == [
        "sweep_f001_overlay.png", "sweep_f002_overlay.png", "sweep_f003_overlay.png"]
    measured_rows = every[every["status"] != "no head found"]
    best = max(measured_rows.itertuples(), key=lambda r: (r.status == "ok", r.quality))
    assert f"sweep.avi: {len(measured_rows)} of 3 frames measured; the highest quality score is frame {best.frame}'s" in said
    # --frame best: all measured, one row and one mask and overlay kept per loop, a still file as it is
    kept, said = measured([clip, png, "--frame", "best"], "o_best", quiet=False)
    assert list(kept["filename"]) == ["sweep.avi", png.name] and kept.loc[0, "frame"] == best.frame
    assert kept.loc[0, "hc_mm"] == pytest.approx(best.hc_mm, rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "o_best").iterdir()) == sorted(
        ["index.html", "predictions.csv", f"{png.stem}_mask.png", f"{png.stem}_overlay.png",
         f"sweep_f{best.frame:03d}_mask.png", f"sweep_f{best.frame:03d}_overlay.png"])
    assert "for 2 images (the best frame of 1 loop)" in said and "sweep.avi: " in said


@pytest.mark.parametrize(("suffix", "kind"), [("tif", "a TIFF stack"), ("png", "an animated image"),
                                            ("gif", "an animated image")])
def test_predict_measures_a_stack_or_animation_frame_by_frame(tmp_path, capfd, synthetic_tiny, suffix, kind):
    """A TIFF stack or an animated PNG or GIF whose second frame is a scan: --frame 2 measures
    it as the PNG of the same pixels; --frame all a row per frame (the folder found it); without
    --frame one line, nothing written."""
    root, ckpt = synthetic_tiny
    png = _test_set_images(root, tmp_path / "png", 1)[0]
    gray = np.asarray(Image.open(png).convert("L"))
    pages = [Image.fromarray(a) for a in (np.zeros_like(gray), gray, np.flipud(gray))]
    stack = tmp_path / "stacks" / f"sweep.{suffix}"
    stack.parent.mkdir()
    pages[0].save(stack, save_all=True, append_images=pages[1:])
    tables = {}
    for name, argv in (("png", [png]), ("two", [stack, "--frame", "2"]), ("all", [tmp_path / "stacks", "--frame", "all"])):
        code, _, err = run(["predict", *argv, "--pixel-size", "0.15", "--out", tmp_path / name, "--checkpoint", ckpt,
                            "--quiet"], capfd)
        assert code == 0, err
        tables[name] = pd.read_csv(tmp_path / name / "predictions.csv")
    as_png, two, every = tables["png"].iloc[0], tables["two"].iloc[0], tables["all"]
    assert (two["filename"], two["frame"]) == (stack.name, 2) and two["hc_mm"] == pytest.approx(as_png["hc_mm"], rel=1e-6)
    assert list(every["frame"]) == [1, 2, 3] and every.loc[1, "hc_mm"] == pytest.approx(as_png["hc_mm"], rel=1e-6)
    before = snapshot(tmp_path)
    code, _, err = run(["predict", stack, "--pixel-size", "0.15", "--out", tmp_path / "no", "--checkpoint", ckpt], capfd)
    assert_one_line_error(code, err, 1, f"{stack.name}: {kind} of 3 frames; choose the frame")
    assert snapshot(tmp_path) == before


def test_predict_measures_a_range_of_frames(tmp_path, capfd, synthetic_tiny):
    """--frame 2-5 of a stack of 3 frames: frames 2 and 3 (as many as it has), outputs named as
    --frame all names them, each row as --frame all measured it; a file of one frame read as it
    is; a range past the loop's end or backwards: one line, nothing written."""
    root, ckpt = synthetic_tiny
    png = _test_set_images(root, tmp_path / "in", 1)[0]
    gray = np.asarray(Image.open(png).convert("L"))
    pages = [Image.fromarray(a) for a in (np.zeros_like(gray), gray, np.flipud(gray))]
    stack = tmp_path / "in" / "sweep.tif"
    pages[0].save(stack, save_all=True, append_images=pages[1:])
    tables = {}
    for name, frame in (("range", "2-5"), ("all", "all")):
        code, _, err = run(["predict", tmp_path / "in", "--frame", frame, "--pixel-size", "0.15", "--out",
                            tmp_path / name, "--checkpoint", ckpt, "--quiet"], capfd)
        assert code == 0, err
        tables[name] = pd.read_csv(tmp_path / name / "predictions.csv")
    got, every = tables["range"], tables["all"]
    loop = got[got["filename"] == "sweep.tif"]
    assert list(loop["frame"]) == [2, 3] and len(got) == 3  # and the single image, read as it is
    assert np.allclose(loop["hc_mm"], every[every["filename"] == "sweep.tif"]["hc_mm"].iloc[1:], equal_nan=True)
    assert sorted(p.name for p in (tmp_path / "range").glob("sweep_f*_mask.png")) == [
        "sweep_f002_mask.png", "sweep_f003_mask.png"]
    before = snapshot(tmp_path)
    for frame, code_expected, words in (("4-6", 1, "sweep.tif: no frame 4 in this loop of 3 frames (1 to 3)"),
                                        ("3-2", 2, "the first frame comes after the last")):
        code, _, err = run(["predict", stack, "--frame", frame, "--pixel-size", "0.15", "--out", tmp_path / "no",
                            "--checkpoint", ckpt], capfd)
        assert code == code_expected and words in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before


def test_predict_pixel_csv_and_overwrite(tmp_path, capfd, synthetic_tiny):
    from fetalhead.data import TEST_CSV, read_test_csv

    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 2)
    csv = root / TEST_CSV
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")
    argv = ["predict", *images, "--pixel-csv", csv, "--out", out, "--checkpoint", ckpt, "--quiet"]
    code, _, err = run(argv, capfd)
    assert code == 0, err
    df = pd.read_csv(out / "predictions.csv")
    want = read_test_csv(root).set_index("filename")["pixel_size_mm"]
    assert list(df["pixel_size_mm"]) == pytest.approx([want[p.name] for p in images])
    before = snapshot(tmp_path)
    code, _, err = run(argv, capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")
    assert snapshot(tmp_path) == before
    (out / "predictions.csv").write_text("old")
    code, _, err = run([*argv, "--overwrite"], capfd)
    assert code == 0, err
    assert (out / "predictions.csv").read_text().startswith("filename,status")
    assert (out / "keep.txt").read_text() == "not ours"
    assert not [p for p in tmp_path.rglob(".fetalhead-*")]


def test_predict_lists_a_few_measurements_on_the_terminal(tmp_path, capfd, synthetic_tiny):
    from fetalhead.commands import measurement_line

    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 2)
    base = ["predict", *images, "--pixel-size", "0.15", "--checkpoint", ckpt]
    code, stdout, err = run([*base, "--out", tmp_path / "o"], capfd)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "o" / "predictions.csv")
    lines = [line for line in stdout.splitlines() if line.startswith("  ")]
    assert lines == [measurement_line(row) for row in df.to_dict("records")]
    measured = df[df["status"] != "no head found"]
    for row in measured.to_dict("records"):
        assert (f"{row['filename']}: HC {row['hc_mm']:.1f} mm (90 % interval {row['hc_low_mm']:.1f} to "
                f"{row['hc_high_mm']:.1f}), {row['status']}") in stdout
    code, stdout, err = run([*base, "--out", tmp_path / "q", "--quiet"], capfd)
    assert code == 0 and not [line for line in stdout.splitlines() if line.startswith("  ")], stdout
    assert measurement_line({"filename": "x.png", "status": "no head found", "hc_mm": float("nan"),
                             "quality": float("nan")}) == "  x.png: no head found"


def test_predict_reads_each_hc_against_its_known_age(tmp_path, capfd, synthetic_tiny):
    """--ga (one age for all) and --ga-csv (one per image, empty: not known) add each HC's
    INTERGROWTH-21st z-score and centiles, those of `fetalhead.growth.hc_for_age`, to the CSV,
    the terminal and the page; without an age the CSV has no such columns."""
    from fetalhead.growth import centile_text, hc_for_age

    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 3)
    base = ["predict", *images, "--pixel-size", "0.15", "--checkpoint", ckpt]
    code, _, err = run([*base, "--out", tmp_path / "plain", "--quiet"], capfd)
    assert code == 0, err
    plain = pd.read_csv(tmp_path / "plain" / "predictions.csv")
    assert "hc_centile" not in plain.columns and "given_ga_weeks" not in plain.columns

    code, stdout, err = run([*base, "--out", tmp_path / "one", "--ga", "20+3"], capfd)
    assert code == 0, err
    one = pd.read_csv(tmp_path / "one" / "predictions.csv", keep_default_na=False, na_values=[""])
    assert list(one["given_ga_weeks"]) == pytest.approx([20 + 3 / 7] * 3)
    measured = one[one["status"] != "no head found"]
    assert len(measured) >= 1
    for row in measured.to_dict("records"):
        want = hc_for_age(row["hc_mm"], 20 + 3 / 7, (row["hc_low_mm"], row["hc_high_mm"]))
        assert (row["hc_z"], row["hc_centile"], row["hc_centile_low"], row["hc_centile_high"]) == pytest.approx(
            (want.z, want.centile, want.centile_low, want.centile_high), rel=1e-5, abs=1e-5)
        assert row["hc_for_age"] == want.band
        assert f"{row['filename']}: HC {row['hc_mm']:.1f} mm" in stdout
        assert f"; {centile_text(want.centile)} centile for 20+3 weeks" in stdout
    page = (tmp_path / "one" / "index.html").read_text()
    assert page.count("centile for 20+3 weeks") == len(measured)

    names = [p.name for p in images]
    csv = tmp_path / "ages.csv"
    csv.write_text(f"filename,ga\n{names[0]},20+3\n{Path(names[1]).stem},31.5\n{names[2]},\n")
    code, _, err = run([*base, "--out", tmp_path / "each", "--ga-csv", csv, "--quiet"], capfd)
    assert code == 0, err
    each = pd.read_csv(tmp_path / "each" / "predictions.csv")
    assert list(each["given_ga_weeks"][:2]) == pytest.approx([20 + 3 / 7, 31.5])
    assert np.isnan(each["given_ga_weeks"][2]) and np.isnan(each["hc_centile"][2])  # not known: no centile
    assert each[["hc_mm", "status"]].equals(one[["hc_mm", "status"]])  # the age changes no measurement


def test_evaluate_refuses_to_replace_any_one_report_file(tmp_path, capfd, synthetic_hc18, untrained_checkpoint):
    from fetalhead.evaluate import REPORT_FILES

    out = tmp_path / "report"
    for name in REPORT_FILES:  # each file of an earlier report alone is enough to refuse
        if out.exists():
            shutil.rmtree(out)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"earlier")
        before = snapshot(tmp_path)
        code, _, err = run(["evaluate", "--data", synthetic_hc18, "--checkpoint", untrained_checkpoint,
                            "--out", out, "--quiet", "--part", "val"], capfd)
        assert_one_line_error(code, err, 1, "use --overwrite")
        assert snapshot(tmp_path) == before, name


def test_a_multi_line_error_message_is_printed_on_one_line(capfd, monkeypatch, tmp_path):
    from fetalhead.errors import FetalheadError

    def fail(args):
        raise FetalheadError("first part\n  second part")

    monkeypatch.setattr("fetalhead.commands.run", fail)
    code, _, err = run(["cards"], capfd)
    assert_one_line_error(code, err, 1, "first part second part")


def test_no_head_found_is_a_row_not_a_crash(tmp_path, capfd):
    ckpt = _save_untrained(tmp_path / "never.pt", bias=-20.0)
    image = _png(tmp_path / "in" / "x.png", (80, 120))
    code, stdout, err = run(["predict", image, "--pixel-size", "0.1", "--out", tmp_path / "out",
                             "--checkpoint", ckpt, "--quiet"], capfd)
    assert code == 0, err
    assert "1 without a head found" in stdout
    row = pd.read_csv(tmp_path / "out" / "predictions.csv").iloc[0]
    assert row["status"] == "no head found" and np.isnan(row["hc_mm"])
    assert np.asarray(Image.open(tmp_path / "out" / "x_mask.png")).max() == 0
    assert (tmp_path / "out" / "x_overlay.png").is_file()


@pytest.mark.parametrize("failure, code, line", [
    (KeyboardInterrupt, 130, "fetalhead: interrupted"),
    (OSError(28, "No space left on device"), 1, "fetalhead: error: No space left on device"),
])
def test_failure_mid_way_leaves_nothing_partial(failure, code, line, tmp_path, capfd, monkeypatch,
                                                untrained_checkpoint):
    images = [_png(tmp_path / "in" / f"{i}.png", seed=i) for i in range(4)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "1_mask.png").write_bytes(b"earlier result")
    calls = []

    def flaky(image, pred):
        calls.append(1)
        if len(calls) == 3:
            raise failure
        return np.zeros((*image.shape, 3), np.uint8)

    monkeypatch.setattr("fetalhead.commands.draw_overlay", flaky)
    before = snapshot(tmp_path)
    got, _, err = run(["predict", *images, "--pixel-size", "0.1", "--out", out, "--checkpoint",
                       untrained_checkpoint, "--quiet", "--overwrite", "--batch-size", "2"], capfd)
    assert got == code and err.strip() == line
    assert "Traceback" not in err and len(calls) == 3
    assert snapshot(tmp_path) == before
    # and into a folder that does not exist yet: it must not exist afterwards either
    calls.clear()
    got, _, _ = run(["predict", *images, "--pixel-size", "0.1", "--out", tmp_path / "new" / "deep",
                     "--checkpoint", untrained_checkpoint, "--quiet", "--batch-size", "2"], capfd)
    assert got == code and not (tmp_path / "new").exists()


def test_subprocess_predict_end_to_end(tmp_path, synthetic_tiny):
    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 2)
    res = run_subprocess(["predict", *images, "--pixel-size", "0.1", "--out", tmp_path / "out",
                          "--checkpoint", ckpt], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "predictions.csv" in res.stdout
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 2


# ----------------------------------------------------------------------------- submit


def check_submission_file(path: Path, root: Path) -> pd.DataFrame:
    """The HC18 challenge format, checked independently of fetalhead.evaluate."""
    import math

    text = path.read_text()
    assert text.splitlines()[0] == "filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad"
    df = pd.read_csv(path)
    test = pd.read_csv(root / "test_set_pixel_size.csv")
    assert list(df["filename"]) == list(test["filename"])
    values = df[list(SUBMISSION_COLUMNS[1:])].to_numpy(float)
    assert np.isfinite(values).all()
    for (_, row), px in zip(df.iterrows(), test["pixel size(mm)"], strict=True):
        w, h = Image.open(root / "test_set" / row["filename"]).size
        assert -0.5 * px <= row["center_x_mm"] <= (w - 0.5) * px
        assert -0.5 * px <= row["center_y_mm"] <= (h - 0.5) * px
        assert row["semi_axes_a_mm"] >= row["semi_axes_b_mm"] > 0
        assert row["semi_axes_a_mm"] < max(w, h) * px  # no head is larger than the image
        assert 0 <= row["angle_rad"] < math.pi
    return df


@needs_data
def test_submit_all_335(tmp_path, capfd, tiny_checkpoint):
    out = tmp_path / "sub.csv"
    code, stdout, err = run(["submit", "--out", out, "--checkpoint", tiny_checkpoint, "--quiet",
                             "--batch-size", "32"], capfd)
    assert code == 0, err
    assert "submission" in stdout
    assert len(check_submission_file(out, Path(HC18))) == 335


def test_submit_writes_the_challenge_csv_and_refuses_to_overwrite(tmp_path, capfd, synthetic_tiny):
    root, ckpt = synthetic_tiny
    out = tmp_path / "sub.csv"
    base = ["submit", "--data", root, "--checkpoint", ckpt, "--quiet"]
    code, stdout, err = run([*base, "--out", out], capfd)
    assert code == 0, err
    assert "submission" in stdout
    assert len(check_submission_file(out, root)) == 4  # every official test image of the folder
    before = snapshot(tmp_path)
    code, _, err = run([*base, "--out", out], capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")
    (tmp_path / "d").mkdir()
    code, _, err = run([*base, "--out", tmp_path / "d"], capfd)
    assert_one_line_error(code, err, 1, "is a folder")
    (tmp_path / "d").rmdir()
    code, _, err = run([*base, "--out", out / "x.csv"], capfd)
    assert_one_line_error(code, err, 1, "is a file")
    assert snapshot(tmp_path) == before
    code, _, err = run([*base, "--out", out, "--overwrite"], capfd)
    assert code == 0, err
    assert len(check_submission_file(out, root)) == 4


def test_submit_without_data_or_weights(tmp_path, capfd, monkeypatch, synthetic_hc18):
    code, _, err = run(["submit", "--out", tmp_path / "s.csv", "--data", tmp_path / "nowhere"], capfd)
    assert_one_line_error(code, err, 1, "HC18 data not found")
    monkeypatch.setattr("fetalhead.paths.shipped_checkpoint", lambda model=None: tmp_path / "missing.pt")
    code, _, err = run(["submit", "--out", tmp_path / "s.csv", "--data", synthetic_hc18], capfd)
    assert_one_line_error(code, err, 1, "no shipped weights")
    assert not (tmp_path / "s.csv").exists()


# ----------------------------------------------------------------------------- evaluate, main


def test_evaluate_writes_a_report_and_refuses_to_overwrite(tmp_path, capfd, synthetic_hc18,
                                                           untrained_checkpoint):
    from fetalhead.evaluate import REPORT_FILES

    out = tmp_path / "report"
    argv = ["evaluate", "--data", synthetic_hc18, "--checkpoint", untrained_checkpoint, "--out", out,
            "--quiet", "--part", "val"]
    code, stdout, err = run(argv, capfd)
    assert code == 0, err
    assert "dice" in stdout and "hc_abs_error_mm" in stdout
    assert all((out / f).is_file() for f in REPORT_FILES)
    assert len(pd.read_csv(out / "metrics_per_image.csv")) >= 1
    before = snapshot(tmp_path)
    code, _, err = run(argv, capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")
    assert snapshot(tmp_path) == before
    code, _, err = run([*argv, "--overwrite"], capfd)
    assert code == 0, err


def test_evaluate_reports_into_a_folder_of_its_own_beside_mains(tmp_path, capfd, monkeypatch, synthetic_hc18,
                                                                untrained_checkpoint):
    import fetalhead.commands as commands

    monkeypatch.setattr(commands, "_default_out", lambda name: tmp_path / name)
    argv = ["--data", synthetic_hc18, "--checkpoint", untrained_checkpoint, "--quiet", "--limit", "1"]
    assert run(["main", *argv], capfd)[0] == 0  # outputs/ holds main's report
    code, _, err = run(["evaluate", *argv, "--part", "val"], capfd)
    assert code == 0, err
    assert (tmp_path / "outputs" / "evaluate-val" / "summary.json").is_file()
    assert (tmp_path / "outputs" / "summary.json").is_file()


def test_main_trains_a_cpu_stand_in_when_no_weights_exist(tmp_path, capfd, monkeypatch,
                                                          synthetic_hc18, cache_tmp):
    import fetalhead.commands  # noqa: F401  (imported before paths is patched: it would keep the stand-in)

    for where in ("fetalhead.paths", "fetalhead.commands"):
        monkeypatch.setattr(f"{where}.shipped_checkpoint", lambda model=None: tmp_path / "missing.pt")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setenv("FETALHEAD_QUICK", "1")
    out = tmp_path / "outputs"
    code, stdout, err = run(["main", "--data", synthetic_hc18, "--out", out, "--epochs", "1",
                             "--quiet", "--no-download"], capfd)
    assert code == 0, err
    assert "CPU STAND-IN" in stdout and "NOT the shipped model" in stdout
    assert (out / "train-cpu" / "best.pt").is_file()
    for name in ("metrics_per_image.csv", "summary.csv", "summary.json", "submission.csv",
                 "figures/eval_examples.png"):
        assert (out / name).is_file(), name
    check_submission_file(out / "submission.csv", synthetic_hc18)
    assert "hc_error_mm" in stdout  # the summary table


def test_main_replaces_only_its_own_results(tmp_path, capfd, synthetic_hc18, untrained_checkpoint):
    """A second run replaces the first's results; a folder holding files of the same names
    that `fetalhead main` did not write is left alone unless --overwrite; other files there are
    never touched."""
    argv = ["main", "--data", synthetic_hc18, "--checkpoint", untrained_checkpoint, "--quiet", "--limit", "1"]
    out = tmp_path / "o"
    assert run([*argv, "--out", out], capfd)[0] == 0
    assert (out / ".fetalhead-main").is_file()
    first = (out / "summary.csv").stat().st_mtime_ns
    code, _, err = run([*argv, "--out", out], capfd)
    assert code == 0, err
    assert (out / "summary.csv").stat().st_mtime_ns > first  # its own results: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "submission.csv").write_text("my own submission\n")
    (mine / "notes.txt").write_text("keep me\n")
    before = snapshot(tmp_path)
    code, _, err = run([*argv, "--out", mine], capfd)
    assert_one_line_error(code, err, 1, f"{mine / 'submission.csv'} exists in a folder not marked as "
                                        "`fetalhead main`'s (no .fetalhead-main); use --overwrite to replace "
                                        "it, or another --out")
    assert snapshot(tmp_path) == before
    code, _, err = run([*argv, "--out", mine, "--overwrite"], capfd)
    assert code == 0, err
    assert (mine / "submission.csv").read_text() != "my own submission\n"
    assert (mine / "notes.txt").read_text() == "keep me\n"
    (tmp_path / "empty").mkdir()
    assert run([*argv, "--out", tmp_path / "empty"], capfd)[0] == 0  # an empty folder is fine


def test_main_with_a_checkpoint_and_missing_data(tmp_path, capfd, synthetic_hc18, untrained_checkpoint):
    out = tmp_path / "o"
    code, stdout, err = run(["main", "--data", synthetic_hc18, "--out", out, "--checkpoint",
                             untrained_checkpoint, "--quiet", "--limit", "1", "--review-below", "0.6"], capfd)
    assert code == 0, err
    assert f"model: checkpoint {untrained_checkpoint}" in stdout and len(pd.read_csv(out / "metrics_per_image.csv")) == 1
    assert "review below quality 0.6" in stdout  # the threshold given is the one used
    code, _, err = run(["main", "--data", tmp_path / "nowhere", "--no-download", "--out", tmp_path / "x"], capfd)
    assert_one_line_error(code, err, 1, "HC18 data not found")
    assert not (tmp_path / "x").exists()
    for extra, words in ((["--checkpoint", untrained_checkpoint, "--retrain"], "it does not take --checkpoint"),
                         (["--model", "small", "--retrain"], "it does not take --model"),
                         (["--epochs", "1"], "--epochs is for a model trained here (--retrain); this run "
                                             "measures the shipped weights"),
                         (["--epochs", "1", "--checkpoint", untrained_checkpoint], f"measures {untrained_checkpoint}")):
        code, _, err = run(["main", "--data", synthetic_hc18, "--out", tmp_path / "y", *extra], capfd)
        assert_one_line_error(code, err, 1, words)  # contradictory options: refused before any work
        assert not (tmp_path / "y").exists()


# ----------------------------------------------------------------------------- train, cache, download


def test_train_prepare_cache_and_their_errors(tmp_path, capfd, monkeypatch, synthetic_hc18, cache_tmp):
    from fetalhead.cache import load_compact_cache
    from fetalhead.predict import Predictor

    monkeypatch.setenv("FETALHEAD_QUICK", "1")
    cache_file = tmp_path / "compact.npz"
    code, stdout, err = run(["prepare-cache", "--data", synthetic_hc18, "--size", "32x48",
                             "--out", cache_file, "--quiet"], capfd)
    assert code == 0, err
    parts = load_compact_cache(cache_file)
    assert set(parts) == {"train", "val", "test"} and parts["train"].images.shape[1:] == (32, 48)
    before = snapshot(tmp_path)
    code, _, err = run(["prepare-cache", "--data", synthetic_hc18, "--out", cache_file], capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")
    assert snapshot(tmp_path) == before

    run_dir = tmp_path / "run"
    code, stdout, err = run(["train", "--preset", "cpu", "--epochs", "1", "--data", synthetic_hc18,
                             "--out", run_dir, "--quiet"], capfd)
    assert code == 0, err
    assert f"best checkpoint: {run_dir / 'best.pt'}" in stdout
    assert Predictor.from_checkpoint(run_dir / "best.pt").image_size == (128, 192)  # quick cpu preset
    before = snapshot(tmp_path)
    code, _, err = run(["train", "--preset", "cpu", "--epochs", "1", "--data", synthetic_hc18,
                        "--out", run_dir], capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")  # an earlier run is never clobbered
    assert snapshot(tmp_path) == before
    shutil.copytree(run_dir, tmp_path / "other")  # another finished run ...
    before = snapshot(tmp_path)
    code, _, err = run(["train", "--preset", "cpu", "--data", synthetic_hc18, "--out", tmp_path / "other",
                        "--resume", run_dir / "last.pt"], capfd)
    assert_one_line_error(code, err, 1, "use --overwrite")  # ... is not replaced by resuming this one
    assert snapshot(tmp_path) == before
    code, _, err = run(["train", "--preset", "cpu", "--data", synthetic_hc18, "--out", tmp_path / "r2",
                        "--set", "lr=inf"], capfd)
    assert_one_line_error(code, err, 2, "finite number")  # a usage error, before anything runs
    for argv, words in [
        (["--resume", tmp_path / "none.pt"], "no such file"),
        (["--resume", tmp_path], "is a folder; give a file"),
        (["--cache", cache_file], "needs 128x192"),
        (["--cache", tmp_path / "none.npz"], "no such file"),
    ]:
        code, _, err = run(["train", "--preset", "cpu", "--data", synthetic_hc18, "--out",
                            tmp_path / "r2", *argv], capfd)
        assert_one_line_error(code, err, 1, words)
    assert not (tmp_path / "r2").exists()


def test_an_image_size_the_valid_unet_cannot_take_is_refused_before_any_work(tmp_path, capfd):
    # before the data is looked for and before --out is made, not at the first training step
    code, _, err = run(["train", "--quick", "--set", "padding=valid", "--data", tmp_path / "no-data",
                        "--out", tmp_path / "run"], capfd)
    assert_one_line_error(code, err, 1, "does not fit the 'valid' U-Net; use 188")
    assert not (tmp_path / "run").exists()


def test_a_warning_is_one_line_without_the_source_location(tmp_path, capfd, monkeypatch):
    import warnings

    def warns(root=None, progress=True, **kw):
        warnings.warn("cannot read checksums;\nthe archives will not be MD5-checked", stacklevel=2)
        return Path(root)

    monkeypatch.setattr("fetalhead.commands.download_hc18", warns)
    code, _, err = run(["download", "--data", tmp_path / "hc", "--quiet"], capfd)
    assert code == 0
    assert err == "fetalhead: warning: cannot read checksums; the archives will not be MD5-checked\n"


def test_download_wraps_download_hc18(tmp_path, capfd, monkeypatch):
    from fetalhead.errors import FetalheadError

    seen = []

    def fake(root=None, progress=True, **kw):
        seen.append((root, progress))
        return Path(root)

    monkeypatch.setattr("fetalhead.commands.download_hc18", fake)
    code, stdout, _ = run(["download", "--data", tmp_path / "hc", "--quiet"], capfd)
    assert code == 0 and seen == [(tmp_path / "hc", False)] and str(tmp_path / "hc") in stdout

    def offline(root=None, progress=True, **kw):
        raise FetalheadError("cannot reach zenodo.org (network unreachable)")

    monkeypatch.setattr("fetalhead.commands.download_hc18", offline)
    code, _, err = run(["download", "--data", tmp_path / "hc"], capfd)
    assert_one_line_error(code, err, 1, "cannot reach zenodo.org")


@pytest.mark.skipif(sys.platform == "win32", reason="file-size limits are POSIX")
def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_leaves_nothing(tmp_path):
    """A write that fails part-way (here a file-size limit, as a full disk does) is a one-line
    error naming the folder, with no part of the file left behind."""
    import resource

    shipped = REPO / "fetalhead" / "weights" / "fetalhead_default.pt"
    out = tmp_path / "out"
    out.mkdir()
    limit = 64 * 1024  # bytes: well below the 7.5 MiB file

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([sys.executable, "-m", "fetalhead", "export", "--checkpoint", str(shipped),
                          "--out", str(out / "x.pt"), "--dtype", "float16"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert f"cannot write a checkpoint in {out}" in res.stderr and "is the disk full?" in res.stderr
    assert list(out.iterdir()) == []


def test_export_writes_a_small_fp16_file_and_refuses_to_overwrite(tmp_path, capfd, untrained_checkpoint):
    from fetalhead.checkpoint import load_checkpoint

    out = tmp_path / "w.pt"
    code, stdout, err = run(["export", "--checkpoint", untrained_checkpoint, "--out", out], capfd)
    assert code == 0, err
    _, cfg, meta = load_checkpoint(out)
    assert meta["weights_only"] and meta["dtype"] == "float16" and "wrote" in stdout
    assert out.stat().st_size < 0.6 * Path(untrained_checkpoint).stat().st_size
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    before = snapshot(tmp_path)
    code, _, err = run(["export", "--checkpoint", untrained_checkpoint, "--out", out], capfd)
    assert_one_line_error(code, err, 1, "exists")
    code, _, err = run(["export", "--checkpoint", junk, "--out", tmp_path / "x.pt"], capfd)
    assert_one_line_error(code, err, 1, "not a fetalhead checkpoint")
    code, _, err = run(["export", "--checkpoint", tmp_path, "--out", tmp_path / "x.pt"], capfd)
    assert_one_line_error(code, err, 1, "is a folder; give a .pt file")
    assert snapshot(tmp_path) == before  # nothing written, nothing overwritten


def test_export_int8_keeps_what_the_file_says_and_refuses_other_dtypes(tmp_path, capfd, untrained_checkpoint):
    from fetalhead.checkpoint import load_checkpoint, read_checkpoint

    half, q8 = tmp_path / "half.pt", tmp_path / "q8.pt"
    assert run(["export", "--checkpoint", untrained_checkpoint, "--out", half, "--run", "r1"], capfd)[0] == 0
    code, stdout, err = run(["export", "--checkpoint", half, "--out", q8, "--dtype", "int8"], capfd)
    assert code == 0 and "int8" in stdout, err
    meta = load_checkpoint(q8)[2]
    assert (meta["dtype"], meta["training_run"]) == ("int8", "r1")
    assert q8.stat().st_size < 0.75 * half.stat().st_size
    again = tmp_path / "again.pt"  # a re-export (a new threshold) keeps int8 and the very same weights
    code, stdout, err = run(["export", "--checkpoint", q8, "--out", again, "--review-below", "0.5"], capfd)
    assert code == 0 and "in int8" in stdout, err
    first, second = read_checkpoint(q8), read_checkpoint(again)
    assert (second["dtype"], second["review_below"]) == ("int8", 0.5)
    assert all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    assert all(torch.equal(first["scales"][k], second["scales"][k]) for k in first["scales"])
    before = snapshot(tmp_path)
    code, _, err = run(["export", "--checkpoint", half, "--out", tmp_path / "x.pt", "--dtype", "int4"], capfd)
    assert_one_line_error(code, err, 2, "--dtype")
    assert snapshot(tmp_path) == before


def test_export_records_the_run_flips_and_review_threshold(tmp_path, capfd, untrained_checkpoint):
    from fetalhead.checkpoint import load_checkpoint
    from fetalhead.predict import REVIEW_BELOW, Predictor

    plain = tmp_path / "plain.pt"
    assert run(["export", "--checkpoint", untrained_checkpoint, "--out", plain], capfd)[0] == 0
    p = Predictor.from_checkpoint(plain)
    assert (p.tta, p.review_below) == (False, REVIEW_BELOW) and "training_run" not in p.meta
    chosen = tmp_path / "chosen.pt"
    code, _, err = run(["export", "--checkpoint", untrained_checkpoint, "--out", chosen, "--run", "small_cpu_7s",
                        "--tta", "--review-below", "0.35"], capfd)
    assert code == 0, err
    p = Predictor.from_checkpoint(chosen)
    assert (p.tta, p.review_below, p.meta["training_run"]) == (True, 0.35, "small_cpu_7s")
    again = tmp_path / "again.pt"  # a re-export keeps what the file says unless told otherwise
    assert run(["export", "--checkpoint", chosen, "--out", again, "--no-tta"], capfd)[0] == 0
    meta = load_checkpoint(again)[2]
    assert (meta["tta"], meta["review_below"], meta["training_run"]) == (False, 0.35, "small_cpu_7s")
    before = snapshot(tmp_path)
    for bad in ("1.5", "-0.1", "half"):
        code, _, err = run(["export", "--checkpoint", untrained_checkpoint, "--out", tmp_path / "x.pt",
                            "--review-below", bad], capfd)
        assert_one_line_error(code, err, 2, "--review-below")
    assert snapshot(tmp_path) == before


def test_model_choice_is_checked_and_said(tmp_path, capfd, untrained_checkpoint, monkeypatch):
    code, _, err = run(["predict", tmp_path, "--model", "huge", "--pixel-size", "0.1", "--out", tmp_path / "o"], capfd)
    assert_one_line_error(code, err, 2, "invalid choice")
    code, _, err = run(["predict", tmp_path, "--model", "small", "--checkpoint", untrained_checkpoint,
                        "--pixel-size", "0.1", "--out", tmp_path / "o"], capfd)
    assert_one_line_error(code, err, 2, "not allowed with")
    monkeypatch.setattr("fetalhead.paths.shipped_checkpoint", lambda model=None: tmp_path / f"none_{model}.pt")
    img = tmp_path / "in" / "a.png"
    img.parent.mkdir()
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(img)
    code, _, err = run(["predict", img, "--model", "small", "--pixel-size", "0.1", "--out", tmp_path / "o"], capfd)
    assert_one_line_error(code, err, 1, "no shipped weights")
    code, stdout, err = run(["predict", img, "--checkpoint", untrained_checkpoint, "--pixel-size", "0.1",
                             "--out", tmp_path / "o"], capfd)
    assert code == 0, err
    assert f"model: checkpoint {untrained_checkpoint} (preset 'cpu', width 4, 64x96 px)" in stdout


def test_train_with_a_time_budget(tmp_path, capfd, synthetic_hc18, cache_tmp):
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--preset", "cpu", "--quick", "--data", synthetic_hc18, "--out", out,
                             "--time-budget", "2", "--seed", "7", "--set", "base_channels=4", "--quiet"], capfd)
    assert code == 0, err
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) >= 1 and hist["lr"].iloc[-1] < 1e-3  # annealed by the end of the budget
    from fetalhead.checkpoint import load_checkpoint

    cfg = load_checkpoint(out / "best.pt")[1]
    assert cfg.seed == 7 and cfg.base_channels == 4  # --seed and --set reach the run's config
    code, _, err = run(["train", "--preset", "cpu", "--time-budget", "0", "--out", out], capfd)
    assert_one_line_error(code, err, 2, "positive")


def test_train_parts_train_and_val(tmp_path, capfd, monkeypatch, synthetic_hc18, cache_tmp):
    """train_parts=train+val trains on both parts (and says that validation is then seen)."""
    from types import SimpleNamespace

    import fetalhead.commands as commands

    seen = {}

    def fake_fit(cfg, train, val, out_dir, **kwargs):
        seen[cfg.train_parts] = (list(train.meta["split"]), list(val.meta["split"]))
        return SimpleNamespace(checkpoint_path=Path(out_dir) / "best.pt")

    monkeypatch.setattr(commands, "fit", fake_fit)
    for parts in ("train", "train+val"):
        code, out, err = run(["train", "--preset", "cpu", "--quick", "--data", synthetic_hc18,
                              "--out", tmp_path / parts, "--set", f"train_parts={parts}"], capfd)
        assert code == 0, err
    assert "measured on seen images" in out + err
    (train, val), (both, val_too) = seen["train"], seen["train+val"]
    assert set(train) == {"train"} and set(val) == {"val"} and val_too == val
    assert both == train + val


def test_train_overwrite_leaves_no_file_of_the_earlier_run(tmp_path, capfd, monkeypatch, synthetic_hc18, cache_tmp):
    """Replacing a run (--overwrite) removes its files before training: a new run stopped
    before its first last.pt leaves no last.pt of the earlier run beside its own best.pt."""
    from types import SimpleNamespace

    import fetalhead.commands as commands

    run_dir, other = tmp_path / "run", tmp_path / "other"
    for folder in (run_dir, other):
        folder.mkdir()
        for name in commands.RUN_FILES:
            (folder / name).write_text("the earlier run's")
    seen = []

    def fake_fit(cfg, train, val, out_dir, **kwargs):
        seen.append(tuple(kwargs["replace"]))
        return SimpleNamespace(checkpoint_path=Path(out_dir) / "best.pt")

    monkeypatch.setattr(commands, "fit", fake_fit)
    code, _, err = run(["train", "--preset", "cpu", "--quick", "--data", synthetic_hc18, "--out", run_dir,
                        "--overwrite", "--quiet"], capfd)
    assert code == 0 and seen == [tuple(commands.RUN_FILES)], err  # fit removes them once its checks pass
    code, _, err = run(["train", "--preset", "cpu", "--quick", "--data", synthetic_hc18, "--out", other,
                        "--resume", other / "last.pt", "--quiet"], capfd)  # resuming its own run keeps it
    assert code == 0 and seen[1] == (), err


def test_epochs_decide_unless_a_time_budget_is_given(tmp_path, capfd, monkeypatch, synthetic_hc18, cache_tmp):
    from types import SimpleNamespace

    import fetalhead.commands as commands

    seen = []

    def fake_fit(cfg, train, val, out_dir, **kwargs):
        seen.append((cfg.epochs, cfg.time_budget_s))
        return SimpleNamespace(checkpoint_path=Path(out_dir) / "best.pt")

    monkeypatch.setattr(commands, "fit", fake_fit)
    monkeypatch.setenv("FETALHEAD_QUICK", "0")  # the preset as it is, with its time budget
    for i, extra in enumerate([[], ["--epochs", "3"], ["--epochs", "3", "--time-budget", "5"]]):
        code, _, err = run(["train", "--preset", "small", "--data", synthetic_hc18, "--out", tmp_path / str(i),
                            "--quiet", *extra], capfd)
        assert code == 0, err
    budget = commands.get_config("small", quick=False).time_budget_s
    assert budget and seen[0][1] == budget and seen[1] == (3, None) and seen[2] == (3, 5.0)


def test_evaluate_stores_results_with_their_provenance(tmp_path, capfd, synthetic_hc18, untrained_checkpoint):
    import json

    res = tmp_path / "results" / "m_val.json"
    named = tmp_path / "named.pt"  # a weights file that names its training run, as shipped ones do
    assert run(["export", "--checkpoint", untrained_checkpoint, "--out", named, "--run", "small_cpu_7s"], capfd)[0] == 0
    argv = ["evaluate", "--data", synthetic_hc18, "--checkpoint", named, "--out",
            tmp_path / "report", "--quiet", "--part", "val", "--results", res]
    code, stdout, err = run(argv, capfd)
    assert code == 0, err
    rec = json.loads(res.read_text())
    per_image = pd.read_csv(tmp_path / "report" / "metrics_per_image.csv")
    assert rec["part"] == "val" and rec["n_images"] == len(per_image) and rec["tta"] is False
    assert rec["metrics"]["dice"]["mean"] == pytest.approx(per_image["dice"].mean())
    assert rec["command"].startswith("fetalhead evaluate") and rec["date"] and rec["machine"]
    assert rec["training_run"] == "small_cpu_7s"  # which weights the record is of
    assert rec["review_flag"]["n_images"] == len(per_image) and "review_below" in rec["review_flag"]
    before = snapshot(tmp_path)
    code, _, err = run([*argv[:-2], "--out", tmp_path / "report2", "--results", res], capfd)
    assert_one_line_error(code, err, 1, "exists")
    assert snapshot(tmp_path) == before
    code, _, err = run([*argv, "--overwrite"], capfd)  # an existing results file is replaced
    assert code == 0, err
    assert json.loads(res.read_text())["date"]
    assert json.loads(res.read_text())["seen_in_training"] is False and "not held out" not in stdout + err


def test_evaluate_says_when_the_model_trained_on_that_part(tmp_path, capfd, synthetic_hc18):
    import json

    from fetalhead.checkpoint import export_weights
    from fetalhead.config import get_config
    from fetalhead.model import build_model

    cfg = get_config("cpu", quick=False, image_size=(64, 96), base_channels=4, train_parts="train+val")
    ckpt = export_weights(build_model(cfg), cfg, None, tmp_path / "refit.pt")
    for part, seen in (("val", True), ("test", False)):
        res = tmp_path / f"{part}.json"
        code, out, err = run(["evaluate", "--data", synthetic_hc18, "--checkpoint", ckpt, "--part", part,
                              "--out", tmp_path / part, "--quiet", "--results", res], capfd)
        assert code == 0, err
        assert ("trained on the val part, so these figures are not held out" in out + err) == seen
        assert json.loads(res.read_text())["seen_in_training"] is seen


def test_export_keeps_the_precision_the_model_trained_in(tmp_path, capfd):
    from fetalhead.checkpoint import export_weights, load_checkpoint
    from fetalhead.config import get_config
    from fetalhead.model import build_model

    cfg = get_config("cpu", quick=False, image_size=(64, 96), base_channels=4)
    best = export_weights(build_model(cfg), cfg, {}, tmp_path / "best.pt", epoch=1, dtype="float32",
                          trained_on="CPU: test", precision="bf16")
    assert run(["export", "--checkpoint", best, "--out", tmp_path / "out.pt"], capfd)[0] == 0
    assert load_checkpoint(tmp_path / "out.pt")[2]["precision"] == "bf16"


def test_review_below_chooses_the_flag(tmp_path, capfd, synthetic_tiny):
    """--review-below sets the quality below which a measurement gets status "review", is said
    with the model, and reaches the stored evaluation record; out of [0, 1] it is refused."""
    import json

    root, ckpt = synthetic_tiny
    images = _test_set_images(root, tmp_path / "in", 4)
    tables = {}
    for below in ("0", "1"):
        code, stdout, err = run(["predict", *images, "--pixel-size", "0.12", "--out", tmp_path / below,
                                 "--checkpoint", ckpt, "--quiet", "--review-below", below], capfd)
        assert code == 0, err
        assert f"review below quality {below}" in stdout
        tables[below] = pd.read_csv(tmp_path / below / "predictions.csv")
    never, always = tables["0"], tables["1"]
    measured = never["status"] != "no head found"
    assert measured.any() and (never.loc[measured, "status"] == "ok").all()  # nothing scores below 0
    pd.testing.assert_series_equal(never["quality"], always["quality"])  # the score itself is unchanged
    below_one = always.loc[measured, "quality"] < 1
    assert below_one.any()
    assert (always.loc[measured, "status"] == np.where(below_one, "review", "ok")).all()
    res = tmp_path / "val.json"
    code, _, err = run(["evaluate", "--data", root, "--checkpoint", ckpt, "--part", "val", "--out", tmp_path / "r",
                        "--quiet", "--results", res, "--review-below", "0.75"], capfd)
    assert code == 0, err
    assert json.loads(res.read_text())["review_flag"]["review_below"] == 0.75
    code, _, err = run(["predict", *images, "--pixel-size", "0.12", "--out", tmp_path / "bad",
                        "--checkpoint", ckpt, "--review-below", "1.5"], capfd)
    assert_one_line_error(code, err, 2, "between 0 and 1")
    assert not (tmp_path / "bad").exists()


def test_evaluate_your_own_images_named_as_training_images_says_so(tmp_path, capfd, synthetic_tiny):
    """A folder holding images with the names of HC18 images the model trained on (its
    training_set folder, say) is scored, with a note that the figures may not be held out."""
    from fetalhead.data import annotation_path, image_path, read_training_csv
    from fetalhead.split import load_split

    root, ckpt = synthetic_tiny
    split = load_split()
    held = [min(split.loc[split["split"] == "test", "filename"])]
    trained = sorted(f for f in split.loc[split["split"] == "train", "filename"] if f > held[0])[:2]
    source = read_training_csv(root).head(3)["filename"]
    (tmp_path / "img").mkdir()
    for name, src in zip(held + trained, source, strict=True):
        shutil.copy(image_path(src, root=root), tmp_path / "img" / name)
        shutil.copy(annotation_path(src, root), tmp_path / "img" / f"{Path(name).stem}_Annotation.png")  # HC18 naming
    code, stdout, err = run(["evaluate", "--checkpoint", ckpt, "--images", tmp_path / "img", "--pixel-size", "0.1",
                             "--out", tmp_path / "report", "--quiet"], capfd)
    assert code == 0, err
    assert (f"note: 2 of these images have the names of HC18 images this model trained on (e.g. {min(trained)})"
            in stdout), stdout
    code, stdout, err = run(["evaluate", "--checkpoint", ckpt, "--images", tmp_path / "img", "--pixel-size", "0.1",
                             "--limit", "1", "--out", tmp_path / "first", "--quiet"], capfd)
    assert code == 0 and "not held out" not in stdout  # the one evaluated is a test image


def test_evaluate_your_own_labelled_images(tmp_path, capfd, synthetic_tiny):
    """evaluate --images scores a folder of your own images against their masks (any mask
    folder and naming, pixel sizes given or from a CSV); what it cannot do is refused in one
    line before anything is written."""
    import json

    from fetalhead.data import annotation_path, image_path, read_training_csv

    root, ckpt = synthetic_tiny
    table = read_training_csv(root).head(4)
    (tmp_path / "img").mkdir()
    (tmp_path / "seg").mkdir()
    for k, name in enumerate(table["filename"]):
        shutil.copy(image_path(name, root=root), tmp_path / "img" / f"scan{k}.png")
        shutil.copy(annotation_path(name, root), tmp_path / "seg" / f"scan{k}_mask.png")
    pd.DataFrame({"filename": [f"scan{k}.png" for k in range(4)],
                  "pixel size(mm)": table["pixel_size_mm"]}).to_csv(tmp_path / "px.csv", index=False)
    own = ["--images", tmp_path / "img", "--masks", tmp_path / "seg", "--mask-pattern", "{stem}_mask.png"]
    res = tmp_path / "own.json"
    code, stdout, err = run(["evaluate", "--checkpoint", ckpt, *own, "--pixel-csv", tmp_path / "px.csv",
                             "--out", tmp_path / "report", "--quiet", "--results", res], capfd)
    assert code == 0, err
    per_image = pd.read_csv(tmp_path / "report" / "metrics_per_image.csv")
    assert list(per_image["filename"]) == [f"scan{k}.png" for k in range(4)]
    np.testing.assert_allclose(per_image["pixel_size_mm"], table["pixel_size_mm"])
    assert list(per_image["exam"]) == [-1, -2, -3, -4]  # no HC18 names: each its own examination
    assert (tmp_path / "report" / "figures" / "eval_examples.png").is_file()
    rec = json.loads(res.read_text())
    assert rec["part"] == "folder" and rec["n_images"] == 4 and rec["seen_in_training"] is False
    from fetalhead.interval import FACTOR, inside

    n_inside = int(inside(per_image).sum())  # the intervals of your own images, how often they hold
    assert f"90 % interval for {n_inside} of 4 images" in stdout and "not held out" not in stdout
    assert (rec["hc_interval"]["n_inside"], rec["hc_interval"]["factor"]) == (n_inside, FACTOR)
    (tmp_path / "px_short.csv").write_text("filename,pixel size(mm)\nscan0.png,0.1\n")
    code, _, err = run(["evaluate", "--checkpoint", ckpt, *own, "--pixel-csv", tmp_path / "px_short.csv",
                        "--out", tmp_path / "short"], capfd)
    assert_one_line_error(code, err, 1, "scan1.png: no pixel size")
    assert not (tmp_path / "short").exists()
    code, _, err = run(["evaluate", "--checkpoint", ckpt, *own, "--pixel-size", "0.1", "--limit", "2",
                        "--out", tmp_path / "two", "--quiet"], capfd)
    assert code == 0, err
    assert (pd.read_csv(tmp_path / "two" / "metrics_per_image.csv")["pixel_size_mm"] == 0.1).all()
    (tmp_path / "seg" / "scan3_mask.png").unlink()
    before = snapshot(tmp_path)
    for extra, words in ((["--pixel-size", "0.1"], "1 of 4 images have no mask"),
                         ([], "scan0.png: no pixel size (no --pixel-size MM or --pixel-csv FILE given, "
                              "and the file stores none)"),
                         (["--pixel-size", "0.1", "--part", "val"], "--part is for HC18's split"),
                         (["--pixel-size", "0.1", "--data", root], "--data is for HC18's split")):
        code, _, err = run(["evaluate", "--checkpoint", ckpt, *own, *extra, "--out", tmp_path / "no"], capfd)
        assert_one_line_error(code, err, 1, words)
    code, _, err = run(["evaluate", "--checkpoint", ckpt, "--masks", tmp_path / "seg", "--data", root,
                        "--out", tmp_path / "no"], capfd)
    assert_one_line_error(code, err, 1, "--masks needs --images DIR")
    shutil.copy(tmp_path / "seg" / "scan2_mask.png", tmp_path / "seg" / "scan3_mask.png")
    write_clip(tmp_path / "img" / "sweep.avi", flat_frames(3, shape=(64, 96)))
    shutil.copy(tmp_path / "seg" / "scan2_mask.png", tmp_path / "seg" / "sweep_mask.png")  # even with a mask
    before = snapshot(tmp_path)
    code, _, err = run(["evaluate", "--checkpoint", ckpt, *own, "--pixel-size", "0.1", "--out", tmp_path / "no"], capfd)
    assert_one_line_error(code, err, 1, "sweep.avi: a cine loop, TIFF stack, animated image or video of 3 frames; a mask labels one image")
    assert snapshot(tmp_path) == before


def _own_folder(root: Path, folder: Path, n: int, names=None) -> Path:
    """Copies of the first `n` labelled images of the HC18 folder `root` in folder/img (named
    `names`, default their own) with their masks in folder/seg as <stem>_mask.png, and
    folder/px.csv with their pixel sizes."""
    from fetalhead.data import annotation_path, image_path, read_training_csv

    table = read_training_csv(root).head(n)
    names = list(table["filename"]) if names is None else names
    (folder / "img").mkdir(parents=True)
    (folder / "seg").mkdir()
    for name, new in zip(table["filename"], names, strict=True):
        shutil.copy(image_path(name, root=root), folder / "img" / new)
        shutil.copy(annotation_path(name, root), folder / "seg" / f"{Path(new).stem}_mask.png")
    pd.DataFrame({"filename": names, "pixel size(mm)": table["pixel_size_mm"]}).to_csv(folder / "px.csv", index=False)
    return folder


def test_train_on_your_own_images_from_given_weights(tmp_path, capfd, monkeypatch, synthetic_tiny):
    """train --images trains on your own folder, whole examinations split off for validation;
    --init starts from a shipped model's or a checkpoint's weights."""
    from types import SimpleNamespace

    import fetalhead.commands as commands
    from fetalhead.checkpoint import load_checkpoint

    root, ckpt = synthetic_tiny
    folder = _own_folder(root, tmp_path / "own", 10)
    seen = {}

    def fake_fit(cfg, train, val, out_dir, **kwargs):
        seen.update(train=train, val=val, init=kwargs["init"])
        return SimpleNamespace(checkpoint_path=Path(out_dir) / "best.pt")

    monkeypatch.setattr(commands, "fit", fake_fit)
    own = ["--images", folder / "img", "--masks", folder / "seg", "--mask-pattern", "{stem}_mask.png",
           "--pixel-csv", folder / "px.csv"]
    tiny = ["--preset", "cpu", "--set", "image_size=64x96", "--set", "base_channels=4"]
    code, out, err = run(["train", *tiny, *own, "--val-fraction", "0.3", "--init", ckpt, "--out", tmp_path / "r"], capfd)
    assert code == 0, err
    train, val = seen["train"], seen["val"]
    assert len(train) + len(val) == 10 and train.size == (64, 96) and train.masks is not None
    assert not set(train.meta["exam"]) & set(val.meta["exam"])  # whole examinations
    assert val.meta["exam"].nunique() == round(0.3 * (train.meta["exam"].nunique() + val.meta["exam"].nunique()))
    px = pd.read_csv(folder / "px.csv").set_index("filename")["pixel size(mm)"]
    np.testing.assert_allclose(train.meta["pixel_size_mm"], px[train.meta["filename"]].to_numpy())
    weights = load_checkpoint(ckpt)[0].state_dict()
    assert seen["init"].keys() == weights.keys()
    assert all(torch.equal(seen["init"][k], v.float() if v.is_floating_point() else v) for k, v in weights.items())
    assert f"starting from the weights of {ckpt}" in out and "to validate on" in out
    first_val = sorted(val.meta["exam"].unique())
    code, _, err = run(["train", *tiny, *own, "--val-fraction", "0.3", "--seed", "5", "--out", tmp_path / "r5"], capfd)
    assert code == 0 and sorted(seen["val"].meta["exam"].unique()) == first_val, err  # whatever the seed
    code, _, err = run(["train", *tiny, *own, "--out", tmp_path / "r2"], capfd)
    assert code == 0 and seen["init"] is None, err  # random weights without --init
    code, _, err = run(["train", *tiny, *own, "--init", "small", "--out", tmp_path / "r3"], capfd)
    assert code == 0 and len(seen["init"]) > 0, err  # a shipped model by name (width 8)
    before = snapshot(tmp_path)
    for argv, words in (([*own, "--cache", tmp_path / "c.npz"], "--cache is for HC18's split"),
                        (["--val-fraction", "0.2"], "--val-fraction needs --images DIR"),
                        ([*own, "--init", tmp_path / "nothing.pt"], "nothing.pt: no such file"),
                        ([*own, "--init", tmp_path], "is a folder; give a .pt file"),
                        ([*own, "--init", folder / "px.csv"], "px.csv")):
        code, _, err = run(["train", *tiny, *argv, "--out", tmp_path / "no"], capfd)
        assert_one_line_error(code, err, 1, words)
    code, _, err = run(["train", *tiny, *own, "--val-fraction", "1", "--out", tmp_path / "no"], capfd)
    assert_one_line_error(code, err, 2, "between 0 and 1")
    assert snapshot(tmp_path) == before


def test_an_empty_mask_among_your_own_is_refused(tmp_path, capfd, synthetic_tiny):
    root, _ = synthetic_tiny
    folder = _own_folder(root, tmp_path / "own", 3)
    blank = sorted((folder / "seg").iterdir())[1]
    Image.fromarray(np.zeros(Image.open(blank).size[::-1], np.uint8)).save(blank)
    own = ["--images", folder / "img", "--masks", folder / "seg", "--mask-pattern", "{stem}_mask.png",
           "--pixel-csv", folder / "px.csv"]
    code, _, err = run(["train", "--preset", "cpu", "--set", "image_size=64x96", "--out", tmp_path / "r", *own], capfd)
    assert_one_line_error(code, err, 1, f"{blank.name}: an empty mask (no head marked)")


def test_train_on_your_own_images_end_to_end(tmp_path, capfd, synthetic_tiny):
    """A real (tiny) fine-tuning run on your own folder; weights of another network are refused."""
    root, ckpt = synthetic_tiny
    folder = _own_folder(root, tmp_path / "own", 6, names=[f"scan{k}.png" for k in range(6)])
    own = ["--images", folder / "img", "--masks", folder / "seg", "--mask-pattern", "{stem}_mask.png",
           "--pixel-size", "0.15"]
    tiny = ["--preset", "cpu", "--set", "image_size=64x96", "--set", "base_channels=4", "--epochs", "2"]
    code, out, err = run(["train", *tiny, *own, "--init", ckpt, "--out", tmp_path / "run"], capfd)
    assert code == 0, err
    assert "5 to train on, 1 to validate on (1 of 6 examinations)" in out  # names not HC18's: one each
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 2
    code, _, err = run(["train", *tiny[:-4], "--set", "base_channels=8", "--epochs", "1", *own,
                        "--init", ckpt, "--out", tmp_path / "wide"], capfd)
    assert_one_line_error(code, err, 1, "not of preset 'cpu''s network (width 8")
    assert not (tmp_path / "wide").exists()  # refused before its folder is made


def test_the_loop_line_names_the_frame_with_the_highest_quality_an_ok_one_first():
    from fetalhead.commands import loop_line

    def row(frame, status, quality, hc=100.0, name="clip.dcm"):
        return {"filename": name, "frame": str(frame), "status": status, "quality": quality, "hc_mm": hc}

    rows = [row(1, "no head found", float("nan")), row(2, "ok", 0.85, 101.0), row(3, "review", 0.95),
            row(4, "ok", 0.91, 103.25), row(1, "ok", 1.0, name="other.dcm")]
    assert loop_line(rows, "clip.dcm") == ("  clip.dcm: 3 of 4 frames measured; the highest quality score is "
                                           "frame 4's (0.91, ok): HC 103.2 mm")
    flagged = [row(1, "review", 0.2), row(2, "review", 0.6, 99.0)]
    assert "frame 2's (0.60, review): HC 99.0 mm" in loop_line(flagged, "clip.dcm")
    assert loop_line([row(1, "no head found", float("nan"))], "clip.dcm") is None


def test_models_lists_each_shipped_model_with_its_stored_figures(capfd):
    """`fetalhead models`: each shipped model's network, file, card, and its held-out test
    figures exactly as results/<model>_test.json stores them; the one used without --model
    marked (the best shipped)."""
    import json

    from fetalhead.checkpoint import load_checkpoint
    from fetalhead.paths import SHIPPED_MODELS, shipped_checkpoint

    code, out, err = run(["models"], capfd)
    assert code == 0 and err == "", err
    shipped = [m for m in SHIPPED_MODELS if shipped_checkpoint(m).is_file()]
    assert shipped, "no shipped weights to list"
    blocks: dict[str, str] = {}  # model: its lines (a line of its own, then indented ones)
    for line in out.splitlines():
        if not line.startswith(" "):
            name = line.split(" ")[0].rstrip(":")
        blocks[name] = blocks.get(name, "") + line + "\n"
    assert list(blocks) == list(SHIPPED_MODELS)
    best = shipped_checkpoint().stem.removeprefix("fetalhead_")
    assert [m for m, b in blocks.items() if "(the one used without --model)" in b.splitlines()[0]] == [best]
    for model, block in blocks.items():
        if model not in shipped:
            assert "not shipped in this copy" in block
            continue
        meta = load_checkpoint(shipped_checkpoint(model))[2]
        stored = json.loads((REPO / "results" / f"{model}_test.json").read_text())
        assert stored["training_run"] == meta["training_run"]  # the figures are these weights' own
        hc, dice = stored["metrics"]["hc_abs_error_mm"], stored["metrics"]["ellipse_dice"]
        assert f"training run {meta['training_run']}" in block
        assert (f"held-out test part ({stored['n_images']} images, {stored['n_exams']} examinations): HC mean absolute "
                f"difference {hc['mean']:.2f} mm [{hc['ci_low']:.2f}, {hc['ci_high']:.2f}], ellipse Dice "
                f"{100 * dice['mean']:.2f} %") in block
        assert f"{100 * stored['review_flag']['fraction_set_aside']:.1f} % flagged for review" in block
        assert f"model card {shipped_checkpoint(model).with_suffix('.md')}" in block


def test_a_reader_that_stops_reading_ends_the_command_quietly(monkeypatch, capsys):
    """`fetalhead models | head -1`: the pipe closes; no traceback, no error line, exit 141
    (as a shell reports a command stopped by SIGPIPE)."""

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["models"]) == 141
    monkeypatch.undo()
    assert capsys.readouterr().err == ""




def test_a_link_whose_target_is_gone_is_not_replaced_without_overwrite(tmp_path, capfd, synthetic_tiny):
    """A link to an unmounted drive at an output's name is the user's, like a file there."""
    from fetalhead.data import image_path, read_training_csv

    root, ckpt = synthetic_tiny
    name = read_training_csv(root)["filename"].iloc[0]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.csv").symlink_to(tmp_path / "gone" / "predictions.csv")
    (tmp_path / "model.pt").symlink_to(tmp_path / "gone" / "model.pt")
    before = snapshot(tmp_path)
    code, _, err = run(["predict", image_path(name, root=root), "--checkpoint", ckpt, "--pixel-size", "0.1",
                        "--out", tmp_path / "out", "--quiet"], capfd)
    assert_one_line_error(code, err, 1, "predictions.csv exists")
    code, _, err = run(["export", "--checkpoint", ckpt, "--out", tmp_path / "model.pt"], capfd)
    assert_one_line_error(code, err, 1, "model.pt exists; use --overwrite")
    assert snapshot(tmp_path) == before and (tmp_path / "model.pt").is_symlink()


def test_a_file_option_ending_in_a_separator_names_a_folder(tmp_path, capfd, synthetic_tiny):
    _, ckpt = synthetic_tiny
    code, _, err = run(["export", "--checkpoint", ckpt, "--out", f"{tmp_path}/model/"], capfd)
    assert code == 2 and "names a folder; give a file name" in err and "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_evaluate_refuses_up_front_what_it_could_only_fail_on_later(tmp_path, capfd, synthetic_tiny):
    """A file named `figures` in --out failed after all the scoring ("File exists", which
    --overwrite could not fix); --results naming the report's summary.json replaced it."""
    root, ckpt = synthetic_tiny
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "figures").write_text("my notes")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, stdout, err = run(["evaluate", "--checkpoint", ckpt, "--data", root, "--limit", "1",
                                 "--out", tmp_path / "out", "--quiet", *extra], capfd)
        assert_one_line_error(code, err, 1, "figures exists and is not a folder")
        assert "model:" not in stdout  # refused before the model was loaded
    code, _, err = run(["evaluate", "--checkpoint", ckpt, "--data", root, "--limit", "1", "--out", tmp_path / "rep",
                        "--results", tmp_path / "rep" / "summary.json", "--quiet"], capfd)
    assert_one_line_error(code, err, 1, "one of the report's own files")
    assert snapshot(tmp_path) == before


def test_a_tiff_stack_cut_short_is_one_line(tmp_path, capfd, synthetic_tiny):
    """Pillow raised TypeError for it, and warned of corrupt EXIF on a line of its own."""
    from PIL import Image

    _, ckpt = synthetic_tiny
    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8)) for _ in range(3)]
    pages[0].save(tmp_path / "whole.tif", save_all=True, append_images=pages[1:])
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:int(len(data) * 0.3)])
    code, _, err = run(["predict", tmp_path / "cut.tif", "--checkpoint", ckpt, "--pixel-size", "0.1",
                        "--out", tmp_path / "out"], capfd)
    assert_one_line_error(code, err, 1, "cut.tif")
