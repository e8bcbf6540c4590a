"""Frames of another shape than HC18's: padded to its shape before resizing, cropped back after."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fetalhead.ellipse import Ellipse, fit_ellipse
from fetalhead.frame import (
    ASPECT_TOLERANCE,
    FRAME_ASPECT,
    FramePad,
    frame_padding,
    frame_probabilities,
    network_image,
    network_mask,
    pad_frame,
)
from fetalhead.predict import Predictor
from fetalhead.transforms import resize_image, resize_mask


def test_hc18_frames_are_not_padded():
    assert FRAME_ASPECT == 540 / 800 and ASPECT_TOLERANCE == 0.10
    for shape in ((540, 800), (542, 800), (541, 738), (563, 799)):  # every HC18 frame shape's extremes
        assert frame_padding(shape).is_zero, shape


def test_other_frames_are_padded_to_hc18s_shape():
    assert frame_padding((800, 800)) == FramePad(0, 0, 192, 193)  # too tall: 385 columns, odd one right
    assert frame_padding((600, 800)) == FramePad(0, 0, 44, 45)  # 4:3
    assert frame_padding((540, 960)) == FramePad(54, 54, 0, 0)  # 16:9, too wide: rows
    for shape in ((800, 800), (600, 800), (540, 960), (31, 200)):
        p = frame_padding(shape)
        h, w = shape[0] + p.top + p.bottom, shape[1] + p.left + p.right
        assert abs(h / w - FRAME_ASPECT) < 1.0 / min(h, w), shape


def test_pad_frame_puts_the_frame_in_the_middle_of_black():
    image = np.full((4, 6), 7, np.uint8)
    out = pad_frame(image, FramePad(1, 2, 3, 0))
    assert out.shape == (7, 9) and out.dtype == np.uint8
    assert (out[1:5, 3:9] == 7).all() and out.sum() == 7 * image.size
    assert pad_frame(image, FramePad(0, 0, 0, 0)) is image


def test_the_network_sees_an_hc18_frame_as_it_trained_on_it():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (540, 800), dtype=np.uint8)
    mask = (rng.random((540, 800)) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(network_image(image, (192, 288)), resize_image(image, (192, 288)))
    np.testing.assert_array_equal(network_mask(mask, (192, 288)), resize_mask(mask, (192, 288)))
    square = rng.integers(0, 256, (300, 300), dtype=np.uint8)
    small = network_image(square, (192, 288))
    assert small.shape == (192, 288) and (small[:, :40] == 0).all() and (small[:, -40:] == 0).all()


def _drawn(shape, e: Ellipse) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.ellipse(out, (round(e.cx), round(e.cy)), (round(e.a), round(e.b)), np.degrees(e.angle_rad), 0, 360, 1, -1)
    return out


@pytest.mark.parametrize("shape", [(540, 800), (800, 800), (600, 800), (540, 960)])
def test_probabilities_return_to_the_frames_own_pixels(shape):
    """The network input made from a head, taken as if it were the network's probability map,
    comes back onto the frame's pixels: the head's fitted ellipse is where it was drawn."""
    head = Ellipse(cx=shape[1] * 0.42, cy=shape[0] * 0.55, a=150.0, b=110.0, angle_rad=0.5)
    mask = _drawn(shape, head)
    small = network_mask(mask, (192, 288)).astype(np.float32)
    back = frame_probabilities(small, shape)
    assert back.shape == shape and back.dtype == np.float32
    got, want = fit_ellipse((back > 0.5).astype(np.uint8)), fit_ellipse(mask)
    assert abs(got.cx - want.cx) < 1.5 and abs(got.cy - want.cy) < 1.5
    assert abs(got.a - want.a) < 2.0 and abs(got.b - want.b) < 2.0


class _Bright(nn.Module):
    """A stand-in network: a pixel is head where the input is bright. Keeps its last input."""

    padding = "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach().clone()
        return 40.0 * (x - 0.5)


@pytest.mark.parametrize(("pad_frames", "proportion"), [(True, 1.0), (False, 1.5)])
def test_the_predictor_measures_a_square_frame_on_its_own_pixels(pad_frames, proportion):
    """A round head in an 800x800 frame: padded, the network sees it round; resized as it is,
    1.5 times wider than tall. Either way the measurement is on the frame's own pixels."""
    shape = (800, 800)
    head = Ellipse(cx=350.0, cy=420.0, a=180.0, b=180.0, angle_rad=0.0)
    image = (_drawn(shape, head) * 200).astype(np.uint8)
    net = _Bright()
    pred = Predictor(net, (192, 288), device="cpu", pad_frames=pad_frames).predict(image, 0.1)
    rows, cols = np.nonzero(net.seen[0, 0].numpy() > 0.5)
    assert (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1) == pytest.approx(proportion, abs=0.05)
    want = fit_ellipse(_drawn(shape, head))
    assert pred.mask.shape == shape
    assert abs(pred.ellipse.cx - want.cx) < 2.0 and abs(pred.ellipse.cy - want.cy) < 2.0
    assert abs(pred.ellipse.a - want.a) < 2.5 and abs(pred.ellipse.b - want.b) < 2.5


def test_frame_views_show_the_frame_and_both_inputs():
    from fetalhead.viz import frame_views

    frame = np.zeros((300, 300), np.uint8)
    frame[100:200, 100:200] = 255
    fig = frame_views(frame, (64, 96))
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert [a.shape for a in shown] == [(300, 300), (64, 96), (64, 96)]
    np.testing.assert_array_equal(shown[1], resize_image(frame, (64, 96)))
    np.testing.assert_array_equal(shown[2], network_image(frame, (64, 96)))
    rows, cols = np.nonzero(np.asarray(shown[2]) > 127)  # padded: the square stays about square
    assert (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1) == pytest.approx(1.0, abs=0.15)


@pytest.mark.skipif(not os.environ.get("HC18_DIR"), reason="HC18_DIR not set")
def test_no_hc18_frame_is_padded():
    """Every HC18 image (training and challenge sets) reaches the network as the shipped
    models were trained on it: resized, not padded."""
    from pathlib import Path

    from PIL import Image

    root = Path(os.environ["HC18_DIR"])
    files = [p for p in sorted(root.glob("*_set/*.png")) if "Annotation" not in p.name]
    assert len(files) == 999 + 335
    padded = [p.name for p in files if not frame_padding(Image.open(p).size[::-1]).is_zero]
    assert padded == []
