"""Interactive widgets for JupyterLab 4 (ipywidgets 8): a prediction viewer, an augmentation explorer.

Both draw with matplotlib's object API (`Figure` + `FigureCanvasAgg`) into PNG bytes shown by an
`ipywidgets.Image`: no figure is ever registered with pyplot (nothing leaks, nothing is shown
twice), and no front-end extension beyond ipywidgets' own is needed (no ipympl).

`PredictionViewer` is built from plain arrays (images, ground-truth masks, probability maps at
ORIGINAL resolution, pixel sizes in mm), so it needs no model; `PredictionViewer.from_predictor`
fills those arrays from a `fetalhead.predict.Predictor`. Moving its threshold recomputes the
binary prediction, its Dice, the fitted ellipse and the head circumference (HC, mm).

Every control is a public attribute and the shown state is exposed (`current_index`,
`current_dice`, `label_text`, `render_count`, `last_png`...), so tests drive the widgets by
setting values, exactly as a user's browser does through the widget protocol.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import ipywidgets as W
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse as EllipsePatch

from fetalhead.ellipse import Ellipse, fit_ellipse
from fetalhead.errors import FetalheadError
from fetalhead.metrics import dice

if TYPE_CHECKING:  # pragma: no cover
    from fetalhead.predict import Predictor
    from fetalhead.transforms import AugmentDraw, AugmentParams

__all__ = [
    "SORT_OPTIONS",
    "AugmentationExplorer",
    "CaseStats",
    "Measure",
    "PredictionViewer",
    "SyntheticCases",
    "demo_explorer",
    "demo_viewer",
    "figure_to_png",
    "soft_probability",
    "synthetic_cases",
    "threshold_measure",
]

PRED_COLOR = "#ff7f0e"  # orange fill: readable on grey ultrasound (same as viz.show_pair)
GT_COLOR = "#2ca02c"  # green outline
ELLIPSE_COLOR = "#17becf"  # cyan dashed

#: Sort dropdown: (label shown, value). NaN metrics (no ground truth, no head) sort last.
SORT_OPTIONS: tuple[tuple[str, str], ...] = (
    ("input order", "input"),
    ("filename", "filename"),
    ("Dice ascending (worst first)", "dice_asc"),
    ("Dice descending (best first)", "dice_desc"),
    ("|HC error| descending (worst first)", "hc_error_desc"),
    ("quality ascending (least trusted first)", "quality_asc"),
)


#: (prob float32 (H, W), pixel size mm, threshold) -> (mask uint8 {0,1} (H, W), ellipse in
#: pixels or None, HC mm or nan), optionally followed by (quality score or nan, status): how a
#: probability map becomes a measured head.
Measure = Callable[[np.ndarray, float, float], tuple]


def threshold_measure(prob: np.ndarray, pixel_size_mm: float,
                      threshold: float) -> tuple[np.ndarray, Ellipse | None, float]:
    """The plain measurement: mask = prob >= threshold (every component kept, so stray blobs
    stay visible), ellipse fitted to its largest component (pixels), HC = perimeter x pixel
    size (mm, no bias correction; nan when no head)."""
    mask = (np.asarray(prob) >= threshold).astype(np.uint8)
    ellipse = fit_ellipse(mask)
    hc = float("nan") if ellipse is None else ellipse.circumference * float(pixel_size_mm)
    return mask, ellipse, hc


def figure_to_png(fig: Figure) -> bytes:
    """Render a matplotlib `Figure` (object API) to PNG bytes with the Agg canvas."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


@dataclass(frozen=True)
class CaseStats:
    """Measurements of one case at one threshold.

    dice: Dice of the thresholded prediction vs the ground truth (nan without ground truth);
    area_px: predicted pixels; ellipse: fit in pixels (None = no head); hc_pred_mm, hc_true_mm,
    hc_error_mm = pred - true (nan when unknown); quality and status when the measure gives them.
    """

    dice: float
    area_px: int
    ellipse: Ellipse | None
    hc_pred_mm: float
    hc_true_mm: float
    quality: float = float("nan")  # `fetalhead.quality` score, nan when the measure gives none
    status: str = ""  # "ok", "review", "no head found"; "" when the measure gives none

    @property
    def hc_error_mm(self) -> float:
        """Signed HC error, predicted minus true, in mm (nan when either is unknown)."""
        return self.hc_pred_mm - self.hc_true_mm


