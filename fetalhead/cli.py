"""The `fetalhead` command line: download, prepare-cache, train, export, evaluate, predict,
submit, main, compare, cards and bench; their options are parsed here and `fetalhead.commands` runs them.

Every expected problem (a missing file, a bad pixel size, an unwritable output folder, a
checkpoint that is not one) ends the program with ONE line on stderr,
`fetalhead: error: <message>`, and exit code 1 (2 for a malformed command line); never a
traceback. Commands that write files check all their inputs first, write into a temporary
folder beside the target and move the results in at the end, so a failure leaves nothing
partial behind, and they refuse to replace existing files unless given --overwrite.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from fetalhead import __version__
from fetalhead.config import DEFAULT_SIZE, PRESETS, parse_override
from fetalhead.data import IMAGE_SUFFIXES, MASK_SUFFIX, OVERLAY_SUFFIX
from fetalhead.errors import FetalheadError, OneLineParser, one_line
from fetalhead.growth import parse_ga_weeks
from fetalhead.inputs import validate_pixel_size
from fetalhead.paths import SHIPPED_MODELS
from fetalhead.split import LABELLED_PARTS, PARTS

#: how `fetalhead export` may store the weights (`fetalhead.checkpoint.WEIGHT_DTYPES` less float32)
EXPORT_DTYPES = ("float16", "int8")

__all__ = ["build_parser", "main"]

PROG = "fetalhead"


# ---------------------------------------------------------------- argument parsing


def _frame(text: str) -> int | str | tuple[int, int]:
    """`--frame`: a frame number from 1, "all", "best", or a range "FIRST-LAST" (both from 1,
    inclusive) as (first, last)."""
    word = text.strip().lower()
    if word in ("all", "best"):
        return word
    first, dash, last = word.partition("-")
    if not dash:
        return _positive_int(text)
    if not first or not last:  # "-1", "1-": a negative number, or a range with an end missing
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame number from 1 nor a range FIRST-LAST")
    lo, hi = _positive_int(first), _positive_int(last)
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: the first frame comes after the last")
    return lo, hi


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _float(text: str, ok: Callable[[float], bool], requirement: str) -> float:
    """`text` as a number for which `ok` holds; an argparse error saying `requirement` else."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be {requirement}")
    return value


def _positive_float(text: str) -> float:
    return _float(text, lambda v: 0 < v < float("inf"), "a positive number")


