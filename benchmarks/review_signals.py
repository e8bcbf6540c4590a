"""Would disagreement reveal a gross error? Extra passes over the out-of-fold predictions.

The review flag misses measurements that are clean ellipses a few per cent off (the out-of-fold
rows of `benchmarks/out_of_fold.py`). This script asks whether the model, asked again, would
disagree with itself there. For each fold model and each image it held out, HC (mm) of:

- the horizontally mirrored image (`mirrored_hc_mm`: |HC - HC of the plain pass|);
- the image at 1.25 x the network's size (`rescaled_hc_mm`);
- with `--second DIR`, a second model of the same fold trained with another seed
  (`out_of_fold.py --seed 1 --out DIR --stage train`): `second_model_hc_mm`.

For each signal: its AUC for a gross error (|HC difference| > 6 mm) and, joined to the quality
score as min(score, 1 - signal / F), the gross errors caught when flagging at most 10 %, counted
fold by fold (the threshold chosen on the other folds, F on their own inner folds, so nothing
is counted on the images it was chosen on).

    python benchmarks/review_signals.py --rows results/review/out_of_fold_small.csv \\
        --models runs/oof --second runs/oof_seed1 --results results/review/signals_small.json
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import data_dir
from fetalhead.device import device_name, resolve_device
from fetalhead.errors import run_script
from fetalhead.evaluate import GROSS_ERROR_MM
from fetalhead.predict import Predictor
from fetalhead.quality import MAX_FLAGGED, review_threshold
from fetalhead.results import check_new_results, provenance, write_results

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script out_of_fold.py
from out_of_fold import held_out_parser, held_out_passes  # noqa: E402

#: the ends F (mm) tried for a signal's scale, 1 - signal / F; inf (the signal left out) comes
#: first, so a scale is taken only where it catches more than the score alone
F_GRID_MM = (float("inf"), 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
RESCALE = 1.25  #: the second network size, as a multiple of the trained one


def auc(positive: np.ndarray, signal: np.ndarray) -> float:
    """Area under the ROC curve of `signal` (N,) for the boolean labels `positive` (N,): the
    chance that a positive scores higher than a negative (ties count half)."""
    pos = np.asarray(positive, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(signal, float)).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _gross(table: pd.DataFrame) -> np.ndarray:
    """Per row: |HC difference| > `GROSS_ERROR_MM`, or no head found (as `flag_summary` counts)."""
    err = table["hc_abs_error_mm"].to_numpy(float)
    return ~np.isfinite(err) | (err > GROSS_ERROR_MM)


def joined_score(score: np.ndarray, signal: np.ndarray, f_mm: float) -> np.ndarray:
    """min(score, 1 - signal / f_mm) clipped to [0, 1], per image (N,); NaN scores count as 0."""
    s = np.nan_to_num(np.asarray(score, float), nan=0.0)
    if not np.isfinite(f_mm):
        return s
    return np.minimum(s, np.clip(1.0 - np.asarray(signal, float) / f_mm, 0.0, 1.0))


def _caught(score: np.ndarray, gross: np.ndarray, fit: np.ndarray, count: np.ndarray,
            max_flagged: float) -> tuple[int, int]:
    """(gross errors flagged, images flagged) among `count` with the threshold chosen on `fit`."""
    t = review_threshold(score[fit], max_flagged)
    flagged = count & (score < t)
    return int((flagged & gross).sum()), int(flagged.sum())


def nested_catches(table: pd.DataFrame, signal: str | None, max_flagged: float = MAX_FLAGGED,
                   grid: tuple[float, ...] = F_GRID_MM) -> dict:
    """Gross errors caught on each held-out fold of `table` (columns quality, hc_abs_error_mm,
    fold and `signal`) by min(quality, 1 - signal / F): F chosen on the other folds by their own
    fold-by-fold catches, the threshold at their `max_flagged` quantile. `signal` None: the
    quality score alone."""
    folds = table["fold"].to_numpy()
    gross = _gross(table)
    quality = table["quality"].to_numpy(float)
    values = np.zeros(len(table)) if signal is None else table[signal].fillna(np.inf).to_numpy(float)
    choices = grid if signal is not None else (float("inf"),)
    out = {"caught": 0, "flagged": 0, "n_gross": int(gross.sum()), "n_images": len(table), "folds": []}
    for k in np.unique(folds):
        rest = folds != k
        inner = {f: sum(_caught(joined_score(quality, values, f), gross, rest & (folds != j), folds == j,
                                max_flagged)[0] for j in np.unique(folds[rest])) for f in choices}
        best = max(choices, key=inner.get)  # the first of equals
        caught, flagged = _caught(joined_score(quality, values, best), gross, rest, folds == k, max_flagged)
        out["caught"] += caught
        out["flagged"] += flagged
        out["folds"].append({"fold": int(k), "f_mm": best if np.isfinite(best) else None,
                             "caught": caught, "flagged": flagged, "n_gross": int(gross[folds == k].sum()),
                             "n_images": int((folds == k).sum())})
    return out


def extra_passes(predictor: Predictor, images: list[np.ndarray], pixel_sizes: list[float],
                 second: Predictor | None = None) -> list[dict[str, float]]:
    """Per image: HC (mm) of the mirrored image, at `RESCALE` x the network size, and of the
    `second` model (NaN without one)."""
    h, w = predictor.image_size
    big = copy.copy(predictor)  # the same network and settings, another input size
    big.image_size = (round(h * RESCALE), round(w * RESCALE))
    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    rows = [{"hc_mirrored_mm": a.hc_mm, "hc_rescaled_mm": b.hc_mm}
            for a, b in zip(predictor.predict_batch(mirrored, pixel_sizes),
                            big.predict_batch(images, pixel_sizes), strict=True)]
    seconds = second.predict_batch(images, pixel_sizes) if second is not None else [None] * len(images)
    for row, p in zip(rows, seconds, strict=True):
        row["hc_second_mm"] = p.hc_mm if p is not None else float("nan")
    return rows


SIGNALS = {"mirrored_hc_mm": "hc_mirrored_mm", "rescaled_hc_mm": "hc_rescaled_mm",
           "second_model_hc_mm": "hc_second_mm"}


def main(argv: list[str] | None = None) -> int:
    p = held_out_parser(Path(__file__).name, __doc__.split("\n\n")[0])
    p.add_argument("--second", type=Path, default=None, help="the same folds' models of another seed or preset")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)
    second_models: dict[int, Predictor] = {}  # of each fold, loaded once

    def per_batch(fold: int, model: Predictor, images: list[np.ndarray], sizes: list[float]) -> list[dict[str, float]]:
        if args.second is not None and fold not in second_models:
            second_models[fold] = Predictor.from_checkpoint(args.second / f"fold{fold}" / "last.pt", tta=False)
        return extra_passes(model, images, sizes, second_models.get(fold))

    table = held_out_passes(args.rows, args.models, data_dir(args.data), per_batch)
    for signal, column in SIGNALS.items():
        table[signal] = (table[column] - table["hc_pred_mm"]).abs()
    gross = _gross(table)
    present = [s for s in SIGNALS if s != "second_model_hc_mm" or args.second is not None]
    record = {
        "what": "disagreement of extra passes as a review signal, on out-of-fold predictions",
        "n_images": len(table), "n_gross": int(gross.sum()), "max_flagged": MAX_FLAGGED, "rescale": RESCALE,
        "auc": {s: auc(gross, table[s].fillna(np.inf)) for s in [*present, "q_hc_band_mm"]},
        "median_mm": {s: {"all": float(table[s].median()), "gross": float(table.loc[gross, s].median())}
                      for s in present},
        "caught": {"quality score alone": nested_catches(table, None),
                   **{f"quality score and {s}": nested_catches(table, s) for s in present}},
        "command": "python benchmarks/review_signals.py " + " ".join(argv or sys.argv[1:]),
        **provenance(device_name(resolve_device())),
    }
    if "second_model_hc_mm" in present:
        second_error = table["hc_second_mm"] - table["hc_true_mm"]
        both = (table["hc_pred_mm"] + table["hc_second_mm"]) / 2
        gross_second = _gross(table.assign(hc_abs_error_mm=second_error.abs()))
        record["second_model"] = {
            "hc_abs_error_mm": {"first model": float(table["hc_abs_error_mm"].mean()),
                                "second model": float(second_error.abs().mean()),
                                "mean of the two": float((both - table["hc_true_mm"]).abs().mean())},
            "hc_error_correlation": float(table["hc_error_mm"].corr(second_error)),
            "n_gross": {"first model": int(gross.sum()), "second model": int(gross_second.sum()),
                        "both": int((gross & gross_second).sum())}}
    written = write_results(record, args.results)
    table.to_csv(Path(written).with_suffix(".csv"), index=False)
    for name, r in record["caught"].items():
        print(f"{name}: {r['caught']} of {r['n_gross']} gross errors caught, {r['flagged']} of "
              f"{r['n_images']} flagged (fold by fold)", flush=True)
    print("AUC for a gross error: " + ", ".join(f"{s} {v:.2f}" for s, v in record["auc"].items())
          + f": {written}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
