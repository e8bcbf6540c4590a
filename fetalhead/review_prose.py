"""The prose on the review flag that the README and the model cards quote, from stored results.

Where each shipped model's threshold comes from (its calibration on the unlabelled challenge
images, `benchmarks/review_calibration.py`), what the out-of-fold predictions of the train part
say about the gross errors it misses (`benchmarks/out_of_fold.py`, `review_signals.py`), and the
shipped models as each other's second opinion (`benchmarks/second_opinion.py`). Every figure is
read from results/review/; `fetalhead.cards` puts the paragraphs in place.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fetalhead.errors import FetalheadError
from fetalhead.evaluate import GROSS_ERROR_MM
from fetalhead.paths import SHIPPED_MODELS
from fetalhead.quality import MAX_FLAGGED
from fetalhead.results import RESULTS_DIR, read_json

__all__ = ["CALIBRATION_FILE", "calibration", "review_figures", "review_limitation", "review_text", "threshold_rule", "wrap"]

#: the out-of-fold summaries the limitations quote (`benchmarks/out_of_fold.py`, `review_signals.py`)
OUT_OF_FOLD_FILE = "review/out_of_fold_small.json"
SIGNALS_FILE = "review/signals_small.json"
#: the shipped models as each other's second opinion on the test part (benchmarks/second_opinion.py)
SECOND_OPINION_FILE = "review/second_opinion_{model}_test.json"
#: each shipped model's review threshold from its own scores on the unlabelled challenge images
#: (benchmarks/review_calibration.py)
CALIBRATION_FILE = "review/calibration_{model}.json"

#: the labelled parts' names in sentences
PART_WORDS = {"train": "train", "val": "validation", "test": "test"}

#: a gross error whose mask fits its own ellipse at least this well (IoU) is a "clean ellipse"
CLEAN_ELLIPSE_IOU = 0.96


def review_figures(folder: Path | None = None) -> dict[str, Any]:
    """The out-of-fold figures the README and the cards quote, from the stored summaries and
    per-image rows in `folder` (default `RESULTS_DIR`): the flag at <= `MAX_FLAGGED` and at 0.5,
    how many gross errors are clean ellipses and on the largest fifth of heads, and the second
    opinions of `review_signals.py`."""
    folder = Path(folder) if folder is not None else RESULTS_DIR
    oof = read_json(folder / OUT_OF_FOLD_FILE)
    rows = pd.read_csv((folder / OUT_OF_FOLD_FILE).with_suffix(".csv"))
    signals = read_json(folder / SIGNALS_FILE)
    gross = rows["hc_abs_error_mm"] > GROSS_ERROR_MM
    large = rows["hc_true_mm"] > rows["hc_true_mm"].quantile(0.8)
    pair = {m: read_json(f) for m in SHIPPED_MODELS
            if (f := folder / SECOND_OPINION_FILE.format(model=m)).is_file()}
    return {"oof": oof, "flag": oof["review"][f"at most {MAX_FLAGGED:.0%} flagged"], "at_half": oof["review"]["at 0.5"],
            "n_gross": int(gross.sum()), "clean": int((gross & (rows["q_ellipse_iou"] >= CLEAN_ELLIPSE_IOU)).sum()),
            "large": int((gross & large).sum()), "signals": signals, "pair": pair}


def calibration(model: str, review_below: float | None = None, folder: Path | None = None) -> dict[str, Any] | None:
    """The stored calibration of shipped model `model`'s review threshold (results/review/
    calibration_<model>.json), or None when there is none. FetalheadError when `review_below`
    (the threshold its weights file carries) is given and differs from the stored one."""
    path = (Path(folder) if folder is not None else RESULTS_DIR) / CALIBRATION_FILE.format(model=model)
    if not path.is_file():
        return None
    record = read_json(path)
    if review_below is not None and record["review_below"] != review_below:
        raise FetalheadError(f"fetalhead_{model}.pt reviews below {review_below:g}, but {path.name} chose "
                             f"{record['review_below']:g}: re-export the weights with --review-below")
    return record


def threshold_rule(model: str, review_below: float) -> str:
    """The card's sentence on where its threshold comes from."""
    c = calibration(model, review_below)
    if c is None:
        return "the threshold its weights file carries"
    return (f"the largest threshold that flags at most {100 * c['max_flagged']:.0f} % of this model's own "
            f"predictions on HC18's {c['n_images']} unlabelled challenge images (no label read: "
            f"`benchmarks/review_calibration.py`; results/{CALIBRATION_FILE.format(model=model)})")


