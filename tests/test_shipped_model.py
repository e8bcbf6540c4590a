"""Issue 5: the shipped weights, scored on the WHOLE held-out test split at original resolution,
must meet the required thresholds. The figures it prints are the ones the model card quotes.

The shipped weights are trained on a GPU. Until they exist (no GPU session yet), this test is
skipped with that reason; the CPU stand-in models used elsewhere in the tests are never shipped.
"""

from __future__ import annotations

import pytest

from fetalhead.paths import shipped_checkpoint

# Required on the held-out test part (issue 5); pixel accuracy and Dice as fractions, mm else.
REQUIRED = dict(dice=0.975, pixel_accuracy=0.985, hc_abs_error_mm=1.8, hc_bias_mm=0.5, hausdorff_mm=2.0)

pytestmark = pytest.mark.skipif(
    not shipped_checkpoint().is_file(),
    reason=f"no shipped weights at {shipped_checkpoint()}: they need the GPU training run (issue 5)",
)


@pytest.mark.slow
def test_shipped_model_meets_the_required_scores_on_the_held_out_test_split(hc18_dir):
    from fetalhead.evaluate import evaluate_split, summary_table
    from fetalhead.predict import Predictor
    from fetalhead.split import load_split

    predictor = Predictor.from_checkpoint(None, device="cpu")
    df = evaluate_split(predictor, part="test", root=hc18_dir, progress=False)
    n_test = int((load_split()["split"] == "test").sum())
    assert len(df) == n_test, "the whole held-out test split must be scored"
    table = summary_table(df)
    print("\nshipped model on the held-out test split (original resolution):")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    mean = table["mean"]
    assert mean["dice"] >= REQUIRED["dice"]
    assert mean["pixel_accuracy"] >= REQUIRED["pixel_accuracy"]
    assert mean["hc_abs_error_mm"] <= REQUIRED["hc_abs_error_mm"]
    assert abs(mean["hc_error_mm"]) <= REQUIRED["hc_bias_mm"]
    assert mean["hausdorff_mm"] <= REQUIRED["hausdorff_mm"]
    assert (df["status"] == "ok").all()
