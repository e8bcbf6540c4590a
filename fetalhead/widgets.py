"""The prediction viewer, a widget for JupyterLab 4 (ipywidgets 8): browse predictions case by
case and move the threshold.

It draws with matplotlib's object API (`Figure` + `FigureCanvasAgg`) into PNG bytes shown by an
`ipywidgets.Image`: no figure is ever registered with pyplot (nothing leaks, nothing is shown
twice), and no front-end extension beyond ipywidgets' own is needed (no ipympl).

`PredictionViewer` is built from plain arrays (images, ground-truth masks, probability maps at
ORIGINAL resolution, pixel sizes in mm), so it needs no model; `PredictionViewer.from_predictor`
fills those arrays from a `fetalhead.predict.Predictor`. Moving its threshold recomputes the
prediction with `Predictor.measure` (largest component, fitted ellipse, bias-corrected head
circumference in mm, quality), its Dice and its status, exactly as `fetalhead.evaluate` does.

Every control is a public attribute and the shown state is exposed (`current_index`,
`current_dice`, `label_text`, `render_count`, `last_png`...), so tests drive the widget by
setting values, exactly as a user's browser does through the widget protocol.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fetalhead.ellipse import Ellipse
from fetalhead.errors import FetalheadError
from fetalhead.metrics import dice
from fetalhead.predict import STATUS_NO_HEAD, Prediction, Predictor, measure
from fetalhead.viz import figure_to_png, plot_overlay

__all__ = [
    "MAX_CLIP_FRAMES",
    "SORT_OPTIONS",
    "CaseStats",
    "PredictionViewer",
    "clip_viewer",
    "demo_viewer",
    "held_out_viewer",
]

#: frames `clip_viewer` loads unless told otherwise (each 800x540 frame holds about 2.2 MB)
MAX_CLIP_FRAMES = 150

#: Sort dropdown: (label shown, value). NaN metrics (no ground truth, no head) sort last.
SORT_OPTIONS: tuple[tuple[str, str], ...] = (
    ("input order", "input"),
    ("filename", "filename"),
    ("Dice ascending (worst first)", "dice_asc"),
    ("Dice descending (best first)", "dice_desc"),
    ("|HC error| descending (worst first)", "hc_error_desc"),
    ("quality ascending (least trusted first)", "quality_asc"),
)


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


@dataclass(frozen=True)
class CaseStats:
    """Measurements of one case at one threshold.

    dice: Dice of the predicted mask vs the ground truth (nan without ground truth); area_px:
    predicted pixels; ellipse: the head ellipse in pixels (None = no head); hc_pred_mm,
    hc_true_mm, hc_error_mm = pred - true (nan when unknown); quality: the `fetalhead.quality`
    score (nan without a head); status: "ok", "review" or "no head found"; hc_half_width_mm:
    half-width of the predicted HC's 90 % interval (`fetalhead.interval`; nan without a head).
    """

    dice: float
    area_px: int
    ellipse: Ellipse | None
    hc_pred_mm: float
    hc_true_mm: float
    quality: float
    status: str
    hc_half_width_mm: float = float("nan")

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
        threshold: initial threshold (0.05 to 0.95); prediction = the largest component of
            prob > threshold.
        opacity: initial opacity of the prediction fill, in [0, 1].
        sort: initial sort, one of the values of `SORT_OPTIONS`.
        predictor: whose `Predictor.measure` turns a probability map into the mask (largest
            component), the head ellipse, HC (mm), quality and status at the slider's threshold,
            so the viewer shows exactly what `fetalhead.evaluate` reports at that threshold.
            Default: `fetalhead.predict.measure` with its default settings, the maps taken to
            be at the network's resolution.
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
        predictor: Predictor | None = None,
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
        self._predictor = predictor
        self._width_px = int(width_px)
        # Keyed by (case, threshold): sorting and revisiting a case reuse the measurements
        # (scalars and the ellipse only; masks are recomputed, they are large).
        self._cache: dict[tuple[int, float], CaseStats] = {}
        self._order = list(range(n))
        self._none_flagged = False  # the "flagged only" filter found none (all shown)
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
    def from_predictor(cls, predictor: Predictor, images: Sequence[np.ndarray],
                       pixel_sizes_mm: Sequence[float] | np.ndarray, *, batch_size: int = 8,
                       **kwargs: Any) -> PredictionViewer:
        """Run `predictor` on `images` once, `batch_size` per pass (probabilities at original
        resolution), and view them.

        The viewer measures with `predictor.measure`, so at the predictor's threshold it shows
        what `Predictor.predict` returns. Other keyword arguments (filenames, masks, hc_true_mm,
        ...) go to `PredictionViewer`; the threshold defaults to the predictor's.
        """
        probs: list[np.ndarray] = []
        for start in range(0, len(images), max(int(batch_size), 1)):
            probs += predictor.probabilities(list(images[start:start + batch_size]))
        kwargs.setdefault("threshold", predictor.threshold)
        return cls(images, probs, pixel_sizes_mm, predictor=predictor, **kwargs)

    @classmethod
    def from_evaluation(
        cls,
        predictor: Predictor,
        results: pd.DataFrame,
        root: str | os.PathLike | None = None,
        n_cases: int | None = 24,
        files: Mapping[str, tuple[Path, Path]] | None = None,
        **kwargs: Any,
    ) -> PredictionViewer:
        """View the `n_cases` lowest-Dice rows of `fetalhead.evaluate.evaluate_split`'s table.

        Args:
            predictor: the predictor that produced `results`.
            results: DataFrame with filename, pixel_size_mm, hc_true_mm and dice columns.
            root: HC18 folder (default `fetalhead.paths.data_dir()`).
            n_cases: how many cases to load (worst Dice first); None = all rows. Each
                540x800 case holds about 2.5 MB (image, mask, float32 probabilities).
            files: {file name: (image file, mask file)} for `evaluate_folder`'s table (your
                own images) instead of HC18's under `root`.
        Images and masks are read at original resolution; the viewer starts sorted by Dice,
        worst first. Other keyword arguments go to `from_predictor`.
        """
        from fetalhead.data import load_labelled

        missing = {"filename", "pixel_size_mm", "hc_true_mm", "dice"} - set(results.columns)
        if missing:
            raise FetalheadError(f"PredictionViewer.from_evaluation: results lack columns "
                                 f"{sorted(missing)} (pass evaluate_split's table)")
        rows = results.sort_values("dice", kind="stable", na_position="first")
        if n_cases is not None:
            rows = rows.head(int(n_cases))
        names = list(rows["filename"])
        pairs = [load_labelled(n, root=root, files=files) for n in names]
        kwargs.setdefault("sort", "dice_asc")
        return cls.from_predictor(
            predictor, [im for im, _ in pairs], rows["pixel_size_mm"].to_numpy(float),
            filenames=names, masks=[m for _, m in pairs],
            hc_true_mm=rows["hc_true_mm"].to_numpy(float), **kwargs)

    # ------------------------------------------------------------------ measurements
    def __len__(self) -> int:
        return len(self._images)

    def measure(self, index: int, threshold: float | None = None) -> Prediction:
        """The measurement of case `index` (input order) at `threshold` (default: the slider's):
        mask, ellipses, HC (mm), quality and status (the predictor's `Predictor.measure`, else
        `fetalhead.predict.measure`)."""
        t = self.threshold if threshold is None else float(threshold)
        prob, px = self._probs[index], self._pixel_sizes[index]
        if self._predictor is None:
            return measure(prob, px, threshold=t)
        return self._predictor.measure(prob, px, threshold=t)

    def pred_mask(self, index: int, threshold: float | None = None) -> np.ndarray:
        """Predicted mask uint8 {0,1} (H, W) of case `index` (input order) at `threshold`."""
        return self.measure(index, threshold).mask

    def stats(self, index: int, threshold: float | None = None) -> CaseStats:
        """Dice, area, ellipse and HC (mm) of case `index` (input order) at `threshold`."""
        t = round(self.threshold if threshold is None else float(threshold), 6)
        key = (index, t)
        if key not in self._cache:
            p = self.measure(index, t)
            gt = self._masks[index]
            self._cache[key] = CaseStats(
                dice=float("nan") if gt is None else float(dice(p.mask, gt)),
                area_px=int(np.count_nonzero(p.mask)),
                ellipse=p.head_ellipse,
                hc_pred_mm=float(p.hc_mm),
                hc_true_mm=self._hc_true[index],
                quality=p.quality.score if p.quality is not None else float("nan"),
                status=p.status,
                hc_half_width_mm=(p.hc_interval_mm[1] - p.hc_interval_mm[0]) / 2,
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
        self._none_flagged = False
        if self.review_toggle.value:  # flagged cases only (all of them, said so, when none is flagged)
            flagged = [i for i in idx if self.stats(i).status not in ("", "ok")]
            self._none_flagged = not flagged
            idx = flagged or idx
        if sort == "input":
            return idx
        if sort == "filename":
            return sorted(idx, key=lambda i: (self._filenames[i], i))

        def key(i: int) -> tuple[bool, float]:
            s = self.stats(i)
            headless = s.status == STATUS_NO_HEAD  # the least trusted of all, the worst HC error
            value = {"dice_asc": s.dice, "dice_desc": -s.dice,
                     "quality_asc": -math.inf if headless else s.quality}.get(
                sort, -math.inf if headless else -abs(s.hc_error_mm))
            # NaN last; ties keep input order (sorted is stable).
            return (True, 0.0) if math.isnan(value) else (False, value)

        return sorted(idx, key=key)

    # ------------------------------------------------------------------ current state
    @property
    def threshold(self) -> float:
        """Current threshold: prediction = the largest component of prob > threshold."""
        return float(self.threshold_slider.value)

    @property
    def opacity(self) -> float:
        """Current opacity of the prediction fill, in [0, 1]."""
        return float(self.opacity_slider.value)

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
        """The label's text: "case i/N: filename — Dice x — HC pred y ± w mm vs true z mm" (w: the
        half-width of its 90 % interval)."""
        s = self.current_stats
        flag = f" — quality {_fmt(s.quality, '.2f')} ({s.status})" if s.status else ""
        none = " (no case flagged at this threshold: all shown)" if self._none_flagged else ""
        return (f"case {self.current_position}/{len(self._order)}{none}: {self.current_filename} — "
                f"Dice {_fmt(s.dice, '.3f')} — HC pred {_fmt(s.hc_pred_mm, '.1f')}"
                f"{' ± ' + _fmt(s.hc_half_width_mm, '.1f') if math.isfinite(s.hc_half_width_mm) else ''} mm vs true "
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
        plot_overlay(image, self.pred_mask(i), gt, s.ellipse, ax=ax, opacity=self.opacity,
                     legend=True, prediction_label=f"prediction (p > {self.threshold:.2f})")
        ax.text(0.01, 0.99, self._filenames[i], transform=ax.transAxes, va="top", ha="left",
                fontsize=9, color="white", bbox=dict(fc="black", alpha=0.5, lw=0))
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
            self.case_slider.disabled = len(self._order) == 1
            self.case_slider.value = self._order.index(index) + 1 if index in self._order else 1
        finally:
            self._busy = False
        self.render()


def demo_viewer(n: int = 6, seed: int = 0, **kwargs: Any) -> PredictionViewer:
    """A `PredictionViewer` over `fetalhead.synthetic.synthetic_cases(n, seed=seed)`; no model or
    data needed. Keyword arguments go to `PredictionViewer`."""
    from fetalhead.synthetic import synthetic_cases

    c = synthetic_cases(n, seed=seed)
    return PredictionViewer(c.images, c.probs, c.pixel_sizes_mm, c.filenames, c.masks,
                            c.hc_true_mm, **kwargs)


def held_out_viewer(n: int = 6, model: str | None = None, root: str | os.PathLike | None = None,
                    **kwargs: Any) -> PredictionViewer:
    """The viewer over `n` held-out test images, spread from the smallest head to the largest,
    with the shipped model `model` (default: the best present); the synthetic `demo_viewer`
    when HC18 or the shipped weights are missing. Other keyword arguments go to
    `PredictionViewer`."""
    from fetalhead.data import (
        annotation_path,
        check_data_dir,
        image_path,
        load_pair,
        read_training_csv,
    )
    from fetalhead.explore import spread_rows
    from fetalhead.split import load_split

    try:
        root = check_data_dir(root)
        predictor = Predictor.from_checkpoint(model=model, device="cpu")
    except FetalheadError:
        return demo_viewer(n=n, **kwargs)
    rows = read_training_csv(root).merge(load_split(root=root)).query("split == 'test'")
    rows = spread_rows(rows, n, "hc_mm")
    pairs = [load_pair(image_path(f, root=root), annotation_path(f, root)) for f in rows["filename"]]
    return PredictionViewer.from_predictor(
        predictor, [im for im, _ in pairs], rows["pixel_size_mm"].to_numpy(float),
        filenames=list(rows["filename"]), masks=[m for _, m in pairs],
        hc_true_mm=rows["hc_mm"].to_numpy(float), **kwargs)


def clip_viewer(path: str | os.PathLike, pixel_size_mm: float | None = None, predictor: Predictor | None = None,
                frames: Sequence[int] | None = None, max_frames: int = MAX_CLIP_FRAMES,
                **kwargs: Any) -> PredictionViewer:
    """The viewer over the frames of a cine loop or video clip `path` (a DICOM file, a TIFF stack, an animated image or a video,
    `fetalhead.data.frame_count`; a file of one frame gives one case), in frame order, named
    "<file> frame <k>" (from 1), measured at `pixel_size_mm` (mm per pixel; None: the size a
    DICOM file stores) by `predictor` (default: the best shipped model). `frames` picks frame
    numbers (from 1); a clip of more than `max_frames` frames needs them. Other keyword
    arguments go to `PredictionViewer` (e.g. sort="quality_asc": the least trusted frames first)."""
    from fetalhead.data import frame_count
    from fetalhead.folder import choose_pixel_size
    from fetalhead.inputs import validate_pixel_size
    from fetalhead.predict import load_input_image

    path = Path(path)
    n = frame_count(path)
    numbers = list(range(1, n + 1)) if frames is None else [int(k) for k in frames]
    if not numbers:
        raise FetalheadError(f"{path.name}: no frames asked for")
    if frames is None and n > max_frames:
        raise FetalheadError(f"{path.name}: {n} frames, more than max_frames={max_frames} (about 2 MB each in "
                             f"memory): pick some, e.g. frames=range(1, {n + 1}, {math.ceil(n / max_frames)})")
    outside = [k for k in numbers if not 1 <= k <= n]
    if outside:
        raise FetalheadError(f"{path.name}: no frame {outside[0]} in its {n} frames (1 to {n})")
    size = choose_pixel_size(path, None if pixel_size_mm is None else validate_pixel_size(pixel_size_mm))
    if size is None:
        raise FetalheadError(f"{path.name}: no pixel size (give pixel_size_mm: the file stores none)")
    predictor = predictor if predictor is not None else Predictor.from_checkpoint(device="cpu")
    images = [load_input_image(path, k if n > 1 else None) for k in numbers]
    return PredictionViewer.from_predictor(predictor, images, [size] * len(images),
                                           filenames=[f"{path.name} frame {k}" for k in numbers], **kwargs)

