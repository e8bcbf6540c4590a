"""Tests of fetalhead.inputs: what the library accepts, and the one-line errors for the rest;
and of how the functions that take masks, probability maps and pixel sizes use those checks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fetalhead.ellipse import (
    Ellipse,
    challenge_row,
    fit_ellipse,
    hc_from_mask,
    largest_component_boundary,
)
from fetalhead.errors import FetalheadError
from fetalhead.inputs import (
    MAX_SIDE,
    binary_mask,
    validate_image,
    validate_pixel_size,
    validate_threshold,
)
from fetalhead.metrics import dice, hausdorff_mm
from fetalhead.predict import Predictor, keep_largest_component, measure


def _disc(shape=(120, 160), centre=(80, 60), axes=(40, 30)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask


@pytest.mark.parametrize("value", [0.0691, 0.01, 1.0, "0.2", np.float32(0.1)])
def test_plausible_pixel_sizes_pass(value):
    assert validate_pixel_size(value) == pytest.approx(float(value))


@pytest.mark.parametrize("value, words", [
    (0, "positive"), (-0.1, "positive"), (float("nan"), "finite"), (float("inf"), "finite"),
    ("abc", "not a number"), (None, "not a number"), (5.0, "implausible"), (0.001, "implausible"),
])
def test_bad_pixel_sizes_raise_one_line(value, words):
    with pytest.raises(FetalheadError, match=words) as err:
        validate_pixel_size(value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("array, words", [
    (np.zeros((64, 64), np.float32), "uint8.*as_gray_uint8 converts"),
    (np.zeros((64, 64, 3), np.uint8), "uint8 \\(H, W\\)"),
    (np.zeros((31, 64), np.uint8), "too small"),
    (np.zeros((40, MAX_SIDE + 1), np.uint8), "too large"),
])
def test_validate_image_rejects(array, words):
    with pytest.raises(FetalheadError, match=words):
        validate_image(array)


@pytest.mark.parametrize("mask", [
    np.array([[0, 1], [1, 0]], np.uint8), np.array([[0, 255], [255, 0]], np.uint8),
    np.array([[False, True], [True, False]]), np.array([[0.0, 1.0], [1.0, 0.0]], np.float32),
    np.array([[0, 3], [7, 0]], np.int64), np.array([[0.0, 255.0], [255.0, 0.0]], np.float32),
])
def test_binary_masks_of_every_usual_kind(mask):
    assert binary_mask(mask).tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize("mask, words", [
    (np.array([[0.0, 0.4], [0.9, 1.0]]), "got 4 values from 0 to 1.*threshold a probability map"),
    (np.array([[0.2, 0.9]]), "got 2 values from 0.2 to 0.9"),
    (np.array([[0.0, np.nan]], np.float32), "non-finite values"),
    (np.array([["a", "b"]]), "expected a bool, integer or 0/1 float mask"),
])
def test_a_float_map_is_not_taken_for_a_mask(mask, words):
    with pytest.raises(FetalheadError, match=words):
        binary_mask(mask)


def test_mask_functions_refuse_a_probability_map():
    """A probability map where a mask belongs used to count every pixel above 0 as head: the
    ellipse around the whole frame, an HC of the image's perimeter."""
    mask = _disc()
    prob = np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3) + 0.01, 0, 1)
    assert (prob > 0).all() and 0.9 < dice((prob > 0.5).astype(np.uint8), mask) <= 1
    for call in (lambda: fit_ellipse(prob), lambda: hc_from_mask(prob, 0.1), lambda: dice(prob, mask),
                 lambda: hausdorff_mm(mask, prob, 0.1), lambda: keep_largest_component(prob)):
        with pytest.raises(FetalheadError, match="threshold a probability map"):
            call()
    assert fit_ellipse(mask.astype(np.float64)) == fit_ellipse(mask)  # a 0/1 float mask is a mask
    assert fit_ellipse(mask.astype(np.float32) * 255) == fit_ellipse(mask)  # and a 0/255 one
    for same in (mask.astype(bool), np.asfortranarray(mask), mask.astype(np.float32)):
        np.testing.assert_array_equal(largest_component_boundary(same), largest_component_boundary(mask))
    with pytest.raises(FetalheadError, match="threshold a probability map"):
        largest_component_boundary(prob)


def test_pixel_sizes_are_checked_where_millimetres_are_made():
    mask = _disc()
    assert hc_from_mask(mask, 0.1) == pytest.approx(fit_ellipse(mask).circumference * 0.1)
    e = Ellipse(80, 60, 40, 30, 0.0)
    for call in (lambda px: hc_from_mask(mask, px), lambda px: e.to_mm(px),
                 lambda px: challenge_row("a.png", e, px), lambda px: hausdorff_mm(mask, mask, px)):
        for px, words in ((-0.1, "positive"), (0, "positive"), (100, "implausible"), ("abc", "not a number")):
            with pytest.raises(FetalheadError, match=words):
                call(px)


@pytest.mark.parametrize("value", [0.5, "0.3", 0.999])
def test_thresholds_between_0_and_1_pass(value):
    assert validate_threshold(value) == float(value)


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, float("nan"), "x"])
def test_thresholds_outside_0_1_are_refused(value):
    with pytest.raises(FetalheadError, match="threshold"):
        validate_threshold(value)


def test_measure_takes_only_probabilities_and_a_threshold_between_0_and_1():
    mask = _disc()
    prob = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2)
    assert math.isfinite(measure(prob, 0.1).hc_mm)
    for bad, words in (((prob * 255).astype(np.uint8), "float \\(H, W\\) map"),
                       (prob * 255, "apply a sigmoid"), (prob - 0.5, "apply a sigmoid"),
                       (prob[None], "float \\(H, W\\) map")):
        with pytest.raises(FetalheadError, match=words):
            measure(bad, 0.1)
    with pytest.raises(FetalheadError, match="between 0 and 1"):
        measure(prob, 0.1, threshold=-0.1)
    with pytest.raises(FetalheadError, match="between 0 and 1"):
        Predictor(torch_identity(), (64, 96), threshold=1.5)


def torch_identity():
    from torch import nn

    return nn.Identity()
