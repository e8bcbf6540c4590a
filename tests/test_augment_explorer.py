"""Headless tests of fetalhead.augment_explorer: set control values as a browser would.

Synthetic images only; the oracles are np.flipud and `apply_pair` of the draw the seed gives.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fetalhead.augment_explorer import AugmentationExplorer, demo_explorer
from fetalhead.errors import FetalheadError
from fetalhead.synthetic import synthetic_cases
from fetalhead.transforms import AugmentParams, apply_pair, draw_pair


@pytest.fixture(scope="module")
def cases():
    return synthetic_cases(3, seed=0)


def test_explorer_identity_when_everything_is_off(cases):
    off = AugmentParams(rotate_deg=0, hflip=False, vflip=False, scale=0, intensity=0)
    ex = AugmentationExplorer(cases.images[:1], cases.masks[:1], params=off)
    image, mask = ex.current_augmented
    assert np.array_equal(image, cases.images[0]) and np.array_equal(mask, cases.masks[0])
    assert "rotate +0.0°" in ex.label.value


def test_explorer_vflip_checkbox_flips_up_down(cases):
    off = AugmentParams(rotate_deg=0, hflip=False, vflip=False, scale=0, intensity=0)
    ex = AugmentationExplorer(cases.images[:1], cases.masks[:1], params=off)
    count, png = ex.render_count, ex.last_png
    ex.vflip_box.value = True
    assert ex.params.vflip and ex.render_count == count + 1
    flipped = [s for s in range(20) if draw_pair(ex.params, np.random.default_rng(s)).vflip]
    assert 0 < len(flipped) < 20  # a coin flip per seed
    ex.seed_slider.value = flipped[0]
    image, mask = ex.current_augmented
    assert np.array_equal(image, np.flipud(cases.images[0]))  # oracle: NumPy's flip
    assert np.array_equal(mask, np.flipud(cases.masks[0]))
    assert "v-flip yes" in ex.label.value and ex.last_png != png


def test_explorer_seed_and_sliders_change_the_draw(cases):
    ex = AugmentationExplorer(cases.images[:2], cases.masks[:2], seed=3)
    label, png = ex.label.value, ex.last_png
    draw = ex.current_draw
    image, mask = ex.current_augmented
    ref_image, ref_mask = apply_pair(cases.images[0], cases.masks[0], draw)
    assert np.array_equal(image, ref_image) and np.array_equal(mask, ref_mask)
    assert f"rotate {draw.angle_deg:+.1f}°" in label
    ex.seed_slider.value = 4
    assert ex.label.value != label and ex.last_png != png and ex.image.value == ex.last_png
    ex.rotate_slider.value = 40
    assert abs(ex.current_draw.angle_deg) <= 40 and ex.params.rotate_deg == 40
    assert (ex.image_slider.min, ex.image_slider.max) == (1, 2)  # numbered from 1, as the viewer
    ex.image_slider.value = 2
    ref_image, _ = apply_pair(cases.images[1], cases.masks[1], ex.current_draw)
    assert np.array_equal(ex.current_augmented[0], ref_image)


def test_demo_explorer_and_no_pyplot_figure_leaks():
    before = plt.get_fignums()
    ex = demo_explorer(2)
    ex.seed_slider.value = 5
    ex.image_slider.value = 2
    assert ex.render_count == 3 and ex.last_png.startswith(b"\x89PNG")
    assert ex.image.value == ex.last_png and "fetalhead-augment" in ex.widget._dom_classes
    assert plt.get_fignums() == before


def test_explorer_needs_a_mask_per_image(cases):
    with pytest.raises(FetalheadError, match="as many masks as images"):
        AugmentationExplorer(cases.images[:2], cases.masks[:1])


def test_explorer_shows_the_ranges_and_seed_it_is_given(cases):
    params = AugmentParams(rotate_deg=90.0, hflip=False, vflip=False, scale=0.8, intensity=0.7)
    ex = AugmentationExplorer(cases.images, cases.masks, params=params, seed=150)
    assert ex.params == params and ex.seed_slider.value == 150  # not clipped to the sliders' usual ranges
