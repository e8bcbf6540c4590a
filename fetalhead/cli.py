"""The `fetalhead` command line: download, prepare-cache, train, evaluate, predict, submit, main.

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
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fetalhead.config import DEFAULT_SIZE, PRESETS
from fetalhead.errors import FetalheadError
from fetalhead.paths import SHIPPED_MODELS

__all__ = ["build_parser", "main"]

PROG = "fetalhead"
PREDICTIONS_CSV = "predictions.csv"


# ---------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (`fetalhead: error: ...`, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""
        self.exit(2, f"{PROG}: error: {_one_line(message)} (see `{PROG} {sub}--help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _parts(text: str) -> tuple[str, ...]:
    from fetalhead.split import PARTS as known

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in known]
    if not parts or bad:
        raise argparse.ArgumentTypeError(f"parts {text!r}: choose from {', '.join(known)}, comma-separated")
    return tuple(dict.fromkeys(parts))


def _pixel_size(text: str) -> float:
    from fetalhead.data import validate_pixel_size

    try:
        return validate_pixel_size(text)
    except FetalheadError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


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
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `fetalhead` with one sub-parser per command."""
    parser = _Parser(prog=PROG, description="Fetal head segmentation and head circumference "
                     "(HC18) with a U-Net.")
    from fetalhead import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("download", help="download HC18 from Zenodo (record 1327317)",
                       description="Download and unpack HC18 (resumable, MD5-checked).")
    _add_common(p)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("prepare-cache", help="build the compact cache file of resized arrays",
                       description="Resize every HC18 image and mask once and pack them into "
                       "one compact file (small enough to carry to a GPU machine).")
    _add_common(p)
    p.add_argument("--size", type=_image_size, default=DEFAULT_SIZE, metavar="HxW",
                   help="array size in pixels, height x width (default: the default preset's, "
                   f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    p.add_argument("--out", type=_path, required=True, metavar="FILE", help="cache file to write")
    p.add_argument("--parts", type=_parts, default=("train", "val", "test"), metavar="P,P",
                   help="split parts to pack, comma-separated (default train,val,test; "
                   "train,val is enough for training and fits 320x480 in 45 MiB)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_prepare_cache)

    p = sub.add_parser("train", help="train a U-Net on the training split",
                       description="Train on the exam-grouped training split, early-stop on "
                       "validation Dice, write checkpoints and a history CSV to --out.")
    _add_common(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="training recipe (fetalhead.config.PRESETS; default: default)")
    p.add_argument("--out", type=_path, default=None, metavar="DIR",
                   help="run folder (default: runs/<preset>)")
    p.add_argument("--resume", type=_path, default=None, metavar="FILE",
                   help="continue from this checkpoint")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="override the preset's number of epochs")
    p.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS",
                   help="train for this many wall-clock seconds, validation included; the "
                   "learning rate anneals fully inside it and the best epoch is kept")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="override the preset's random seed (initial weights, batches, augmentation)")
    p.add_argument("--cache", type=_path, default=None, metavar="FILE",
                   help="read arrays from a compact cache file (see prepare-cache)")
    p.add_argument("--quick", action="store_true",
                   help="quick mode: few images, few epochs (as FETALHEAD_QUICK=1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and history of an earlier run in --out")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="write a checkpoint's weights as a small fp16 file",
                       description="Write the weights of a checkpoint (best.pt, last.pt) in "
                       "half precision with its config and metrics: the file that is shipped.")
    _add_common(p, data=False)
    p.add_argument("--checkpoint", type=_path, required=True, metavar="FILE", help="checkpoint to read")
    p.add_argument("--out", type=_path, required=True, metavar="FILE", help="file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("evaluate", help="score a checkpoint on the held-out split",
                       description="Segment the held-out images, score them at original "
                       "resolution against the annotations and write metrics and figures.")
    _add_common(p, checkpoint=True)
    p.add_argument("--part", choices=("test", "val"), default="test",
                   help="which held-out part of the split (default: test)")
    p.add_argument("--out", type=_path, default=None, metavar="DIR",
                   help="report folder (default: outputs/)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="score only the first N images")
    p.add_argument("--results", type=_path, default=None, metavar="FILE",
                   help="also write the summary with its provenance (command, machine, date, "
                   "commit) to this JSON file, e.g. results/default_test.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="segment your own images and measure HC",
                       description="Segment images (or folders of .png/.jpg/.jpeg/.bmp/.tif "
                       "images; *_Annotation.*, *_mask.png and *_overlay.png are skipped) and "
                       "write <stem>_mask.png, <stem>_overlay.png and predictions.csv to --out.")
    p.add_argument("paths", nargs="+", type=_path, metavar="PATH", help="image files or folders")
    p.add_argument("--out", type=_path, required=True, metavar="DIR", help="output folder")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--pixel-size", type=_pixel_size, metavar="MM",
                      help="pixel size in millimetres, the same for every image")
    size.add_argument("--pixel-csv", type=_path, metavar="FILE",
                      help="CSV with a filename column and a pixel size (mm) column")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_common(p, data=False, checkpoint=True)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("submit", help="write the HC18 challenge CSV for the 335 test images",
                       description="Predict the official test set and write the challenge "
                       "submission (filename, centre, semi-axes in mm, angle in radians).")
    p.add_argument("--out", type=_path, required=True, metavar="FILE", help="CSV file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    _add_common(p, checkpoint=True)
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("main", help="the whole job: data, model, held-out metrics, submission",
                       description="Find HC18 (or download it); train a model if no shipped "
                       "weights exist (or with --retrain); evaluate on the held-out test split "
                       "and predict the 335 official test images. Results go to --out, "
                       "replacing the previous results of this command there.")
    _add_common(p, checkpoint=True)
    p.add_argument("--out", type=_path, default=None, metavar="DIR",
                   help="results folder (default: outputs/)")
    p.add_argument("--retrain", action="store_true", help="train even if shipped weights exist")
    p.add_argument("--no-download", action="store_true",
                   help="stop with an error instead of downloading HC18 when it is missing")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="override the training preset's number of epochs")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="evaluate only the first N held-out images (a quick check)")
    p.set_defaults(func=_cmd_main)
    return parser


