"""Tests for fetalhead.architecture: hand-made layer tables, hand-computed receptive fields,
real U-Net shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fetalhead.architecture import layer_table, receptive_field, unet_receptive_field
from fetalhead.model import UNet, count_parameters


def test_layer_table_small_sequential():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.ConvTranspose2d(3, 2, 2, stride=2), nn.Conv2d(2, 1, 1))
    table = layer_table(model, (2, 1, 10, 12))
    assert table["kind"].tolist() == ["conv 3x3", "up-conv 2x2", "conv 1x1"]
    assert table["out_shape"].tolist() == [(2, 3, 8, 10), (2, 2, 16, 20), (2, 1, 16, 20)]
    assert table["params"].tolist() == [1 * 3 * 9 + 3, 3 * 2 * 4 + 2, 2 + 1]
    assert table.index.tolist() == [1, 2, 3]


@pytest.mark.parametrize("padding, size, out", [("valid", 572, 388), ("same", 96, 96)])
def test_layer_table_unet(padding, size, out):
    model = UNet(base_channels=4, padding=padding)
    before = [p.clone() for p in model.parameters()]
    table = layer_table(model, (1, 1, size, size))
    assert len(table) == 23
    assert table["out_shape"].iloc[-1] == (1, 1, out, out)
    # every parameter of the U-Net except the BatchNorm scales and shifts sits in a conv
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert table["params"].sum() + bn == count_parameters(model)
    assert [c for *_, c, _, _ in table["out_shape"].iloc[:10]] == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.device.type == "cpu" for p in model.parameters())


def _chain(depth: int) -> nn.Sequential:
    """The deepest path of a depth-`depth` U-Net without skips: its receptive field is the net's."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)]
    for _ in range(depth):
        layers += [nn.ConvTranspose2d(1, 1, 2, stride=2), nn.Conv2d(1, 1, 3, padding=1),
                   nn.Conv2d(1, 1, 3, padding=1)]
    return nn.Sequential(*layers, nn.Conv2d(1, 1, 1))


@pytest.mark.parametrize("model, expected", [
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1)), 5),
    (nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)), 5),
    # 1 -> conv: 3 -> 2x2 pool: 6 -> conv: 8 (by hand)
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3, padding=1)), 8),
    # depth 1 by hand: 1 -> (1 + 4) // 2 + 1 = 3 -> +4 = 7 -> 2 * 7 + 4 = 18
    (_chain(1), 18),
])
def test_receptive_field_hand_computed(model, expected):
    assert receptive_field(model, size=48, phases=4) == expected


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_unet_receptive_field_matches_measured_chain(depth):
    assert unet_receptive_field(depth=depth) == receptive_field(_chain(depth), size=160, phases=2**depth)


def test_receptive_field_of_the_unet_is_204_and_model_untouched():
    model = UNet(base_channels=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert unet_receptive_field() == 204
    assert receptive_field(model, size=224, phases=16) == 204
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
