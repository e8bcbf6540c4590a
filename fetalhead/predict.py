"""Segment an ultrasound image and measure the head: load a checkpoint once, predict many.

Pipeline for an image of any size (H, W), uint8:

1. pad a frame whose shape differs from HC18's to HC18's (`fetalhead.frame`), resize it to
   the model's training size (the checkpoint's `image_size`), scale to [0, 1];
2. U-Net logits -> sigmoid probabilities; with `tta=True` also on the mirrored image
   (mirrored back) and the two probability maps averaged;
3. resize the probability map back (to the padded frame, then crop the padding) to (H, W)
   with bilinear interpolation and threshold it at
   0.5 THERE, so the mask, the metrics and the HC are at the image's original resolution;
   A blank frame (gray levels spanning less than `BLANK_RANGE`: the black frames of a clip's
   start, a frozen screen) holds no head, and its map is all 0: the networks would otherwise
   draw a head into it;
4. keep the largest connected component, fit an ellipse (`fetalhead.ellipse.fit_ellipse`);
5. HC = ellipse perimeter (Ramanujan) x pixel size - annotation bias.

Annotation bias: the models learn the FILLED HC18 masks, which include the sonographer's drawn
line, so a predicted boundary lies about 0.9 px of an HC18 frame outside the annotated ellipse,
like the ground-truth masks. By default the same per-pixel correction as for ground-truth masks
is subtracted (`fetalhead.ellipse.annotation_bias_mm`: 5.8 px of perimeter x pixel size; the
ellipse is shrunk by the matching 0.93 px), so HC and the challenge ellipse are comparable
with the CSV. The network learned where that boundary lies at its own size, so for a frame
stored at another resolution the correction follows the network's pixels, except the part the
ellipse fit itself makes in the frame's pixels (`fetalhead.ellipse.prediction_bias_px`; with a
fixed 0.93 frame pixels a frame at twice HC18's resolution read 0.65 mm high:
results/robustness/frame_resolution_small_test.json). `bias_correction=False` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fetalhead.biometry import Diameters, diameters
from fetalhead.device import resolve_device
from fetalhead.ellipse import (
    ANNOTATION_BIAS_PX,
    Ellipse,
    fit_ellipse,
    gestational_age_weeks,
    head_ellipse,
    prediction_bias_px,
)
from fetalhead.errors import FetalheadError
from fetalhead.frame import HC18_SHAPE, frame_probabilities, network_image, network_scale
from fetalhead.inputs import binary_mask, validate_image, validate_pixel_size, validate_threshold
from fetalhead.interval import half_width_mm
from fetalhead.quality import Quality, mask_dice, quality
from fetalhead.transforms import resize_image, to_float

if TYPE_CHECKING:  # for annotations only: a copied predict.py runs without config.py
    from fetalhead.config import TrainConfig

__all__ = [
    "BLANK_RANGE",
    "REVIEW_BELOW",
    "STATUS_NO_HEAD",
    "STATUS_OK",
    "STATUS_REVIEW",
    "Prediction",
    "Predictor",
    "best_measurement",
    "check_image_file",
    "is_blank",
    "keep_largest_component",
    "load_input_image",
    "measure",
]

STATUS_OK = "ok"
STATUS_REVIEW = "review"  #: a head was measured, but its quality score is below the threshold
STATUS_NO_HEAD = "no head found"
#: quality score below which a measurement is flagged for review: 0.5 is where the `hc_band_mm`
#: signal says the outline's band spans a gross HC error (`fetalhead.quality.SCALES`); each
#: shipped weights file carries the threshold chosen for it ("review_below": `fetalhead.quality`)
REVIEW_BELOW = 0.5
#: a frame whose gray levels span fewer than this many (of 0-255) is blank: no head found (every
#: HC18 image spans at least 237; both shipped networks draw a 70-90 mm head into a black frame)
BLANK_RANGE = 16


def best_measurement(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Of several measurements of one head (predictions.csv rows: the frames of a cine loop,
    or of an examination), the one the review flag trusts most: status "ok" before "review",
    then the highest quality score, the first of equals; None when none found a head."""
    measured = [r for r in rows if r["status"] != STATUS_NO_HEAD]
    return max(measured, key=lambda r: (r["status"] == STATUS_OK, r["quality"])) if measured else None


