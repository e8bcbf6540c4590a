"""Held-out evaluation at original resolution, bootstrap confidence intervals, the report,
and the HC18 challenge submission.

Every score is computed on the image's own pixel grid (HC18: 540 x 800) against the filled
annotation (`fetalhead.data.load_mask`), with the CSV pixel size for the millimetre metrics.
HC is compared with the CSV column (the challenge's ground truth), not with a value derived
from the mask.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from fetalhead.biometry import diameter_errors, diameters
from fetalhead.data import (
    annotation_path,
    image_path,
    load_image,
    load_pair,
    parse_filename,
    read_test_csv,
    read_training_csv,
)
from fetalhead.ellipse import (
    SUBMISSION_COLUMNS,
    Ellipse,
    annotation_bias_mm,
    challenge_row,
    ellipse_dice,
    ellipse_hausdorff_px,
    fit_ellipse,
    hc_from_mask,
    head_ellipse,
)
from fetalhead.errors import FetalheadError
from fetalhead.folder import exam_of
from fetalhead.gallery import GALLERY_HTML, report_html
from fetalhead.interval import interval_summary
from fetalhead.metrics import METRICS, score_pair, summarize
from fetalhead.paths import data_dir
from fetalhead.predict import STATUS_NO_HEAD, Predictor
from fetalhead.quality import ROW_COLUMNS
from fetalhead.split import LABELLED_PARTS, load_split
from fetalhead.viz import save_figure

__all__ = [
    "DIAMETER_COLUMNS",
    "DIAMETER_METRICS",
    "ELLIPSE_METRICS",
    "EVAL_COLUMNS",
    "FALLBACK_THRESHOLDS",
    "GROSS_ERROR_MM",
    "REPORT_FILES",
    "SUMMARY_METRICS",
    "bootstrap_ci",
    "check_submission",
    "ellipse_scores",
    "evaluate_folder",
    "evaluate_split",
    "flag_summary",
    "predict_challenge",
    "report_files",
    "risk_coverage",
    "summary_table",
    "write_report",
]

#: The ellipse metrics: predicted head ellipse vs the annotation's, as HC18 scores a submission.
ELLIPSE_METRICS = ("ellipse_dice", "ellipse_hausdorff_mm")
#: Head diameters against the annotation ellipse's (`fetalhead.biometry.diameter_errors`): BPD
#: and OFD (mm), cephalic index (points), each with the reference value, signed and absolute.
DIAMETER_COLUMNS = ("bpd_true_mm", "bpd_error_mm", "bpd_abs_error_mm", "ofd_true_mm", "ofd_error_mm",
                    "ofd_abs_error_mm", "cephalic_index_true", "cephalic_index_error", "cephalic_index_abs_error")
#: The diameter rows of `summary_table`: mean absolute and signed differences.
DIAMETER_METRICS = ("bpd_abs_error_mm", "bpd_error_mm", "ofd_abs_error_mm", "ofd_error_mm",
                    "cephalic_index_abs_error")
#: Columns of `evaluate_split`'s table, one row per image.
EVAL_COLUMNS = ["filename", "exam", "pixel_size_mm", *ELLIPSE_METRICS, *METRICS, "hc_pred_mm",
                "hc_true_mm", "hc_error_mm", "hc_abs_error_mm", *DIAMETER_COLUMNS, "status", *ROW_COLUMNS]
#: Rows of `summary_table`: ellipse metrics, mask metrics, HC |pred - CSV| and pred - CSV (mm),
#: then the head diameters'.
SUMMARY_METRICS = [*ELLIPSE_METRICS, *METRICS, "hc_abs_error_mm", "hc_error_mm", *DIAMETER_METRICS]
#: Files `write_report` writes, relative to its folder (figure names are stable).
REPORT_FILES = ("metrics_per_image.csv", "summary.csv", "summary.json", "index.html",
                "figures/eval_examples.png", "figures/eval_bland_altman.png",
                "figures/eval_dice.png")
#: Lower thresholds tried for a challenge image where 0.5 finds no head (see predict_challenge).
FALLBACK_THRESHOLDS = (0.3, 0.1)


def report_files() -> tuple[str, ...]:
    """Relative paths `write_report` creates (for overwrite checks)."""
    return REPORT_FILES


def _chunks(n: int, size: int):
    return range(0, n, max(int(size), 1))


def evaluate_split(predictor: Predictor, part: str = "test", root: str | os.PathLike | None = None,
                   limit: int | None = None, progress: bool = True, batch_size: int = 8,
                   names: Sequence[str] | None = None) -> pd.DataFrame:
    """Segment and score the labelled images of one part of the committed split.

    Args:
        predictor: a loaded `Predictor`.
        part: "test" (held out), "val" or "train".
        root: HC18 folder (default `fetalhead.paths.data_dir()`).
        limit: score only the first `limit` images (by file name).
        names: score only these file names, each of which must be in `part`.
    Returns:
        DataFrame with `EVAL_COLUMNS`, one row per image of the part (all of them, or the
        first `limit`): the exam number; the ellipse metrics, which compare the predicted head
        ellipse with the ellipse fitted to the annotation, both shrunk to the drawn line's
        centre (`fetalhead.ellipse.head_ellipse`), as Dice of the two filled ellipses and
        Hausdorff distance between the two curves in mm (how HC18 scores a submission); the
        mask metrics (largest predicted component vs the filled annotation): Dice, IoU,
        pixel accuracy, Hausdorff and ASSD in mm; predicted and CSV HC (mm), their signed and
        absolute difference (pred - CSV, mm) and the status ("ok", "review" or "no head found") with the quality columns. An
        image with no head found scores Dice 0 and ellipse Dice 0; its distances and HC are
        NaN (left out of their means, and counted by `summary_table`'s n).
    """
    if part not in LABELLED_PARTS:
        raise FetalheadError(f"unknown part {part!r}; choose {', '.join(LABELLED_PARTS)}")
    root = data_dir(root)
    split = load_split(root=root)
    table = read_training_csv(root).set_index("filename")
    in_part = sorted(n for n in split.loc[split["split"] == part, "filename"] if n in table.index)
    if names is not None:
        outside = sorted(set(names) - set(in_part))
        if outside:
            raise FetalheadError(f"{len(outside)} of the names are not labelled images of part {part!r}, "
                                 f"e.g. {outside[0]}")
    names = in_part if names is None else sorted(set(names))
    if limit is not None:
        names = names[:limit]
    if not names:
        raise FetalheadError(f"no images of split part {part!r} in {root}")
    items = [(n, image_path(n, root=root), annotation_path(n, root), float(table.at[n, "pixel_size_mm"]),
              float(table.at[n, "hc_mm"]), parse_filename(n)[0]) for n in names]
    return _score_items(predictor, items, f"evaluate {part}", progress, batch_size)


def evaluate_folder(predictor: Predictor, images: Sequence[Path], masks: Sequence[Path],
                    pixel_sizes: Sequence[float], progress: bool = True, batch_size: int = 8) -> pd.DataFrame:
    """Segment and score your own labelled images, as `evaluate_split` scores HC18's.

    Args:
        predictor: a loaded `Predictor`.
        images, masks: image files and their masks (same size; filled, or an ellipse outline
            that is filled, as HC18's annotations are read by `fetalhead.data.load_mask`).
        pixel_sizes: mm per pixel of each image.
    Returns:
        DataFrame with `EVAL_COLUMNS`, one row per image. The reference HC (`hc_true_mm`) is
        the circumference of the ellipse fitted to the mask, on the same footing as the
        predicted one (`hc_from_mask` less `annotation_bias_mm`: masks drawn like HC18's, the
        outline's line included). `exam`: `fetalhead.folder.exam_of` (HC18-style names, else
        each image its own examination), which the intervals resample.
    """
    if not (len(images) == len(masks) == len(pixel_sizes)):
        raise FetalheadError(f"{len(images)} images, {len(masks)} masks and {len(pixel_sizes)} pixel sizes")
    if not images:
        raise FetalheadError("no images to score")
    items = [(Path(img).name, Path(img), Path(mask), float(px), None, exam_of(Path(img).name, i)[0])
             for i, (img, mask, px) in enumerate(zip(images, masks, pixel_sizes, strict=True))]
    return _score_items(predictor, items, "evaluate", progress, batch_size)


def _score_items(predictor: Predictor, items: list[tuple[str, Path, Path, float, float | None, int]],
                 desc: str, progress: bool, batch_size: int) -> pd.DataFrame:
    """`EVAL_COLUMNS` rows of (name, image file, mask file, pixel size mm, reference HC mm or
    None for the mask's own, exam), predicted in batches."""
    rows = []
    bar = tqdm(total=len(items), desc=desc, unit="image", disable=not progress, dynamic_ncols=True)
    for start in _chunks(len(items), batch_size):
        chunk = items[start:start + batch_size]
        pairs = [load_pair(image, mask) for _, image, mask, *_ in chunk]
        preds = predictor.predict_batch([im for im, _ in pairs], [it[3] for it in chunk], batch_size=batch_size)
        for (name, _, mask_file, px, true_hc, exam), (_, gt), pred in zip(chunk, pairs, preds, strict=True):
            if true_hc is None:
                true_hc = hc_from_mask(gt, px, bias_mm=float(annotation_bias_mm(px)))
                if not math.isfinite(true_hc):
                    raise FetalheadError(f"mask {mask_file}: no ellipse in it to compare with")
            err = pred.hc_mm - true_hc
            try:
                scores = ellipse_scores(pred.head_ellipse, gt, px)
            except FetalheadError as e:
                raise FetalheadError(f"{mask_file}: {e}") from None
            rows.append({"filename": name, "exam": exam, "pixel_size_mm": px,
                         **scores, **score_pair(pred.mask, gt, px),
                         "hc_pred_mm": pred.hc_mm, "hc_true_mm": true_hc, "hc_error_mm": err,
                         "hc_abs_error_mm": abs(err), "status": pred.status,
                         **(pred.quality.to_row() if pred.quality else {"quality": float("nan")})})
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def ellipse_scores(pred: Ellipse | None, gt_mask: np.ndarray, pixel_size_mm: float) -> dict[str, float]:
    """`ELLIPSE_METRICS` and `DIAMETER_COLUMNS` of a predicted head ellipse (pixels, None when
    no head) against the filled annotation `gt_mask` (H, W): its fitted ellipse shrunk by
    `head_ellipse`."""
    ref = fit_ellipse(gt_mask)
    if ref is None:
        raise FetalheadError("the annotation has no ellipse to compare with")
    ref = head_ellipse(ref)
    px = float(pixel_size_mm)
    sizes = diameter_errors(diameters(pred.to_mm(px)) if pred is not None else diameters(None),
                            diameters(ref.to_mm(px)))
    if pred is None:
        return {"ellipse_dice": 0.0, "ellipse_hausdorff_mm": float("nan"), **sizes}
    return {"ellipse_dice": ellipse_dice(pred, ref, gt_mask.shape),
            "ellipse_hausdorff_mm": ellipse_hausdorff_px(pred, ref) * px, **sizes}


def bootstrap_ci(values: ArrayLike, n: int = 2000, seed: int = 0, alpha: float = 0.05,
                 groups: ArrayLike | None = None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the MEAN of `values` (NaNs dropped).

    Resamples with replacement `n` times (numpy Generator seeded with `seed`) and returns the
    alpha/2 and 1 - alpha/2 quantiles of the resampled means (Efron & Tibshirani 1993, "An
    Introduction to the Bootstrap", ch. 13). With `groups` (one label per value, e.g. the
    exam), whole groups are resampled and each resample's mean is over all its values: frames
    of one examination are not independent, so this interval is the honest, wider one.
    (nan, nan) when fewer than two values (or groups) are finite: one cannot vary.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(v)
    if not keep.any():
        return float("nan"), float("nan")
    if not 0 < alpha < 1 or n < 1:
        raise FetalheadError(f"bootstrap_ci needs 0 < alpha < 1 and n >= 1, got alpha={alpha}, n={n}")
    if groups is None:
        sums, counts = v[keep], np.ones(int(keep.sum()))
    else:
        g = np.asarray(groups).ravel()
        if g.shape != v.shape:
            raise FetalheadError(f"bootstrap_ci: {g.size} group labels for {v.size} values")
        _, inverse = np.unique(g[keep], return_inverse=True)
        sums, counts = np.bincount(inverse, weights=v[keep]), np.bincount(inverse).astype(np.float64)
    if sums.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    m = sums.size
    means = np.empty(n)
    step = max(1, 2_000_000 // m)  # bounded memory: about 2M indices at a time
    for i in range(0, n, step):
        k = min(step, n - i)
        idx = rng.integers(0, m, size=(k, m))
        means[i:i + k] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summary_table(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Mean, std, median, bootstrap CI of the mean, n images and n exams (finite values) per metric.

    Rows: `SUMMARY_METRICS` present in `df`: hc_abs_error_mm is the mean absolute difference
    of HC against the CSV, hc_error_mm the mean signed difference (pred - CSV, bias), both mm.
    With an "exam" column the interval resamples examinations (`bootstrap_ci`'s groups).
    NaN values (no head found: distances and HC) are left out; n says how many remain.
    """
    columns = [c for c in SUMMARY_METRICS if c in df.columns]
    table = summarize(df, columns)
    groups = df["exam"].to_numpy() if "exam" in df.columns else None
    cis = [bootstrap_ci(df[c], n=n_boot, seed=seed, alpha=alpha, groups=groups) for c in columns]
    table.insert(3, "ci_low", [lo for lo, _ in cis])
    table.insert(4, "ci_high", [hi for _, hi in cis])
    if groups is not None:
        finite = df[columns].astype(float).notna()
        table["n_exams"] = [int(df.loc[finite[c], "exam"].nunique()) for c in columns]
    return table


GROSS_ERROR_MM = 6.0  #: |HC error| above this (about 3x the inter-observer difference) is gross


def risk_coverage(df: pd.DataFrame, score: str = "quality") -> pd.DataFrame:
    """HC error against the share of images kept when the lowest-`score` ones are set aside.

    Returns one row per number kept (most confident first): coverage (fraction kept), the
    mean |HC error| (mm) of the kept images, and the same when the truly worst are set aside
    instead (the oracle, the best any score could do). Images with no head are never kept.
    """
    d = df[np.isfinite(df["hc_abs_error_mm"].astype(float))]
    n_all = len(df)
    by_score = d.sort_values(score, ascending=False, kind="stable")["hc_abs_error_mm"].to_numpy(float)
    by_error = np.sort(d["hc_abs_error_mm"].to_numpy(float))
    k = np.arange(1, len(d) + 1)
    return pd.DataFrame({"coverage": k / n_all, "hc_abs_error_mm": np.cumsum(by_score) / k,
                         "oracle_hc_abs_error_mm": np.cumsum(by_error) / k})


def flag_summary(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, float | int]:
    """How well the review flag ("review" status) separates bad measurements, for a table of
    `evaluate_split`: fraction flagged, gross errors (|HC error| > GROSS_ERROR_MM) and the
    share of them flagged (or with no head found), the mean |HC error| (mm) of the unflagged
    images with its exam-bootstrap interval, and what setting aside the truly worst images of
    the same number would leave (the oracle)."""
    from fetalhead.predict import STATUS_OK, STATUS_REVIEW

    err = df["hc_abs_error_mm"].astype(float)
    ok = (df["status"] == STATUS_OK).to_numpy()
    gross = (~np.isfinite(err) | (err > GROSS_ERROR_MM)).to_numpy()
    kept = err[ok]
    lo, hi = bootstrap_ci(kept, n=n_boot, seed=seed, groups=df.loc[ok, "exam"] if "exam" in df else None)
    n_set_aside = int((~ok).sum())
    oracle = np.sort(err[np.isfinite(err)].to_numpy())[: max(len(df) - n_set_aside, 0)]
    return {
        "n_images": int(len(df)),
        "n_review": int((df["status"] == STATUS_REVIEW).sum()),
        "fraction_set_aside": n_set_aside / max(len(df), 1),
        "n_gross": int(gross.sum()),
        "gross_caught": int((gross & ~ok).sum()),
        "share_gross_caught": float((gross & ~ok).sum() / gross.sum()) if gross.any() else float("nan"),
        "hc_abs_error_mm_kept": float(kept.mean()) if len(kept) else float("nan"),
        "hc_abs_error_mm_kept_ci": (lo, hi),
        "hc_abs_error_mm_all": float(err.mean()),
        "hc_abs_error_mm_oracle": float(oracle.mean()) if len(oracle) else float("nan"),
    }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, predictor: Predictor | None = None,
                 root: str | os.PathLike | None = None,
                 files: Mapping[str, tuple[Path, Path]] | None = None) -> dict[str, Path]:
    """Write `REPORT_FILES` into `out_dir`: the per-image table, the summary (CSV and JSON),
    its HTML page (`fetalhead.gallery.report_html`) and the figures (examples only when `predictor` is given: it re-predicts 3 images, HC18's
    under `root`, or `files`: {file name: (image file, mask file)} for `evaluate_folder`'s
    table, whose reference HC is the mask's). Returns {relative name: path}."""
    from fetalhead import report

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def keep(name: str) -> Path:
        written[name] = out / name
        return out / name

    df.to_csv(keep("metrics_per_image.csv"), index=False)
    table = summary_table(df)
    table.to_csv(keep("summary.csv"), index_label="metric")
    summary = {
        "n_images": int(len(df)),
        "n_no_head": int((df["status"] == STATUS_NO_HEAD).sum()),
        "alpha": 0.05,
        "checkpoint": str(predictor.checkpoint) if predictor is not None and predictor.checkpoint else None,
        # the weights measured, by the training run its checkpoint records (None: not known)
        "training_run": predictor.meta.get("training_run") if predictor is not None else None,
        "tta": bool(predictor.tta) if predictor is not None else None,
        "metrics": {m: {k: _finite_or_none(v) for k, v in row.items()} for m, row in table.iterrows()},
        "hc_interval": interval_summary(df),  # how often each HC's 90 % interval holds the reference
    }
    keep("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    reference = "CSV" if files is None else "mask"
    figures = {
        "figures/eval_bland_altman.png": report.bland_altman(df["hc_pred_mm"], df["hc_true_mm"], reference=reference),
        "figures/eval_dice.png": report.dice_histogram(df["dice"]),
    }
    if predictor is not None:
        figures["figures/eval_examples.png"] = report.prediction_examples(df, predictor, root=root, files=files,
                                                                          reference=reference)
    for name, fig in figures.items():
        save_figure(fig, Path(name).name, out_dir=out / "figures", dpi=120)
        written[name] = out / name
    order = [f for f in REPORT_FILES if f in figures]  # examples, then agreement, then Dice
    keep(GALLERY_HTML).write_text(report_html(summary, order), encoding="utf-8")
    return written


def _fallback_ellipse(shape: tuple[int, int]) -> Ellipse:
    """A centred ellipse with semi-axes W/4 and H/4 pixels: for HC18's 800 x 540 images a
    perimeter of 1062 px, about 135 mm at the median pixel size (the median HC is 174 mm)."""
    h, w = shape
    return Ellipse((w - 1) / 2, (h - 1) / 2, max(w, h) / 4, min(w, h) / 4, 0.0 if w >= h else math.pi / 2)


def predict_challenge(predictor: Predictor, root: str | os.PathLike | None = None,
                      limit: int | None = None, progress: bool = True,
                      batch_size: int = 8) -> pd.DataFrame:
    """The HC18 challenge submission for the official test images (335 rows).

    Columns `SUBMISSION_COLUMNS`: centre (mm, x = column, y = row from the top-left pixel
    centre), semi-axes a >= b (mm, bias-corrected), angle (radians in [0, pi)). The challenge
    needs a row per image, so where no head is found at threshold 0.5 the lower
    `FALLBACK_THRESHOLDS` are tried, and failing those a centred prior ellipse
    (`_fallback_ellipse`) is used. `df.attrs["status"]` lists "ok", "low threshold" or
    "prior" per row and `df.attrs["n_fallback"]` counts the rows that are not "ok".
    """
    root = data_dir(root)
    table = read_test_csv(root)
    if limit is not None:
        table = table.head(limit)
    rows, status = [], []
    bar = tqdm(total=len(table), desc="challenge", unit="image", disable=not progress, dynamic_ncols=True)
    for start in _chunks(len(table), batch_size):
        chunk = table.iloc[start:start + batch_size]
        images = [load_image(image_path(n, test_set=True, root=root)) for n in chunk["filename"]]
        probs = predictor.probabilities(images)
        for name, px, image, prob in zip(chunk["filename"], chunk["pixel_size_mm"], images, probs, strict=True):
            pred, how = predictor.measure(prob, px), "ok"
            for t in FALLBACK_THRESHOLDS:
                if pred.status != STATUS_NO_HEAD:
                    break
                pred, how = predictor.measure(prob, px, threshold=t), "low threshold"
            ellipse = pred.head_ellipse
            if ellipse is None:
                ellipse, how = _fallback_ellipse(image.shape), "prior"
            rows.append(challenge_row(name, ellipse, px))
            status.append(how)
        bar.update(len(chunk))
    bar.close()
    df = pd.DataFrame(rows, columns=list(SUBMISSION_COLUMNS))
    df.attrs["status"] = status
    df.attrs["n_fallback"] = sum(s != "ok" for s in status)
    return df


def check_submission(df: pd.DataFrame, root: str | os.PathLike | None = None) -> None:
    """Raise FetalheadError unless `df` is a complete, well-formed challenge submission: the
    exact columns, one row per image of the test CSV in its order, finite values, semi-axes
    a >= b > 0 and angles in [0, pi)."""
    if list(df.columns) != list(SUBMISSION_COLUMNS):
        raise FetalheadError(f"submission columns {list(df.columns)} != {list(SUBMISSION_COLUMNS)}")
    expected = list(read_test_csv(root)["filename"])
    if list(df["filename"]) != expected:
        raise FetalheadError(f"submission has {len(df)} rows; expected the {len(expected)} test "
                             "images in the order of test_set_pixel_size.csv")
    values = df[list(SUBMISSION_COLUMNS[1:])].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise FetalheadError("submission has non-finite values")
    a, b, angle = values[:, 2], values[:, 3], values[:, 4]
    if not ((b > 0) & (a >= b)).all():
        raise FetalheadError("submission semi-axes must satisfy a >= b > 0")
    if not ((angle >= 0) & (angle < math.pi)).all():
        raise FetalheadError("submission angles must lie in [0, pi)")
