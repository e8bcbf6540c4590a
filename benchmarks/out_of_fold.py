"""Out-of-fold predictions on the train part: how models err on images they never saw, in
numbers large enough to choose quality-control signals on (the validation part of a good model
holds one or two gross errors; the test part must stay untouched).

The train part's examinations are dealt into K folds (both frames of an exam in one fold). For
each fold, a model of the chosen preset trains on the other folds for the given seconds
(validating on the val part, as every run does), and its last (averaged) weights segment the
held-out fold at original resolution, as `fetalhead evaluate` does. One CSV gathers every
fold's per-image rows: errors and quality signals, with the fold number (out_of_fold.csv, or
out_of_fold_tta.csv with the mirrored pass).

    python benchmarks/out_of_fold.py --folds 3 --seconds 1500 --out runs/oof

Stages: `--stage train` (the K models), `--stage evaluate` (the CSV), `--stage all` (both).
`--seed 1 --out runs/oof_seed1 --stage train` trains a second model per fold on the same folds
(for `benchmarks/review_signals.py`).
A fold whose last.pt exists is not trained again. `--quick` trains tiny models for seconds
(a CI test runs it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fetalhead.cache import ArraySet, load_arrays
from fetalhead.config import PRESETS, get_config
from fetalhead.data import image_path, load_image, read_image_table
from fetalhead.device import device_name, resolve_device
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.evaluate import GROSS_ERROR_MM, evaluate_split, flag_summary
from fetalhead.paths import data_dir
from fetalhead.predict import STATUS_NO_HEAD, STATUS_OK, STATUS_REVIEW, Predictor
from fetalhead.quality import MAX_FLAGGED, review_threshold
from fetalhead.results import check_new_results, provenance, write_results
from fetalhead.split import exam_order
from fetalhead.train import fit

OOF_CSV = "out_of_fold.csv"
BATCH = 8  #: images per forward pass in `held_out_passes`

#: per_batch(fold, its model, images uint8 (H, W), their pixel sizes mm) -> one dict per image
PerBatch = Callable[[int, Predictor, list[np.ndarray], list[float]], list[dict[str, float]]]


def held_out_parser(script: str, description: str) -> OneLineParser:
    """The options of a script that asks more of the fold models (--rows, --models, --data,
    --results), for `held_out_passes`; the script adds its own."""
    p = OneLineParser(prog=script, description=description)
    p.add_argument("--rows", type=Path, required=True, help="out_of_fold.py's per-image CSV")
    p.add_argument("--models", type=Path, default=Path("runs/oof"), help="out_of_fold.py's --out folder")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--results", type=Path, required=True, help="the summary JSON (the per-image CSV beside it)")
    return p


def held_out_passes(rows: Path, models: Path, root: Path, per_batch: PerBatch) -> pd.DataFrame:
    """The rows of this script's per-image CSV `rows` (filename, pixel_size_mm, fold ...) with
    the columns `per_batch` gives each image: every fold's model (`models`/fold<k>/last.pt,
    without flips) over the images it held out, read from `root` `BATCH` at a time, with a
    progress bar. For scripts that ask more of the fold models (review_signals.py,
    fit_variants.py). FetalheadError when `rows` or a model is missing, or `rows` lacks a column."""
    if not rows.exists():  # a folder is named as one by read_image_table
        raise FetalheadError(f"{rows}: no such file; run benchmarks/out_of_fold.py first")
    table = read_image_table(rows, ("fold", "pixel_size_mm"), "the per-image CSV of benchmarks/out_of_fold.py")
    frames = []
    for k, part in table.groupby("fold", sort=True):
        model = Predictor.from_checkpoint(models / f"fold{k}" / "last.pt", tta=False)
        names, sizes = list(part["filename"]), [float(px) for px in part["pixel_size_mm"]]
        out: list[dict[str, float]] = []
        with tqdm(total=len(names), desc=f"fold {k}", unit="image", dynamic_ncols=True) as bar:
            for start in range(0, len(names), BATCH):
                images = [load_image(image_path(n, root=root)) for n in names[start:start + BATCH]]
                out.extend(per_batch(int(k), model, images, sizes[start:start + BATCH]))
                bar.update(len(images))
        frames.append(part.assign(**pd.DataFrame(out, index=part.index)))
    return pd.concat(frames).sort_index()


def review_summary(table: pd.DataFrame, thresholds: dict[str, float]) -> dict:
    """For each named threshold: `flag_summary` of `table` with status "review" below it."""
    out = {}
    for name, t in thresholds.items():
        flagged = table["quality"].fillna(0.0) < t
        status = table["status"].where(table["status"] == STATUS_NO_HEAD, np.where(flagged, STATUS_REVIEW, STATUS_OK))
        out[name] = {"review_below": t, **flag_summary(table.assign(status=status))}
    return out


def fold_of_exams(exams: np.ndarray, folds: int, seed: int = 0) -> dict[int, int]:
    """Exam number -> fold in [0, folds): the sorted exams shuffled with `seed`, dealt in turn."""
    return {int(e): k % folds for k, e in enumerate(exam_order(np.asarray(exams, int), seed))}


def fold_sets(train: ArraySet, folds: int, seed: int = 0) -> list[tuple[ArraySet, list[str]]]:
    """For each fold: (the training images of the other folds, the held-out file names)."""
    assign = fold_of_exams(train.meta["exam"].to_numpy(), folds, seed)
    fold = train.meta["exam"].map(assign).to_numpy()
    return [(train.subset(fold != k), sorted(train.meta.loc[fold == k, "filename"])) for k in range(folds)]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1500.0, help="training seconds per fold")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--seed", type=int, default=None,
                   help="the models' seed (default: the preset's); the folds are dealt the same way whatever it is")
    p.add_argument("--out", type=Path, default=Path("runs/oof"))
    p.add_argument("--stage", choices=("train", "evaluate", "all"), default="all")
    p.add_argument("--tta", action="store_true", help="evaluate with the mirrored pass too")
    p.add_argument("--quick", action="store_true", help="tiny models and images (a test of the plumbing)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--results", type=Path, default=None, help="the summary JSON, with the per-image CSV beside it (default: the JSON beside runs' CSV)")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.folds < 2:
        raise FetalheadError(f"--folds must be at least 2, got {args.folds}")
    if args.results is not None and args.stage != "train":  # before hours of training
        check_new_results(args.results)
    root = data_dir(args.data)
    cfg = replace(get_config(args.preset, quick=args.quick or None), time_budget_s=args.seconds)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    limit = 24 if args.quick else None
    train = load_arrays("train", size=cfg.image_size, root=root, limit=limit, progress=False)
    sets = fold_sets(train, args.folds)
    if args.stage in ("train", "all"):
        val = load_arrays("val", size=cfg.image_size, root=root, limit=limit, progress=False)
        for k, (fold_train, held_out) in enumerate(sets):
            out = args.out / f"fold{k}"
            if (out / "last.pt").exists():
                print(f"fold {k}: {out / 'last.pt'} exists, not trained again", flush=True)
                continue
            print(f"fold {k}: training on {len(fold_train)} images, {len(held_out)} held out", flush=True)
            fit(cfg, fold_train, val, out, progress=not args.quick)
    if args.stage in ("evaluate", "all"):
        frames = []
        for k, (_, held_out) in enumerate(sets):
            predictor = Predictor.from_checkpoint(args.out / f"fold{k}" / "last.pt", tta=args.tta)
            df = evaluate_split(predictor, part="train", root=root, names=held_out, progress=not args.quick)
            frames.append(df.assign(fold=k))
        table = pd.concat(frames, ignore_index=True)
        path = args.out / (OOF_CSV.replace(".csv", "_tta.csv") if args.tta else OOF_CSV)
        table.to_csv(path, index=False)
        if args.results is not None:  # the per-image rows beside the stored summary
            table.to_csv(args.results.with_suffix(".csv"), index=False)
        gross = int((table["hc_abs_error_mm"] > GROSS_ERROR_MM).sum())
        print(f"{len(table)} held-out images, HC mean absolute difference "
              f"{table['hc_abs_error_mm'].mean():.2f} mm, {gross} off by > {GROSS_ERROR_MM:g} mm: {path}", flush=True)
        t10 = review_threshold(table["quality"])
        record = {"what": "out-of-fold predictions of the train part", "preset": args.preset,
                  "folds": args.folds, "seconds_per_fold": args.seconds, "tta": args.tta,
                  "n_images": len(table), "n_exams": int(table["exam"].nunique()),
                  "hc_abs_error_mm": float(table["hc_abs_error_mm"].mean()),
                  "command": "python benchmarks/out_of_fold.py " + " ".join(argv or sys.argv[1:]),
                  **provenance(device_name(resolve_device())),
                  "review": review_summary(table, {"at 0.5": 0.5, f"at most {MAX_FLAGGED:.0%} flagged": t10})}
        written = write_results(record, args.results or path.with_suffix(".json"))
        for name, r in record["review"].items():
            print(f"review below {r['review_below']:.2f} ({name}): {r['fraction_set_aside']:.1%} flagged, "
                  f"{r['gross_caught']} of {r['n_gross']} gross errors: {written}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