def check_image_file(path: str | os.PathLike, frame: int | None = None) -> tuple[int, int]:
    """Fully decode an image file once (a DICOM cine loop at `frame`, from 1) to prove it is
    usable; return its (H, W) in pixels.

    Raises a one-line FetalheadError for a missing or empty file, a file that is not an image,
    a truncated or corrupt image, or a side outside [MIN_SIDE, MAX_SIDE] (`fetalhead.inputs`;
    `fetalhead.data` decodes with Pillow first, so nothing else reaches the process's stderr).
    """
    path = Path(path)
    if not path.exists():
        raise FetalheadError(f"{path}: no such file")
    if not path.is_file():
        raise FetalheadError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise FetalheadError(f"{path}: permission denied")
    return load_input_image(path, frame).shape  # type: ignore[return-value]


def load_input_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Read any supported image (8/16-bit, gray/RGB/RGBA/palette, DICOM: a cine loop at `frame`,
    from 1) as uint8 (H, W) and check its size. Use `check_image_file` first for files of
    unknown quality."""
    from fetalhead.data import load_image

    return validate_image(load_image(path, frame), name=str(path))


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component of `mask` (H, W), uint8 {0,1}."""
    return _largest_component(mask)[0]


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """(largest 8-connected component uint8 {0,1} (H, W), its bounding box grown by one pixel
    as (row slice, column slice))."""
    binary = binary_mask(mask).astype(np.uint8)
    if binary.ndim != 2:
        raise FetalheadError(f"expected an (H, W) mask, got shape {binary.shape}")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    h, w = binary.shape
    if n <= 1:
        return binary, (slice(0, h), slice(0, w))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[largest, :4])
    box = (slice(max(y - 1, 0), min(y + bh + 1, h)), slice(max(x - 1, 0), min(x + bw + 1, w)))
    return (binary if n == 2 else (labels == largest).astype(np.uint8)), box


@dataclass(frozen=True)
class Prediction:
    """Result for one image. Pixel quantities refer to the ORIGINAL image (H, W).

    Attributes:
        mask: uint8 {0,1} (H, W), the largest predicted component.
        prob: float32 (H, W) head probability, or None unless the predictor keeps it.
        pixel_size_mm: mm per pixel used for the mm quantities.
        ellipse: ellipse (pixels) fitted to the mask's boundary, or None when no head.
        head_ellipse: `ellipse` shrunk by the annotation bias (pixels): the head outline
            as a sonographer draws it; equals `ellipse` without bias correction.
        ellipse_mm: `head_ellipse` in mm (what the challenge CSV holds), or None.
        hc_mm: head circumference (mm) after bias correction; nan when no head.
        hc_raw_mm: perimeter of `ellipse` in mm, no correction; nan when no head.
        bias_mm: the correction subtracted (mm); 0 when switched off.
        ga_weeks, ga_in_range: Hadlock gestational age (weeks) and whether HC lies in the
            formula's range (see `fetalhead.ellipse.gestational_age_weeks`).
        status: "ok", "review" (measured, but the quality score is low) or "no head found".
        quality: the quality signals and score (`fetalhead.quality`), None when no head.
        hc_interval_mm: (low, high) mm, the 90 % interval of `hc_mm` for its pixel size
            (`fetalhead.interval`); (nan, nan) when no head.
        diameters: BPD and OFD (mm) of `ellipse_mm` and the cephalic index
            (`fetalhead.biometry`); NaNs when no head.
    """

    mask: np.ndarray
    prob: np.ndarray | None
    pixel_size_mm: float
    ellipse: Ellipse | None
    head_ellipse: Ellipse | None
    ellipse_mm: Ellipse | None
    hc_mm: float
    hc_raw_mm: float
    bias_mm: float
    ga_weeks: float
    ga_in_range: bool
    status: str
    quality: Quality | None = None

    @property
    def hc_interval_mm(self) -> tuple[float, float]:
        """(low, high) mm: the 90 % interval of `hc_mm` (`fetalhead.interval`); NaNs when no head."""
        w = half_width_mm(self.pixel_size_mm)
        return self.hc_mm - w, self.hc_mm + w

    @property
    def diameters(self) -> Diameters:
        """BPD and OFD (mm, outer to outer) of the head ellipse and its cephalic index."""
        return diameters(self.ellipse_mm)

    def to_row(self) -> dict:
        """Flat dict for a CSV row: status, quality score and signals, HC with its 90 %
        interval, head ellipse in pixels and mm, BPD, OFD and cephalic index, GA with the
        interval's ends as ages."""
        e, m = self.head_ellipse, self.ellipse_mm
        nan = float("nan")
        q = self.quality.to_row() if self.quality else {"quality": nan}
        low, high = self.hc_interval_mm
        return {
            "status": self.status,
            "quality": q["quality"],
            "pixel_size_mm": self.pixel_size_mm,
            "hc_mm": self.hc_mm,
            "hc_low_mm": low,
            "hc_high_mm": high,
            "hc_raw_mm": self.hc_raw_mm,
            "center_x_px": e.cx if e else nan,
            "center_y_px": e.cy if e else nan,
            "semi_axes_a_px": e.a if e else nan,
            "semi_axes_b_px": e.b if e else nan,
            "angle_rad": e.angle_rad if e else nan,
            "center_x_mm": m.cx if m else nan,
            "center_y_mm": m.cy if m else nan,
            "semi_axes_a_mm": m.a if m else nan,
            "semi_axes_b_mm": m.b if m else nan,
            **self.diameters.to_row(),
            "ga_weeks": self.ga_weeks,
            "ga_in_range": self.ga_in_range,
            "ga_low_weeks": gestational_age_weeks(low)[0],  # Hadlock's age grows with HC: the
            "ga_high_weeks": gestational_age_weeks(high)[0],  # HC interval's ends give the age's
            **{k: v for k, v in q.items() if k != "quality"},
        }


