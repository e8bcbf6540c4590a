"""The shipped models on the WHOLE held-out test part at original resolution: the figures stored
in results/ (from which the model cards and the README's table are written) are the ones this
test measures, and none falls below its regression floor."""

from __future__ import annotations

import json

import pytest

from fetalhead.paths import SHIPPED_MODELS, shipped_checkpoint
from fetalhead.results import RESULTS_DIR

# Floors on the held-out test part, means (fractions for Dice, mm else): a shipped model that
# falls below them is a regression. They sit BELOW the project's targets (default: ellipse
# Dice 97.8 %, HC 1.8 mm, |bias| 0.5 mm, ellipse Hausdorff 1.4 mm, about the level of
# published HC18 systems such as Zeng et al. 2021; small: mask Dice 97.3 %, HC 2.0 mm, |bias| 0.5 mm), which the models
# shipped today do not reach on this test part: the README and the model cards say by how much.
FLOORS = {
    "default": dict(ellipse_dice=0.972, dice=0.972, hc_abs_error_mm=2.5, hc_bias_mm=0.8, ellipse_hausdorff_mm=1.6),
    "small": dict(ellipse_dice=0.972, dice=0.972, hc_abs_error_mm=2.5, hc_bias_mm=0.8, ellipse_hausdorff_mm=1.6),
}


def _check(mean, targets):
    for name, bound in targets.items():
        if name == "hc_bias_mm":
            assert abs(mean["hc_error_mm"]) <= bound, (name, mean["hc_error_mm"])
        elif name.endswith("_mm"):
            assert mean[name] <= bound, (name, mean[name])
        else:
            assert mean[name] >= bound, (name, mean[name])


@pytest.mark.slow
@pytest.mark.parametrize("model", SHIPPED_MODELS)
def test_shipped_model_on_the_whole_test_part(model, hc18_dir):
    if not shipped_checkpoint(model).is_file():
        pytest.skip(f"no shipped weights at {shipped_checkpoint(model)}")
    from fetalhead.evaluate import evaluate_split, summary_table
    from fetalhead.interval import interval_summary
    from fetalhead.predict import Predictor
    from fetalhead.split import load_split

    stored = json.loads((RESULTS_DIR / f"{model}_test.json").read_text())
    predictor = Predictor.from_checkpoint(model=model, device="cpu")
    assert predictor.tta == stored["tta"]  # the stored figures are of the shipped setting
    df = evaluate_split(predictor, part="test", root=hc18_dir, progress=False)
    n_test = int((load_split()["split"] == "test").sum())
    assert len(df) == n_test == stored["n_images"], "the whole held-out test part must be scored"
    table = summary_table(df)
    print(f"\nshipped model {model!r} on the held-out test part (original resolution):")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    _check(table["mean"], FLOORS[model])
    assert (df["status"] == "no head found").sum() == stored["n_no_head"]
    assert (df["status"] == "review").sum() == stored["review_flag"]["n_review"]
    # the HC intervals' coverage that the README quotes (benchmarks/hc_interval.py)
    interval = json.loads((RESULTS_DIR / "review" / "hc_interval_small.json").read_text())["checks"][f"{model}_test"]
    assert interval_summary(df)["n_inside"] == interval["n_inside"]
    for name, row in table.iterrows():  # the stored (card, README) figures are these
        for k in ("mean", "ci_low", "ci_high", "median"):
            # float order (threads, the CPU's vector units) moves a figure by far less than its
            # last printed digit: 1e-6 of a Dice fraction, 1e-4 mm (a signed mean near 0 mm too).
            # A median (stored, not printed) follows the one or two images in the middle, which
            # one pixel flipped near the threshold moves: on an AVX2 CPU against the AVX-512 one
            # that stored them, the cephalic index's by 5e-4 of itself, while the means moved 1e-5
            tol = 1e-4 if name.endswith("_mm") else 1e-6
            rel = 1e-3 if k == "median" else 1e-4
            assert stored["metrics"][name][k] == pytest.approx(row[k], rel=rel, abs=tol), (name, k)
        assert stored["metrics"][name]["n"] == row["n"] and stored["metrics"][name]["n_exams"] == row["n_exams"]


def test_floors_catch_a_model_below_them():
    good = dict(ellipse_dice=0.98, dice=0.975, hc_abs_error_mm=1.7, hc_error_mm=-0.1, ellipse_hausdorff_mm=1.3)
    _check(good, FLOORS["default"])
    for bad in (dict(ellipse_dice=0.96), dict(dice=0.96), dict(hc_abs_error_mm=2.9), dict(hc_error_mm=1.4),
                dict(hc_error_mm=-1.4), dict(ellipse_hausdorff_mm=1.9)):
        with pytest.raises(AssertionError):
            _check({**good, **bad}, FLOORS["default"])