def _unit_float(text: str) -> float:
    return _float(text, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")


def _open_unit_float(text: str) -> float:
    return _float(text, lambda v: 0.0 < v < 1.0, "between 0 and 1, both excluded")


def _dice(text: str) -> float:
    # a Dice above 1 is never reached: the run would go on to its time cap
    return _float(text, lambda v: 0.0 < v <= 1.0, "above 0 and at most 1")


def _run_name(text: str) -> str:
    if not text.strip() or text != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give the run's name, without surrounding spaces")
    return text


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if not parts or bad:
        raise argparse.ArgumentTypeError(f"parts {text!r}: choose from {', '.join(PARTS)}, comma-separated")
    return tuple(dict.fromkeys(parts))


def _pixel_size(text: str) -> float:
    try:
        return validate_pixel_size(text)
    except FetalheadError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _ga(text: str) -> float:
    try:
        return parse_ga_weeks(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


def _file_path(text: str) -> Path:
    """A file to write: a trailing separator names a folder (pathlib would drop it)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} names a folder; give a file name")
    return _path(text)


def _override(text: str) -> tuple[str, object]:
    try:
        return parse_override(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seed(text: str) -> int:
    """--seed N: checked as `--set seed=N` is (a whole number, at least 0)."""
    return int(_override(f"seed={text}")[1])


def _image_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 256x384") from None
    if not (16 <= h <= 4096 and 16 <= w <= 4096):
        raise argparse.ArgumentTypeError(f"size {text!r} must be between 16 and 4096 pixels per side")
    return h, w


def _add_common(p: argparse.ArgumentParser, *, data: bool = True, checkpoint: bool = False) -> None:
    if data:
        p.add_argument("--data", metavar="DIR", type=_path, default=None,
                       help="HC18 folder (default: $HC18_DIR, else data/hc18 in the checkout)")
    if checkpoint:
        which = p.add_mutually_exclusive_group()
        which.add_argument("--model", choices=SHIPPED_MODELS, default=None,
                           help="a shipped model (see the README's results): small (width 8, "
                           "fast on a CPU) or default (width 32); default: the best on the "
                           "validation part that is present")
        which.add_argument("--checkpoint", metavar="FILE", type=_path, default=None,
                           help="a checkpoint of your own (best.pt, or a file from `fetalhead export`)")
        p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                       help="test-time flips: average the image's and its mirror image's "
                       "probabilities (default: as the model's file says; the shipped models "
                       "use them where they helped on the validation part)")
        p.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                       help="images per forward pass (default 8)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (predict: nor a line per image or cine loop on the terminal)")


def _add_out(p: argparse.ArgumentParser, metavar: str, help: str, *, required: bool = False,
             overwrite: str = "replace an existing file") -> None:
    """--out, and --overwrite (help `overwrite`): outputs replace files only when asked."""
    p.add_argument("--out", type=_file_path if metavar == "FILE" else _path, required=required, default=None,
                   metavar=metavar, help=help)
    p.add_argument("--overwrite", action="store_true", help=overwrite)


def _add_count(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    p.add_argument(flag, type=_positive_int, default=None, metavar="N", help=help)


def _add_review(p: argparse.ArgumentParser) -> None:
    p.add_argument("--review-below", type=_unit_float, default=None, metavar="SCORE",
                   help="quality score in [0, 1] below which a measurement gets status "
                   "\"review\": higher flags more images and catches more errors (default: "
                   "the model's own; the shipped models' is in their cards)")


def _add_own_images(p: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """--images, --masks, --mask-pattern and --pixel-size | --pixel-csv: a folder of your own
    labelled images instead of HC18's split (`what` the command does with them)."""
    own = p.add_argument_group("your own labelled images, instead of HC18's split")
    own.add_argument("--images", type=_path, default=None, metavar="DIR",
                     help=f"folder of images to {what}")
    own.add_argument("--masks", type=_path, default=None, metavar="DIR",
                     help="folder of the masks (default: the images' folder)")
    own.add_argument("--mask-pattern", default=None, metavar="PATTERN",
                     help="a mask's file name from its image's {stem}, {name} or {suffix} "
                     "(default: {stem}_Annotation.png, as HC18's)")
    _add_pixel_size(own)
    return own


def _add_pixel_size(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--pixel-size | --pixel-csv; without either, a DICOM file's own pixel size is used."""
    size = p.add_mutually_exclusive_group()
    size.add_argument("--pixel-size", type=_pixel_size, metavar="MM",
                      help="pixel size in millimetres, the same for every image (default: "
                      "the size a DICOM file stores)")
    size.add_argument("--pixel-csv", type=_path, metavar="FILE",
                      help="CSV with a filename column and a pixel size (mm) column")


def _command(sub: argparse._SubParsersAction, name: str, help: str, description: str, *,
             data: bool = True, checkpoint: bool = False) -> argparse.ArgumentParser:
    """A sub-parser for command `name` with the options `_add_common` gives it."""
    p = sub.add_parser(name, help=help, description=description)
    _add_common(p, data=data, checkpoint=checkpoint)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `fetalhead` with one sub-parser per command."""
    parser = OneLineParser(prog=PROG, description="Fetal head segmentation and head circumference "
                     "(HC18) with a U-Net.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _command(sub, "download", "download HC18 from Zenodo (record 1327317)",
             "Download and unpack HC18 (resumable, MD5-checked).")

    p = _command(sub, "prepare-cache", "build the compact cache file of resized arrays",
                 "Resize every HC18 image and mask once and pack them into "
                 "one compact file (small enough to carry to a GPU machine).")
    p.add_argument("--size", type=_image_size, default=DEFAULT_SIZE, metavar="HxW",
                   help="array size in pixels, height x width (default: the default preset's, "
                   f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    _add_out(p, "FILE", "cache file to write", required=True)
    p.add_argument("--parts", type=_parts, default=LABELLED_PARTS, metavar="P,P",
                   help=f"split parts to pack, comma-separated (default {','.join(LABELLED_PARTS)}; "
                   "train,val is enough for training and fits 320x480 in 45 MiB)")

    p = _command(sub, "train", "train a U-Net on the training split",
                 "Train on the exam-grouped training split (or your own labelled images: "
                 "--images), early-stop on validation Dice, write checkpoints and a history CSV to --out.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="training recipe (fetalhead.config.PRESETS; default: default)")
    _add_out(p, "DIR", "run folder (default: runs/<preset>)",
             overwrite="replace the checkpoints and history of an earlier run in --out")
    p.add_argument("--resume", type=_path, default=None, metavar="FILE",
                   help="continue from this checkpoint")
    _add_count(p, "--epochs", "train for this many epochs (without --time-budget, a preset's "
               "time budget is then not used)")
    p.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS",
                   help="train for this many wall-clock seconds, validation included; the "
                   "learning rate anneals fully inside it and the best epoch is kept")
    p.add_argument("--seed", type=_seed, default=None, metavar="N",
                   help="override the preset's random seed (initial weights, batches, augmentation)")
    p.add_argument("--set", dest="overrides", type=_override, action="append", default=[],
                   metavar="KEY=VALUE", help="override any setting of the preset (a field of "
                   "fetalhead.config.TrainConfig), e.g. --set base_channels=16 --set "
                   "image_size=256x384; repeatable")
    p.add_argument("--cache", type=_path, default=None, metavar="FILE",
                   help="read arrays from a compact cache file (see prepare-cache)")
    p.add_argument("--quick", action="store_true",
                   help="quick mode: few images, few epochs (as FETALHEAD_QUICK=1)")
    p.add_argument("--init", default=None, metavar="MODEL|FILE",
                   help="start from these weights instead of random ones (fine-tuning): a shipped "
                   "model (small, default) or a checkpoint, of the preset's network")
    own = _add_own_images(p, "train on (and validate on a share of them)")
    own.add_argument("--val-fraction", type=_open_unit_float, default=None, metavar="F",
                     help="share of the examinations kept for validation (default 0.2; the same "
                     "ones whatever --seed)")

    p = _command(sub, "export", "write a checkpoint's weights as a small file (fp16 or int8)",
                 "Write the weights of a checkpoint (best.pt, last.pt) in half precision (or "
                 "int8) with its config and metrics: the file that is shipped.", data=False)
    p.add_argument("--checkpoint", type=_path, required=True, metavar="FILE", help="checkpoint to read")
    _add_out(p, "FILE", "file to write", required=True)
    p.add_argument("--dtype", choices=EXPORT_DTYPES, default=None,
                   help="how the weights are stored: float16 (half the size of float32) or int8 "
                   "(a quarter: one scale per channel; check it on the validation part); "
                   "both are read back as float32 (default: the file's own int8 or float16 when it "
                   "is such an export, else float16)")
    p.add_argument("--run", type=_run_name, default=None, metavar="NAME",
                   help="the training run the weights come from: its name in "
                   "results/training/runs.json, which the model card reads")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="recommend test-time flips to whoever loads the file (choose on the "
                   "validation part; default: the file's own choice, else off)")
    p.add_argument("--review-below", type=_unit_float, default=None, metavar="SCORE",
                   help="quality score in [0, 1] below which a measurement gets status "
                   "\"review\" (choose it on images the model did not train on: benchmarks/review_calibration.py; "
                   "default: the file's, else the library's)")

    p = _command(sub, "evaluate", "score a checkpoint on the held-out split",
                 "Segment the held-out images (or your own labelled images: --images), score "
                 "them at original resolution against the annotations and write metrics and "
                 "figures.", checkpoint=True)
    p.add_argument("--part", choices=("test", "val"), default=None,
                   help="which held-out part of HC18's split (default: test)")
    _add_out(p, "DIR", "report folder (default: outputs/evaluate-test, -val or -folder in the checkout, "
             "else in the current folder)", overwrite="replace an existing report")
    _add_count(p, "--limit", "score only the first N images")
    _add_review(p)
    p.add_argument("--results", type=_file_path, default=None, metavar="FILE",
                   help="also write the summary with its provenance (command, machine, date, "
                   "commit) to this JSON file, e.g. results/default_test.json")
    _add_own_images(p, "score against their masks")

    p = _command(sub, "predict", "segment your own images and measure HC",
                 f"Segment images (or folders of {'/'.join(IMAGE_SUFFIXES)} images; "
                 f"*_Annotation.*, *{MASK_SUFFIX}.png and *{OVERLAY_SUFFIX}.png are skipped) and "
                 f"write <stem>{MASK_SUFFIX}.png, <stem>{OVERLAY_SUFFIX}.png, predictions.csv and index.html "
                 "(all of them in one page, flagged first) to --out. "
                 "A DICOM file measures with the pixel size it stores unless --pixel-size or "
                 "--pixel-csv says otherwise.",
                 data=False, checkpoint=True)
    p.add_argument("paths", nargs="+", type=_path, metavar="PATH", help="image files or folders")
    _add_out(p, "DIR", "output folder", required=True, overwrite="replace existing output files")
    _add_pixel_size(p)
    _add_review(p)
    p.add_argument("--frame", type=_frame, default=None, metavar="N|FIRST-LAST|all|best",
                   help="the frame to measure in each DICOM cine loop, TIFF stack, animated image or video clip (numbered from 1, as "
                   "DICOM does), the frames FIRST to LAST (as many of them as a loop has), all of them (one row "
                   "and <stem>_f<frame> outputs each, and the frame with the highest quality score named), or "
                   "best: all measured, only that frame kept (one row per loop); files of one frame are read as "
                   "they are")
    age = p.add_mutually_exclusive_group()
    age.add_argument("--ga", type=_ga, default=None, metavar="WEEKS",
                     help="the gestational age known from dating (weeks+days, 22+3, or weeks, 22.4), "
                     "the same for every image: each HC's INTERGROWTH-21st z-score and centile")
    age.add_argument("--ga-csv", type=_path, default=None, metavar="FILE",
                     help="CSV with a filename column and a 'ga' column (22+3 or 22.4; empty: "
                     "not known) giving each image's known gestational age instead")

    p = _command(sub, "submit", "write the HC18 challenge CSV for the 335 test images",
                 "Predict the official test set and write the challenge "
                 "submission (filename, centre, semi-axes in mm, angle in radians).", checkpoint=True)
    _add_out(p, "FILE", "CSV file to write", required=True)

    p = _command(sub, "main", "the whole job: data, model, held-out metrics, submission",
                 "Find HC18 (or download it); train a model if no shipped "
                 "weights exist (or with --retrain); evaluate on the held-out test split "
                 "and predict the 335 official test images. Results go to --out, "
                 "replacing the previous results of this command there (files of the same "
                 "names that it did not write only with --overwrite).", checkpoint=True)
    p.add_argument("--out", type=_path, default=None, metavar="DIR",
                   help="results folder (default: outputs/ in the checkout, else in the current folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="also replace files in --out that an earlier `fetalhead main` did not write")
    p.add_argument("--retrain", action="store_true", help="train even if shipped weights exist")
    p.add_argument("--no-download", action="store_true",
                   help="stop with an error instead of downloading HC18 when it is missing")
    _add_count(p, "--epochs", "override the training preset's number of epochs")
    _add_count(p, "--limit", "evaluate only the first N held-out images (a quick check)")
    _add_review(p)

    p = _command(sub, "compare", "how measured HCs agree with the HCs your sonographers recorded",
                 "Pair the predictions.csv of `fetalhead predict` with a CSV of the HC recorded "
                 "for each image (mm; e.g. from your reports; no masks needed) and report their "
                 "mean absolute and mean difference with 95 % bootstrap intervals (over "
                 "examinations, from an exam column or HC18-style names), the Bland-Altman limits "
                 "of agreement, how often the recorded HC lies inside the measured one's 90 % "
                 "interval, and how the review flag separates differences above 6 mm.", data=False)
    p.add_argument("--predictions", type=_path, required=True, metavar="FILE",
                   help="predictions.csv of fetalhead predict (one frame of each cine loop: "
                   "predict --frame N or --frame best)")
    p.add_argument("--hc-csv", type=_path, required=True, metavar="FILE",
                   help="CSV of a filename column, an HC column (mm; a header starting with 'hc' "
                   "or containing 'circumference') and optionally an exam column")
    _add_out(p, "DIR", "output folder", required=True, overwrite="replace existing output files")

    _command(sub, "models", "the shipped models: network, file, held-out figures, card",
             "List the shipped models (the one predict, evaluate and main use without --model "
             "first): network, where it trained, its weights file, its held-out test figures as "
             "stored under results/, and its model card.", data=False)

    p = _command(sub, "cards", "rewrite the model cards and the README's tables from results/",
                 "Rewrite the Markdown card beside each shipped weights file and the README's "
                 "generated tables (results, review flag, benchmark, latency) from the stored "
                 "results under results/ and benchmarks/.", data=False)

    p = _command(sub, "bench", "benchmark training throughput, MFU, time to a Dice, latency",
                 "On one device: training throughput of the reference and "
                 "default recipes at equal sizes, model FLOP utilisation, time to a "
                 "validation Dice, and per-image latency. Prints a table and writes JSON, "
                 "rewritten after every measurement (see benchmarks/README.md).", data=False)
    _add_out(p, "FILE", "JSON file to write (default: benchmarks/results.json)")
    p.add_argument("--cache", type=_path, default=None, metavar="FILE",
                   help="read arrays from a compact cache file (see prepare-cache; default: "
                   "the HC18 folder of $HC18_DIR, or synthetic ellipses with --quick)")
    p.add_argument("--steps", type=_positive_int, default=20, metavar="N",
                   help="timed training steps per recipe and size (default 20)")
    p.add_argument("--warmup", type=_positive_int, default=5, metavar="N",
                   help="untimed steps before them, cuDNN's autotuning included (default 5)")
    p.add_argument("--target", type=_dice, default=0.97, metavar="DICE",
                   help="validation Dice to reach (default 0.97)")
    p.add_argument("--cap", type=_positive_float, default=600.0, metavar="SECONDS",
                   help="time cap of the Dice run (default 600)")
    p.add_argument("--compile", action="store_true", help="torch.compile the default recipe")
    p.add_argument("--no-train", action="store_true", help="skip the time-to-Dice run")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda if available")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: tiny models and images (with --latency-only: one timed run each)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--latency-only", action="store_true",
                      help="only the per-image latency of the shipped models and of the default, small and cpu architectures")
    only.add_argument("--precision", choices=sorted(PRESETS), default=None, metavar="PRESET",
                      help="only the training throughput of PRESET in fp32 and in bf16, and their ratio")
    return parser


# ---------------------------------------------------------------- helpers


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """`warnings.showwarning` for the command line: one line, without Python's source location
    and code line (noise to a user, and a second line before any error)."""
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


def _os_error_message(e: OSError) -> str:
    what = e.strerror or one_line(e)
    return f"{what}: {e.filename}" if e.filename else what


# ---------------------------------------------------------------- entry point


def _quiet_stdout() -> None:
    """Point standard output at the null device, so that flushing it at exit raises no second
    broken-pipe error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's stand-in)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # for provenance
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:
        # Here, not at the top: the commands need torch, and importing it takes about 1.5 s
        # of the 2 s that `fetalhead --help` or a usage error would then take (0.35 s
        # without; measured on a 2-core machine). tests/test_paths.py keeps this module free of it.
        from PIL import Image

        from fetalhead import commands

        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.showwarning = _show_warning
            # sides are checked against MAX_SIDE; Pillow's own warning would be a second line
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            # a file cut short: the error that follows says it in one line (and EXIF is not read)
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            return commands.run(args)
    except FetalheadError as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
    except BrokenPipeError:  # what reads the output stopped (`fetalhead models | head -1`): stop quietly
        _quiet_stdout()
        return 141  # as a shell reports a command stopped by SIGPIPE
    except OSError as e:  # e.g. the disk filled up or permissions changed while writing
        print(f"{PROG}: error: {_os_error_message(e)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 1
