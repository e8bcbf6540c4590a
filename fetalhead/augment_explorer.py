"""The augmentation explorer, a widget for JupyterLab 4 (ipywidgets 8): one image and mask
before and after a seeded draw of `fetalhead.transforms.augment_pair`.

It draws with matplotlib's object API into PNG bytes shown by an `ipywidgets.Image` (see
`fetalhead.widgets` for why). Every control is a public attribute and the shown state is
exposed (`current_draw`, `current_augmented`, `render_count`, `last_png`), so tests drive it
by setting values, as a browser does.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fetalhead.errors import FetalheadError
from fetalhead.transforms import AugmentDraw, AugmentParams, augment_pair, draw_pair
from fetalhead.viz import figure_to_png, show_pair

__all__ = ["AugmentationExplorer", "demo_explorer"]


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
        if len(images) == 0 or len(images) != len(masks):
            raise FetalheadError(f"AugmentationExplorer: need as many masks as images, got "
                                 f"{len(images)} images and {len(masks)} masks")
        self._images = [np.asarray(im) for im in images]
        self._masks = [(np.asarray(m) > 0).astype(np.uint8) for m in masks]
        p = params if params is not None else AugmentParams()
        self._width_px = int(width_px)
        self.render_count = 0
        self.last_png = b""
        # numbered from 1, as the prediction viewer numbers its cases
        self.image_slider = W.IntSlider(value=1, min=1, max=len(images),
                                        description="image", continuous_update=False,
                                        disabled=len(images) == 1)
        # the ranges reach the values given: a slider would clip them without a word
        self.rotate_slider = W.FloatSlider(value=p.rotate_deg, min=0, max=max(45, p.rotate_deg), step=1,
                                           description="rotate ±°", continuous_update=False)
        self.scale_slider = W.FloatSlider(value=p.scale, min=0, max=max(0.5, p.scale), step=0.01,
                                          description="zoom ±", continuous_update=False)
        self.intensity_slider = W.FloatSlider(value=p.intensity, min=0, max=max(0.5, p.intensity), step=0.01,
                                              description="intensity ±", continuous_update=False)
        self.hflip_box = W.Checkbox(value=p.hflip, description="random h-flip", indent=False)
        self.vflip_box = W.Checkbox(value=p.vflip, description="random v-flip", indent=False)
        self.seed_slider = W.IntSlider(value=seed, min=0, max=max(99, seed), description="seed",
                                       continuous_update=False)
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
        return AugmentParams(rotate_deg=float(self.rotate_slider.value),
                             hflip=bool(self.hflip_box.value), vflip=bool(self.vflip_box.value),
                             scale=float(self.scale_slider.value),
                             intensity=float(self.intensity_slider.value))

    @property
    def current_draw(self) -> AugmentDraw:
        """The random draw (angle, zoom, flips, gain, bias) the current seed gives."""
        return draw_pair(self.params, np.random.default_rng(int(self.seed_slider.value)))

    @property
    def current_augmented(self) -> tuple[np.ndarray, np.ndarray]:
        """The shown augmented (image uint8 (H, W), mask uint8 {0,1} (H, W))."""
        i = int(self.image_slider.value) - 1
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
        i = int(self.image_slider.value) - 1
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


def demo_explorer(n: int = 3, seed: int = 0, **kwargs: Any) -> AugmentationExplorer:
    """An `AugmentationExplorer` over `fetalhead.synthetic.synthetic_cases(n, seed=seed)`; no
    data needed. Keyword arguments go to `AugmentationExplorer`."""
    from fetalhead.synthetic import synthetic_cases

    c = synthetic_cases(n, seed=seed)
    return AugmentationExplorer(c.images, c.masks, **kwargs)
