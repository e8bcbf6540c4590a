"""Exam-grouped train/val/test split of the 999 labelled HC18 images.

Several images come from one examination (`010_HC.png`, `010_2HC.png`: 806 exams for 999
images). Frames of one exam look alike, so a split by image would leak: every exam goes whole
into one part. The split is drawn once (`make_split`, seed 0) and committed as
`fetalhead/splits/hc18_split.csv`, so every notebook, test and run uses the same parts; the
335 official test images (labels hidden by the challenge) can be added as part "challenge".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from fetalhead.data import parse_filename, read_test_csv
from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file

__all__ = ["LABELLED_PARTS", "PARTS", "SPLIT_FILE", "exam_order", "load_split", "make_split", "save_split", "split_groups"]

SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "hc18_split.csv"
LABELLED_PARTS = ("train", "val", "test")  #: the parts of the 999 labelled images, in this order
PARTS = (*LABELLED_PARTS, "challenge")  #: "challenge" = the 335 unlabelled test_set images


def exam_order(exams: npt.ArrayLike, seed: int = 0) -> np.ndarray:
    """The unique examination numbers of `exams` (N,), sorted (so the order of the rows does
    not matter), then permuted by `numpy.random.default_rng(seed)`: the order in which whole
    examinations are dealt into parts or folds."""
    return np.random.default_rng(seed).permutation(np.unique(np.asarray(exams)))


def make_split(
    df: pd.DataFrame, seed: int = 0, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
) -> pd.DataFrame:
    """Assign whole exams to train/val/test.

    Args:
        df: one row per image with a `filename` column (exam numbers are parsed from it).
        seed: seeds `numpy.random.default_rng`, which permutes the sorted unique exams.
        fractions: shares of EXAMS (not images) in train, val, test; they must sum to 1.
    Returns:
        DataFrame[filename, exam, split], rows sorted by filename. The first
        round(f_train * n) permuted exams go to train, the next round(f_val * n) to val,
        the rest to test.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    names = sorted(df["filename"].astype(str))
    exams = np.array([parse_filename(f)[0] for f in names], dtype=np.int64)
    order = exam_order(exams, seed)
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    part_of = {int(e): "train" for e in order[:n_train]}
    part_of.update({int(e): "val" for e in order[n_train:n_train + n_val]})
    part_of.update({int(e): "test" for e in order[n_train + n_val:]})
    return pd.DataFrame({"filename": names, "exam": exams, "split": [part_of[int(e)] for e in exams]})


def split_groups(groups: npt.ArrayLike, val_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """"train" or "val" for each item of `groups` (N,) (examination numbers): whole groups go
    to validation, round(val_fraction x the number of groups) of them (at least one, and at
    least one left for training), drawn by `numpy.random.default_rng(seed)` from the sorted
    unique groups. Raises FetalheadError for fewer than 2 groups."""
    g = np.asarray(groups)
    order = exam_order(g, seed)
    if len(order) < 2:
        raise FetalheadError(f"{len(order)} examination(s): a training and a validation part need at least 2")
    if not 0.0 < val_fraction < 1.0:
        raise FetalheadError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = min(max(int(round(val_fraction * len(order))), 1), len(order) - 1)
    return np.where(np.isin(g, order[:n_val]), "val", "train")


def save_split(split: pd.DataFrame, path: str | os.PathLike = SPLIT_FILE) -> Path:
    """Write a split table as CSV (filename, exam, split; '\\n' line ends, so the committed
    file is byte-identical on every platform)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        split[["filename", "exam", "split"]].to_csv(tmp, index=False, lineterminator="\n")
    return path


def load_split(include_challenge: bool = False, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The committed split: DataFrame[filename, exam, frame, split] with split in train/val/test.

    With `include_challenge`, the 335 images of the data's `test_set_pixel_size.csv` (read
    from `root`, default `fetalhead.paths.data_dir()`) are appended as split "challenge".
    Note that their file names (and exam numbers) repeat those of training images: they live
    in test_set/, a different folder.
    """
    if not SPLIT_FILE.is_file():
        raise FetalheadError(f"missing split file {SPLIT_FILE}; reinstall fetalhead")
    split = pd.read_csv(SPLIT_FILE, dtype={"filename": str, "exam": np.int64, "split": str})
    split["frame"] = np.array([parse_filename(f)[1] for f in split["filename"]], dtype=np.int64)
    split = split[["filename", "exam", "frame", "split"]]
    if include_challenge:
        test = read_test_csv(root)[["filename", "exam", "frame"]].assign(split="challenge")
        split = pd.concat([split, test], ignore_index=True)
    return split