# ---------------------------------------------------------------- helpers


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _say(msg: str) -> None:
    print(msg, flush=True)


def _default_out(name: str) -> Path:
    from fetalhead.paths import repo_root

    root = repo_root()
    return (root if root is not None else Path.cwd()) / name


def _check_output_dir(out: Path, flag: str = "--out") -> None:
    """Raise unless `out` is (or can be created as) a writable folder."""
    if out.exists() and not out.is_dir():
        raise FetalheadError(f"{flag} {out} exists and is not a folder")
    _check_parent_writable(out, flag)


def _check_output_file(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Raise unless the file `out` can be written (and replaced only with --overwrite)."""
    if out.is_dir():
        raise FetalheadError(f"{flag} {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise FetalheadError(f"{out} exists; use --overwrite to replace it")
    _check_parent_writable(out, flag)


def _check_parent_writable(out: Path, flag: str) -> None:
    existing = out if out.is_dir() else out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FetalheadError(f"cannot create {flag} {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FetalheadError(f"cannot write {flag} {out}: no write permission in {existing}")


def _refuse_overwrite(targets: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [t for t in targets if t.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more output files)" if len(existing) > 1 else ""
        raise FetalheadError(f"{existing[0]} exists{more}; use --overwrite to replace")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of `path`; return them, outermost first."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    created = []
    for d in reversed(missing):
        d.mkdir()
        created.append(d)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            pass


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside (or inside) `out`; on success move its files into
    `out`, on any error delete it and any parent folders created for it."""
    created = _make_parents(out)
    # Beside the target, so the final move is a rename on one file system and the target is
    # untouched until then; inside it only when its parent is not writable.
    base = out.parent if os.access(out.parent, os.W_OK | os.X_OK) or not out.is_dir() else out
    try:
        stage = Path(tempfile.mkdtemp(prefix=".fetalhead-", dir=base))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield stage
        if out.is_dir():
            for f in sorted(stage.rglob("*")):
                dest = out / f.relative_to(stage)
                if f.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    os.replace(f, dest)
            shutil.rmtree(stage)
        else:
            os.rename(stage, out)
            os.chmod(out, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(created)
        raise


@contextmanager
def staged_file(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside `out`; on success rename it to `out` (atomic)."""
    created = _make_parents(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        _remove_empty(created)
        raise


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Image files named in `paths` (files, or folders read non-recursively), in order.
    Raises FetalheadError for a missing path, a folder without images, or two images
    with the same stem (their outputs would collide)."""
    from fetalhead.data import IMAGE_SUFFIXES

    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise FetalheadError(f"{p}: no such file or folder")
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir()
                if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES and not q.name.startswith(".")
                and not q.stem.endswith(("_Annotation", "_mask", "_overlay"))
            )
            if not found:
                raise FetalheadError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
        else:
            files.append(p)
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise FetalheadError(f"{seen[f.stem]} and {f} have the same name stem {f.stem!r}; "
                                 "their outputs would collide")
        seen[f.stem] = f
    return files


def read_pixel_csv(path: Path) -> dict[str, float]:
    """`fetalhead.data.read_pixel_csv`, its errors prefixed with the option's name."""
    from fetalhead.data import read_pixel_csv as read

    try:
        return read(path)
    except FetalheadError as e:
        raise FetalheadError(f"--pixel-csv: {e}") from None


def _pixel_sizes(images: Sequence[Path], pixel_size: float | None, pixel_csv: Path | None) -> list[float]:
    if pixel_size is not None:
        return [pixel_size] * len(images)
    assert pixel_csv is not None  # argparse: one of the two is required
    table = read_pixel_csv(pixel_csv)
    sizes = []
    for img in images:
        value = table.get(img.name, table.get(img.stem))
        if value is None:
            raise FetalheadError(f"{img.name}: no pixel size for this image in {pixel_csv}")
        sizes.append(value)
    return sizes


def _tqdm(iterable, quiet: bool, **kw):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=quiet, file=sys.stderr, dynamic_ncols=True, **kw)


def _load_predictor(args: argparse.Namespace):
    """The Predictor for --checkpoint, else --model, else the best shipped model; says which."""
    from fetalhead.predict import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, model=args.model, tta=args.tta)
    _say(f"model: {describe_model(predictor)}")
    return predictor


