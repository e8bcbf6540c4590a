"""Stored results: one JSON file per model and split part, saying where each figure came from.

`fetalhead evaluate --results results/default_test.json` writes one (the summary of
`fetalhead.evaluate.summary_table` plus the command, machine, date and commit); the README's
results table is `results_table(load_results())`, and a test checks that they agree, so no
figure there is typed by hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file, check_output_file
from fetalhead.paths import SHIPPED_MODELS, repo_root

__all__ = ["RESULTS_DIR", "TABLE_COLUMNS", "check_new_results", "json_safe", "kept_epoch", "load_results", "measured_weights", "metric_cell",
           "provenance", "read_json", "results_record", "results_table", "training_run", "training_summary",
           "write_results"]

#: where the stored results live in a checkout
RESULTS_DIR = (repo_root() or Path.cwd()) / "results"
#: README table: (header, metric, scale, decimals); scale 100 shows a fraction in %
TABLE_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("ellipse Dice %", "ellipse_dice", 100.0, 2),
    ("ellipse Hausdorff mm", "ellipse_hausdorff_mm", 1.0, 2),
    ("mask Dice %", "dice", 100.0, 2),
    ("pixel accuracy %", "pixel_accuracy", 100.0, 2),
    ("HC mean abs. diff. mm", "hc_abs_error_mm", 1.0, 2),
    ("HC mean diff. mm", "hc_error_mm", 1.0, 2),
    ("mask Hausdorff mm", "hausdorff_mm", 1.0, 2),
)


def _commit() -> str | None:
    """The checkout's commit (with "-dirty" when files other than stored results and Markdown
    differ from it), or None outside git."""
    root = repo_root()
    if root is None:
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)*.md"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def _num(x: Any) -> float | int | None:
    if isinstance(x, int):
        return x
    x = float(x)
    return x if math.isfinite(x) else None


def results_record(df: pd.DataFrame, table: pd.DataFrame, *, model: str, part: str, tta: bool,
                   command: str, trained_on: str | None = None, device: str | None = None,
                   training_run: str | None = None) -> dict[str, Any]:
    """A JSON-ready record of one evaluation: per-metric mean, 95 % exam-bootstrap interval,
    median, n images, n exams (from `summary_table`), failures, and provenance, including the
    training run the weights file names (which weights a shipped model's name meant then)."""
    from fetalhead.predict import STATUS_NO_HEAD

    metrics = {m: {k: _num(row[k]) for k in ("mean", "ci_low", "ci_high", "median", "std")}
               | {"n": int(row["n"]), "n_exams": int(row.get("n_exams", 0) or 0)}
               for m, row in table.iterrows()}
    return {
        "model": model,
        "part": part,
        "tta": bool(tta),
        "trained_on": trained_on,
        "training_run": training_run,
        "n_images": int(len(df)),
        "n_exams": int(df["exam"].nunique()) if "exam" in df.columns else None,
        "n_no_head": int((df["status"] == STATUS_NO_HEAD).sum()),
        "failures": "an image with no head found counts as Dice 0 and ellipse Dice 0; it has no "
                    "distance or HC, so the Hausdorff and HC figures are over the other images (their n)",
        "interval": "95 % percentile bootstrap of the mean, resampling examinations (2000 resamples)",
        "metrics": metrics,
        "command": command,
        **provenance(device),
    }


def provenance(device: str | None = None) -> dict[str, str | None]:
    """Where and when a result was made: {"machine", "date" (UTC), "commit"}; `device` names
    the processor or GPU (default: the platform's processor)."""
    import torch

    from fetalhead.device import threads_text

    return {
        "machine": f"{device or platform.processor() or platform.machine()}, {threads_text()}, "
                   f"{platform.system()} {platform.machine()}, torch {torch.__version__}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
    }


def check_new_results(path: Path, flag: str = "--results") -> None:
    """FetalheadError unless `path` is a new file that can be written, checked before the work:
    the benchmark scripts have no --overwrite and never replace a stored result."""
    if path.exists():
        raise FetalheadError(f"{path}: exists; choose another name or remove it")
    check_output_file(path, overwrite=False, flag=flag)  # a file where its folder should be, no permission


def measured_weights(table: str | os.PathLike) -> str:
    """The training run of the weights that made a per-image table of `fetalhead evaluate`
    (`metrics_per_image.csv`), as the `summary.json` written beside it records; FetalheadError
    (one line) when it records none (a report of another version, or a table moved from its
    report): a stored result must say which weights it measured."""
    summary = Path(table).with_name("summary.json")
    record = read_json(summary) if summary.is_file() else {}
    run = record.get("training_run") if isinstance(record, dict) else None
    if not isinstance(run, str) or not run:
        raise FetalheadError(f"{table}: no summary.json beside it naming the weights' training run; "
                             "measure again with fetalhead evaluate --out DIR")
    return run


def json_safe(value: Any) -> Any:
    """`value` (dicts, lists, tuples, numbers, text) with every NaN or infinite float as None
    and tuples as lists: strict JSON, which every reader (a browser's too) reads."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(record: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `record` as indented JSON (atomically); returns the path."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """A stored JSON file; a one-line FetalheadError naming it when it is not valid JSON (a
    missing file is the OSError the command line reports)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FetalheadError(f"{path}: not valid JSON ({e})") from None


def load_results(folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every results/*.json record, sorted by file name."""
    folder = Path(folder) if folder is not None else RESULTS_DIR
    return [read_json(p) for p in sorted(folder.glob("*.json"))]


def training_run(run: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """(record, history) of a stored training run: its entry in results/training/runs.json
    (command, machine, date, notes) and its history CSV (`fetalhead.train.HISTORY_COLUMNS`)."""
    runs = read_json(RESULTS_DIR / "training" / "runs.json")
    return runs[run], pd.read_csv(RESULTS_DIR / "training" / f"{run}.csv")


def kept_epoch(hist: pd.DataFrame, epoch: int | None = None) -> pd.Series:
    """The history row of the weights kept: epoch `epoch` (a checkpoint's own; a later epoch
    better by less than `min_delta` does not replace it), else the highest validation Dice."""
    if epoch is not None and (hist["epoch"] == epoch).any():
        return hist.loc[hist["epoch"] == epoch].iloc[0]
    return hist.loc[hist["val_dice"].idxmax()]


def training_summary(run: str, target: float = 0.97, epoch: int | None = None) -> str:
    """One line about a stored training run: machine (and how many other runs shared it: the
    record's `shared_with`), epochs and seconds, the validation Dice (at the training size) of
    the kept weights (`kept_epoch`) and when, and the seconds to validation Dice `target`."""
    record, hist = training_run(run)
    others = int(record.get("shared_with", 0))
    shared = f" shared with {others} other run{'s' * (others > 1)}" if others else ""
    best = kept_epoch(hist, epoch)
    hit = hist[hist["val_dice"] >= target]
    when = f"{hit['seconds'].iloc[0]:.0f} s (epoch {int(hit['epoch'].iloc[0])})" if len(hit) else "not reached"
    seen = " (on images it trained on)" if record.get("recipe_run") else ""
    return (f"`{run}` on {record['machine'].split(' (')[0]}{shared}: {len(hist)} epochs in {hist['seconds'].iloc[-1]:.0f} s; "
            f"kept weights: validation Dice{seen} {best['val_dice']:.4f} at epoch {int(best['epoch'])} ({best['seconds']:.0f} s); "
            f"validation Dice{seen} {target} after {when}")


def metric_cell(metric: dict[str, Any] | None, scale: float, decimals: int) -> str:
    """"mean [ci_low, ci_high]" of one stored metric, times `scale` (100 for %); "-" when absent."""
    if not metric or metric.get("mean") is None:
        return "-"
    f = lambda v: f"{v * scale:.{decimals}f}"  # noqa: E731
    return f"{f(metric['mean'])} [{f(metric['ci_low'])}, {f(metric['ci_high'])}]"


def results_table(records: list[dict[str, Any]], part: str = "test") -> str:
    """Markdown table of the shipped models' records of `part`: mean [95 % interval] per
    `TABLE_COLUMNS`."""
    head = ["model", "trained on", "images / exams", *(c[0] for c in TABLE_COLUMNS), "no head found"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {m: i for i, m in enumerate(SHIPPED_MODELS)}  # best first
    shipped = [r for r in records if r["part"] == part and r["model"] in order]
    for r in sorted(shipped, key=lambda r: (order[r["model"]], r["tta"])):
        name = r["model"] + (" + flips" if r["tta"] else "")
        cells = [name, r.get("trained_on") or "-", f"{r['n_images']} / {r['n_exams']}",
                 *(metric_cell(r["metrics"].get(m), s, d) for _, m, s, d in TABLE_COLUMNS), str(r["n_no_head"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