def is_blank(image: np.ndarray) -> bool:
    """True for a uint8 (H, W) image whose gray levels span fewer than `BLANK_RANGE`."""
    return int(image.max()) - int(image.min()) < BLANK_RANGE


def _check_probabilities(prob: np.ndarray) -> np.ndarray:
    """`prob` if it is a float (H, W) map of probabilities in [0, 1], else a one-line error."""
    arr = np.asarray(prob)
    if arr.dtype.kind != "f" or arr.ndim != 2:
        raise FetalheadError(f"expected a float (H, W) map of probabilities, got {arr.dtype} {arr.shape}")
    if arr.size and not (arr.min() >= 0 and arr.max() <= 1):  # NaN fails both
        raise FetalheadError("probabilities must lie in [0, 1] (apply a sigmoid to a network's logits)")
    return arr


def measure(prob: np.ndarray, pixel_size_mm: float, *, threshold: float = 0.5,
            bias_correction: bool = True, review_below: float = REVIEW_BELOW, scale: float = 1.0,
            flip_agreement: float = float("nan"), keep_prob: bool = False,
            bias_px: float = ANNOTATION_BIAS_PX) -> Prediction:
    """Probability map float32 (H, W) -> Prediction: threshold (`prob > threshold`), keep the
    largest component, fit the ellipse (pixels), HC in mm for `pixel_size_mm` (minus the
    annotation bias unless `bias_correction=False`), the quality (`fetalhead.quality`; `scale`:
    image pixels per network pixel, `flip_agreement` from a mirrored pass if any) and the status
    ("review" below `review_below`). The one path from probabilities to a measurement: the
    Predictor, the evaluation and the viewer all take it. `bias_px`: the pixels of perimeter the
    correction removes (`ANNOTATION_BIAS_PX` at HC18's resolution; the Predictor gives
    `fetalhead.ellipse.prediction_bias_px` of the frame's scale, see the module docstring)."""
    px = validate_pixel_size(pixel_size_mm)
    foreground = _check_probabilities(prob) > validate_threshold(threshold)
    mask, box = _largest_component(foreground)
    ellipse = fit_ellipse(mask[box]) if mask.any() else None
    if ellipse is not None:  # fitted on the component's bounding box: the same contour, shifted
        ellipse = replace(ellipse, cx=ellipse.cx + box[1].start, cy=ellipse.cy + box[0].start)
    nan = float("nan")
    kept = prob if keep_prob else None
    if ellipse is None:
        return Prediction(mask, kept, px, None, None, None, nan, nan, 0.0, nan, False, STATUS_NO_HEAD)
    bias_mm = float(bias_px) * px if bias_correction else 0.0
    head = head_ellipse(ellipse, bias_px) if bias_correction else ellipse
    hc_raw = ellipse.circumference * px
    hc = hc_raw - bias_mm
    weeks, in_range = gestational_age_weeks(hc)
    q = quality(prob, mask, foreground, ellipse, hc, px, flip_agreement, scale=scale)
    status = STATUS_OK if q.score >= review_below else STATUS_REVIEW
    return Prediction(mask, kept, px, ellipse, head, head.to_mm(px), hc, hc_raw, bias_mm, weeks,
                      in_range, status, q)