def describe_model(predictor) -> str:
    """One line naming the model a Predictor runs: shipped name or file, preset, size, where trained."""
    from fetalhead.paths import PACKAGE_DIR

    path = Path(predictor.checkpoint) if predictor.checkpoint else None
    cfg = predictor.config
    shipped = path is not None and path.resolve().parent == (PACKAGE_DIR / "weights").resolve()
    name = f"shipped model '{path.stem.removeprefix('fetalhead_')}'" if shipped else f"checkpoint {path}"
    trained = predictor.meta.get("trained_on") if predictor.meta else None
    extra = f", trained on {trained}" if trained else ""
    arch = f"preset '{cfg.name}', width {cfg.base_channels}, {cfg.image_size[0]}x{cfg.image_size[1]} px" if cfg else ""
    return f"{name} ({arch}{extra}){', test-time flips' if predictor.tta else ''}"


# ---------------------------------------------------------------- commands


def _cmd_download(args: argparse.Namespace) -> int:
    from fetalhead.download import download_hc18

    root = download_hc18(args.data, progress=not args.quiet)
    _say(f"HC18 is ready in {root}")
    return 0


def _cmd_prepare_cache(args: argparse.Namespace) -> int:
    from fetalhead.cache import build_compact_cache
    from fetalhead.data import check_data_dir
    from fetalhead.paths import data_dir

    root = check_data_dir(data_dir(args.data))
    _check_output_file(args.out, args.overwrite)
    with staged_file(args.out) as tmp:
        build_compact_cache(tmp, args.size, parts=args.parts, root=root)
    size_mb = args.out.stat().st_size / 2**20
    _say(f"wrote {args.out} ({size_mb:.1f} MiB, {args.size[0]}x{args.size[1]} pixels)")
    return 0


