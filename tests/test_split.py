"""fetalhead.split: exam grouping, fractions, determinism, and the committed file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fetalhead.data import parse_filename, read_training_csv
from fetalhead.errors import FetalheadError
from fetalhead.split import SPLIT_FILE, load_split, make_split, save_split, split_groups


@pytest.fixture
def committed() -> pd.DataFrame:
    return pd.read_csv(SPLIT_FILE, dtype={"filename": str})


def test_committed_file_shape(committed):
    assert list(committed.columns) == ["filename", "exam", "split"]
    assert len(committed) == 999 and committed["filename"].is_unique
    assert set(committed["split"]) == {"train", "val", "test"}
    assert committed["exam"].nunique() == 806
    assert list(committed["filename"]) == sorted(committed["filename"])
    assert [parse_filename(f)[0] for f in committed["filename"]] == list(committed["exam"])


def test_no_exam_crosses_parts(committed):
    parts_per_exam = committed.groupby("exam")["split"].nunique()
    assert (parts_per_exam == 1).all()
    # Hand-checked multi-frame exams stay together.
    for exam in (10, 14):
        rows = committed[committed["exam"] == exam]
        assert len(rows) >= 2 and rows["split"].nunique() == 1


def test_fractions_of_exams(committed):
    exams = committed.drop_duplicates("exam")["split"].value_counts()
    n = exams.sum()
    assert exams["train"] == round(0.70 * n)  # 564 of 806
    assert exams["val"] == round(0.15 * n)  # 121
    assert exams["test"] == n - exams["train"] - exams["val"]
    images = committed["split"].value_counts(normalize=True)
    assert images["train"] == pytest.approx(0.70, abs=0.03)
    assert images["val"] == pytest.approx(0.15, abs=0.03)
    assert images["test"] == pytest.approx(0.15, abs=0.03)


def test_make_split_regenerates_the_committed_file(committed, tmp_path):
    # make_split needs only the file names, so this runs without the data.
    shuffled = committed[["filename"]].sample(frac=1.0, random_state=3)  # row order must not matter
    out = save_split(make_split(shuffled, seed=0), tmp_path / "split.csv")
    assert out.read_bytes() == SPLIT_FILE.read_bytes()


def test_committed_split_matches_real_data(hc18_dir, committed, tmp_path):
    train = read_training_csv(hc18_dir)
    assert set(train["filename"]) == set(committed["filename"])  # all 999 present
    out = save_split(make_split(train), tmp_path / "split.csv")
    assert out.read_bytes() == SPLIT_FILE.read_bytes()


def test_make_split_is_deterministic_and_seeded():
    names = pd.DataFrame({"filename": [f"{e:03d}_{k}HC.png" if k > 1 else f"{e:03d}_HC.png"
                                       for e in range(100) for k in range(1, 1 + e % 3 + 1)]})
    a, b = make_split(names, seed=7), make_split(names, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not make_split(names, seed=8)["split"].equals(a["split"])
    assert (a.groupby("exam")["split"].nunique() == 1).all()
    counts = a.drop_duplicates("exam")["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (70, 15, 15)
    # Independent re-implementation of the rule: a permutation of sorted exams, cut in order.
    order = np.random.default_rng(7).permutation(np.arange(100))
    expected = {e: "train" if i < 70 else "val" if i < 85 else "test" for i, e in enumerate(order)}
    assert list(a["split"]) == [expected[e] for e in a["exam"]]


def test_make_split_other_fractions():
    names = pd.DataFrame({"filename": [f"{e:03d}_HC.png" for e in range(40)]})
    counts = make_split(names, fractions=(0.5, 0.25, 0.25))["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (20, 10, 10)
    with pytest.raises(ValueError, match="sum"):
        make_split(names, fractions=(0.5, 0.2, 0.2))


def test_make_split_uses_each_fraction_for_its_own_part():
    names = pd.DataFrame({"filename": [f"{e:03d}_HC.png" for e in range(40)]})
    counts = make_split(names, fractions=(0.6, 0.3, 0.1))["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (24, 12, 4)
    counts = make_split(names, fractions=(0.6, 0.1, 0.3))["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (24, 4, 12)


def test_make_split_refuses_negative_fractions():
    names = pd.DataFrame({"filename": [f"{e:03d}_HC.png" for e in range(40)]})
    with pytest.raises(ValueError, match="non-negative"):
        make_split(names, fractions=(1.2, -0.1, -0.1))  # sums to 1


def test_load_split():
    split = load_split()
    assert list(split.columns) == ["filename", "exam", "frame", "split"]
    assert len(split) == 999
    assert tuple(split.set_index("filename").loc["010_2HC.png", ["exam", "frame"]]) == (10, 2)


def test_load_split_with_challenge(hc18_dir):
    split = load_split(include_challenge=True, root=hc18_dir)
    assert len(split) == 999 + 335
    challenge = split[split["split"] == "challenge"]
    assert len(challenge) == 335 and challenge["filename"].is_unique
    assert challenge["filename"].iloc[0] == "000_HC.png"


def test_load_split_with_synthetic_challenge(synthetic_hc18):
    split = load_split(include_challenge=True, root=synthetic_hc18)
    assert list(split.loc[split["split"] == "challenge", "filename"]) == [
        "000_HC.png", "001_HC.png", "002_HC.png"]


def test_split_groups_keeps_examinations_whole():
    groups = np.array([3, 3, 1, 2, 2, 2, 5, 7, 7, 9])  # 6 examinations
    parts = split_groups(groups, val_fraction=0.34, seed=4)
    assert set(parts) == {"train", "val"}
    for g in np.unique(groups):
        assert len(set(parts[groups == g])) == 1  # an examination is never split
    assert len(np.unique(groups[parts == "val"])) == 2  # round(0.34 x 6)
    assert len(np.unique(groups[split_groups(groups, 0.3) == "val"])) == 2  # round(1.8), not 1
    assert (split_groups(groups, 0.34, seed=4) == parts).all()  # seeded
    assert any((split_groups(groups, 0.34, seed=s) != parts).any() for s in range(5, 10))
    shuffled = np.random.default_rng(0).permutation(len(groups))  # the same groups, whatever the order
    assert (split_groups(groups[shuffled], 0.34, seed=4) == parts[shuffled]).all()
    assert list(split_groups([1, 2], 0.01)).count("val") == 1  # at least one for validation...
    assert list(split_groups([1, 2], 0.99)).count("train") == 1  # ...and one for training
    with pytest.raises(FetalheadError, match="at least 2"):
        split_groups([4, 4, 4])
