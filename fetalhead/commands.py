"""What each `fetalhead` command does, given its parsed arguments (`fetalhead.cli` parses them).

Every command checks all its inputs and its output targets first (`fetalhead.files`), then
does its work, and writes through a temporary file or folder beside the target that takes
the target's place at the end: a failure leaves nothing partial behind, and existing files are
replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from fetalhead.agreement import agreement_summary, agreement_table, read_exams, read_predictions
from fetalhead.bench import (
    compare_precision,
    format_latency,
    format_precision,
    format_table,
    latency_only,
    run_benchmark,
)
from fetalhead.cache import (
    build_compact_cache,
    concat_arrays,
    load_arrays,
    load_compact_cache,
    shrink_arrays,
)
from fetalhead.cards import current_results, write_all
from fetalhead.checkpoint import export_weights, load_checkpoint
from fetalhead.cli import EXPORT_DTYPES
from fetalhead.config import get_config
from fetalhead.data import MASK_SUFFIX, OVERLAY_SUFFIX, check_data_dir, frame_count
from fetalhead.device import cpu_has_bf16_units, device_name
from fetalhead.download import download_hc18
from fetalhead.errors import FetalheadError
from fetalhead.evaluate import (
    GROSS_ERROR_MM,
    check_submission,
    evaluate_folder,
    evaluate_split,
    flag_summary,
    predict_challenge,
    report_files,
    summary_table,
    write_report,
)
from fetalhead.files import (
    atomic_file,
    check_input_file,
    check_output_dir,
    check_output_file,
    refuse_overwrite,
    staged_dir,
    utf8_name,
)
from fetalhead.folder import (
    MASK_PATTERN,
    FolderDataset,
    choose_pixel_size,
    collect_images,
    image_stem,
    lookup_by_name,
    read_ga_csv,
    read_hc_csv,
    read_pixel_csv,
)
from fetalhead.gallery import COMPARE_HTML, GALLERY_HTML, compare_html, gallery_html
from fetalhead.growth import GA_RANGE_WEEKS, centile_text, ga_text, hc_for_age
from fetalhead.interval import COVERAGE, FACTOR, OFFSET_MM
from fetalhead.model import valid_output_size
from fetalhead.paths import PACKAGE_DIR, SHIPPED_MODELS, data_dir, repo_root, shipped_checkpoint
from fetalhead.predict import (
    STATUS_NO_HEAD,
    STATUS_REVIEW,
    Predictor,
    best_measurement,
    check_image_file,
    load_input_image,
)
from fetalhead.report import bland_altman, draw_overlay, save_png
from fetalhead.results import json_safe, provenance, results_record, write_results
from fetalhead.split import load_split, split_groups
from fetalhead.train import fit
from fetalhead.viz import save_figure

__all__ = ["LIST_UP_TO", "RUN_FILES", "describe_model", "loop_line", "measurement_line", "model_lines", "run"]

PREDICTIONS_CSV = "predictions.csv"
RUN_FILES = ("best.pt", "last.pt", "history.csv")  #: what `fit` writes into a run folder
#: `predict` lists each image's measurement on the terminal when it measured at most this many
LIST_UP_TO = 10


def _say(msg: str) -> None:
    print(msg, flush=True)


def _default_out(name: str) -> Path:
    root = repo_root()
    return (root if root is not None else Path.cwd()) / name


def _pixel_sizes(images: Sequence[Path], pixel_size: float | None, pixel_csv: Path | None) -> tuple[list[float], int]:
    """(mm per pixel of each image, how many of them its file stores): --pixel-size, else its
    row of --pixel-csv, else the one its file stores (DICOM; `choose_pixel_size`).
    FetalheadError naming the first without one."""
    table: dict[str, float] = {}
    if pixel_csv is not None:
        try:
            table = read_pixel_csv(pixel_csv)
        except FetalheadError as e:
            raise FetalheadError(f"--pixel-csv: {e}") from None
    sizes = []
    from_files = 0
    for img in images:
        given = pixel_size if pixel_csv is None else lookup_by_name(table, img)
        value = choose_pixel_size(img, given)
        if value is None:
            raise FetalheadError(f"{img}: {_no_pixel_size(pixel_csv)}")
        sizes.append(value)
        from_files += given is None
    return sizes, from_files


def _known_ages(images: Sequence[Path], ga: float | None, ga_csv: Path | None) -> dict[Path, float | None] | None:
    """None when no age was given, else {image: its known gestational age in weeks, or None
    where --ga-csv leaves it empty}. FetalheadError naming the first image the CSV lacks."""
    if ga is not None:
        return dict.fromkeys(images, ga)
    if ga_csv is None:
        return None
    try:
        table = read_ga_csv(ga_csv)
    except FetalheadError as e:
        raise FetalheadError(f"--ga-csv: {e}") from None
    missing = [img for img in images if img.name not in table and image_stem(img) not in table]
    if missing:
        raise FetalheadError(f"{missing[0].name}: not in {ga_csv} (leave its age empty there when it is not known)")
    return {img: lookup_by_name(table, img) for img in images}


def _no_pixel_size(pixel_csv: Path | None) -> str:
    """Why an image has no pixel size, and what to give."""
    where = f"not in {pixel_csv}" if pixel_csv is not None else "no --pixel-size MM or --pixel-csv FILE given"
    return f"no pixel size ({where}, and the file stores none)"


def _tqdm(iterable, quiet: bool, **kw):
    return tqdm(iterable, disable=quiet, file=sys.stderr, dynamic_ncols=True, **kw)


def _load_predictor(args: argparse.Namespace) -> Predictor:
    """The Predictor for --checkpoint, else --model, else the best shipped model; says which."""
    if args.checkpoint is not None:
        utf8_name(args.checkpoint)  # its name goes into predictions.csv and the reports
    predictor = Predictor.from_checkpoint(args.checkpoint, model=args.model, tta=args.tta,
                                          review_below=vars(args).get("review_below"))
    _say(f"model: {describe_model(predictor)}")
    return predictor


def _network_line(predictor: Predictor) -> str:
    """The network a Predictor runs and where it trained: preset, width, input size in px."""
    cfg = predictor.config
    trained = predictor.meta.get("trained_on") if predictor.meta else None
    extra = f", trained on {trained}" if trained else ""
    arch = f"preset '{cfg.name}', width {cfg.base_channels}, {cfg.image_size[0]}x{cfg.image_size[1]} px" if cfg else ""
    return f"{arch}{extra}"


def describe_model(predictor: Predictor) -> str:
    """One line naming the model a Predictor runs: shipped name or file, preset, size, where trained."""
    path = Path(predictor.checkpoint) if predictor.checkpoint else None
    shipped = path is not None and path.resolve().parent == (PACKAGE_DIR / "weights").resolve()
    name = f"shipped model '{path.stem.removeprefix('fetalhead_')}'" if shipped else f"checkpoint {path}"
    flips = ", test-time flips" if predictor.tta else ""
    return f"{name} ({_network_line(predictor)}){flips}, review below quality {predictor.review_below:g}"


# ---------------------------------------------------------------- commands


def _cmd_download(args: argparse.Namespace) -> int:
    root = download_hc18(args.data, progress=not args.quiet)
    _say(f"HC18 is ready in {root}")
    return 0


def _cmd_prepare_cache(args: argparse.Namespace) -> int:
    root = check_data_dir(data_dir(args.data))
    check_output_file(args.out, args.overwrite)
    with atomic_file(args.out) as tmp:
        build_compact_cache(tmp, args.size, parts=args.parts, root=root, progress=not args.quiet)
    size_mb = args.out.stat().st_size / 2**20
    _say(f"wrote {args.out} ({size_mb:.1f} MiB, {args.size[0]}x{args.size[1]} pixels)")
    return 0


def _train(preset: str, out_dir: Path, *, root: Path | None, epochs: int | None = None,
           resume: Path | None = None, cache: Path | None = None, quick: bool | None = None,
           quiet: bool = False, overwrite: bool = False, time_budget: float | None = None,
           seed: int | None = None, settings: Sequence[tuple[str, Any]] = (), own: FolderDataset | None = None,
           val_fraction: float | None = None, init: str | None = None) -> Path:
    """Train preset `preset` into `out_dir`; return the best checkpoint's path. `settings`
    ((field, value) pairs) override the preset's fields last. An earlier run's files there
    are replaced only with `overwrite` or when resuming the run kept there. `own`: your own
    labelled images instead of HC18's split, `val_fraction` of their examinations kept for
    validation; `init`: a shipped model's name or a checkpoint to start from."""
    overrides: dict = {"epochs": epochs} if epochs is not None else {}
    if time_budget is not None:
        overrides["time_budget_s"] = time_budget
    elif epochs is not None:  # epochs asked for: they decide, not a preset's budget
        overrides["time_budget_s"] = None
    if seed is not None:
        overrides["seed"] = seed
    overrides.update(settings)
    cfg = get_config(preset, quick=quick or None, **overrides)
    if cfg.padding == "valid":  # checked now, not when the first batch meets the network
        for side in cfg.image_size:
            valid_output_size(side)
    if resume is not None:
        check_input_file(resume, "--resume")
    check_output_dir(out_dir)
    # resuming continues the run in its own folder; another run's files elsewhere stay safe
    same_run = resume is not None and resume.resolve().parent == out_dir.resolve()
    refuse_overwrite([out_dir / f for f in RUN_FILES], overwrite or same_run)
    start = _initial_weights(init) if init is not None else None
    if own is not None:
        arrays = own.to_arrays(cfg.image_size)
        # the same examinations validate whatever --seed: runs of other seeds are compared on one part
        arrays.meta["split"] = split_groups(arrays.meta["exam"], val_fraction or 0.2)
        train, val = arrays.part("train"), arrays.part("val")
        if not quiet:
            _say(f"your own images: {len(train)} to train on, {len(val)} to validate on "
                 f"({val.meta['exam'].nunique()} of {arrays.meta['exam'].nunique()} examinations)")
    elif cache is not None:
        check_input_file(cache, "--cache")
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
    if cfg.train_parts == "train+val":
        train = concat_arrays(train, val)
        if not quiet:
            _say(f"training on the train and val parts ({len(train)} images): validation Dice is "
                 "measured on seen images, so ship last.pt and judge on the test part")
    # an earlier run's files replaced (--overwrite): none of them left beside the new ones
    result = fit(cfg, train, val, out_dir, resume=resume, progress=not quiet, init=start,
                 replace=() if same_run else RUN_FILES)
    return Path(result.checkpoint_path)


