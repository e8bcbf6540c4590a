"""Small helpers for the notebooks: data-set tables, U-Net layer tables, receptive field.

Everything here returns plain pandas tables or numbers, so a notebook cell stays one call long
and the same numbers can be checked by tests.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = [
    "images_per_exam",
    "layer_table",
    "receptive_field",
    "split_sizes",
    "summary_table",
    "unet_receptive_field",
]

_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def images_per_exam(df: pd.DataFrame) -> pd.DataFrame:
    """How many exams have 1, 2, 3 ... images. `df` needs an `exam` column (one row per image).

    Returns a table indexed by `images_per_exam` with columns `exams` and `images`.
    """
    counts = df.groupby("exam").size()
    table = counts.value_counts().sort_index().rename("exams").to_frame()
    table.index.name = "images_per_exam"
    table["images"] = table.index * table["exams"]
    return table


def summary_table(df: pd.DataFrame, columns: Sequence[str] = ("pixel_size_mm", "hc_mm")) -> pd.DataFrame:
    """count, mean, std, min, quartiles and max of `columns` (one row per column), rounded to 3."""
    return df[list(columns)].describe().T.round(3)


def split_sizes(split: pd.DataFrame) -> pd.DataFrame:
    """Images and exams per part of a split table (columns `exam`, `split`), in the order
    train, val, test, challenge (parts absent from `split` are left out)."""
    order = [p for p in ("train", "val", "test", "challenge") if p in set(split["split"])]
    g = split.groupby("split")
    table = pd.DataFrame({"images": g.size(), "exams": g["exam"].nunique()}).loc[order]
    labelled = table["images"].drop(index="challenge", errors="ignore").sum()
    # fraction of the labelled images (the challenge images have no public masks)
    table["fraction"] = (table["images"] / labelled).round(3).where(table.index != "challenge")
    table.index.name = "split"
    return table


def _kind(layer: nn.Module) -> str:
    k = layer.kernel_size[0] if isinstance(layer.kernel_size, tuple) else layer.kernel_size
    return f"up-conv {k}x{k}" if isinstance(layer, nn.ConvTranspose2d) else f"conv {k}x{k}"


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """Shapes through every convolution of `model` for one forward pass.

    input_shape: (B, C, H, W). Forward hooks on a weightless copy of `model` record each
    `Conv2d` / `ConvTranspose2d` in call order; `model` itself is not run or changed.
    Returns one row per conv layer: `layer` (module name), `kind`, `in_shape`, `out_shape`
    (tuples B, C, H, W) and `params` (weights + bias of that layer).
    """
    rows: list[dict] = []

    def hook(name: str):
        def record(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            rows.append({
                "layer": name,
                "kind": _kind(mod),
                "in_shape": tuple(inputs[0].shape),
                "out_shape": tuple(output.shape),
                "params": sum(p.numel() for p in mod.parameters()),
            })
        return record

    # A copy on the "meta" device: shapes propagate without allocating or computing anything,
    # so even the paper's 572 x 572 input through 31 M parameters is instant.
    probe = copy.deepcopy(model).to("meta").eval()
    for name, mod in probe.named_modules():
        if isinstance(mod, _CONV_TYPES):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        probe(torch.zeros(tuple(input_shape), device="meta"))
    table = pd.DataFrame(rows)
    table.index = pd.RangeIndex(1, len(table) + 1, name="#")
    return table


def unet_receptive_field(depth: int = 4, convs: int = 2, kernel: int = 3) -> int:
    """Largest receptive field (pixels, one side) of one output pixel of a U-Net.

    Walks back from an output pixel along the deepest path (through the bottleneck), which
    contains every other path: a k x k conv widens the field by k - 1, a 2x2 max-pool doubles
    it, and a 2x2 stride-2 up-conv maps r pixels onto at most r // 2 + 1 input pixels (when the
    window starts on an odd pixel).
    """
    widen = convs * (kernel - 1)
    r = 1  # the final 1x1 conv
    for _ in range(depth):  # decoder, top to bottom
        r = (r + widen) // 2 + 1
    r += widen  # bottleneck
    for _ in range(depth):  # encoder, bottom to top: pool, then the level's convs
        r = 2 * r + widen
    return r


def _positive_copy(model: nn.Module) -> nn.Module:
    """A float64 copy whose convs have positive weights (1 / fan-in) and zero bias, and whose
    batch norms are identities: every activation stays positive, so no ReLU hides a path.
    Max-pool modules become average pools (a max-pool written as a function call is not seen)."""
    probe = copy.deepcopy(model).double().eval()
    # Max-pooling passes the gradient to one pixel per window; average pooling has the same
    # connectivity and passes it to all of them.
    for parent in list(probe.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, _CONV_TYPES):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.fill_(1.0 / fan_in)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
    return probe


def receptive_field(model: nn.Module, size: int = 256, phases: int = 1) -> int:
    """Measured receptive field (pixels, one side) of a 2D network, by back-propagation.

    Runs a positive-weight copy of `model` (see `_positive_copy`) on a (1, C, size, size) input of
    ones and differentiates output pixels near the centre with respect to the input: the field is
    the width of the rows whose gradient is non-zero. With `phases` > 1, pixels at `phases`
    consecutive column offsets are tried and the widest field is returned (a U-Net with 4
    poolings repeats every 16 pixels). `size` must exceed the field, or the border clips it.
    """
    probe = _positive_copy(model)
    in_channels = next(m for m in probe.modules() if isinstance(m, _CONV_TYPES)).in_channels
    widest = 0
    for offset in range(phases):
        x = torch.ones(1, in_channels, size, size, dtype=torch.float64, requires_grad=True)
        out = probe(x)
        cy, cx = out.shape[-2] // 2, out.shape[-1] // 2 + offset
        out[0, 0, cy, cx].backward()
        cols = torch.nonzero(x.grad[0].abs().sum(dim=(0, 1)) > 0).flatten()
        widest = max(widest, int(cols.max() - cols.min() + 1))
    return widest