def _as_list(name: str, values: Sequence | np.ndarray | None, n: int) -> list:
    if values is None:
        return [None] * n
    out = list(values)
    if len(out) != n:
        raise FetalheadError(f"PredictionViewer: {name} has {len(out)} entries for {n} images")
    return out


class PredictionViewer:
    """Browse predictions case by case: image, ground-truth outline, prediction, ellipse, Dice, HC.

    Args:
        images: N images, uint8 (H, W) each (sizes may differ between cases).
        probs: N probability maps, float (H, W) in [0, 1], the model's output resized to the
            image's ORIGINAL resolution (so that pixel sizes apply).
        pixel_sizes_mm: N pixel sizes, mm per pixel (isotropic).
        filenames: N names (default "case_000", ...).
        masks: N ground-truth masks uint8 {0,1} (H, W), or None (overall or per case).
        hc_true_mm: N reference HC in mm (e.g. the HC18 CSV column), or None / nan when unknown.
        threshold: initial threshold (0.05 to 0.95); prediction = prob >= threshold.
        opacity: initial opacity of the prediction fill, in [0, 1].
        sort: initial sort, one of the values of `SORT_OPTIONS`.
        measure: how (prob, pixel size, threshold) become (mask, ellipse, HC mm); default
            `threshold_measure`. `from_predictor` passes the predictor's own measurement
            (largest component, annotation-bias correction), so the viewer shows exactly the
            Dice and HC that `fetalhead.evaluate` reports at the same threshold.
        width_px: width of the rendered figure in pixels.

    Display it as the last expression of a cell, or `display(viewer.widget)`.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        probs: Sequence[np.ndarray],
        pixel_sizes_mm: Sequence[float] | np.ndarray,
        filenames: Sequence[str] | None = None,
        masks: Sequence[np.ndarray | None] | None = None,
        hc_true_mm: Sequence[float] | np.ndarray | None = None,
        *,
        threshold: float = 0.5,
        opacity: float = 0.3,
        sort: str = "input",
        measure: Measure | None = None,
        width_px: int = 640,
    ) -> None:
        n = len(images)
        if n == 0:
            raise FetalheadError("PredictionViewer: no images given")
        self._images = [np.asarray(im) for im in images]
        self._probs = [np.asarray(p, dtype=np.float32) for p in _as_list("probs", probs, n)]
        self._pixel_sizes = [float(p) for p in _as_list("pixel_sizes_mm", pixel_sizes_mm, n)]
        names = filenames if filenames is not None else [f"case_{i:03d}" for i in range(n)]
        self._filenames = [str(f) for f in _as_list("filenames", names, n)]
        self._masks = [None if m is None else (np.asarray(m) > 0).astype(np.uint8)
                       for m in _as_list("masks", masks, n)]
        self._hc_true = [float("nan") if h is None else float(h)
                         for h in _as_list("hc_true_mm", hc_true_mm, n)]
        for name, im, p, m in zip(self._filenames, self._images, self._probs, self._masks,
                                  strict=True):
            if im.dtype != np.uint8:
                raise FetalheadError(f"PredictionViewer: {name}: image dtype {im.dtype}, "
                                     "expected uint8")
            if im.ndim != 2 or p.shape != im.shape or (m is not None and m.shape != im.shape):
                raise FetalheadError(
                    f"PredictionViewer: {name}: image {im.shape}, prob {p.shape} and mask "
                    f"{None if m is None else m.shape} must be equal 2-D (H, W) shapes")
            if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
                raise FetalheadError(f"PredictionViewer: {name}: probabilities outside [0, 1]")
        sort_values = [v for _, v in SORT_OPTIONS]
        if sort not in sort_values:
            raise FetalheadError(f"PredictionViewer: unknown sort {sort!r}; one of {sort_values}")
        self._measure: Measure = measure if measure is not None else threshold_measure
        self._width_px = int(width_px)
        # Keyed by (case, threshold): sorting and revisiting a case reuse the measurements
        # (scalars and the ellipse only; masks are recomputed, they are large).
        self._cache: dict[tuple[int, float], CaseStats] = {}
        self._order = list(range(n))
        self._busy = False  # set while one change updates several controls: render once
        self.render_count = 0
        self.last_png = b""

        self.case_slider = W.IntSlider(value=1, min=1, max=n, step=1, description="case",
                                       continuous_update=False, disabled=n == 1)
        self.sort_dropdown = W.Dropdown(options=list(SORT_OPTIONS), value=sort,
                                        description="sort by")
        self.threshold_slider = W.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05,
                                              description="threshold", readout_format=".2f",
                                              continuous_update=False)
        self.opacity_slider = W.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05,
                                            description="opacity", readout_format=".2f",
                                            continuous_update=False)
        self.review_toggle = W.Checkbox(value=False, description="flagged for review only",
                                        indent=False)
        self.label = W.HTML()
        # Natural size (no stretching to the output's width), shrunk on narrow screens.
        self.image = W.Image(format="png", layout=W.Layout(width="auto", max_width="100%",
                                                             align_self="flex-start"))
        for w, cls in ((self.case_slider, "case"), (self.sort_dropdown, "sort"),
                       (self.threshold_slider, "threshold"), (self.opacity_slider, "opacity"),
                       (self.review_toggle, "review"), (self.label, "label"), (self.image, "figure")):
            w.add_class(f"fetalhead-viewer-{cls}")  # stable hooks for the browser test and CSS
        self._box = W.VBox([
            W.HBox([self.case_slider, self.sort_dropdown]),
            W.HBox([self.threshold_slider, self.opacity_slider, self.review_toggle]),
            self.label,
            self.image,
        ])
        self._box.add_class("fetalhead-viewer")

        self.case_slider.observe(self._on_redraw, names="value")
        self.sort_dropdown.observe(self._on_sort, names="value")
        self.threshold_slider.observe(self._on_threshold, names="value")
        self.opacity_slider.observe(self._on_redraw, names="value")
        self.review_toggle.observe(self._on_filter, names="value")
        self._order = self._sorted_order(sort)
        self.render()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_predictor(
        cls,
        predictor: Predictor,
        images: Sequence[np.ndarray],
        pixel_sizes_mm: Sequence[float] | np.ndarray,
        filenames: Sequence[str] | None = None,
        masks: Sequence[np.ndarray | None] | None = None,
        hc_true_mm: Sequence[float] | np.ndarray | None = None,
        batch_size: int = 8,
        **kwargs: Any,
    ) -> PredictionViewer:
        """Run `predictor` on `images` once (probabilities at original resolution) and view.

        The viewer measures with `predictor.measure` (largest component, bias-corrected HC),
        so at the predictor's threshold it shows what `Predictor.predict` returns. Other
        keyword arguments go to `PredictionViewer` (threshold defaults to the predictor's).
        """
        probs: list[np.ndarray] = []
        for start in range(0, len(images), max(int(batch_size), 1)):
            probs += predictor.probabilities(list(images[start:start + batch_size]))

        def measure(prob: np.ndarray, px: float, t: float):
            p = predictor.measure(prob, px, threshold=t)
            return p.mask, p.head_ellipse, p.hc_mm, p.quality.score if p.quality else float("nan"), p.status

        kwargs.setdefault("threshold", predictor.threshold)
        kwargs.setdefault("measure", measure)
        return cls(images, probs, pixel_sizes_mm, filenames, masks, hc_true_mm, **kwargs)

    @classmethod
    def from_evaluation(
        cls,
        predictor: Predictor,
        results: pd.DataFrame,
        root: str | os.PathLike | None = None,
        n_cases: int | None = 24,
        **kwargs: Any,
    ) -> PredictionViewer:
        """View the `n_cases` lowest-Dice rows of `fetalhead.evaluate.evaluate_split`'s table.

        Args:
            predictor: the predictor that produced `results`.
            results: DataFrame with filename, pixel_size_mm, hc_true_mm and dice columns.
            root: HC18 folder (default `fetalhead.paths.data_dir()`).
            n_cases: how many cases to load (worst Dice first); None = all rows. Each
                540x800 case holds about 2.5 MB (image, mask, float32 probabilities).
        Images and masks are read at original resolution; the viewer starts sorted by Dice,
        worst first. Other keyword arguments go to `from_predictor`.
        """
        from fetalhead.data import annotation_path, image_path, load_pair

        missing = {"filename", "pixel_size_mm", "hc_true_mm", "dice"} - set(results.columns)
        if missing:
            raise FetalheadError(f"PredictionViewer.from_evaluation: results lack columns "
                                 f"{sorted(missing)} (pass evaluate_split's table)")
        rows = results.sort_values("dice", kind="stable", na_position="first")
        if n_cases is not None:
            rows = rows.head(int(n_cases))
        names = list(rows["filename"])
        pairs = [load_pair(image_path(n, root=root), annotation_path(n, root)) for n in names]
        kwargs.setdefault("sort", "dice_asc")
        return cls.from_predictor(
            predictor, [im for im, _ in pairs], rows["pixel_size_mm"].to_numpy(float), names,
            [m for _, m in pairs], rows["hc_true_mm"].to_numpy(float), **kwargs)

    # ------------------------------------------------------------------ measurements
    def __len__(self) -> int:
        return len(self._images)

    @property
    def threshold(self) -> float:
        """Current threshold: prediction = prob >= threshold."""
        return float(self.threshold_slider.value)

    @property
    def opacity(self) -> float:
        """Current opacity of the prediction fill, in [0, 1]."""
        return float(self.opacity_slider.value)

    def pred_mask(self, index: int, threshold: float | None = None) -> np.ndarray:
        """Binary prediction uint8 {0,1} (H, W) of case `index` (input order) at `threshold`."""
        t = self.threshold if threshold is None else float(threshold)
        mask = self._measure(self._probs[index], self._pixel_sizes[index], t)[0]
        return (np.asarray(mask) > 0).astype(np.uint8)

    def stats(self, index: int, threshold: float | None = None) -> CaseStats:
        """Dice, area, ellipse and HC (mm) of case `index` (input order) at `threshold`."""
        t = round(self.threshold if threshold is None else float(threshold), 6)
        key = (index, t)
        if key not in self._cache:
            pred, ell, hc, *extra = self._measure(self._probs[index], self._pixel_sizes[index], t)
            gt = self._masks[index]
            self._cache[key] = CaseStats(
                dice=float("nan") if gt is None else float(dice(pred, gt)),
                area_px=int(np.count_nonzero(pred)),
                ellipse=ell,
                hc_pred_mm=float(hc),
                hc_true_mm=self._hc_true[index],
                quality=float(extra[0]) if extra else float("nan"),
                status=str(extra[1]) if len(extra) > 1 else "",
            )
        return self._cache[key]

    def table(self, threshold: float | None = None) -> pd.DataFrame:
        """One row per case in the CURRENT display order: position, index, filename, dice,
        area_px, hc_pred_mm, hc_true_mm, hc_error_mm (mm)."""
        rows = []
        for pos, i in enumerate(self._order, start=1):
            s = self.stats(i, threshold)
            rows.append(dict(position=pos, index=i, filename=self._filenames[i], dice=s.dice,
                             area_px=s.area_px, hc_pred_mm=s.hc_pred_mm,
                             hc_true_mm=s.hc_true_mm, hc_error_mm=s.hc_error_mm))
        return pd.DataFrame(rows)

    def _sorted_order(self, sort: str) -> list[int]:
        idx = list(range(len(self)))
        if self.review_toggle.value:  # flagged cases only (all of them when none is flagged)
            idx = [i for i in idx if self.stats(i).status not in ("", "ok")] or idx
        if sort == "input":
            return idx
        if sort == "filename":
            return sorted(idx, key=lambda i: (self._filenames[i], i))

        def key(i: int) -> tuple[bool, float]:
            s = self.stats(i)
            value = {"dice_asc": s.dice, "dice_desc": -s.dice, "quality_asc": s.quality}.get(
                sort, -abs(s.hc_error_mm))
            # NaN last; ties keep input order (sorted is stable).
            return (True, 0.0) if math.isnan(value) else (False, value)

        return sorted(idx, key=key)

    # ------------------------------------------------------------------ current state
    @property
    def order(self) -> list[int]:
        """Input indices in display order (slider position p shows order[p - 1])."""
        return list(self._order)

    @property
    def current_position(self) -> int:
        """1-based position of the shown case in the display order (the slider's value)."""
        return int(self.case_slider.value)

    @property
    def current_index(self) -> int:
        """Index (input order) of the shown case."""
        return self._order[self.current_position - 1]

    @property
    def current_filename(self) -> str:
        """File name of the shown case."""
        return self._filenames[self.current_index]

    @property
    def current_stats(self) -> CaseStats:
        """Measurements of the shown case at the current threshold."""
        return self.stats(self.current_index)

    @property
    def current_dice(self) -> float:
        """Dice of the shown case at the current threshold (nan without ground truth)."""
        return self.current_stats.dice

    @property
    def current_hc_mm(self) -> float:
        """Predicted HC (mm) of the shown case at the current threshold (nan: no head)."""
        return self.current_stats.hc_pred_mm

    @property
    def current_hc_true_mm(self) -> float:
        """Reference HC (mm) of the shown case (nan when unknown)."""
        return self._hc_true[self.current_index]

    @property
    def label_text(self) -> str:
        """The label's text: "case i/N: filename — Dice x — HC pred y mm vs true z mm"."""
        s = self.current_stats
        flag = f" — quality {_fmt(s.quality, '.2f')} ({s.status})" if s.status else ""
        return (f"case {self.current_position}/{len(self._order)}: {self.current_filename} — "
                f"Dice {_fmt(s.dice, '.3f')} — HC pred {_fmt(s.hc_pred_mm, '.1f')} mm vs true "
                f"{_fmt(s.hc_true_mm, '.1f')} mm{flag}")

    @property
    def widget(self) -> W.VBox:
        """The whole viewer: controls, label and figure."""
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
        return self._box._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ drawing
    def figure(self, index: int | None = None) -> Figure:
        """Figure of case `index` (default: the shown one) at the current threshold/opacity."""
        i = self.current_index if index is None else int(index)
        image, gt, s = self._images[i], self._masks[i], self.stats(i)
        h, w = image.shape
        fig = Figure(figsize=(self._width_px / 100, self._width_px / 100 * h / w), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        overlay = np.zeros((h, w, 4), np.float32)
        pred = self.pred_mask(i).astype(bool)
        overlay[pred] = (*_rgb(PRED_COLOR), self.opacity)
        ax.imshow(overlay)
        handles = [Line2D([], [], color=PRED_COLOR, lw=6, alpha=0.6,
                          label=f"prediction (p ≥ {self.threshold:.2f})")]
        if gt is not None and gt.any():
            ax.contour(gt.astype(np.float32), levels=[0.5], colors=[GT_COLOR], linewidths=1.5)
            handles.append(Line2D([], [], color=GT_COLOR, lw=1.5, label="ground truth"))
        if s.ellipse is not None:
            e = s.ellipse
            # Data coordinates with y down: matplotlib's angle (from +x towards +y) then matches
            # the Ellipse convention of fetalhead.ellipse, whatever the axis direction.
            ax.add_patch(EllipsePatch((e.cx, e.cy), 2 * e.a, 2 * e.b,
                                      angle=math.degrees(e.angle_rad), fill=False,
                                      ec=ELLIPSE_COLOR, ls="--", lw=1.5))
            handles.append(Line2D([], [], color=ELLIPSE_COLOR, ls="--", lw=1.5,
                                  label="fitted ellipse"))
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
        ax.text(0.01, 0.99, self._filenames[i], transform=ax.transAxes, va="top", ha="left",
                fontsize=9, color="white", bbox=dict(fc="black", alpha=0.5, lw=0))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_axis_off()
        return fig

    def render(self) -> bytes:
        """Redraw the label and the figure for the current state; returns the PNG bytes."""
        self.label.value = html.escape(self.label_text).replace(
            f"case {self.current_position}/{len(self._order)}:",
            f"<b>case {self.current_position}/{len(self._order)}</b>:", 1)
        self.last_png = figure_to_png(self.figure())
        self.image.value = self.last_png
        self.render_count += 1
        return self.last_png

    # ------------------------------------------------------------------ callbacks
    def _on_redraw(self, change: dict) -> None:
        if not self._busy:
            self.render()

    def _on_sort(self, change: dict) -> None:
        # A new sort starts at its first case: the point of sorting is to see the worst first.
        self._restart(change["new"])

    def _on_filter(self, change: dict) -> None:
        self._restart(self.sort_dropdown.value)

    def _restart(self, sort: str) -> None:
        self._order = self._sorted_order(sort)
        self._busy = True
        try:
            self.case_slider.max = max(len(self._order), 1)
            self.case_slider.disabled = len(self._order) == 1
            self.case_slider.value = 1
        finally:
            self._busy = False
        self.render()

    def _on_threshold(self, change: dict) -> None:
        # Metrics change with the threshold, so a metric sort is redone; the shown case stays.
        index = self.current_index
        self._order = self._sorted_order(self.sort_dropdown.value)
        self._busy = True
        try:
            self.case_slider.max = max(len(self._order), 1)
            self.case_slider.value = self._order.index(index) + 1 if index in self._order else 1
        finally:
            self._busy = False
        self.render()


def _rgb(color: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


# ---------------------------------------------------------------------- augmentation explorer
class AugmentationExplorer:
    """Explore `fetalhead.transforms.augment_pair`: the original pair and one seeded draw.

    Args:
        images: images uint8 (H, W); masks: the matching masks uint8 {0,1} (H, W).
        params: initial ranges (`AugmentParams`; default its defaults).
        seed: initial seed of the draw (`np.random.default_rng(seed)`).
        width_px: width of the rendered figure (two panels) in pixels.

    The sliders set the RANGES of the random augmentation (rotation in degrees, zoom and
    intensity fractions) and the flips' enablement; the seed picks one random draw from them,
    exactly as training would (`augment_pair(image, mask, params, default_rng(seed))`).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        params: AugmentParams | None = None,
        seed: int = 0,
        width_px: int = 760,
    ) -> None:
        from fetalhead.transforms import AugmentParams

        if len(images) == 0 or len(images) != len(masks):
            raise FetalheadError(f"AugmentationExplorer: need as many masks as images, got "
                                 f"{len(images)} images and {len(masks)} masks")
        self._images = [np.asarray(im) for im in images]
        self._masks = [(np.asarray(m) > 0).astype(np.uint8) for m in masks]
        p = params if params is not None else AugmentParams()
        self._width_px = int(width_px)
        self.render_count = 0
        self.last_png = b""
        self.image_slider = W.IntSlider(value=0, min=0, max=len(images) - 1,
                                        description="image", continuous_update=False,
                                        disabled=len(images) == 1)
        self.rotate_slider = W.FloatSlider(value=p.rotate_deg, min=0, max=45, step=1,
                                           description="rotate ±°", continuous_update=False)
        self.scale_slider = W.FloatSlider(value=p.scale, min=0, max=0.5, step=0.01,
                                          description="zoom ±", continuous_update=False)
        self.intensity_slider = W.FloatSlider(value=p.intensity, min=0, max=0.5, step=0.01,
                                              description="intensity ±", continuous_update=False)
        self.hflip_box = W.Checkbox(value=p.hflip, description="random h-flip", indent=False)
        self.vflip_box = W.Checkbox(value=p.vflip, description="random v-flip", indent=False)
        self.seed_slider = W.IntSlider(value=seed, min=0, max=99, description="seed",
                                       continuous_update=False)
        self.review_toggle = W.Checkbox(value=False, description="flagged for review only",
                                        indent=False)
        self.label = W.HTML()
        self.image = W.Image(format="png")
        controls = {"image": self.image_slider, "rotate": self.rotate_slider,
                    "scale": self.scale_slider, "intensity": self.intensity_slider,
                    "hflip": self.hflip_box, "vflip": self.vflip_box, "seed": self.seed_slider}
        for name, c in controls.items():
            c.add_class(f"fetalhead-augment-{name}")
            c.observe(self._on_redraw, names="value")
        self.label.add_class("fetalhead-augment-label")
        self.image.add_class("fetalhead-augment-figure")
        self._box = W.VBox([
            W.HBox([self.image_slider, self.seed_slider]),
            W.HBox([self.rotate_slider, self.scale_slider, self.intensity_slider]),
            W.HBox([self.hflip_box, self.vflip_box]),
            self.label,
            self.image,
        ])
        self._box.add_class("fetalhead-augment")
        self.render()

    @property
    def params(self) -> AugmentParams:
        """The augmentation ranges set by the controls."""
        from fetalhead.transforms import AugmentParams

        return AugmentParams(rotate_deg=float(self.rotate_slider.value),
                             hflip=bool(self.hflip_box.value), vflip=bool(self.vflip_box.value),
                             scale=float(self.scale_slider.value),
                             intensity=float(self.intensity_slider.value))

    @property
    def current_draw(self) -> AugmentDraw:
        """The random draw (angle, zoom, flips, gain, bias) the current seed gives."""
        from fetalhead.transforms import draw_pair

        return draw_pair(self.params, np.random.default_rng(int(self.seed_slider.value)))

    @property
    def current_augmented(self) -> tuple[np.ndarray, np.ndarray]:
        """The shown augmented (image uint8 (H, W), mask uint8 {0,1} (H, W))."""
        from fetalhead.transforms import augment_pair

        i = int(self.image_slider.value)
        return augment_pair(self._images[i], self._masks[i], self.params,
                            np.random.default_rng(int(self.seed_slider.value)))

    @property
    def widget(self) -> W.VBox:
        """The whole explorer: controls, label and figure."""
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
        return self._box._repr_mimebundle_(**kwargs)

    def figure(self) -> Figure:
        """Two panels: the original pair and the augmented pair (mask tinted and outlined)."""
        from fetalhead.viz import show_pair

        i = int(self.image_slider.value)
        image, mask = self._images[i], self._masks[i]
        aug_image, aug_mask = self.current_augmented
        h, w = image.shape
        width_in = self._width_px / 100
        fig = Figure(figsize=(width_in, width_in / 2 * h / w + 0.35), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax0, ax1 = fig.subplots(1, 2)
        show_pair(image, mask, ax=ax0, title="original")
        show_pair(aug_image, aug_mask, ax=ax1, title=f"augmented (seed {self.seed_slider.value})")
        return fig

    def _on_redraw(self, change: dict) -> None:
        self.render()

    def render(self) -> bytes:
        """Redraw the label and the figure; returns the PNG bytes."""
        d = self.current_draw
        self.label.value = html.escape(
            f"draw: rotate {d.angle_deg:+.1f}°, zoom {d.scale:.3f}, "
            f"h-flip {'yes' if d.hflip else 'no'}, v-flip {'yes' if d.vflip else 'no'}, "
            f"gain {d.gain:.3f}, bias {d.bias:+.3f}")
        self.last_png = figure_to_png(self.figure())
        self.image.value = self.last_png
        self.render_count += 1
        return self.last_png


# ---------------------------------------------------------------------- synthetic data
@dataclass(frozen=True)
class SyntheticCases:
    """Synthetic ultrasound-like cases with known ellipses (for demos and tests; no model).

    images uint8 (H, W); masks uint8 {0,1}; probs float32 in [0, 1] from a deliberately
    perturbed ellipse with a soft edge; pixel sizes and true HC in mm; ellipses in pixels.
    """

    images: list[np.ndarray]
    masks: list[np.ndarray]
    probs: list[np.ndarray]
    pixel_sizes_mm: list[float]
    hc_true_mm: list[float]
    filenames: list[str]
    true_ellipses: list[Ellipse]
    pred_ellipses: list[Ellipse]


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance (pixels) to the mask boundary: > 0 inside, < 0 outside."""
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    return (inside - outside).astype(np.float32)


def soft_probability(mask: np.ndarray, edge_px: float) -> np.ndarray:
    """A probability map float32 (H, W) that is 0.5 on the boundary of `mask` uint8 {0,1}:
    logistic of the signed distance (pixels) over `edge_px`."""
    return (1.0 / (1.0 + np.exp(-_signed_distance(mask) / float(edge_px)))).astype(np.float32)


def synthetic_cases(
    n: int = 6, shape: tuple[int, int] = (216, 320), seed: int = 0, edge_px: float = 3.0
) -> SyntheticCases:
    """`n` synthetic cases of `shape` (H, W) pixels with a known head ellipse each.

    The image is speckle-like noise with a bright skull ring; the ground truth is the filled
    ellipse; the "prediction" is `soft_probability` of a second ellipse whose centre and axes
    are off by an amount growing with the case number, so Dice falls from case 0 to case n-1.
    The last case (n >= 3) also carries a spurious blob of probability 0.6, which a threshold
    above 0.6 removes. Pixel sizes are drawn so that HC is in the HC18 range (about 100-350 mm).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    out: dict[str, list] = {k: [] for k in SyntheticCases.__dataclass_fields__}
    for k in range(n):
        a = float(rng.uniform(0.28, 0.36) * w)
        b = float(a * rng.uniform(0.72, 0.9))
        b = min(b, 0.42 * h)
        truth = Ellipse(cx=float(w / 2 + rng.uniform(-0.05, 0.05) * w),
                        cy=float(h / 2 + rng.uniform(-0.05, 0.05) * h),
                        a=a, b=b, angle_rad=float(rng.uniform(0, math.pi)))
        err = 0.02 + 0.05 * k / max(n - 1, 1)  # relative error of the fake prediction
        pred = Ellipse(cx=truth.cx + err * a * float(rng.choice([-1, 1])),
                       cy=truth.cy + err * b * float(rng.choice([-1, 1])),
                       a=truth.a * (1 + err), b=truth.b * (1 - err / 2),
                       angle_rad=math.fmod(truth.angle_rad + err, math.pi))
        mask = truth.to_mask(shape)
        prob = soft_probability(pred.to_mask(shape), edge_px)
        if k == n - 1 and n >= 3:
            blob = np.zeros(shape, np.uint8)
            cv2.circle(blob, (int(0.1 * w), int(0.15 * h)), max(3, int(0.04 * w)), 1, -1)
            prob = np.maximum(prob, 0.6 * blob.astype(np.float32))
        # Speckle background (Rayleigh, as for fully developed speckle) plus a bright ring.
        img = rng.rayleigh(22.0, shape)
        ring = np.zeros(shape, np.uint8)
        cv2.ellipse(ring, (int(truth.cx), int(truth.cy)), (int(truth.a), int(truth.b)),
                    math.degrees(truth.angle_rad), 0, 360, 1, max(2, int(0.015 * w)))
        img += 150.0 * cv2.GaussianBlur(ring.astype(np.float32), (0, 0), 1.5)
        img += 15.0 * mask
        px = float(rng.uniform(0.3, 0.45)) * 320.0 / w
        out["images"].append(np.clip(img, 0, 255).astype(np.uint8))
        out["masks"].append(mask)
        out["probs"].append(prob)
        out["pixel_sizes_mm"].append(px)
        out["hc_true_mm"].append(truth.circumference * px)
        out["filenames"].append(f"synthetic_{k:03d}_HC.png")
        out["true_ellipses"].append(truth)
        out["pred_ellipses"].append(pred)
    return SyntheticCases(**out)


def demo_viewer(n: int = 6, seed: int = 0, **kwargs: Any) -> PredictionViewer:
    """A `PredictionViewer` over `synthetic_cases(n, seed=seed)`; no model or data needed."""
    c = synthetic_cases(n, seed=seed)
    return PredictionViewer(c.images, c.probs, c.pixel_sizes_mm, c.filenames, c.masks,
                            c.hc_true_mm, **kwargs)


def demo_explorer(n: int = 3, seed: int = 0, **kwargs: Any) -> AugmentationExplorer:
    """An `AugmentationExplorer` over `synthetic_cases(n, seed=seed)`; no data needed."""
    c = synthetic_cases(n, seed=seed)
    return AugmentationExplorer(c.images, c.masks, **kwargs)
