"""Presets and quick mode: one frozen dataclass, round-trips through a dict, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from fetalhead.config import (
    CHOICES,
    PRESETS,
    QUICK_ENV,
    TrainConfig,
    get_config,
    parse_override,
    quick_mode,
)


def test_presets_are_named_after_their_key_and_frozen():
    for name, cfg in PRESETS.items():
        assert cfg.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.lr = 1.0  # type: ignore[misc]


def test_round_trip_through_a_dict():
    for cfg in PRESETS.values():
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({**PRESETS["small"].to_dict(), "unknown": 1}) == PRESETS["small"]


def test_quick_mode_shrinks_and_overrides_win(monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "yes")
    assert quick_mode()
    q = get_config("small")
    assert q.image_size <= (128, 192) and q.time_budget_s is None and q.max_train_images == 48
    assert PRESETS["small"].ema_decay > 0 and q.ema_decay == 0  # too few quick steps to average
    assert get_config("small", quick=False) == PRESETS["small"]
    assert get_config("default", quick=False, lr=0.1).lr == 0.1
    monkeypatch.setenv(QUICK_ENV, "0")
    assert not quick_mode()
    with pytest.raises(KeyError, match="unknown preset"):
        get_config("nope")


def test_an_override_of_the_name_field_does_not_collide_with_the_preset_argument():
    key, value = parse_override("name=mine")  # `fetalhead train --set name=mine`
    assert get_config("small", quick=True, **{key: value}).name == "mine"


def test_the_small_preset_fits_its_promises():
    from fetalhead.model import build_model

    s = PRESETS["small"]
    n_params = sum(p.numel() for p in build_model(s).parameters())
    assert 2 * n_params < 2 * 2**20  # fp16 weights under 2 MB
    assert s.time_budget_s is not None and s.time_budget_s <= 90 * 60  # 2 CPU cores, 90 minutes


@pytest.mark.parametrize(("text", "expected"), [
    ("base_channels=16", ("base_channels", 16)),
    ("image_size=256x384", ("image_size", (256, 384))),
    (" lr = 1e-3", ("lr", 0.001)),
    ("weight_decay=0", ("weight_decay", 0.0)),
    ("hflip=false", ("hflip", False)),
    ("compile=yes", ("compile", True)),
    ("time_budget_s=none", ("time_budget_s", None)),
    ("optimizer=sgd", ("optimizer", "sgd")),
])
def test_a_setting_is_typed_like_its_field(text, expected):
    key, value = parse_override(text)
    assert (key, value) == expected and type(value) is type(expected[1])
    assert getattr(get_config("small", quick=False, **{key: value}), key) == expected[1]


@pytest.mark.parametrize(("text", "message"), [
    ("width=16", "unknown setting 'width'"),
    ("base_channels", "not KEY=VALUE"),
    ("base_channels=1.5", "whole number"),
    ("base_channels=0", "above zero"),
    ("lr=nan", "a finite number"),
    ("lr=inf", "a finite number"),
    ("time_budget_s=-inf", "a finite number"),
    ("scale=1", "below 1"),
    ("intensity=1.5", "below 1"),
    ("rotate_deg=-5", "at least 0"),
    ("image_size=320", "HEIGHTxWIDTH"),
    ("image_size=0x480", "above zero"),
    ("hflip=maybe", "true or false"),
    ("epochs=none", "whole number"),
    ("padding=", "choose from same, valid"),
    ("schedule=linear", "choose from onecycle, cosine, constant"),
    ("ema_decay=1", "below 1"),
    # sizes that passed and then crashed the run: an overflow, an allocation, a seed torch refuses
    ("seed=18446744073709551616", "at most 18446744073709551615"),
    ("lr=1e300", "at most 10"),
    ("image_size=100000x100000", "at most 8192"),
    ("base_channels=1000000000000000000000000000000", "at most 256"),
    ("epochs=99999999999999999999999", "at most 9223372036854775807"),
    ("weight_decay=1e39", "at most 3e"),
])
def test_a_bad_setting_is_a_one_line_error(text, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_override(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"base_channels": "8"}, "whole number"),
    ({"base_channels": True}, "whole number"),
    ({"lr": float("inf")}, "finite number"),
    ({"image_size": "abc"}, "HEIGHTxWIDTH"),
    ({"image_size": [0, 480]}, "above zero"),
    ({"hflip": 1}, "true or false"),
    ({"padding": "full"}, "choose from"),
    ({"time_budget_s": -5.0}, "at least 0|above zero"),
])
def test_a_config_read_from_a_file_is_checked_like_a_setting(change, message):
    d = {**PRESETS["small"].to_dict(), **change}
    with pytest.raises(ValueError, match=message) as e:
        TrainConfig.from_dict(d)
    assert "\n" not in str(e.value)
    with pytest.raises(TypeError, match="must be a dict"):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_every_text_choice_is_a_field_and_the_presets_use_allowed_values():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(CHOICES) <= names
    for cfg in PRESETS.values():
        assert all(getattr(cfg, k) in allowed for k, allowed in CHOICES.items())