RUN_FILES = ("best.pt", "last.pt", "history.csv")  #: what `fit` writes into a run folder


def _train(preset: str, out_dir: Path, *, root: Path | None, epochs: int | None = None,
           resume: Path | None = None, cache: Path | None = None, quick: bool | None = None,
           quiet: bool = False, overwrite: bool = False, time_budget: float | None = None,
           seed: int | None = None) -> Path:
    """Train preset `preset` into `out_dir`; return the best checkpoint's path. An earlier
    run's files there are replaced only with `overwrite` or when resuming."""
    from fetalhead.cache import load_arrays, load_compact_cache, shrink_arrays
    from fetalhead.config import get_config
    from fetalhead.train import fit

    overrides: dict = {"epochs": epochs} if epochs is not None else {}
    if time_budget is not None:
        overrides["time_budget_s"] = time_budget
    if seed is not None:
        overrides["seed"] = seed
    cfg = get_config(preset, quick=quick or None, **overrides)
    if resume is not None and not resume.is_file():
        raise FetalheadError(f"--resume {resume}: no such file")
    _check_output_dir(out_dir)
    _refuse_overwrite([out_dir / f for f in RUN_FILES], overwrite or resume is not None)
    if cache is not None:
        if not cache.is_file():
            raise FetalheadError(f"--cache {cache}: no such file")
        arrays = load_compact_cache(cache)
        if "train" not in arrays or "val" not in arrays:
            raise FetalheadError(f"--cache {cache} lacks the train or val part")
        train, val = arrays["train"], arrays["val"]
        (h, w), (th, tw) = train.images.shape[1:], cfg.image_size
        if (h, w) != (th, tw):
            if th > h or tw > w:
                raise FetalheadError(f"--cache {cache} holds {h}x{w} arrays, preset {preset!r} needs "
                                     f"{th}x{tw}: build a cache of at least that size")
            if not quiet:
                _say(f"resizing the cache's {h}x{w} arrays to {th}x{tw}")
            train, val = shrink_arrays(train, cfg.image_size), shrink_arrays(val, cfg.image_size)
    else:
        train = load_arrays("train", size=cfg.image_size, root=root, progress=not quiet)
        val = load_arrays("val", size=cfg.image_size, root=root, progress=not quiet)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(cfg, train, val, out_dir, resume=resume, progress=not quiet)
    return Path(result.checkpoint_path)


