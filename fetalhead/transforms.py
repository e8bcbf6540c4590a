"""Joint augmentation of an ultrasound image and its mask: the same geometry for both.

Two implementations of one transform:

- `augment_pair`: NumPy/OpenCV on one uint8 image, for previews and the augmentation widget;
- `augment_batch`: torch on a float batch, on the training device, every sample with its own
  random matrix, so augmentation never starves the GPU.

The transform, for a draw (angle a in degrees, zoom s, flips, gain g, bias b):

1. intensity on the image only, in [0, 1] units: x' = clip(g * x + b, 0, 1);
2. one affine warp about the image centre c, written as the inverse map that sampling needs:
   p_in = c + (1/s) R(a) F (p_out - c), with R the rotation matrix and F = diag(+-1, +-1) the
   flips. A positive angle turns the content counter-clockwise on screen (the convention of
   cv2.getRotationMatrix2D), s > 1 zooms in, and pixels from outside the image are black (0).
   The image is sampled bilinearly; the mask is sampled bilinearly too and thresholded at 0.5,
   which gives smoother boundaries than nearest neighbour.

Both implementations share the pixel convention (pixel centres at integer indices, the
centre at ((W-1)/2, (H-1)/2)), so an explicit `AugmentDraw` gives the same output in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fetalhead.errors import FetalheadError

if TYPE_CHECKING:
    from fetalhead.config import TrainConfig

__all__ = [
    "resize_image",
    "resize_mask",
    "AugmentDraw",
    "AugmentParams",
    "BatchDraw",
    "apply_batch",
    "apply_pair",
    "augment_batch",
    "augment_pair",
    "draw_batch",
    "draw_pair",
    "to_float",
]


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random augmentation. Angles in degrees; scale and intensity are fractions."""

    rotate_deg: float = 20.0  # angle uniform in [-rotate_deg, rotate_deg]
    hflip: bool = True  # left-right flip with probability 1/2
    vflip: bool = True  # up-down flip with probability 1/2
    scale: float = 0.1  # zoom uniform in [1 - scale, 1 + scale]; 0 disables
    intensity: float = 0.1  # gain in [1 - i, 1 + i], bias in [-i, i] (image in [0, 1]); 0 disables

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> AugmentParams:
        """The augmentation fields of a `TrainConfig`."""
        return cls(
            rotate_deg=float(cfg.rotate_deg),
            hflip=bool(cfg.hflip),
            vflip=bool(cfg.vflip),
            scale=float(cfg.scale),
            intensity=float(cfg.intensity),
        )

    @property
    def is_identity(self) -> bool:
        """True when every draw is the identity transform."""
        return (
            self.rotate_deg == 0 and not self.hflip and not self.vflip
            and self.scale == 0 and self.intensity == 0
        )


@dataclass(frozen=True)
class AugmentDraw:
    """One explicit draw: angle in degrees (counter-clockwise), zoom, flips, gain and bias."""

    angle_deg: float = 0.0
    scale: float = 1.0
    hflip: bool = False
    vflip: bool = False
    gain: float = 1.0
    bias: float = 0.0  # in [0, 1] image units (1 = full white)


class BatchDraw(NamedTuple):
    """A draw per sample, as float tensors of shape (B,); flips are 0/1."""

    angle_deg: torch.Tensor
    scale: torch.Tensor
    hflip: torch.Tensor
    vflip: torch.Tensor
    gain: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def from_draws(cls, draws: list[AugmentDraw], device: torch.device | str = "cpu") -> BatchDraw:
        """Stack explicit per-sample draws (for tests and for matching `apply_pair`)."""
        cols = [[float(getattr(d, f)) for d in draws] for f in cls._fields]
        return cls(*(torch.tensor(c, dtype=torch.float32, device=device) for c in cols))


def _uniform(u: float, half_width: float) -> float:
    return (2.0 * u - 1.0) * half_width


