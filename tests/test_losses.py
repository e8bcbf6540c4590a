"""Tests for fetalhead.losses: BCE + soft Dice on logits, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fetalhead.losses import BCEDiceLoss, soft_dice_loss


def bce_by_hand(logits, target):
    p = torch.sigmoid(logits.double())
    t = target.double()
    return (-(t * torch.log(p) + (1 - t) * torch.log(1 - p))).mean().item()


def test_perfect_prediction_dice_part_near_zero():
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    logits = (target * 2 - 1) * 30.0  # sigmoid -> 1 - 1e-13 inside, 1e-13 outside
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert BCEDiceLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_worst_prediction_dice_part_near_one():
    target = torch.zeros(1, 1, 16, 16)
    target[..., :8, :] = 1
    logits = (1 - 2 * target) * 30.0
    # smooth = 1: 1 - (0 + 1) / (128 + 128 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 1 / 257, abs=1e-6)


def test_hand_made_values():
    # One 2x2 image: probabilities 0.5 everywhere (logit 0), target [[1, 0], [0, 0]].
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # BCE = log 2 for every pixel. Soft Dice = (2 * 0.5 + 1) / (2 + 1 + 1) = 0.5.
    assert BCEDiceLoss(dice_weight=0)(logits, target).item() == pytest.approx(math.log(2))
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.5)
    assert BCEDiceLoss()(logits, target).item() == pytest.approx(math.log(2) + 0.5)
    assert soft_dice_loss(logits, target, smooth=0.0).item() == pytest.approx(1 - 1 / 3)


def test_random_matches_by_hand_bce():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8) * 3
    target = (torch.rand(3, 1, 8, 8) > 0.6).float()
    loss = BCEDiceLoss(bce_weight=1.0, dice_weight=0.0)(logits, target)
    assert loss.item() == pytest.approx(bce_by_hand(logits, target), rel=1e-5)


def test_dice_is_per_image_mean():
    # Image 0 perfect (Dice 1), image 1 empty prediction vs full target (Dice ~0).
    target = torch.ones(2, 1, 4, 4)
    logits = torch.full((2, 1, 4, 4), 40.0)
    logits[1] = -40.0
    # per image: 1 - mean(1, 1/17) ; pooled Dice would be (32 + 1) / (16 + 32 + 1) instead
    expected = 1 - (1 + 1 / 17) / 2
    assert soft_dice_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_weights_respected():
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    bce = BCEDiceLoss(1, 0)(logits, target).item()
    dice = BCEDiceLoss(0, 1)(logits, target).item()
    assert BCEDiceLoss(0.3, 2.0)(logits, target).item() == pytest.approx(0.3 * bce + 2.0 * dice)
    assert BCEDiceLoss(0, 0)(logits, target).item() == 0.0


def test_stable_for_extreme_logits():
    logits = torch.tensor([[[[1e4, -1e4], [1e4, -1e4]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    loss = BCEDiceLoss()(logits, target)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_autocast_bf16_on_cpu_computes_in_fp32():
    torch.manual_seed(2)
    logits = torch.randn(2, 1, 32, 32)
    target = (torch.rand(2, 1, 32, 32) > 0.5).float()
    ref = BCEDiceLoss()(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BCEDiceLoss()(logits.bfloat16(), target.bfloat16())
    assert out.dtype == torch.float32
    # Only the bf16 rounding of the INPUT logits (8 bits of mantissa) differs.
    assert out.item() == pytest.approx(ref.item(), rel=1e-2)


def test_gradient_matches_autograd_of_reference():
    torch.manual_seed(3)
    logits = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 1, 6, 6) > 0.5).double()
    BCEDiceLoss()(logits, target).backward()
    ours = logits.grad.clone()
    logits.grad = None
    p = torch.sigmoid(logits)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    inter = (p * target).flatten(1).sum(1)
    dice = (2 * inter + 1) / (p.flatten(1).sum(1) + target.flatten(1).sum(1) + 1)
    (bce + 1 - dice.mean()).backward()
    torch.testing.assert_close(ours.double(), logits.grad, rtol=1e-5, atol=1e-7)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        BCEDiceLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))


def test_per_image_weights_weigh_each_images_loss():
    torch.manual_seed(2)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    loss = BCEDiceLoss(1.0, 1.0)
    per_image = [loss(logits[i:i + 1], target[i:i + 1]).item() for i in range(2)]
    w = torch.tensor([0.5, 1.5])
    assert loss(logits, target, w).item() == pytest.approx((0.5 * per_image[0] + 1.5 * per_image[1]) / 2, rel=1e-5)
    assert loss(logits, target, torch.ones(2)).item() == pytest.approx(loss(logits, target).item(), rel=1e-6)
    dice_only = [soft_dice_loss(logits[i:i + 1], target[i:i + 1]).item() for i in range(2)]
    assert soft_dice_loss(logits, target, weight=w).item() == pytest.approx(
        (0.5 * dice_only[0] + 1.5 * dice_only[1]) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="weight"):
        loss(logits, target, torch.ones(3))


def test_weights_scale_the_loss_they_are_not_normalised():
    # the batch value is mean(weight * loss_i): doubling every weight doubles the loss, and a
    # zero weight drops an image without raising the others' share
    torch.manual_seed(4)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    loss = BCEDiceLoss()
    plain = loss(logits, target).item()
    assert loss(logits, target, torch.full((2,), 2.0)).item() == pytest.approx(2 * plain, rel=1e-6)
    first = loss(logits[:1], target[:1]).item()
    assert loss(logits, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(first / 2, rel=1e-6)
    assert soft_dice_loss(logits, target, weight=torch.full((2,), 3.0)).item() == pytest.approx(
        3 * soft_dice_loss(logits, target).item(), rel=1e-6)
