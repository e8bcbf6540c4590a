"""Looking inside a network for notebook 03: the shapes through every convolution, and the
receptive field, computed for a U-Net and measured for any 2D network.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

__all__ = ["layer_table", "receptive_field", "unet_receptive_field"]

_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


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

    Runs a positive-weight copy of `model` (see `_positive_copy`) on a (phases, C, size, size)
    input of ones and differentiates output pixels near the centre with respect to the input:
    the field is the width of the columns whose gradient is non-zero. With `phases` > 1, pixels at `phases`
    consecutive column offsets are tried and the widest field is returned (a U-Net with 4
    poolings repeats every 16 pixels). `size` must exceed the field, or the border clips it.
    """
    probe = _positive_copy(model)
    in_channels = next(m for m in probe.modules() if isinstance(m, _CONV_TYPES)).in_channels
    # One batch, sample k differentiating the pixel at column offset k: in eval mode nothing
    # mixes samples, so each sample's input gradient is the field of its own pixel.
    x = torch.ones(phases, in_channels, size, size, dtype=torch.float64, requires_grad=True)
    out = probe(x)
    cy, cx = out.shape[-2] // 2, out.shape[-1] // 2
    k = torch.arange(phases)
    out[k, 0, cy, cx + k].sum().backward()
    seen = x.grad.abs().sum(dim=(1, 2)) > 0  # (phases, size): columns each pixel sees
    return max(int(c.max() - c.min() + 1) for c in (torch.nonzero(row).flatten() for row in seen))
