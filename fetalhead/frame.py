"""The network's view of a frame: images of another shape are padded to HC18's before resizing.

Every network here learned from HC18 frames (540x800 px; a few differ by up to 9 % in height
over width) resized to its input size: a 540x800 frame becomes 192x288 with its heads barely
distorted. A frame of another shape resized the same way would squash or stretch the head
(an 800x800 frame to 192x288: 1.5 times wider than tall), which the network never saw. So a
frame whose height over width differs from HC18's (`FRAME_ASPECT`) by more than
`ASPECT_TOLERANCE` is first padded with black (ultrasound's background) on two opposite sides,
centred, to HC18's shape; the probability map is then resized to the padded frame and cropped
back, so the mask and every measurement stay on the image's own pixels. HC18 frames, and the
training arrays made from them, are not padded at all: they are resized as the shipped models
were trained. Training on your own images pads them in the same way (`fetalhead.cache`,
`fetalhead.folder`), so a model always sees frames the way it will be asked to measure them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from fetalhead.transforms import resize_image, resize_mask

__all__ = ["ASPECT_TOLERANCE", "FRAME_ASPECT", "HC18_SHAPE", "FramePad", "frame_padding", "frame_probabilities", "network_image",
           "network_mask", "network_scale", "pad_frame"]

#: (H, W) px of HC18's frames (all but 24 of its 999 labelled ones), which every network here trained on.
HC18_SHAPE = (540, 800)
#: Height over width of HC18's frames.
FRAME_ASPECT = HC18_SHAPE[0] / HC18_SHAPE[1]
#: Frames whose height over width is within this fraction of `FRAME_ASPECT` are not padded
#: (HC18's own frames are within 0.09 of it).
ASPECT_TOLERANCE = 0.10


class FramePad(NamedTuple):
    """Black pixels added on each side of a frame (top, bottom, left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def is_zero(self) -> bool:
        """True when nothing is added."""
        return not any(self)


def frame_padding(shape: tuple[int, int], aspect: float = FRAME_ASPECT,
                  tolerance: float = ASPECT_TOLERANCE) -> FramePad:
    """Padding (pixels) that brings a frame of `shape` (H, W) to height / width `aspect`: rows
    above and below a frame too wide, columns left and right of one too tall, split evenly (the
    odd pixel below or right); no padding when H / W is within `tolerance` (a fraction) of
    `aspect`."""
    h, w = int(shape[0]), int(shape[1])
    if abs(h / w / aspect - 1.0) <= tolerance:
        return FramePad(0, 0, 0, 0)
    if h / w < aspect:  # too wide: add rows
        extra = round(w * aspect) - h
        return FramePad(extra // 2, extra - extra // 2, 0, 0)
    extra = round(h / aspect) - w  # too tall: add columns
    return FramePad(0, 0, extra // 2, extra - extra // 2)


def pad_frame(array: np.ndarray, pad: FramePad) -> np.ndarray:
    """`array` (H, W) with `pad` zeros (black; no head) around it: (H + top + bottom, W + left +
    right), same dtype. The array itself when there is no padding."""
    if pad.is_zero:
        return array
    return np.pad(array, ((pad.top, pad.bottom), (pad.left, pad.right)))


def network_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 frame (h, w) -> uint8 (H, W) network input with `size` = (H, W): padded to HC18's
    shape if needed (`frame_padding`), then resized (`fetalhead.transforms.resize_image`)."""
    return resize_image(pad_frame(image, frame_padding(image.shape)), size)


def network_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 {0,1} mask (h, w) -> uint8 {0,1} (H, W), padded and resized as its image is by
    `network_image` (`fetalhead.transforms.resize_mask`)."""
    return resize_mask(pad_frame(mask, frame_padding(mask.shape)), size)


def network_scale(shape: tuple[int, int], size: tuple[int, int], pad: bool = True) -> float:
    """Frame pixels per network pixel (geometric mean of the two axes) of a frame of `shape`
    (H, W) px shown to the network at `size` (H, W) px: padded to HC18's shape first as
    `network_image` pads it (unless `pad` is False), then resized."""
    h, w = int(shape[0]), int(shape[1])
    if pad:
        extra = frame_padding((h, w))
        h, w = h + extra.top + extra.bottom, w + extra.left + extra.right
    return math.sqrt(h * w / (int(size[0]) * int(size[1])))


def frame_probabilities(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) probabilities at the network's size -> float32 (H, W) on the pixels of the
    frame of `shape` that `network_image` made the input from: resized bilinearly to the padded
    frame, the padding cropped away."""
    pad = frame_padding(shape)
    h, w = int(shape[0]), int(shape[1])
    full = cv2.resize(prob, (w + pad.left + pad.right, h + pad.top + pad.bottom), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[pad.top:pad.top + h, pad.left:pad.left + w])