def draw_pair(params: AugmentParams, rng: np.random.Generator) -> AugmentDraw:
    """One random draw from `params` using NumPy's `rng` (always consumes 6 numbers)."""
    u = rng.random(6)
    return AugmentDraw(
        angle_deg=_uniform(u[0], params.rotate_deg),
        scale=1.0 + _uniform(u[1], params.scale),
        hflip=bool(params.hflip and u[2] < 0.5),
        vflip=bool(params.vflip and u[3] < 0.5),
        gain=1.0 + _uniform(u[4], params.intensity),
        bias=_uniform(u[5], params.intensity),
    )


def _inverse_matrix_px(draw: AugmentDraw, height: int, width: int) -> np.ndarray:
    """2x3 matrix mapping output pixel (x, y) to input pixel: c + (1/s) R F (p - c)."""
    a = math.radians(draw.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    flip = np.diag([-1.0 if draw.hflip else 1.0, -1.0 if draw.vflip else 1.0])
    lin = rot @ flip / draw.scale
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return np.hstack([lin, (c - lin @ c)[:, None]])


def apply_pair(image: np.ndarray, mask: np.ndarray, draw: AugmentDraw) -> tuple[np.ndarray, np.ndarray]:
    """Apply one explicit draw to image uint8 (H, W) and mask uint8 {0,1} (H, W).

    Returns (image uint8 (H, W), mask uint8 {0,1} (H, W)).
    """
    if image.shape[:2] != mask.shape[:2] or image.ndim != 2:
        raise FetalheadError(f"expected image and mask of equal shape (H, W), got {image.shape} and {mask.shape}")
    if image.dtype != np.uint8:
        raise FetalheadError(f"expected a uint8 image (0-255), got {image.dtype}")
    h, w = image.shape
    img = image.astype(np.float32) / 255.0
    if draw.gain != 1.0 or draw.bias != 0.0:
        img = np.clip(draw.gain * img + draw.bias, 0.0, 1.0)
    m = (mask > 0).astype(np.float32)
    if draw.angle_deg != 0 or draw.scale != 1 or draw.hflip or draw.vflip:
        mat = _inverse_matrix_px(draw, h, w)
        warp = dict(dsize=(w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        img = cv2.warpAffine(img, mat, **warp)
        m = cv2.warpAffine(m, mat, **warp)
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return out, (m > 0.5).astype(np.uint8)


def augment_pair(
    image: np.ndarray, mask: np.ndarray, params: AugmentParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random joint augmentation of image uint8 (H, W) and mask uint8 {0,1} (H, W) (NumPy/OpenCV).

    Returns (image uint8 (H, W), mask uint8 {0,1} (H, W)), geometrically aligned.
    """
    return apply_pair(image, mask, draw_pair(params, rng))


def draw_batch(params: AugmentParams, batch: int, generator: torch.Generator,
               device: torch.device | str | None = None) -> BatchDraw:
    """`batch` random draws from `params`, sampled on `generator`'s device, moved to `device`."""
    u = torch.rand(6, batch, generator=generator, device=generator.device)
    if device is not None:
        u = u.to(device, non_blocking=True)
    zero = torch.zeros_like(u[0])
    return BatchDraw(
        angle_deg=(2 * u[0] - 1) * params.rotate_deg,
        scale=1 + (2 * u[1] - 1) * params.scale,
        hflip=(u[2] < 0.5).float() if params.hflip else zero,
        vflip=(u[3] < 0.5).float() if params.vflip else zero,
        gain=1 + (2 * u[4] - 1) * params.intensity,
        bias=(2 * u[5] - 1) * params.intensity,
    )


def _theta(draw: BatchDraw, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) matrices for F.affine_grid (normalised coordinates, align_corners=False).

    With align_corners=False the normalised coordinate is n = (p - c) * 2 / size, i.e.
    n = D (p - c) with D = diag(2/W, 2/H); the pixel map p_in - c = A (p_out - c) becomes
    n_in = D A D^-1 n_out. D matters because H != W: rotating in normalised coordinates of a
    non-square image would shear it.
    """
    a = torch.deg2rad(draw.angle_deg)
    cos, sin = torch.cos(a), torch.sin(a)
    fx, fy = 1 - 2 * draw.hflip, 1 - 2 * draw.vflip
    inv_s = 1 / draw.scale
    # A = (1/s) R F, then conjugated by D: the off-diagonal terms pick up W/H and H/W.
    theta = torch.zeros(a.shape[0], 2, 3, dtype=torch.float32, device=a.device)
    theta[:, 0, 0] = inv_s * cos * fx
    theta[:, 0, 1] = -inv_s * sin * fy * (height / width)
    theta[:, 1, 0] = inv_s * sin * fx * (width / height)
    theta[:, 1, 1] = inv_s * cos * fy
    return theta


def apply_batch(images: torch.Tensor, masks: torch.Tensor, draw: BatchDraw) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per-sample draws to images float (B,1,H,W) in [0,1] and masks float {0,1} (B,1,H,W).

    One `grid_sample` call warps image and mask together (stacked as two channels).
    Returns (images float32 (B,1,H,W) in [0,1], masks float32 {0,1} (B,1,H,W)).
    """
    _check_batch(images, masks)
    b, _, h, w = images.shape
    x = images.float() * draw.gain.view(b, 1, 1, 1) + draw.bias.view(b, 1, 1, 1)
    x = x.clamp_(0.0, 1.0)
    both = torch.cat([x, masks.float()], dim=1)
    grid = F.affine_grid(_theta(draw, h, w), [b, 2, h, w], align_corners=False)
    both = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return both[:, :1].contiguous(), (both[:, 1:] > 0.5).float()


def _check_batch(images: torch.Tensor, masks: torch.Tensor) -> None:
    """One-line errors for a batch that is not float images (B,1,H,W) with masks of that shape
    (the values are not read: on a GPU that would make the CPU wait)."""
    if images.ndim != 4 or images.shape[1] != 1 or images.shape != masks.shape:
        raise FetalheadError(f"expected images and masks (B,1,H,W), got {tuple(images.shape)} and {tuple(masks.shape)}")
    if not images.is_floating_point():
        raise FetalheadError(f"expected float images in [0, 1] (to_float turns uint8 into them), got {images.dtype}")


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random joint augmentation of a batch on its device, a different draw per sample.

    images float (B,1,H,W) in [0,1], masks float {0,1} (B,1,H,W); `generator` may live on the
    CPU or on the images' device. Returns tensors of the same shapes (float32), masks re-binarised.
    """
    _check_batch(images, masks)
    if params.is_identity:
        return images.float(), (masks > 0.5).float()
    return apply_batch(images, masks, draw_batch(params, images.shape[0], generator, images.device))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) -> a new float32 tensor in [0, 1]: the network's input scale.

    Training and prediction both use this, so the model sees the same intensities.
    """
    if images.dtype != torch.uint8:
        raise FetalheadError(f"to_float expects uint8 images (0-255), got {images.dtype}")
    return images.to(torch.float32).div_(255.0)


# ----------------------------------------------------------------------------- resizing


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w) -> uint8 (H, W) with `size` = (H, W): area averaging (cv2.INTER_AREA),
    which does not alias when shrinking."""
    h, w = size
    if image.shape == (h, w):
        return image.copy()
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 {0,1} (h, w) -> uint8 {0,1} (H, W): resample the mask as a float (the covered
    fraction when shrinking, bilinear when enlarging) and keep pixels >= 0.5, which puts the
    boundary within half a pixel of where it was; nearest-neighbour would shift it by up to
    one source pixel."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(np.uint8, copy=True)
    shrink = h <= mask.shape[0] and w <= mask.shape[1]
    resized = cv2.resize(mask.astype(np.float32), (w, h),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return (resized >= 0.5).astype(np.uint8)