def wrap(text: str) -> str:
    """A Markdown bullet of `text` in lines of at most 95 characters; a number and its " %" stay on one line."""
    filled = textwrap.fill(" ".join(text.split()).replace(" %", "\0%"), width=95, initial_indent="- ",
                           subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
    return filled.replace("\0%", " %")


def _second_opinions(f: dict[str, Any]) -> str:
    second, caught = f["signals"]["second_model"], f["signals"]["caught"]
    alone = caught["quality score alone"]
    best = max(r["caught"] for k, r in caught.items() if k != "quality score alone")
    passes = f"a mirrored or a {f['signals']['rescale']:g}x larger pass"
    where = f"counted on folds the choice never saw; results/{SIGNALS_FILE}"
    verdict = (f"neither its disagreement nor that of {passes} catches more than the score alone "
               f"({alone['caught']} of {alone['n_gross']}, {where})" if best <= alone["caught"] else
               f"of its disagreement and that of {passes}, the best catches {best} of {alone['n_gross']} "
               f"against {alone['caught']} for the score alone ({where})")
    return (f"a second model of each fold, trained with another seed, made {second['n_gross']['both']} of the same "
            f"{second['n_gross']['first model']} gross errors (their HC errors correlate "
            f"{second['hc_error_correlation']:.2f}); joined to the score, {verdict}")


def _shipped_pair(f: dict[str, Any]) -> str:
    """A sentence on the shipped models as each other's second opinion on the test part ("" when
    neither is stored)."""
    if not f["pair"]:
        return ""

    def caught(s: dict[str, Any]) -> str:
        return f"{s['gross_caught']} of {s['n_gross']} with {100 * s['fraction_set_aside']:.1f} % flagged"

    parts = [f"`{m}` {caught(r['flag or second opinion'])} (the flag alone: {caught(r['flag alone'])})"
             for m, r in f["pair"].items()]
    files = ", ".join(f"results/{SECOND_OPINION_FILE.format(model=m)}" for m in f["pair"])
    first = next(iter(f["pair"].values()))
    return (f" The other shipped model as a second opinion, on the test part: flagging also where the two HCs differ "
            f"by more than {first['limit_mm']:g} mm catches for {', for '.join(parts)}; their HC errors correlate "
            f"{first['hc_error_correlation']:.2f} ({files}).")


def review_limitation(folder: Path | None = None) -> str:
    """The cards' limitations bullet on gross errors and the review flag (`review_figures`)."""
    f = review_figures(folder)
    flag = f["flag"]
    return wrap(
        "The mean is held down by a few hard images: on the test part most errors above 6 mm are "
        "large, late-gestation heads on coarse images (over- and under-measured). The review flag "
        "looks for them through the width of the undecided band in mm of HC, but most of them are "
        "clean ellipses a few per cent off: on out-of-fold predictions of the train part, a flag on "
        f"{flag['fraction_set_aside'] * 100:.0f} % of the images caught {flag['gross_caught']} of {flag['n_gross']} "
        f"gross errors (results/{OUT_OF_FOLD_FILE}). They are not chance: {_second_opinions(f)}. Look at each measurement: the per-image table of "
        "`fetalhead evaluate` shows the worst cases.")


def review_text(folder: Path | None = None, records: Sequence[dict[str, Any]] = ()) -> str:
    """The README's paragraph on the review flag and how its threshold was chosen (`review_figures`,
    the calibrations in `folder` and the evaluation `records` of the shipped weights)."""
    f = review_figures(folder)
    oof, flag, half = f["oof"], f["flag"], f["at_half"]
    return wrap(
        "Each measurement also gets a quality score and, below a threshold, the status `review` "
        "(`fetalhead.quality`; notebook 05 explains it). It flags malformed masks (two blobs, a "
        "ragged outline, a head cut by the border) and the measurements whose band of undecided "
        "pixels along the outline is wide in mm of HC: coarse images, mostly late-gestation heads, "
        f"where the network cannot place the outline finely enough. {_thresholds_text(folder, records)} On "
        f"{oof['n_images']} out-of-fold predictions of the train part ({oof['folds']} models of the {oof['preset']} "
        f"preset, each scoring the examinations it did not train on; benchmarks/README.md gives the commands, this "
        f"summary's is `{oof['command']}`), the largest threshold that flags at most {MAX_FLAGGED * 100:.0f} % of "
        f"them ({flag['review_below']:g}) caught {flag['gross_caught']} "
        f"of {flag['n_gross']} gross errors ({half['gross_caught']} of {half['n_gross']} at 0.5, flagging "
        f"{half['fraction_set_aside'] * 100:.1f} %): {f['clean']} of the {f['n_gross']} are clean ellipses a few "
        f"per cent off, which the shape of the mask does not reveal, and {f['large']} of the {f['n_gross']} are on "
        f"the largest fifth of heads. Nor does asking again: {_second_opinions(f)}.{_shipped_pair(f)} Gross errors are "
        f"|HC difference| > {GROSS_ERROR_MM:g} mm; the last column is what setting aside the truly worst "
        "images, as many as were flagged, would leave (test part; the model cards give the validation part):")


def _thresholds_text(folder: Path | None = None, records: Sequence[dict[str, Any]] = ()) -> str:
    """The README's sentences on the shipped models' thresholds and what they flag on the held-out
    parts (the evaluation `records` at those thresholds); "" when none is calibrated."""
    stored = {m: c for m in SHIPPED_MODELS if (c := calibration(m, folder=folder)) is not None}
    if not stored:
        return ""
    first = next(iter(stored.values()))
    each = ", ".join(f"{c['review_below']:g} for `{m}`" for m, c in stored.items())
    files = ", ".join(f"results/{CALIBRATION_FILE.format(model=m)}" for m in stored)
    text = (f"Each shipped model's threshold is the largest that flags at most {100 * first['max_flagged']:.0f} % "
            f"of its own predictions on HC18's {first['n_images']} unlabelled challenge images (no label read: "
            f"`benchmarks/review_calibration.py`): {each} ({files}); a stronger network is surer of itself, "
            f"and a threshold taken from weaker models flags fewer of its images.")
    held_out = []
    for m, c in stored.items():
        mine = sorted((r for r in records if r["model"] == m and not r["tta"]
                       and (r.get("review_flag") or {}).get("review_below") == c["review_below"]),
                      key=lambda r: r["part"] != "val")
        parts = [f"{100 * r['review_flag']['fraction_set_aside']:.1f} % of the {PART_WORDS[r['part']]} part "
                 f"({r['review_flag']['n_gross']} gross errors there)" for r in mine]
        if parts:
            held_out.append(f"`{m}` {' and '.join(parts)}")
    if held_out:
        text += f" On held-out images the same thresholds flag: {'; '.join(held_out)}."
    return text
