"""Presets and quick mode: one frozen dataclass, round-trips through a dict, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from fetalhead.config import PRESETS, QUICK_ENV, TrainConfig, get_config, quick_mode


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
    assert get_config("small", quick=False) == PRESETS["small"]
    assert get_config("default", quick=False, lr=0.1).lr == 0.1
    monkeypatch.setenv(QUICK_ENV, "0")
    assert not quick_mode()
    with pytest.raises(KeyError, match="unknown preset"):
        get_config("nope")


def test_the_small_preset_fits_its_promises():
    from fetalhead.model import build_model

    s = PRESETS["small"]
    n_params = sum(p.numel() for p in build_model(s).parameters())
    assert 2 * n_params < 2 * 2**20  # fp16 weights under 2 MB
    assert s.time_budget_s is not None and s.time_budget_s <= 90 * 60  # 2 CPU cores, 90 minutes
