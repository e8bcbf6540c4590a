"""U-Net for binary segmentation (Ronneberger, Fischer, Brox 2015, "U-Net: Convolutional
Networks for Biomedical Image Segmentation", MICCAI, arXiv:1505.04597).

23 convolutional layers, as in the paper: 4 x 2 3x3 convs on the way down, 2 at the bottom,
4 x (one 2x2 up-convolution + 2 3x3 convs) on the way up and a final 1x1 conv. Two changes that
are common today: BatchNorm after every 3x3 conv (so those convs have no bias), and
``padding="same"`` by default (3x3 convs padded by 1, output size = input size). The paper's
unpadded variant is ``padding="valid"`` (572x572 in -> 388x388 out, skip connections
center-cropped).

Parameter count, width c = `base_channels`, 1 input and 1 output channel:
``7574 c^2 + 209 c + 1``, i.e. 31,036,481 for c = 64 (the paper's width) and 7,762,465 for
c = 32. The c^2 term is the 3x3 and 2x2 kernels (9 in out and 4 in out per layer), the c
term the BatchNorm scales and shifts (2 per channel per BN), the up-convolution biases and the
1x1 conv's weights, the constant its bias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fetalhead.errors import FetalheadError

if TYPE_CHECKING:  # for the annotation only: copying model.py needs no fetalhead.config
    from fetalhead.config import TrainConfig

__all__ = [
    "DoubleConv",
    "Down",
    "OutConv",
    "UNet",
    "Up",
    "build_model",
    "count_conv_layers",
    "count_parameters",
    "valid_input_size",
    "valid_output_size",
]

DEPTH = 4  # number of 2x2 max-poolings; sizes must divide 2**DEPTH = 16 in "same" mode


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2; padding 1 ("same") or 0 ("valid")."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 1) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Down(nn.Module):
    """2x2 max-pool (stride 2), then DoubleConv: halves H and W."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 1) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Central (height, width) window of x (B, C, H, W): the paper's "copy and crop"."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class Up(nn.Module):
    """2x2 up-convolution halving the channels, concatenate the (cropped) skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 1) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if skip.shape[-2:] != x.shape[-2:]:
            skip = _center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """1x1 conv to `out_channels` logits."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """U-Net returning LOGITS (apply a sigmoid for probabilities).

    Args:
        in_channels: channels of the input image (1 for grayscale ultrasound).
        out_channels: output maps (1 for a binary head mask).
        base_channels: width of the first level; doubled at each of the 4 levels (64 = paper).
        padding: "same" -> any (H, W) works and the output has the input's size (the input is
            zero-padded up to a multiple of 16 inside forward and cropped back); "valid" ->
            unpadded convs as in the paper, output smaller than input (see `valid_output_size`).

    Forward: (B, in_channels, H, W) float -> (B, out_channels, H', W') logits, H' = H in
    "same" mode.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        padding: str = "same",
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise FetalheadError(f"UNet padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding
        p = 1 if padding == "same" else 0
        c = [base_channels * 2**i for i in range(DEPTH + 1)]  # 64, 128, 256, 512, 1024
        self.inc = DoubleConv(in_channels, c[0], p)
        self.downs = nn.ModuleList(Down(c[i], c[i + 1], p) for i in range(DEPTH))
        self.ups = nn.ModuleList(Up(c[i + 1], c[i], p) for i in reversed(range(DEPTH)))
        self.outc = OutConv(c[0], out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # Paper, section 3: Gaussian weights with std sqrt(2/N), N = fan-in (He et al. 2015).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.padding == "same":
            m = 2**DEPTH
            pad_h, pad_w = (-height) % m, (-width) % m
            if pad_h or pad_w:
                # Split the padding so the image stays centred; zeros match the black
                # background around the ultrasound sector.
                x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        else:
            valid_output_size(height)  # raises a clear error for sizes the paper's net rejects
            valid_output_size(width)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        logits = self.outc(x)
        if self.padding == "same" and logits.shape[-2:] != (height, width):
            logits = _center_crop(logits, height, width)
        return logits


def valid_output_size(n: int) -> int:
    """Output size (pixels) of the "valid" U-Net for an input side of `n` pixels.

    Each DoubleConv loses 4 pixels and each max-pool needs an even size: 572 -> 388 (paper).
    Raises FetalheadError when `n` is not a valid input size (see `valid_input_size`).
    """
    size = n
    ok = True
    for _ in range(DEPTH):
        size -= 4
        ok &= size > 0 and size % 2 == 0
        size //= 2
    size -= 4
    for _ in range(DEPTH):
        ok &= size > 0
        size = 2 * size - 4
    if not ok or size <= 0:
        raise FetalheadError(
            f"input size {n} does not fit the 'valid' U-Net; use {valid_input_size(n)}"
        )
    return size


def valid_input_size(n: int) -> int:
    """Smallest input side >= `n` pixels that the "valid" U-Net accepts (188, 204, ..., 572).

    Valid sides are 16 k + 60 (k = size after the 4th pooling); k >= 8 keeps every map of the
    expanding path non-empty, hence 188 = 16 * 8 + 60 is the smallest.
    """
    size = max(n, 188)
    return size + (60 - size) % 16


def count_conv_layers(model: nn.Module) -> int:
    """Number of Conv2d and ConvTranspose2d layers in `model` (23 for the U-Net)."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(cfg: TrainConfig) -> UNet:
    """The U-Net described by a `TrainConfig` (1 input, 1 output channel)."""
    return UNet(in_channels=1, out_channels=1, base_channels=cfg.base_channels, padding=cfg.padding)
