"""BCE + soft Dice loss for binary segmentation, on LOGITS.

BCE gives well-behaved per-pixel gradients from the first step; the soft Dice term
(Milletari, Navab, Ahmadi 2016, "V-Net", 3DV) optimises the overlap directly and is
insensitive to the foreground/background imbalance. Both are computed in float32 even under
autocast (bf16/fp16 sums over ~10^5 pixels per image lose digits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BCEDiceLoss", "soft_dice_loss"]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """1 - soft Dice, computed per image then averaged over the batch (weighted by `weight`).

    Args:
        logits: (B, C, H, W) raw scores (NOT probabilities); a sigmoid is applied here.
        target: (B, C, H, W) float in {0, 1}.
        smooth: added to numerator and denominator; makes empty-vs-empty count as Dice 1
            and keeps gradients finite.
        weight: (B,) per-image weights, or None for equal ones; the batch value is
            mean(weight * loss_i), so weights averaging 1 over the data keep the loss's scale.
    Returns: scalar float32 tensor (in [0, 1] with equal weights).
    """
    probs = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    intersection = (probs * t).sum(dim=1)
    denominator = probs.sum(dim=1) + t.sum(dim=1)
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return _weighted_mean(1.0 - dice, weight)


def _weighted_mean(per_image: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """mean(weight * per_image) over the batch; the plain mean when `weight` is None."""
    if weight is None:
        return per_image.mean()
    if weight.shape != per_image.shape:
        raise ValueError(f"weight {tuple(weight.shape)} does not match the batch {tuple(per_image.shape)}")
    return (weight.float() * per_image).mean()


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE(logits, target) + dice_weight * (1 - soft Dice)``.

    Takes LOGITS (B, 1, H, W), not probabilities: BCE uses `binary_cross_entropy_with_logits`
    (log-sum-exp form, stable for large |logits|). Target: float {0, 1} of the same shape.
    Dice is computed per image, then averaged, so small heads weigh as much as large ones.
    `weight` (B,) in `forward` weighs images (e.g. by pixel size, so that an image where one
    pixel is more millimetres counts more). Returns a scalar float32 tensor.
    """

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ"
            )
        # Leave autocast: the reductions below must run in float32.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits32, target32 = logits.float(), target.float()
            loss = logits32.new_zeros(())
            if self.bce_weight:
                bce = F.binary_cross_entropy_with_logits(logits32, target32, reduction="none")
                loss = loss + self.bce_weight * _weighted_mean(bce.flatten(1).mean(dim=1), weight)
            if self.dice_weight:
                loss = loss + self.dice_weight * soft_dice_loss(logits32, target32, self.smooth, weight)
        return loss

    def extra_repr(self) -> str:
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}, smooth={self.smooth}"
