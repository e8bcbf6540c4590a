"""Tests for fetalhead.model: layer and parameter counts, shapes in both padding modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fetalhead.config import get_config
from fetalhead.errors import FetalheadError
from fetalhead.model import (
    UNet,
    build_model,
    count_conv_layers,
    count_parameters,
    valid_input_size,
    valid_output_size,
)


def closed_form_parameters(c: int, cin: int = 1, cout: int = 1) -> int:
    """Hand count: DoubleConv(i, o) = 9 i o + 9 o o weights + 2 BN x (scale, shift) x o;
    up-conv(i -> i/2) = 4 i (i/2) weights + i/2 biases; final 1x1 = c cout + cout."""

    def double(i, o):
        return 9 * i * o + 9 * o * o + 4 * o

    ch = [c, 2 * c, 4 * c, 8 * c, 16 * c]
    n = double(cin, ch[0]) + sum(double(ch[k], ch[k + 1]) for k in range(4))
    n += sum(4 * ch[k] * ch[k - 1] + ch[k - 1] + double(ch[k], ch[k - 1]) for k in range(1, 5))
    return n + ch[0] * cout + cout


def test_conv_layer_count_is_23():
    assert count_conv_layers(UNet(base_channels=4)) == 23
    assert count_conv_layers(UNet(base_channels=4, padding="valid")) == 23


def test_parameter_count_base64():
    model = UNet(in_channels=1, out_channels=1, base_channels=64)
    assert count_parameters(model) == 31_036_481
    assert count_parameters(model) == closed_form_parameters(64)
    assert count_parameters(model) == 7574 * 64**2 + 209 * 64 + 1  # the docstring's polynomial


@pytest.mark.parametrize("c,cin,cout", [(4, 1, 1), (8, 3, 2), (32, 1, 1)])
def test_parameter_count_closed_form(c, cin, cout):
    model = UNet(in_channels=cin, out_channels=cout, base_channels=c)
    assert count_parameters(model) == closed_form_parameters(c, cin, cout)


def test_count_parameters_trainable_only():
    model = UNet(base_channels=4)
    total = count_parameters(model)
    model.outc.requires_grad_(False)
    assert count_parameters(model) == total - (4 + 1)
    assert count_parameters(model, trainable_only=False) == total


def test_valid_mode_maps_572_to_388():
    assert valid_output_size(572) == 388
    model = UNet(base_channels=4, padding="valid").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 572, 572))
    assert out.shape == (1, 1, 388, 388)


def test_valid_sizes():
    assert valid_input_size(572) == 572
    assert valid_input_size(573) == 588
    assert valid_input_size(10) == 188
    assert valid_output_size(188) == 4
    for n in (570, 571, 100, 187):
        with pytest.raises(FetalheadError):
            valid_output_size(n)
    with pytest.raises(FetalheadError):
        UNet(base_channels=4, padding="valid")(torch.randn(1, 1, 570, 572))


@pytest.mark.parametrize("size", [(255, 383), (540, 800), (16, 16), (33, 17)])
def test_same_mode_keeps_size(size):
    model = UNet(base_channels=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert out.dtype == torch.float32


def test_same_mode_output_channels():
    out = UNet(out_channels=3, base_channels=4).eval()(torch.randn(1, 1, 32, 48))
    assert out.shape == (1, 3, 32, 48)


def test_same_mode_pads_symmetrically():
    # 40 x 56 is padded to 48 x 64: 4 zero rows/columns on EACH side, then cropped back. So it
    # must equal running on the explicitly zero-padded input and cropping the centre.
    torch.manual_seed(0)
    model = UNet(base_channels=4).eval()
    x = torch.randn(1, 1, 40, 56)
    with torch.no_grad():
        a = model(x)
        b = model(torch.nn.functional.pad(x, (4, 4, 4, 4)))[..., 4:-4, 4:-4]
    torch.testing.assert_close(a, b)


def test_gradients_flow_to_every_parameter():
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    x = torch.randn(2, 1, 48, 64)
    target = (torch.rand(2, 1, 48, 64) > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bf16_autocast_and_channels_last():
    model = UNet(base_channels=4).to(memory_format=torch.channels_last).eval()
    x = torch.randn(1, 1, 32, 48).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (1, 1, 32, 48)
    assert torch.isfinite(out.float()).all()


def test_build_model_from_config():
    cfg = get_config("default", quick=True)
    model = build_model(cfg)
    assert isinstance(model, UNet)
    assert model.padding == cfg.padding
    assert model.inc.block[0].out_channels == cfg.base_channels
    assert count_parameters(model) == closed_form_parameters(cfg.base_channels)


def test_bad_padding():
    with pytest.raises(FetalheadError):
        UNet(padding="reflect")


def test_kaiming_init_scale():
    # Paper: weights ~ N(0, sqrt(2 / fan_in)); check the widest 3x3 conv's empirical std.
    torch.manual_seed(0)
    conv = UNet(base_channels=16).downs[3].conv.block[3]  # 256 -> 256, fan_in 9 * 256
    std = conv.weight.std().item()
    assert std == pytest.approx((2 / (9 * 256)) ** 0.5, rel=0.05)