def _cmd_train(args: argparse.Namespace) -> int:
    from fetalhead.paths import data_dir

    out = args.out if args.out is not None else _default_out("runs") / args.preset
    root = None if args.cache is not None else data_dir(args.data)
    ckpt = _train(args.preset, out, root=root, epochs=args.epochs, resume=args.resume,
                  cache=args.cache, quick=args.quick, quiet=args.quiet, overwrite=args.overwrite,
                  time_budget=args.time_budget, seed=args.seed)
    _say(f"best checkpoint: {ckpt}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fetalhead.checkpoint import export_weights, load_checkpoint

    model, cfg, meta = load_checkpoint(args.checkpoint)
    _check_output_file(args.out, args.overwrite)
    info = {k: meta[k] for k in ("trained_on", "seconds") if k in meta}
    with staged_file(args.out) as tmp:
        export_weights(model, cfg, meta.get("metrics"), tmp, epoch=meta.get("epoch"), **info)
    load_checkpoint(args.out)  # reads back: the shipped file is usable
    _say(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, preset {cfg.name!r}, "
         f"epoch {meta.get('epoch')}, val Dice {meta.get('metrics', {}).get('val_dice', float('nan')):.4f})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fetalhead.data import check_data_dir
    from fetalhead.evaluate import evaluate_split, report_files, summary_table, write_report
    from fetalhead.paths import data_dir

    root = check_data_dir(data_dir(args.data))
    out = args.out if args.out is not None else _default_out("outputs")
    _check_output_dir(out)
    _refuse_overwrite([out / f for f in report_files()], args.overwrite)
    if args.results is not None:
        _check_output_file(args.results, args.overwrite, "--results")
    predictor = _load_predictor(args)
    df = evaluate_split(predictor, part=args.part, root=root, limit=args.limit,
                        progress=not args.quiet, batch_size=args.batch_size)
    with staged_dir(out) as stage:
        write_report(df, stage, predictor=predictor, root=root)
    table = summary_table(df)
    _say(table.to_string(float_format=lambda v: f"{v:.4f}"))
    _say(f"report written to {out}")
    if args.results is not None:
        from fetalhead.device import device_name
        from fetalhead.evaluate import flag_summary
        from fetalhead.results import results_record, write_results

        ckpt = Path(predictor.checkpoint)
        model = args.model or (ckpt.stem.removeprefix("fetalhead_") if args.checkpoint is None else str(ckpt))
        record = results_record(df, table, model=model, part=args.part, tta=predictor.tta,
                                command="fetalhead " + shlex.join(args.argv),
                                trained_on=predictor.meta.get("trained_on"),
                                device=device_name(predictor.device))
        record["review_flag"] = {**flag_summary(df), "review_below": predictor.review_below}
        _say(f"results written to {write_results(record, args.results)}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd
    from PIL import Image

    from fetalhead.predict import check_image_file, load_input_image
    from fetalhead.report import draw_overlay

    # 1. validate everything before writing anything
    images = collect_images(args.paths)
    sizes = _pixel_sizes(images, args.pixel_size, args.pixel_csv)
    out: Path = args.out
    _check_output_dir(out)
    targets = [out / PREDICTIONS_CSV]
    for img in images:
        targets += [out / f"{img.stem}_mask.png", out / f"{img.stem}_overlay.png"]
    _refuse_overwrite(targets, args.overwrite)
    for img in images:
        check_image_file(img)
    predictor = _load_predictor(args)

    # 2. predict in batches into a staging folder; move in at the end
    rows = []
    bs = args.batch_size
    with staged_dir(out) as stage:
        bar = _tqdm(range(0, len(images), bs), args.quiet, desc="predict", unit="batch")
        for start in bar:
            chunk = images[start:start + bs]
            arrays = [load_input_image(p) for p in chunk]
            preds = predictor.predict_batch(arrays, sizes[start:start + bs], batch_size=bs)
            for path, image, pred in zip(chunk, arrays, preds, strict=True):
                Image.fromarray(pred.mask * 255).save(stage / f"{path.stem}_mask.png")
                Image.fromarray(draw_overlay(image, pred)).save(stage / f"{path.stem}_overlay.png")
                rows.append({"filename": path.name, **pred.to_row()})
        pd.DataFrame(rows).to_csv(stage / PREDICTIONS_CSV, index=False, float_format="%.6f")
    from fetalhead.predict import STATUS_NO_HEAD, STATUS_REVIEW

    n_none = sum(r["status"] == STATUS_NO_HEAD for r in rows)
    n_review = sum(r["status"] == STATUS_REVIEW for r in rows)
    notes = [f"{n_none} without a head found"] * bool(n_none) + [f"{n_review} flagged for review"] * bool(n_review)
    _say(f"wrote masks, overlays and {PREDICTIONS_CSV} for {len(rows)} images to {out}"
         + (f" ({', '.join(notes)})" if notes else ""))
    return 0


def _write_submission(predictor, root: Path, out: Path, batch_size: int, quiet: bool) -> int:
    from fetalhead.evaluate import check_submission, predict_challenge

    sub = predict_challenge(predictor, root=root, progress=not quiet, batch_size=batch_size)
    check_submission(sub, root=root)
    with staged_file(out) as tmp:
        sub.to_csv(tmp, index=False, float_format="%.6f")
    return int(sub.attrs.get("n_fallback", 0))


def _cmd_submit(args: argparse.Namespace) -> int:
    from fetalhead.data import check_data_dir
    from fetalhead.paths import data_dir

    root = check_data_dir(data_dir(args.data))
    _check_output_file(args.out, args.overwrite)
    predictor = _load_predictor(args)
    n_fallback = _write_submission(predictor, root, args.out, args.batch_size, args.quiet)
    _say(f"wrote the challenge submission to {args.out}"
         + (f" ({n_fallback} images without a head found got a fallback ellipse)" if n_fallback else ""))
    return 0


def _cmd_main(args: argparse.Namespace) -> int:
    import torch

    from fetalhead.data import check_data_dir
    from fetalhead.evaluate import evaluate_split, summary_table, write_report
    from fetalhead.paths import data_dir, shipped_checkpoint
    from fetalhead.predict import Predictor

    out = args.out if args.out is not None else _default_out("outputs")
    _check_output_dir(out)

    # 1. data: use the local copy, else download it
    root = data_dir(args.data)
    try:
        root = check_data_dir(root)
        _say(f"[1/4] HC18 found in {root}")
    except FetalheadError as missing:
        if args.no_download:
            raise
        _say(f"[1/4] HC18 not usable in {root} ({missing}); downloading it from Zenodo")
        from fetalhead.download import download_hc18

        root = check_data_dir(download_hc18(root, progress=not args.quiet))

    # 2. model: given, shipped, or trained here
    if args.checkpoint is not None:
        ckpt = args.checkpoint
    elif not args.retrain and shipped_checkpoint(args.model).is_file():
        ckpt = shipped_checkpoint(args.model)
    else:
        why = "--retrain given" if args.retrain else f"no shipped weights at {shipped_checkpoint(args.model)}"
        if torch.cuda.is_available():
            preset = "default"
            _say(f"[2/4] {why}: training preset 'default' on {torch.cuda.get_device_name()}")
        else:
            preset = "cpu"
            _say(f"[2/4] {why} and no GPU: training preset 'cpu', a small CPU STAND-IN model "
                 "(narrow U-Net, low resolution). It is NOT the shipped model and its scores "
                 "are lower.")
        ckpt = _train(preset, out / f"train-{preset}", root=root, epochs=args.epochs,
                      quiet=args.quiet, overwrite=True)
        _say(f"      trained checkpoint: {ckpt}")
    predictor = Predictor.from_checkpoint(ckpt, tta=args.tta)
    _say(f"[2/4] model: {describe_model(predictor)}")

    # 3. held-out test split: metrics and figures
    _say("[3/4] evaluating on the held-out test split" + (f" (first {args.limit})" if args.limit else ""))
    df = evaluate_split(predictor, part="test", root=root, limit=args.limit,
                        progress=not args.quiet, batch_size=args.batch_size)
    with staged_dir(out) as stage:
        write_report(df, stage, predictor=predictor, root=root)

    # 4. the 335 official test images: challenge CSV
    _say("[4/4] predicting the 335 official test images")
    n_fallback = _write_submission(predictor, root, out / "submission.csv", args.batch_size, args.quiet)

    table = summary_table(df)
    _say("")
    _say(table.to_string(float_format=lambda v: f"{v:.3f}"))
    _say(f"\nresults in {out}: metrics, figures/, submission.csv"
         + (f" ({n_fallback} fallback ellipses)" if n_fallback else ""))
    return 0


# ---------------------------------------------------------------- entry point


def _os_error_message(e: OSError) -> str:
    what = e.strerror or _one_line(e)
    return f"{what}: {e.filename}" if e.filename else what


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # for provenance
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:
        return int(args.func(args) or 0)
    except FetalheadError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
    except OSError as e:  # e.g. the disk filled up or permissions changed while writing
        print(f"{PROG}: error: {_os_error_message(e)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 1