class Predictor:
    """A loaded model plus its preprocessing; call `predict` or `predict_batch` many times.

    Args:
        model: network mapping (B, 1, h, w) float in [0, 1] to logits (B, 1, h', w'). The
            Predictor takes it over: it is put in eval mode, in float32, on `device` (pass a
            copy, `copy.deepcopy(net)`, of a network you are still training).
        image_size: (h, w) pixels the model was trained at (the checkpoint's config).
        device: torch device (default: CUDA if available, else CPU).
        tta: also predict the mirrored image and average the probabilities.
        threshold: probability above which a pixel is head (applied at original size).
        bias_correction: subtract the annotation bias (see the module docstring).
        keep_prob: keep the float32 probability map in each `Prediction`.
        review_below: quality score below which a measurement gets status "review"
            (default: the file's "review_below", else `REVIEW_BELOW`).
        pad_frames: pad a frame whose shape differs from HC18's to HC18's before resizing it
            to the network's size (`fetalhead.frame`); False resizes every frame as it is.
    """

    def __init__(self, model: nn.Module, image_size: tuple[int, int], *,
                 device: str | torch.device | None = None, tta: bool = False,
                 threshold: float = 0.5, bias_correction: bool = True,
                 keep_prob: bool = False, config: TrainConfig | None = None, meta: dict | None = None,
                 checkpoint: Path | None = None, review_below: float | None = None,
                 pad_frames: bool = True) -> None:
        self.device = resolve_device(device)
        self.model = model.float().to(self.device).eval()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.tta = tta
        self.threshold = validate_threshold(threshold)
        self.bias_correction = bias_correction
        self.keep_prob = keep_prob
        self.config = config
        self.meta = meta or {}
        self.checkpoint = checkpoint
        self.pad_frames = pad_frames
        self.review_below = float(review_below if review_below is not None
                                  else self.meta.get("review_below", REVIEW_BELOW))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, model: str | None = None,
                        **kwargs: Any) -> Predictor:
        """Load `path`, else the shipped model `model` ("default" or "small"), else the best
        shipped model present, with `fetalhead.checkpoint.load_checkpoint`.

        Raises FetalheadError when the file is missing, is not a checkpoint, or does not match
        the architecture. `kwargs` go to `Predictor` (device, tta, threshold, ...); without
        `tta` (or with None) the file's own "tta" entry decides (off when it has none).
        """
        from fetalhead.checkpoint import load_checkpoint
        from fetalhead.paths import SHIPPED_MODELS, shipped_checkpoint

        if path is not None and model is not None:
            raise FetalheadError("give a checkpoint path or a shipped model name, not both")
        if path is not None and str(path) in SHIPPED_MODELS and not Path(path).exists():
            raise FetalheadError(f"{path!r} is a shipped model's name: from_checkpoint(model={str(path)!r})")
        if path is None:
            if model is not None and model not in SHIPPED_MODELS:
                raise FetalheadError(f"unknown model {model!r}; choose one of {', '.join(SHIPPED_MODELS)}")
            path = shipped_checkpoint(model)
            if not path.is_file():
                raise FetalheadError(
                    f"no shipped weights at {path}; train a model (`fetalhead train` or "
                    "`fetalhead main --retrain`) and pass it with --checkpoint FILE")
        path = Path(path)
        if not path.exists():
            raise FetalheadError(f"checkpoint {path}: no such file")
        if not path.is_file():
            raise FetalheadError(f"checkpoint {path} is not a file")
        model, cfg, meta = load_checkpoint(path, map_location="cpu")
        if kwargs.get("tta") is None:  # the file's recommendation (chosen on validation), else off
            kwargs["tta"] = bool(meta.get("tta", False))
        return cls(model, tuple(cfg.image_size), config=cfg, meta=meta, checkpoint=path, **kwargs)

    @property
    def weights(self) -> str | None:
        """The weights it runs, by name: the training run its checkpoint records, else the
        checkpoint file's path; None for a network given directly."""
        run = self.meta.get("training_run")
        return str(run) if run else (str(self.checkpoint) if self.checkpoint else None)

    # ------------------------------------------------------------ network part

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Head probability maps float32 (H_i, W_i) in [0, 1] at each image's original size,
        for uint8 (H_i, W_i) images, in ONE forward pass (chunk large lists yourself)."""
        return self._probabilities(images)[0]

    @torch.inference_mode()
    def _probabilities(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """(`probabilities`, per image the Dice of the plain and mirrored passes' masks at the
        network's size: NaN without test-time flips)."""
        h, w = self.image_size
        to_net = network_image if self.pad_frames else resize_image
        small = np.stack([to_net(validate_image(im), (h, w)) for im in images])
        x = to_float(torch.from_numpy(small).to(self.device).unsqueeze(1))
        prob = torch.sigmoid(self._logits(x))
        agree = [float("nan")] * len(images)
        if self.tta:
            flipped = torch.sigmoid(self._logits(x.flip(-1))).flip(-1)
            a = (prob[:, 0] > self.threshold).cpu().numpy()
            b = (flipped[:, 0] > self.threshold).cpu().numpy()
            agree = [mask_dice(ai, bi) for ai, bi in zip(a, b, strict=True)]
            prob = 0.5 * (prob + flipped)
        prob_np = prob[:, 0].float().cpu().numpy()
        for i, im in enumerate(images):
            if is_blank(im):
                prob_np[i] = 0.0
                agree[i] = float("nan")
        if self.pad_frames:
            maps = [frame_probabilities(p, im.shape) for p, im in zip(prob_np, images, strict=True)]
        else:
            maps = [cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR)
                    for p, im in zip(prob_np, images, strict=True)]
        return maps, agree

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, h, w) for x (B, 1, h, w). A "valid" U-Net, whose output is the input
        minus a fixed margin on each side, gets the image mirror-padded by that margin (and up
        to an input size it accepts), the paper's overlap-tile strategy (Ronneberger et al.
        2015, Fig. 2); its output is then cropped to the image."""
        if getattr(self.model, "padding", "same") != "valid":
            return self.model(x)
        from fetalhead.model import valid_input_size, valid_output_size

        h, w = x.shape[-2:]
        n = valid_input_size(max(h, w))
        margin = (n - valid_output_size(n)) // 2  # the same for every valid size (184 / 2)
        big_h, big_w = valid_input_size(h + 2 * margin), valid_input_size(w + 2 * margin)
        pads = (margin, big_w - w - margin, margin, big_h - h - margin)
        mode = "reflect" if max(pads) < min(h, w) else "replicate"  # reflect needs pad < size
        logits = self.model(F.pad(x, pads, mode=mode))
        return logits[..., :h, :w]

    # ------------------------------------------------------------ measurement part

    def measure(self, prob: np.ndarray, pixel_size_mm: float, threshold: float | None = None,
                flip_agreement: float = float("nan")) -> Prediction:
        """`measure` with this predictor's settings (threshold unless given, bias correction,
        review threshold, probability kept or not); `scale` from the size (H, W) of the frame the
        network saw (the map's, padded to HC18's shape as `network_image` pads it) and the
        network's."""
        return measure(prob, pixel_size_mm, threshold=self.threshold if threshold is None else threshold,
                       bias_correction=self.bias_correction, review_below=self.review_below,
                       scale=network_scale(prob.shape, self.image_size, pad=self.pad_frames),
                       flip_agreement=flip_agreement, keep_prob=self.keep_prob, bias_px=self.bias_px(prob.shape))

    def bias_px(self, shape: tuple[int, int]) -> float:
        """The annotation bias (pixels of perimeter) of this predictor's ellipse on a frame of
        `shape` (H, W): `fetalhead.ellipse.prediction_bias_px` of its pixels per network pixel
        over an HC18 frame's (`ANNOTATION_BIAS_PX` for HC18's 540x800)."""
        ratio = (network_scale(shape, self.image_size, pad=self.pad_frames)
                 / network_scale(HC18_SHAPE, self.image_size, pad=self.pad_frames))
        return prediction_bias_px(ratio)

    def predict(self, image: np.ndarray, pixel_size_mm: float) -> Prediction:
        """Segment one uint8 (H, W) image and measure the head; mm from `pixel_size_mm`."""
        return self.predict_batch([image], [pixel_size_mm])[0]

    def predict_batch(self, images: Sequence[np.ndarray], pixel_sizes: Sequence[float],
                      batch_size: int = 8) -> list[Prediction]:
        """`predict` for many images (any mix of sizes), `batch_size` per forward pass."""
        if len(images) != len(pixel_sizes):
            raise FetalheadError(f"{len(images)} images but {len(pixel_sizes)} pixel sizes")
        sizes = [validate_pixel_size(p) for p in pixel_sizes]
        if batch_size < 1:
            raise FetalheadError(f"batch size must be at least 1, got {batch_size}")
        out: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            probs, agree = self._probabilities(chunk)
            out.extend(self.measure(p, s, flip_agreement=f)
                       for p, s, f in zip(probs, sizes[start:start + batch_size], agree, strict=True))
        return out