def _initial_weights(init: str) -> dict[str, torch.Tensor]:
    """The weights (float32 state dict) of a shipped model `init` ("small", "default") or of
    the checkpoint file `init`; says which."""
    path = shipped_checkpoint(init) if init in SHIPPED_MODELS else Path(init)
    if path.is_dir():
        raise FetalheadError(f"--init {init} is a folder; give a .pt file")
    if not path.is_file():
        raise FetalheadError(f"--init {init}: no such file" + ("" if init in SHIPPED_MODELS else
                             f" (or a shipped model: {', '.join(SHIPPED_MODELS)})"))
    model, cfg, _ = load_checkpoint(path)
    _say(f"starting from the weights of {path} (preset {cfg.name!r}, width {cfg.base_channels})")
    return {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _cmd_train(args: argparse.Namespace) -> int:
    own = _own_dataset(args, {"--data": args.data, "--cache": args.cache})
    out = args.out if args.out is not None else _default_out("runs") / args.preset
    root = None if args.cache is not None or own is not None else data_dir(args.data)
    ckpt = _train(args.preset, out, root=root, epochs=args.epochs, resume=args.resume,
                  cache=args.cache, quick=args.quick, quiet=args.quiet, overwrite=args.overwrite,
                  time_budget=args.time_budget, seed=args.seed, settings=args.overrides, own=own,
                  val_fraction=args.val_fraction, init=args.init)
    _say(f"best checkpoint: {ckpt}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    model, cfg, meta = load_checkpoint(args.checkpoint)
    check_output_file(args.out, args.overwrite)
    # kept from the file (a re-export keeps them), then what is chosen here: the training run's
    # record (read by the model card), test-time flips and the review threshold (by the Predictor)
    info = {k: meta[k] for k in ("trained_on", "seconds", "precision", "training_run", "tta", "review_below") if k in meta}
    chosen = {"training_run": args.run, "tta": args.tta, "review_below": args.review_below}
    info.update({k: v for k, v in chosen.items() if v is not None})
    # a re-export of an exported file keeps its storage (int8 stays int8: requantizing is exact)
    kept = meta.get("dtype") if meta.get("weights_only") else None
    dtype = args.dtype or (kept if kept in EXPORT_DTYPES else "float16")
    with atomic_file(args.out) as tmp:
        export_weights(model, cfg, meta.get("metrics"), tmp, epoch=meta.get("epoch"), dtype=dtype, **info)
        load_checkpoint(tmp)  # read back before it replaces anything: the shipped file is usable
    val_dice = (meta.get("metrics") or {}).get("val_dice", float("nan"))
    _say(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB in {dtype}, preset {cfg.name!r}, "
         f"epoch {meta.get('epoch')}, val Dice {val_dice:.4f})")
    return 0


def _own_dataset(args: argparse.Namespace, instead_of: dict[str, Any]) -> FolderDataset | None:
    """The folder of --images, every image with a mask and a pixel size, checked before
    anything is written; None without --images. `instead_of`: {HC18 option: its value}, the
    options --images replaces."""
    own = {"--masks": args.masks, "--mask-pattern": args.mask_pattern, "--pixel-size": args.pixel_size,
           "--pixel-csv": args.pixel_csv, "--val-fraction": getattr(args, "val_fraction", None)}
    if args.images is None:
        given = [k for k, v in own.items() if v is not None]
        if given:
            raise FetalheadError(f"{given[0]} needs --images DIR (your own labelled images)")
        return None
    for flag, value in instead_of.items():
        if value is not None:
            raise FetalheadError(f"{flag} is for HC18's split; --images uses your own folder instead")
    pattern = MASK_PATTERN if args.mask_pattern is None else args.mask_pattern  # "" is refused, not the default
    ds = FolderDataset(args.images, args.masks, pattern, pixel_csv=args.pixel_csv, pixel_size_mm=args.pixel_size)
    unknown = [p.name for i, p in enumerate(ds.image_paths) if not math.isfinite(ds.pixel_size(i))]
    if unknown:
        raise FetalheadError(f"{unknown[0]}: {_no_pixel_size(args.pixel_csv)}")
    for path in ds.image_paths:  # a mask labels one image, not a loop of them
        n = frame_count(path)
        if n > 1:
            raise FetalheadError(f"{path.name}: a cine loop, TIFF stack, animated image or video of {n} frames; a mask labels one image: "
                                 f"save the frame it labels as an image file (predict --frame measures a loop)")
    missing = [p.name for i, p in enumerate(ds.image_paths) if ds.mask_path(i) is None]
    if missing:
        raise FetalheadError(f"{len(missing)} of {len(ds)} images have no mask "
                             f"({ds.mask_pattern} in {ds.mask_dir}), e.g. {missing[0]}")
    for i, path in enumerate(ds.image_paths):
        check_image_file(path)
        check_image_file(ds.mask_path(i))
    return ds


def _hc18_names(images: Sequence[Path], parts: Sequence[str]) -> list[str]:
    """The file names among `images` that HC18 images of the committed split's `parts`
    (e.g. ["train"]) have, in the order given."""
    split = load_split()
    names = set(split.loc[split["split"].isin(list(parts)), "filename"])
    return [p.name for p in images if p.name in names]


def _cmd_evaluate(args: argparse.Namespace) -> int:
    own = _own_dataset(args, {"--data": args.data, "--part": args.part})
    part = "folder" if own is not None else (args.part or "test")
    root = check_data_dir(data_dir(args.data)) if own is None else None
    # a folder of its own: not the one `fetalhead main` writes its report to
    out = args.out if args.out is not None else _default_out("outputs") / f"evaluate-{part}"
    check_output_dir(out)
    refuse_overwrite([out / f for f in report_files()], args.overwrite)
    if args.results is not None:
        check_output_file(args.results, args.overwrite, "--results")
        if args.results.resolve() in {(out / f).resolve() for f in report_files()}:
            raise FetalheadError(f"--results {args.results} is one of the report's own files in --out; give another name")
    predictor = _load_predictor(args)
    trained_parts = str(getattr(predictor.config, "train_parts", "train")).split("+")
    seen = part in trained_parts
    if seen:
        _say(f"note: this model trained on the {part} part, so these figures are not held out")
    if own is not None:
        named = _hc18_names(own.image_paths[:args.limit or len(own)], trained_parts)
        if named:
            _say(f"note: {len(named)} of these images have the names of HC18 images this model trained on "
                 f"(e.g. {named[0]}): if they are those images, these figures are not held out")
    if own is None:
        df = evaluate_split(predictor, part=part, root=root, limit=args.limit,
                            progress=not args.quiet, batch_size=args.batch_size)
        files = None
    else:
        n = min(len(own), args.limit or len(own))
        images, masks = own.image_paths[:n], [own.mask_path(i) for i in range(n)]
        df = evaluate_folder(predictor, images, masks, [own.pixel_size(i) for i in range(n)],
                             progress=not args.quiet, batch_size=args.batch_size)
        files = {im.name: (im, m) for im, m in zip(images, masks, strict=True)}
    with staged_dir(out) as stage:
        write_report(df, stage, predictor=predictor, root=root, files=files)
    table = summary_table(df)
    _say(table.to_string(float_format=lambda v: f"{v:.4f}"))
    held = json.loads((out / "summary.json").read_text())["hc_interval"]  # as write_report measured it
    _say(f"the reference HC lies inside the measured HC's {100 * COVERAGE:g} % interval for "
         f"{held['n_inside']} of {held['n']} images ({100 * held['coverage']:.1f} %)")
    _say(f"report written to {out}")
    if args.results is not None:
        ckpt = Path(predictor.checkpoint)
        model = args.model or (ckpt.stem.removeprefix("fetalhead_") if args.checkpoint is None else str(ckpt))
        record = results_record(df, table, model=model, part=part, tta=predictor.tta,
                                command="fetalhead " + shlex.join(args.argv),
                                trained_on=predictor.meta.get("trained_on"),
                                device=device_name(predictor.device),
                                training_run=predictor.meta.get("training_run"))
        record["review_flag"] = {**flag_summary(df), "review_below": predictor.review_below}
        record["hc_interval"] = {**held, "factor": FACTOR, "offset_mm": OFFSET_MM, "coverage_aimed": COVERAGE}
        record["seen_in_training"] = seen
        _say(f"results written to {write_results(record, args.results)}")
    return 0


def measurement_line(row: dict[str, Any]) -> str:
    """One image's measurement for the terminal (a row of predictions.csv): name, HC with its
    `fetalhead.interval` interval in mm, status and quality score, and with a known age the
    HC's INTERGROWTH-21st centile (and its interval's)."""
    if row["status"] == STATUS_NO_HEAD:
        return f"  {row['filename']}: no head found"
    line = (f"  {row['filename']}: HC {row['hc_mm']:.1f} mm ({100 * COVERAGE:g} % interval {row['hc_low_mm']:.1f} to "
            f"{row['hc_high_mm']:.1f}), {row['status']} (quality {row['quality']:.2f})")
    if math.isfinite(row.get("hc_centile", math.nan)):
        line += (f"; {centile_text(row['hc_centile'])} centile for {ga_text(row['given_ga_weeks'])} weeks "
                 f"({centile_text(row['hc_centile_low'])} to {centile_text(row['hc_centile_high'])}, INTERGROWTH-21st)")
    return line


def _age_notes(rows: list[dict[str, Any]], ages: dict[Path, float | None] | None) -> list[str]:
    """For the terminal's summary: how many measurements with a known age got no centile."""
    if ages is None:
        return []
    lo, hi = GA_RANGE_WEEKS
    outside = sum(math.isfinite(r["given_ga_weeks"]) and not lo <= r["given_ga_weeks"] <= hi for r in rows)
    return [f"{outside} with a known age outside the centiles' {lo:g} to {hi:g} weeks"] * bool(outside)


#: `predict --frame all`: the stem of frame k of a cine loop's outputs
FRAME_STEM = "{stem}_f{frame:03d}"


def _predict_items(images: list[Path], frame: int | str | tuple[int, int] | None
                   ) -> list[tuple[Path, int | None, str | None]]:
    """(file, frame to read or None, frame column) per measurement. With `frame` a number, a
    cine loop is read at that frame; with "all", at each of its frames
    (`fetalhead.data.frame_count`); with (first, last), at those of them it has (FetalheadError,
    one line, for a loop shorter than `first`); a file of one frame is read as it is (no frame
    column)."""
    items: list[tuple[Path, int | None, str | None]] = []
    for img in images:
        n = 1 if frame is None else frame_count(img)
        if n == 1:
            items.append((img, None, None))
        elif frame == "all":
            items += [(img, k, str(k)) for k in range(1, n + 1)]
        elif isinstance(frame, tuple):
            first, last = frame
            if first > n:
                raise FetalheadError(f"{img}: no frame {first} in this loop of {n} frames (1 to {n})")
            items += [(img, k, str(k)) for k in range(first, min(last, n) + 1)]
        else:
            items.append((img, int(frame), str(frame)))
    return items


def _item_stem(path: Path, frame: str | None, all_frames: bool) -> str:
    stem = image_stem(path)
    return FRAME_STEM.format(stem=stem, frame=int(frame)) if all_frames and frame is not None else stem


#: the longest file name most file systems take (ext4, APFS, NTFS: 255)
NAME_MAX_BYTES = 255


def _check_output_names(items: Sequence[tuple[Path, Any, str | None]], stems: Sequence[str],
                       targets: Sequence[Path]) -> None:
    """One-line FetalheadError when two of `items` (image path, frame, frame column) would write
    outputs of one name (their `stems`: `x_f002` of a loop's frame 2 and an image `x_f002.png`;
    `A` and `a`, one name where case is ignored),
    or when one of the output files `targets` is one of the input images."""
    first: dict[str, tuple[Path, str | None, str]] = {}
    for (path, _, column), stem in zip(items, stems, strict=True):
        longest = f"{stem}{OVERLAY_SUFFIX}.png"
        if len(longest.encode()) > NAME_MAX_BYTES:  # found now, not after every image is measured
            raise FetalheadError(f"{path}: its output {longest[:40]}... would be a file name longer than "
                                 f"{NAME_MAX_BYTES} bytes; rename it")
        key = stem.casefold()  # one file name on macOS and Windows
        if key in first:
            (other, other_frame, other_stem) = first[key]
            said = [f"{q}" + (f" (frame {c})" if c is not None else "") for q, c in ((other, other_frame), (path, column))]
            case = "" if other_stem == stem else " on a file system that ignores case (macOS, Windows)"
            raise FetalheadError(f"{said[0]} and {said[1]} would both write {stem}{MASK_SUFFIX}.png{case}; rename one")
        first[key] = (path, column, stem)
    inputs = {path.resolve() for path, _, _ in items}
    for target in targets:
        if target.resolve() in inputs:
            raise FetalheadError(f"{target} is an input image, and an output of the same name would replace it; "
                                 "write to another --out")


def loop_line(rows: list[dict[str, Any]], name: str) -> str | None:
    """For `predict --frame all`: the frame of cine loop `name` whose measurement has the
    highest quality score (`fetalhead.predict.best_measurement`), or None when no frame had a head."""
    best = best_measurement([r for r in rows if r["filename"] == name])
    if best is None:
        return None
    measured = sum(r["filename"] == name and r["status"] != STATUS_NO_HEAD for r in rows)
    n = sum(r["filename"] == name for r in rows)
    return (f"  {name}: {measured} of {n} frames measured; the highest quality score is frame "
            f"{best['frame']}'s ({best['quality']:.2f}, {best['status']}): HC {best['hc_mm']:.1f} mm")


def _keep_best_frames(rows: list[dict[str, Any]], loops: list[str]) -> list[int]:
    """For `predict --frame best`: the indices of `rows` to keep, each loop's best measurement
    (`fetalhead.predict.best_measurement`; its first frame when none had a head) and every file
    of one frame."""
    keep = []
    for name in dict.fromkeys(r["filename"] for r in rows):
        mine = [i for i, r in enumerate(rows) if r["filename"] == name]
        if name not in loops:
            keep += mine
            continue
        best = best_measurement([rows[i] for i in mine])
        keep.append(next(i for i in mine if rows[i] is best) if best is not None else mine[0])
    return sorted(keep)


def _cmd_predict(args: argparse.Namespace) -> int:
    # 1. validate everything before writing anything
    images = collect_images(args.paths)
    sizes, from_files = _pixel_sizes(images, args.pixel_size, args.pixel_csv)
    ages = _known_ages(images, args.ga, args.ga_csv)
    out: Path = args.out
    check_output_dir(out)
    all_frames = args.frame in ("all", "best") or isinstance(args.frame, tuple)  # several frames of a loop
    items = _predict_items(images, "all" if args.frame in ("all", "best") else args.frame)
    size_of = dict(zip(images, sizes, strict=True))
    stems = [_item_stem(path, column, all_frames) for path, _, column in items]
    targets = [out / PREDICTIONS_CSV, out / GALLERY_HTML]
    for stem in stems:
        targets += [out / f"{stem}{MASK_SUFFIX}.png", out / f"{stem}{OVERLAY_SUFFIX}.png"]
    _check_output_names(items, stems, targets)
    refuse_overwrite(targets, args.overwrite)
    for img, frame, _ in items:
        check_image_file(img, frame)
    predictor = _load_predictor(args)

    # 2. predict in batches into a staging folder; move in at the end
    rows = []
    bs = args.batch_size
    with staged_dir(out) as stage:
        bar = _tqdm(range(0, len(items), bs), args.quiet, desc="predict", unit="batch")
        for start in bar:
            chunk = items[start:start + bs]
            arrays = [load_input_image(p, frame) for p, frame, _ in chunk]
            preds = predictor.predict_batch(arrays, [size_of[p] for p, _, _ in chunk], batch_size=bs)
            for (path, _, column), stem, image, pred in zip(chunk, stems[start:start + bs], arrays, preds, strict=True):
                save_png(pred.mask * 255, stage / f"{stem}{MASK_SUFFIX}.png")
                save_png(draw_overlay(image, pred), stage / f"{stem}{OVERLAY_SUFFIX}.png")
                frame_column = {} if args.frame is None else {"frame": column}
                for_age = {} if ages is None else hc_for_age(pred.hc_mm, ages[path], pred.hc_interval_mm).to_row()
                rows.append({"filename": path.name, **frame_column, **pred.to_row(), **for_age,
                             "model": predictor.weights})
        loops = list(dict.fromkeys(path.name for path, frame, _ in items if all_frames and frame is not None))
        if args.frame == "best":  # one measurement per loop: the other frames' files go
            keep = _keep_best_frames(rows, loops)
            for i in sorted(set(range(len(rows))) - set(keep)):
                for suffix in (MASK_SUFFIX, OVERLAY_SUFFIX):
                    (stage / f"{stems[i]}{suffix}.png").unlink()
            every, rows, stems = rows, [rows[i] for i in keep], [stems[i] for i in keep]
        else:
            every = rows
        pd.DataFrame(rows).to_csv(stage / PREDICTIONS_CSV, index=False, float_format="%.6f")
        overlays = [f"{stem}{OVERLAY_SUFFIX}.png" for stem in stems]
        (stage / GALLERY_HTML).write_text(gallery_html(rows, overlays, model=describe_model(predictor)),
                                          encoding="utf-8")
    n_none = sum(r["status"] == STATUS_NO_HEAD for r in rows)
    n_review = sum(r["status"] == STATUS_REVIEW for r in rows)
    notes = ([f"{from_files} with the pixel size their file stores"] * bool(from_files)
             + [f"{n_none} without a head found"] * bool(n_none) + [f"{n_review} flagged for review"] * bool(n_review)
             + _age_notes(rows, ages))
    what = ("measurement" if len(rows) != len(images) else "image") + ("" if len(rows) == 1 else "s")
    best_of = ("" if args.frame != "best" or not loops else
               " (the best frame of 1 loop)" if len(loops) == 1 else f" (the best frame of each of {len(loops)} loops)")
    _say(f"wrote masks, overlays, {PREDICTIONS_CSV} and {GALLERY_HTML} for {len(rows)} {what}{best_of} to {out}"
         + (f" ({', '.join(notes)})" if notes else ""))
    if not args.quiet:
        for line in (loop_line(every, name) for name in loops):
            if line:
                _say(line)
        stills = [row for row in rows if row["filename"] not in loops]
        if len(stills) <= LIST_UP_TO:  # a few scans: their numbers at a glance
            for row in stills:
                _say(measurement_line(row))
    return 0


def _write_submission(predictor: Predictor, root: Path, out: Path, batch_size: int, quiet: bool) -> int:
    sub = predict_challenge(predictor, root=root, progress=not quiet, batch_size=batch_size)
    check_submission(sub, root=root)
    with atomic_file(out) as tmp:
        sub.to_csv(tmp, index=False, float_format="%.6f")
    return int(sub.attrs.get("n_fallback", 0))


def _cmd_submit(args: argparse.Namespace) -> int:
    root = check_data_dir(data_dir(args.data))
    check_output_file(args.out, args.overwrite)
    predictor = _load_predictor(args)
    n_fallback = _write_submission(predictor, root, args.out, args.batch_size, args.quiet)
    _say(f"wrote the challenge submission to {args.out}"
         + (f" ({n_fallback} images without a head found got a fallback ellipse)" if n_fallback else ""))
    return 0


#: the file by which `fetalhead main` knows a results folder as its own
MAIN_MARKER = ".fetalhead-main"
SUBMISSION_CSV = "submission.csv"


def _main_targets(out: Path) -> list[Path]:
    """What `fetalhead main` writes into `out`: the report, the submission, a trained model."""
    return ([out / f for f in report_files()] + [out / SUBMISSION_CSV]
            + [out / f"train-{preset}" for preset in ("default", "cpu")])


def _check_main_out(out: Path, overwrite: bool) -> None:
    """`fetalhead main` replaces its own earlier results in `out` (the folder holds its
    marker); files of the same names that it did not write are replaced only with --overwrite."""
    check_output_dir(out)
    if overwrite or (out / MAIN_MARKER).is_file():
        return
    existing = [t for t in _main_targets(out) if t.exists()]
    if existing:
        raise FetalheadError(f"{existing[0]} exists in a folder not marked as `fetalhead main`'s "
                             f"(no {MAIN_MARKER}); use --overwrite to replace it, or another --out")


def _claim_main_out(out: Path) -> None:
    """Mark `out` as `fetalhead main`'s, just before it first writes there."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MAIN_MARKER).write_text("results of `fetalhead main`: its next run here replaces them\n")


def _cmd_main(args: argparse.Namespace) -> int:
    if args.retrain and (args.checkpoint is not None or args.model is not None):
        given = "--checkpoint" if args.checkpoint is not None else "--model"
        raise FetalheadError(f"--retrain trains a model of its own; it does not take {given}")
    trains = args.checkpoint is None and (args.retrain or not shipped_checkpoint(args.model).is_file())
    if args.epochs is not None and not trains:
        raise FetalheadError("--epochs is for a model trained here (--retrain); this run measures "
                             + (str(args.checkpoint) if args.checkpoint is not None else "the shipped weights"))
    out = args.out if args.out is not None else _default_out("outputs")
    _check_main_out(out, args.overwrite)

    # 1. data: use the local copy, else download it
    root = data_dir(args.data)
    try:
        root = check_data_dir(root)
        _say(f"[1/4] HC18 found in {root}")
    except FetalheadError as missing:
        if args.no_download:
            raise
        _say(f"[1/4] HC18 not usable in {root} ({missing}); downloading it from Zenodo")
        root = check_data_dir(download_hc18(root, progress=not args.quiet))

    # 2. model: given, shipped, or trained here
    if args.checkpoint is not None:
        ckpt = args.checkpoint
    elif not trains:
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
        _claim_main_out(out)
        ckpt = _train(preset, out / f"train-{preset}", root=root, epochs=args.epochs,
                      quiet=args.quiet, overwrite=True)
        _say(f"      trained checkpoint: {ckpt}")
    predictor = Predictor.from_checkpoint(ckpt, tta=args.tta, review_below=args.review_below)
    _say(f"[2/4] model: {describe_model(predictor)}")

    # 3. held-out test split: metrics and figures
    _say("[3/4] evaluating on the held-out test split" + (f" (first {args.limit})" if args.limit else ""))
    df = evaluate_split(predictor, part="test", root=root, limit=args.limit,
                        progress=not args.quiet, batch_size=args.batch_size)
    _claim_main_out(out)
    with staged_dir(out) as stage:
        write_report(df, stage, predictor=predictor, root=root)

    # 4. the 335 official test images: challenge CSV
    _say("[4/4] predicting the 335 official test images")
    n_fallback = _write_submission(predictor, root, out / SUBMISSION_CSV, args.batch_size, args.quiet)

    table = summary_table(df)
    _say("")
    _say(table.to_string(float_format=lambda v: f"{v:.3f}"))
    _say(f"\nresults in {out}: metrics, figures/, submission.csv"
         + (f" ({n_fallback} fallback ellipses)" if n_fallback else ""))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else _default_out("benchmarks") / "results.json"
    check_output_file(out, args.overwrite)
    if args.cache is not None:
        check_input_file(args.cache, "--cache")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise FetalheadError("--device cuda: no CUDA device here")

    def write(res: dict) -> None:  # after every measurement: a run cut short keeps what it measured
        with atomic_file(out) as tmp:
            tmp.write_text(json.dumps(res, indent=2) + "\n")
        if "throughput" in res and not args.quiet:
            _say(f"[bench] {len(res['throughput'])} throughput rows -> {out}")

    if args.latency_only:
        res = latency_only(device=args.device, repeats=1 if args.quick else 10)  # quick: one timed run, a smoke test
        write({**res, **provenance(res["cpu"]), "cpu_bf16_units": cpu_has_bf16_units()})
        _say(format_latency(res))
    elif args.precision is not None:
        res = compare_precision(args.precision, args.device, args.steps, args.warmup, args.quick)
        write({**res, **provenance(res.get("device"))})
        _say(format_precision(res))
    else:
        res = run_benchmark(args.cache, args.steps, args.warmup, args.quick, args.target, args.cap,
                            args.compile, args.device, args.no_train, on_update=write)
        _say(format_table(res))
    _say(f"wrote {out}")
    return 0


#: what `fetalhead compare` writes into its folder
COMPARE_CSV, COMPARE_JSON, COMPARE_PLOT = "compare.csv", "compare.json", "bland_altman.png"


def _cmd_compare(args: argparse.Namespace) -> int:
    predictions = read_predictions(args.predictions)
    recorded = read_hc_csv(args.hc_csv)
    out: Path = args.out
    check_output_dir(out)
    refuse_overwrite([out / f for f in (COMPARE_CSV, COMPARE_JSON, COMPARE_PLOT, COMPARE_HTML)], args.overwrite)
    table = agreement_table(predictions, recorded, read_exams(args.hc_csv))
    if table.empty:
        raise FetalheadError(f"no image of {args.predictions} has an HC in {args.hc_csv} (names are matched "
                             "by file name, then stem)")
    summary = agreement_summary(table)
    not_recorded = len(predictions) - len(table)
    # the models that measured (predictions.csv names each row's; an older one names none)
    models = sorted(predictions["model"].dropna().astype(str).unique()) if "model" in predictions else []
    record = {"predictions": str(args.predictions), "recorded": str(args.hc_csv), "models": models, **summary,
              "n_not_recorded": not_recorded, "command": "fetalhead " + shlex.join(args.argv)}
    with staged_dir(out) as stage:
        table.to_csv(stage / COMPARE_CSV, index=False, float_format="%.6f")
        (stage / COMPARE_JSON).write_text(json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        save_figure(bland_altman(table["hc_pred_mm"], table["hc_true_mm"], reference="recorded"), COMPARE_PLOT, stage)
        lines = _compare_lines(summary, not_recorded, models)
        (stage / COMPARE_HTML).write_text(compare_html(lines, COMPARE_CSV, [COMPARE_PLOT]), encoding="utf-8")
    for line in lines:
        _say(line)
    _say(f"written to {out}: {COMPARE_HTML} (all in one page), {COMPARE_CSV} (per image), {COMPARE_JSON}, {COMPARE_PLOT}")
    return 0


def _compare_lines(summary: dict[str, Any], not_recorded: int, models: Sequence[str] = ()) -> list[str]:
    """What `fetalhead compare` says of an `agreement_summary`: its figures in a few lines, and
    the `models` that measured (their weights' names, from predictions.csv)."""
    def ci(d: dict, sign: str = "+") -> str:
        lo, hi = d["ci"]
        spread = f"[{lo:{sign}.2f}, {hi:{sign}.2f}]" if math.isfinite(lo) else "(no interval from one examination)"
        return f"{d['mean']:{sign}.2f} mm {spread}"

    abs_diff, loa, held, flag = (summary["hc_abs_diff_mm"], summary["limits_of_agreement_mm"],
                                 summary["interval"], summary["review_flag"])
    n, no_head = summary["n_images"], summary["n_no_head"]
    limits = (f"95 % limits of agreement {loa['low']:+.2f} to {loa['high']:+.2f} mm" if math.isfinite(loa["low"])
              else "no limits of agreement from one difference")
    lines = [f"{n} images with a recorded HC ({summary['n_exams']} examinations)"
             + (f", {no_head} without a head found (left out of the differences)" if no_head else "")
             + (f"; {not_recorded} measured without one, left out" if not_recorded else ""),
             f"HC mean absolute difference {ci(abs_diff, '')} "
             f"(median {abs_diff['median']:.2f}); mean difference (measured - recorded) {ci(summary['hc_diff_mm'])}; "
             f"{limits}",
             f"the recorded HC lies inside the measured HC's {100 * COVERAGE:g} % interval for {held['n_inside']} "
             f"of {held['n']} images ({100 * held['coverage']:.1f} %)",
             f"flagged for review or no head found: {flag['fraction_set_aside']:.1%} of the images, "
             f"{flag['gross_caught']} of the {flag['n_gross']} differences above {GROSS_ERROR_MM:g} mm (or without a head)"]
    if math.isfinite(flag["hc_abs_error_mm_kept"]):
        lines[-1] += f"; the others' mean absolute difference {flag['hc_abs_error_mm_kept']:.2f} mm"
    if models:
        lines.append(f"measured by {', '.join(models)}" if len(models) == 1
                     else f"measured by {len(models)} models: {', '.join(models)}")
    return lines


def _cmd_cards(args: argparse.Namespace) -> int:
    try:
        written = write_all()
    except (KeyError, IndexError, TypeError) as e:  # a stored record lacks what a card quotes
        raise FetalheadError("the stored results (results/, benchmarks/) lack what the cards quote: "
                             f"{type(e).__name__} {e}") from None
    for path in written:
        if not args.quiet:
            _say(f"wrote {path}")
    return 0


def model_lines(model: str, records: list[dict[str, Any]]) -> list[str]:
    """What `fetalhead models` says of the shipped model `model`: its network and where it
    trained (`describe_model`), its file, its held-out test figures from `records` (the
    stored evaluations of the weights shipped now; none when the repository's results/ is not
    there) and its card."""
    path = shipped_checkpoint(model)
    if not path.is_file():
        return [f"{model}: not shipped in this copy ({path} is missing)"]
    predictor = Predictor.from_checkpoint(path)
    best = " (the one used without --model)" if path == shipped_checkpoint() else ""
    flips = ", test-time flips" if predictor.tta else ""
    lines = [f"{model}{best}: {_network_line(predictor)}{flips}; review below quality {predictor.review_below:g}",
             f"  weights {path} ({path.stat().st_size / 2**20:.1f} MiB, {predictor.meta.get('dtype', 'fp16')}), "
             f"training run {predictor.weights}"]
    test = next((r for r in records if r["model"] == model and r["part"] == "test" and not r.get("tta")), None)
    if test is not None:
        m, flag = test["metrics"], test.get("review_flag") or {}
        hc, dice = m["hc_abs_error_mm"], m["ellipse_dice"]
        flagged = (f", {100 * flag['fraction_set_aside']:.1f} % flagged for review" if "fraction_set_aside" in flag
                   else "")
        lines.append(f"  held-out test part ({test['n_images']} images, {test['n_exams']} examinations): HC mean "
                     f"absolute difference {hc['mean']:.2f} mm [{hc['ci_low']:.2f}, {hc['ci_high']:.2f}], ellipse "
                     f"Dice {100 * dice['mean']:.2f} %{flagged} (results/{model}_test.json)")
    card = path.with_suffix(".md")
    if card.is_file():
        lines.append(f"  model card {card}")
    return lines


def _cmd_models(args: argparse.Namespace) -> int:
    records = current_results()
    for model in SHIPPED_MODELS:
        for line in model_lines(model, records):
            _say(line)
    return 0


_COMMANDS = {"download": _cmd_download, "prepare-cache": _cmd_prepare_cache, "train": _cmd_train,
             "export": _cmd_export, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
             "submit": _cmd_submit, "main": _cmd_main, "compare": _cmd_compare, "cards": _cmd_cards,
             "bench": _cmd_bench, "models": _cmd_models}


def run(args: argparse.Namespace) -> int:
    """Run the command `args.command` with the options `fetalhead.cli.build_parser` parsed;
    returns the exit code (0). Expected problems raise FetalheadError."""
    return int(_COMMANDS[args.command](args) or 0)
