"""Training engine: loss goes down, early stopping, exact resume, checkpoint files, quick mode.

Tiny U-Nets (base 4) on 64x96 images keep every test to seconds on two CPU cores.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fetalhead import device as device_module
from fetalhead.checkpoint import (
    dequantize_int8,
    export_weights,
    load_checkpoint,
    quantize_int8,
    save_checkpoint,
)
from fetalhead.config import QUICK_ENV, get_config
from fetalhead.device import autocast_settings, precision_name
from fetalhead.errors import FetalheadError
from fetalhead.model import build_model
from fetalhead.synthetic import synthetic_set
from fetalhead.train import (
    HISTORY_COLUMNS,
    center_crop_like,
    check_crop_size,
    coarse_size,
    downscale_arrays,
    fit,
    image_weights,
    random_crops,
)

SIZE = (64, 96)


def tiny_cfg(**kw):
    base = dict(image_size=SIZE, base_channels=4, batch_size=4, epochs=2, patience=5)
    return get_config("default", quick=False, **{**base, **kw})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_one_cycle_run_does_not_stop_while_its_rate_still_rises(tmp_path):
    # no epoch after the first "improves" (min_delta 1), patience 1: a constant rate stops after
    # epoch 2; one-cycle over 10 epochs warms up for 3 of them and stops after epoch 3
    for schedule, epochs in (("constant", 2), ("onecycle", 3)):
        cfg = tiny_cfg(epochs=10, patience=1, min_delta=1.0, schedule=schedule)
        res = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / schedule, progress=False)
        assert len(res.history) == epochs and res.best_epoch == 1, schedule


def test_fit_stops_early_and_restores_the_best_epoch(tmp_path):
    # min_delta = 1 makes any later epoch "no better": best is epoch 1, stop after epoch 2
    cfg = tiny_cfg(epochs=6, patience=1, min_delta=1.0)
    res = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path, progress=False)
    assert list(res.history["epoch"]) == [1, 2] and res.best_epoch == 1
    assert res.best_val_dice == pytest.approx(res.history["val_dice"][0])
    _, _, best_meta = load_checkpoint(tmp_path / "best.pt")
    best, _, _ = load_checkpoint(tmp_path / "best.pt")
    last, _, last_meta = load_checkpoint(tmp_path / "last.pt")
    assert best_meta["epoch"] == 1 and last_meta["epoch"] == 2
    assert same_weights(weights(res.model), weights(best))
    assert not same_weights(weights(res.model), weights(last))
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS and len(hist) == 2
    assert (hist["seconds"].diff().dropna() > 0).all()


# ----------------------------------------------------------------------------- learning


@pytest.mark.skipif(not os.environ.get("HC18_DIR"), reason="HC18_DIR not set")
def test_a_few_epochs_on_real_images_lower_the_loss(tmp_path):
    from fetalhead.cache import load_arrays

    train = load_arrays("train", SIZE, limit=24, progress=False)
    val = load_arrays("val", SIZE, limit=8, progress=False)
    cfg = tiny_cfg(epochs=3, batch_size=8)
    res = fit(cfg, train, val, tmp_path, progress=False)
    h = res.history
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["val_loss"].iloc[-1] < h["val_loss"].iloc[0]
    assert np.isfinite(h[["train_loss", "val_loss", "val_dice", "lr"]].to_numpy()).all()
    assert 0.0 <= res.best_val_dice <= 1.0


def test_fit_learns_synthetic_heads(tmp_path):
    """An easy task: the Dice of bright ellipses must rise well above its first value."""
    cfg = tiny_cfg(epochs=6, batch_size=4, lr=1e-2, schedule="constant", rotate_deg=0.0,
                   hflip=False, vflip=False, scale=0.0, intensity=0.0)
    calls = []
    res = fit(cfg, synthetic_set(16), synthetic_set(8, seed=1), tmp_path, progress=False,
              callback=lambda epoch, hist: calls.append((epoch, len(hist))))
    assert calls == [(e, e) for e in range(1, 7)]  # once per epoch, with the history so far
    h = res.history
    assert res.best_val_dice > 0.8 and res.best_val_dice > h["val_dice"].iloc[0] + 0.1
    assert h["train_loss"].iloc[-1] < 0.7 * h["train_loss"].iloc[0]
    assert h["lr"].eq(1e-2).all()


# ----------------------------------------------------------------------------- resume and files


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_continues_exactly(tmp_path, ema_decay):
    cfg = tiny_cfg(epochs=2, ema_decay=ema_decay)
    train, val = synthetic_set(8), synthetic_set(4, seed=1)
    full = fit(cfg, train, val, tmp_path / "full", progress=False)
    # the same run, stopped after epoch 1 by the callback, then resumed from last.pt
    fit(cfg, train, val, tmp_path / "part", progress=False, callback=lambda e, h: e == 1)
    _, _, meta1 = load_checkpoint(tmp_path / "part" / "last.pt")
    assert meta1["epoch"] == 1
    # resumed into another folder: it must get the best weights so far and the new last.pt
    resumed = fit(cfg, train, val, tmp_path / "resumed", resume=tmp_path / "part" / "last.pt", progress=False)
    assert (tmp_path / "resumed" / "best.pt").is_file()
    a, _, meta_a = load_checkpoint(tmp_path / "full" / "last.pt")
    b, _, meta_b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert same_weights(weights(a), weights(b))
    assert same_weights(weights(full.model), weights(resumed.model))
    cols = ["epoch", "train_loss", "val_loss", "val_dice", "lr"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    for k in ("exp_avg", "exp_avg_sq"):  # AdamW moments continue too
        sa, sb = meta_a["optimizer"]["state"], meta_b["optimizer"]["state"]
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa)


def test_the_averaged_weights_are_validated_and_kept(tmp_path, monkeypatch):
    """With ema_decay the weights validated, kept in best.pt and returned are the moving
    average, not the raw weights that keep training; decay 0.5 over 2 steps of one epoch, warmed
    up to min(0.5, 2/11) at the second update: average = d * (weights after step 1) + (1 - d) *
    (after step 2)."""
    train, val = synthetic_set(8), synthetic_set(4, seed=1)
    steps = []  # the raw weights after each optimizer step, from a run without averaging
    import fetalhead.train as tr

    real_step = tr.train_step

    def recording_step(model, *args, **kwargs):
        loss = real_step(model, *args, **kwargs)
        steps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return loss

    cfg = tiny_cfg(epochs=1, batch_size=4, lr=1e-2, schedule="constant")
    monkeypatch.setattr(tr, "train_step", recording_step)
    raw = fit(cfg, train, val, tmp_path / "raw", progress=False)
    monkeypatch.setattr(tr, "train_step", real_step)
    assert len(steps) == 2
    avg = fit(replace(cfg, ema_decay=0.5), train, val, tmp_path / "avg", progress=False)
    got = weights(avg.model)
    for k, v in got.items():
        if v.is_floating_point() and "running_var" not in k and "running_mean" not in k:
            assert torch.allclose(v, 2 / 11 * steps[0][k] + 9 / 11 * steps[1][k], atol=1e-6), k
    assert not same_weights(got, weights(raw.model))  # the raw run kept the last raw weights
    assert same_weights(got, weights(load_checkpoint(tmp_path / "avg" / "best.pt")[0]))
    # last.pt (one epoch: the same epoch) gives the averaged weights too, as export ships them
    assert same_weights(got, weights(load_checkpoint(tmp_path / "avg" / "last.pt")[0]))
    assert same_weights(weights(raw.model), weights(load_checkpoint(tmp_path / "raw" / "last.pt")[0]))
    last, best = (load_checkpoint(tmp_path / "avg" / f)[2] for f in ("last.pt", "best.pt"))
    for key in ("trained_on", "precision", "seconds"):  # where and how it trained, for an export of either
        assert last[key] == best[key] and last[key], key
    assert avg.history["val_dice"].iloc[0] != raw.history["val_dice"].iloc[0]  # the average was validated
    with pytest.raises(FetalheadError, match="ema_decay"):
        fit(replace(cfg, ema_decay=1.0), train, val, tmp_path / "bad", progress=False)


@pytest.mark.parametrize("saved_at", ["a worse epoch", "its best epoch"])
def test_a_run_stopped_after_an_improvement_last_pt_missed_resumes(tmp_path, saved_at):
    """last.pt is saved now and then; a run stopped (Ctrl-C, a crash) after best.pt improved
    once more resumes from last.pt, keeps that newer best.pt, and ends as the uninterrupted run
    does, early stopping included (CPU runs are deterministic)."""
    import shutil

    cfg = tiny_cfg(epochs=14, patience=2, schedule="constant")
    train, val = synthetic_set(8), synthetic_set(4, seed=1)
    full = fit(cfg, train, val, tmp_path / "full", progress=False)
    dice = full.history["val_dice"].to_numpy()
    n, best = len(dice), full.best_epoch
    improving = {e for e in range(1, n + 1) if dice[e - 1] > dice[: e - 1].max(initial=-1.0)}
    # saved at least patience + 1 epochs before the best: counting the epochs trained again as
    # no better than the newer best.pt would stop the run early
    candidates = [e for e in range(1, best - cfg.patience) if (e in improving) == (saved_at == "its best epoch")]
    assert candidates and n > best + 1  # the case can tell
    saved = min(candidates, key=lambda e: (e + 1 in improving, e))  # one followed by a worse epoch if any
    fit(cfg, train, val, tmp_path / "part", progress=False, callback=lambda e, h: e == saved)
    fit(cfg, train, val, tmp_path / "later", progress=False, callback=lambda e, h: e == best)
    shutil.copyfile(tmp_path / "later" / "best.pt", tmp_path / "part" / "best.pt")  # what the stopped run left
    if saved + 1 not in improving:  # one epoch trained again, no better: best.pt stays the newer one
        shutil.copytree(tmp_path / "part", tmp_path / "again")
        fit(cfg, train, val, tmp_path / "again", resume=tmp_path / "again" / "last.pt", progress=False,
            callback=lambda e, h: True)
        assert load_checkpoint(tmp_path / "again" / "best.pt")[2]["epoch"] == best
    resumed = fit(cfg, train, val, tmp_path / "part", resume=tmp_path / "part" / "last.pt", progress=False)
    pd.testing.assert_frame_equal(full.history[["epoch", "val_dice"]], resumed.history[["epoch", "val_dice"]])
    assert resumed.best_epoch == best and resumed.best_val_dice == full.best_val_dice
    assert same_weights(weights(full.model), weights(resumed.model))
    assert load_checkpoint(tmp_path / "part" / "best.pt")[2]["epoch"] == best


def test_an_earlier_run_is_replaced_only_once_the_new_one_passes_its_checks(tmp_path):
    cfg = tiny_cfg(epochs=1)
    fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False)
    before = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt", "history.csv")}
    wider = build_model(tiny_cfg(base_channels=8)).state_dict()
    with pytest.raises(FetalheadError, match="starting weights are not"):
        fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False, init=wider,
            replace=tuple(before))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before  # refused: left whole
    (tmp_path / "notes.txt").write_text("the user's own")

    def stop(epoch, history):  # Ctrl-C after the first best.pt, before any last.pt of the new run
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="earlier run's are kept"):
        fit(tiny_cfg(epochs=3, seed=3), synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False,
            callback=stop, replace=tuple(before))
    assert not (tmp_path / "last.pt").exists()  # the earlier run's last.pt is not left beside the new best.pt
    assert (tmp_path / "best.pt").read_bytes() != before["best.pt"]
    # ... but it is not lost either: the stopped run's files and the earlier run's, side by side
    assert {name: (tmp_path / f"earlier-{name}").read_bytes() for name in before} == before
    assert (tmp_path / "notes.txt").read_text() == "the user's own"  # only the files named go
    assert not list(tmp_path.glob(".*.earlier"))  # nothing set aside is left hidden
    fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path / "whole", progress=False)
    again = {name: (tmp_path / "whole" / name).read_bytes() for name in before}
    fit(tiny_cfg(epochs=2, seed=4), synthetic_set(4), synthetic_set(2, seed=1), tmp_path / "whole", progress=False,
        replace=tuple(before))  # a run that ends normally replaces the earlier one, and keeps nothing of it
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == sorted(before)
    assert (tmp_path / "whole" / "best.pt").read_bytes() != again["best.pt"]


def test_an_earlier_run_comes_back_when_the_new_one_fails_before_writing(tmp_path, monkeypatch):
    """A failure after the checks (out of memory loading the arrays, an overflow in the first
    step) used to leave the folder empty: the earlier run's files had been deleted."""
    import fetalhead.train as train_module

    cfg = tiny_cfg(epochs=1)
    fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False)
    before = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt", "history.csv")}

    def no_memory(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module, "_to_device_arrays", no_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(tiny_cfg(epochs=2, seed=3), synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False,
            replace=tuple(before))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # and nothing else


def test_resume_refuses_a_different_config(tmp_path):
    cfg = tiny_cfg(epochs=1)
    fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False)
    with pytest.raises(FetalheadError, match=r"its run had lr=0.003 \(now 1.0\), epochs=1 \(now 3\); resume with the same"):
        fit(tiny_cfg(epochs=3, lr=1.0), synthetic_set(4), synthetic_set(2, seed=1), tmp_path / "elsewhere",
            resume=tmp_path / "last.pt", progress=False)
    assert not (tmp_path / "elsewhere").exists()  # refused before its folder is made


def test_checkpoint_and_export_round_trip(tmp_path):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # non-trivial BatchNorm statistics, which are saved too
        model.train()(torch.rand(2, 1, *SIZE))
    full = save_checkpoint(tmp_path / "m.pt", model, cfg, epoch=3, metrics={"val_dice": 0.9},
                           history=[{"epoch": 1, "val_dice": 0.9}])
    m2, cfg2, meta = load_checkpoint(full)
    assert cfg2 == cfg and meta["epoch"] == 3 and meta["metrics"] == {"val_dice": 0.9}
    assert same_weights(weights(model), weights(m2)) and not m2.training
    small = export_weights(model, cfg, {"val_dice": 0.9}, tmp_path / "w.pt")
    m3, cfg3, meta3 = load_checkpoint(small)
    assert cfg3 == cfg and meta3["weights_only"] and meta3["metrics"]["val_dice"] == 0.9
    assert small.stat().st_size < 0.7 * full.stat().st_size
    for k, v in weights(model).items():
        got = m3.state_dict()[k]
        assert got.dtype == v.dtype  # read back as fp32
        torch.testing.assert_close(got, v, rtol=1e-3, atol=1e-4)  # fp16: 11 significant bits
    x = torch.rand(1, 1, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(m3(x), model.eval()(x), rtol=0.02, atol=0.02)


def test_int8_export_is_a_quarter_and_reads_back_within_half_a_step(tmp_path):
    cfg = tiny_cfg(base_channels=8)  # enough weights that the file's metadata does not dominate
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.train()(torch.rand(2, 1, *SIZE))
    full = export_weights(model, cfg, None, tmp_path / "f32.pt", dtype="float32")
    q8 = export_weights(model, cfg, None, tmp_path / "q8.pt", dtype="int8")
    assert q8.stat().st_size < 0.4 * full.stat().st_size
    m8, _, meta = load_checkpoint(q8)
    assert meta["dtype"] == "int8" and "scales" not in meta
    stored = torch.load(q8, weights_only=True)
    for k, v in weights(model).items():
        got = m8.state_dict()[k]
        assert got.dtype == v.dtype  # read back as fp32
        if v.is_floating_point() and v.ndim >= 2:
            assert stored["model"][k].dtype == torch.int8
            # every slice along the first dimension has its own step: max |w| of the slice / 127
            step = v.abs().reshape(v.shape[0], -1).amax(dim=1) / 127
            err = (got - v).abs().reshape(v.shape[0], -1).amax(dim=1)
            assert torch.all(err <= step / 2 + 1e-7)
            torch.testing.assert_close(got.abs().reshape(v.shape[0], -1).amax(dim=1),  # the peak is exact
                                       v.abs().reshape(v.shape[0], -1).amax(dim=1), rtol=1e-6, atol=0)
        elif v.is_floating_point():
            assert stored["model"][k].dtype == torch.float16
    x = torch.rand(1, 1, *SIZE)
    with torch.no_grad():
        a, b = m8(x), model.eval()(x)
    assert (a - b).abs().mean() < 0.05 * b.abs().mean()  # an untrained network's logits (2 % here)


def test_quantize_int8_handles_zero_slices_and_refuses_unknown_dtypes(tmp_path):
    w = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-254.0, 127.0]])
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q[0].tolist() == [0, 0] and q[1].tolist() == [127, -64]
    assert scale.tolist() == pytest.approx([1.0, 1 / 127, 2.0])
    assert torch.all((dequantize_int8(q, scale) - w).abs() <= scale.view(-1, 1) / 2 + 1e-6)
    with pytest.raises(FetalheadError, match="unknown weight dtype"):
        export_weights(build_model(tiny_cfg()), tiny_cfg(), None, tmp_path / "x.pt", dtype="int4")
    assert not (tmp_path / "x.pt").exists()


def test_int8_weights_without_their_scales_are_refused(tmp_path):
    cfg = tiny_cfg()
    path = export_weights(build_model(cfg), cfg, None, tmp_path / "q8.pt", dtype="int8")
    ckpt = torch.load(path, weights_only=True)
    first = next(k for k, v in ckpt["model"].items() if v.dtype == torch.int8)
    del ckpt["scales"][first]  # read as raw int8 values, the network would be garbage
    torch.save(ckpt, path)
    with pytest.raises(FetalheadError, match="without a scale") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def test_int8_weights_with_one_scale_for_the_whole_tensor_are_refused(tmp_path):
    # a single per-tensor scale would broadcast silently over every slice: refused
    cfg = tiny_cfg()
    path = export_weights(build_model(cfg), cfg, None, tmp_path / "q8.pt", dtype="int8")
    ckpt = torch.load(path, weights_only=True)
    first = next(k for k, v in ckpt["model"].items() if v.dtype == torch.int8)
    ckpt["scales"][first] = ckpt["scales"][first].max()  # 0-d
    torch.save(ckpt, path)
    with pytest.raises(FetalheadError, match="without a scale per slice"):
        load_checkpoint(path)


def test_bad_files_raise_one_line_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(256))
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    cfg = tiny_cfg()
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, build_model(cfg), cfg, epoch=1)
    ckpt = torch.load(wrong, weights_only=True)
    ckpt["config"]["base_channels"] = 8  # the weights are those of base 4
    torch.save(ckpt, wrong)
    for path, words in [(junk, "not a fetalhead checkpoint"), (other, "not a fetalhead checkpoint"),
                        (wrong, "do not match"), (tmp_path / "missing.pt", "not found")]:
        with pytest.raises(FetalheadError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert words in msg and path.name in msg and "\n" not in msg


def test_valid_padding_trains_on_centre_cropped_masks(tmp_path):
    t = torch.arange(2 * 1 * 6 * 8).reshape(2, 1, 6, 8)
    torch.testing.assert_close(center_crop_like(t, torch.zeros(2, 1, 2, 4)), t[..., 2:4, 2:6])
    assert center_crop_like(t, t) is t
    # the paper's unpadded U-Net: 188x188 in -> 4x4 out; the loss sees the central 4x4 of the mask
    cfg = tiny_cfg(image_size=(188, 188), padding="valid", epochs=1, batch_size=2)
    res = fit(cfg, synthetic_set(4, size=(188, 188)), synthetic_set(2, size=(188, 188), seed=1),
              tmp_path, progress=False)
    assert np.isfinite(res.history[["train_loss", "val_loss", "val_dice"]].to_numpy()).all()


def test_wrong_array_size_is_a_clear_error(tmp_path):
    with pytest.raises(FetalheadError, match="image_size"):
        fit(tiny_cfg(), synthetic_set(4, size=(32, 48)), synthetic_set(2), tmp_path, progress=False)


# ----------------------------------------------------------------------------- settings


def test_auto_precision_on_a_cpu_is_bf16_only_with_bf16_units(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_has_bf16_units", lambda: True)
    assert autocast_settings("auto", cpu) == (torch.bfloat16, False)
    assert precision_name("auto", cpu) == "bf16"
    monkeypatch.setattr(device_module, "cpu_has_bf16_units", lambda: False)
    assert autocast_settings("auto", cpu) == (None, False)
    assert precision_name("auto", cpu) == "fp32" and precision_name("bf16", cpu) == "bf16"


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, True), (False, True, True),
                                                     (False, False, False)])
def test_bf16_units_are_amx_tiles_or_avx512_bf16(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert device_module.cpu_has_bf16_units() is expected


def test_a_trained_model_records_the_precision_it_ran_in(tmp_path):
    fit(tiny_cfg(epochs=1, precision="bf16"), synthetic_set(8), synthetic_set(4, seed=1), tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "best.pt")[2]["precision"] == "bf16"
    fit(tiny_cfg(epochs=1, precision="fp32"), synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / "best.pt")[2]["precision"] == "fp32"


def test_precision_settings():
    cpu = torch.device("cpu")
    assert autocast_settings("bf16", cpu) == (torch.bfloat16, False)
    assert autocast_settings("fp32", cpu) == (None, False)
    with pytest.raises(FetalheadError):
        autocast_settings("fp16", cpu)
    with pytest.raises(FetalheadError):
        autocast_settings("fp8", cpu)


def test_quick_mode_config_trains(tmp_path, monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "1")
    cfg = get_config("default")
    assert cfg.image_size[0] <= 128 and cfg.image_size[1] <= 192 and cfg.base_channels <= 8
    assert cfg.epochs <= 2 and cfg.max_train_images <= 48 and cfg.max_val_images <= 16
    # fewer images than the quick caps, to stay fast on two cores
    train = synthetic_set(cfg.batch_size, size=cfg.image_size)
    val = synthetic_set(4, size=cfg.image_size, seed=1)
    res = fit(cfg, train, val, tmp_path, progress=False)
    assert len(res.history) == cfg.epochs and (tmp_path / "best.pt").is_file()
    assert Path(res.checkpoint_path) == tmp_path / "best.pt"


def test_image_caps_are_applied(tmp_path):
    cfg = tiny_cfg(epochs=1, batch_size=2, max_train_images=4, max_val_images=2)
    fit(cfg, synthetic_set(12), synthetic_set(6, seed=1), tmp_path, progress=False)
    _, _, meta = load_checkpoint(tmp_path / "last.pt")
    assert meta["scheduler"]["total_steps"] == 2  # 4 images / batch 2, not 12 / 2


def test_image_weights_follow_the_pixel_size():
    px = np.array([0.1, 0.2, 0.3])
    w = image_weights(px, 1.0)
    assert w.mean() == pytest.approx(1.0) and w == pytest.approx(px / px.mean())
    assert image_weights(px, 0.0) == pytest.approx(np.ones(3))
    assert image_weights(px, 0.5) == pytest.approx(np.sqrt(px) / np.sqrt(px).mean())
    for bad in ([0.1, 0.0], [0.1, np.nan], []):
        with pytest.raises(FetalheadError, match="pixel size"):
            image_weights(np.array(bad), 1.0)


def test_image_weights_follow_what_a_network_pixel_spans():
    """A frame twice as large at the same pixel size shows each network pixel twice as many
    millimetres: it weighs twice as much; a square frame is padded first (to 540 x 800)."""
    from types import SimpleNamespace

    from fetalhead.train import _pixel_sizes

    meta = pd.DataFrame({"pixel_size_mm": [0.1, 0.1, 0.2, 0.1], "orig_h": [540, 1080, 540, 800],
                         "orig_w": [800, 1600, 800, 800]})
    px = _pixel_sizes(SimpleNamespace(meta=meta), (192, 288))
    at_hc18 = 0.1 * np.sqrt(540 * 800 / (192 * 288))
    assert px == pytest.approx(at_hc18 * np.array([1.0, 2.0, 2.0, np.sqrt(800 * 1185 / (540 * 800))]))
    w = image_weights(px, 1.0)
    assert w[1] == pytest.approx(2 * w[0]) and w[2] == pytest.approx(w[1])
    bare = pd.DataFrame({"pixel_size_mm": [0.1, 0.2]})  # no frame sizes: the pixel sizes as they are
    assert _pixel_sizes(SimpleNamespace(meta=bare), (192, 288)) == pytest.approx([0.1, 0.2])


def test_pixel_size_weight_reaches_every_training_step(tmp_path, monkeypatch):
    import fetalhead.train as train_module

    seen = []
    real_step = train_module.train_step

    def spy(*args, **kwargs):
        w = args[9] if len(args) > 9 else kwargs.get("weight")
        seen.append(None if w is None else w.tolist())
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", spy)
    train = synthetic_set(8)
    fit(tiny_cfg(epochs=1, batch_size=4, pixel_size_weight=1.0), train, synthetic_set(4, seed=1), tmp_path,
        progress=False)
    expected = image_weights(train.meta["pixel_size_mm"].to_numpy(), 1.0)
    assert len(seen) == 2 and sorted(sum(seen, [])) == pytest.approx(sorted(expected))
    assert np.ptp(expected) > 0.1  # the synthetic pixel sizes differ, so the test can tell
    seen.clear()
    fit(tiny_cfg(epochs=1, batch_size=4), train, synthetic_set(4, seed=1), tmp_path / "plain", progress=False)
    assert seen == [None, None]
    no_meta = type("Arrays", (), {"images": train.images, "masks": train.masks})()
    with pytest.raises(FetalheadError, match="pixel sizes"):
        fit(tiny_cfg(epochs=1, batch_size=4, pixel_size_weight=1.0), no_meta, synthetic_set(4, seed=1),
            tmp_path / "x", progress=False)


# ----------------------------------------------------------------------------- plots


def test_plot_history_and_save(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from fetalhead import viz

    hist = pd.DataFrame(dict(epoch=[1, 2, 3], train_loss=[1.2, 0.8, 0.6], val_loss=[1.1, 0.9, 0.7],
                             val_dice=[0.5, 0.8, 0.75], lr=[1e-3] * 3, seconds=[1.0, 2.0, 3.0]))
    fig = viz.plot_history(hist)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, dice_ax = fig.axes
    assert list(loss_ax.get_lines()[0].get_ydata()) == [1.2, 0.8, 0.6]
    assert any(list(ln.get_xdata()) == [2, 2] for ln in dice_ax.get_lines())  # best epoch marked
    one = Figure()
    ax = one.add_subplot()
    assert viz.plot_history(hist, ax=ax) is one and len(one.axes) == 2  # twin Dice axis
    monkeypatch.delenv(QUICK_ENV, raising=False)  # quick mode would save into the cache
    monkeypatch.setattr(viz, "figures_dir", lambda: tmp_path)
    path = viz.save_figure(fig, "training_history")
    assert path == tmp_path / "training_history.png" and path.stat().st_size > 1000


# ----------------------------------------------------------------------------- time budget


class FakeClock:
    """A clock that advances `dt` seconds each time it is read: runs are deterministic."""

    def __init__(self, dt: float) -> None:
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def test_time_budget_ends_the_run_with_the_rate_annealed(tmp_path):
    # each clock read is 0.05 s: the budget of 6 s ends the run after a few epochs, mid-epoch
    cfg = tiny_cfg(epochs=2, patience=1, min_delta=1.0, time_budget_s=6.0, last_every_s=1e9)
    res = fit(cfg, synthetic_set(16), synthetic_set(4, seed=1), tmp_path, progress=False,
              clock=FakeClock(0.05))
    h = res.history
    # neither `epochs` (2) nor early stopping (patience 1, no epoch ever "improves") ended it
    assert len(h) > 2
    assert h["seconds"].iloc[-1] <= 6.0 + 0.5 and h["seconds"].iloc[-1] >= 6.0 - 1.0
    lr = h["lr"].to_numpy()
    assert lr.argmax() not in (0, len(lr) - 1)  # warm-up, then down
    assert lr[-1] < 0.05 * cfg.lr  # annealed inside the budget
    # best.pt: weights only (small), the best epoch's; last.pt written once, at the end
    best, _, best_meta = load_checkpoint(tmp_path / "best.pt")
    _, _, last_meta = load_checkpoint(tmp_path / "last.pt")
    assert best_meta["weights_only"] and best_meta["epoch"] == res.best_epoch
    assert last_meta["epoch"] == len(h) and "optimizer" in last_meta
    assert same_weights(weights(best), weights(res.model))


def test_time_budget_follows_the_clock_not_the_step_count(tmp_path):
    # twice as slow a clock (per read) -> about half as many epochs in the same budget
    cfg = tiny_cfg(time_budget_s=4.0)
    fast = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "a", progress=False,
               clock=FakeClock(0.02))
    slow = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "b", progress=False,
               clock=FakeClock(0.04))
    assert len(slow.history) < 0.7 * len(fast.history)
    for h in (fast.history, slow.history):
        assert h["lr"].iloc[-1] < 0.05 * cfg.lr


def _slow_validation(monkeypatch, seconds: float) -> FakeClock:
    """A clock of 0.05 s per read, on which each validation of `fit` takes `seconds` more."""
    import fetalhead.train as tr

    clock = FakeClock(0.05)
    real = tr.evaluate_arrays

    def slow_validation(*args, **kwargs):
        clock.t += seconds
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "evaluate_arrays", slow_validation)
    return clock


def test_time_budget_keeps_back_the_validations_time(tmp_path, monkeypatch):
    """The budget includes validation: with a validation that takes 2 s (of a 6 s budget) the
    run stops training early enough that its last validation still ends inside the budget,
    give or take one epoch's training steps (4 steps of a few 0.05 s clock reads)."""
    clock = _slow_validation(monkeypatch, 2.0)
    cfg = tiny_cfg(epochs=2, time_budget_s=6.0, last_every_s=1e9)
    res = fit(cfg, synthetic_set(16), synthetic_set(4, seed=1), tmp_path, progress=False, clock=clock)
    assert len(res.history) >= 2
    assert res.history["seconds"].iloc[-1] <= 6.0 + 0.6


def test_time_budget_anneals_within_the_time_left_for_training(tmp_path, monkeypatch):
    """With a validation of 1 s in a 6 s budget, training stops mid-epoch at about 5 s (one
    validation kept back); the rate has annealed by then, not at 6 s."""
    clock = _slow_validation(monkeypatch, 1.0)
    cfg = tiny_cfg(time_budget_s=6.0, last_every_s=1e9, batch_size=8, base_channels=2)
    res = fit(cfg, synthetic_set(128), synthetic_set(4, seed=1), tmp_path, progress=False, clock=clock)
    assert len(res.history) >= 2
    assert res.history["lr"].iloc[-1] < 0.05 * cfg.lr


def test_seconds_in_the_history_add_up_over_a_resume(tmp_path):
    """history.csv's seconds are those since the run began, resumed parts included: a run
    stopped after epoch 1 and resumed records the same seconds as an uninterrupted one (the
    same fake clock, 1 s per read, about 3 reads an epoch), give or take a read or two."""
    cfg = tiny_cfg(epochs=2)
    train, val = synthetic_set(8), synthetic_set(4, seed=1)
    full = fit(cfg, train, val, tmp_path / "full", progress=False, clock=FakeClock(1.0))
    fit(cfg, train, val, tmp_path / "part", progress=False, callback=lambda e, h: e == 1, clock=FakeClock(1.0))
    resumed = fit(cfg, train, val, tmp_path / "part", resume=tmp_path / "part" / "last.pt", progress=False,
                  clock=FakeClock(1.0))
    a, b = full.history["seconds"].to_numpy(), resumed.history["seconds"].to_numpy()
    assert a[1] >= 1.5 * a[0]  # the case can tell: epoch 2 ends well after epoch 1
    assert b == pytest.approx(a, abs=1.5)


def test_a_weights_only_file_cannot_be_resumed(tmp_path):
    cfg = tiny_cfg(epochs=1)
    fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path, progress=False)
    with pytest.raises(FetalheadError, match="weights-only"):
        fit(cfg, synthetic_set(4), synthetic_set(2, seed=1), tmp_path / "again",
            resume=tmp_path / "best.pt", progress=False)


def test_fit_starts_from_given_weights(tmp_path):
    """init: training starts from those weights (with a tiny learning rate the kept network is
    still them), not from the seed's random ones; another network's weights are refused."""
    cfg = tiny_cfg(epochs=1, lr=1e-12, weight_decay=0.0, ema_decay=0.0)
    torch.manual_seed(123)
    start = weights(build_model(cfg))
    res = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "init", progress=False, init=start)
    plain = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "plain", progress=False)
    conv = [k for k in start if start[k].ndim == 4]  # the convolution kernels
    kept, random = weights(res.model), weights(plain.model)
    assert conv and all(torch.allclose(kept[k], start[k], atol=1e-6) for k in conv)
    assert not any(torch.allclose(random[k], start[k], atol=1e-3) for k in conv)
    with pytest.raises(FetalheadError, match="not of preset 'default''s network"):
        fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "wide", progress=False,
            init=weights(build_model(tiny_cfg(base_channels=8))))


# ----------------------------------------------------------------------------- coarse-to-fine


def test_downscale_arrays_averages_images_and_takes_the_majority_of_mask_blocks():
    img = torch.tensor([[10, 20, 200, 200], [30, 41, 0, 255]], dtype=torch.uint8)[None, None]
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.uint8)[None, None]
    x, y = downscale_arrays(img, mask, 2)
    assert x.dtype == y.dtype == torch.uint8 and x.shape == y.shape == (1, 1, 1, 2)
    assert x.flatten().tolist() == [25, 164]  # (10+20+30+41)/4 = 25.25; (200+200+0+255)/4 = 163.75
    assert y.flatten().tolist() == [1, 0]  # 3 of 4 head pixels; 1 of 4


def test_coarse_size_needs_multiples_of_16_and_same_padding(tmp_path):
    assert coarse_size(tiny_cfg()) is None  # off by default
    assert coarse_size(tiny_cfg(coarse_fraction=0.5)) == (32, 48)
    assert coarse_size(get_config("small", quick=False, coarse_fraction=0.5)) == (96, 144)
    for kw, match in [(dict(coarse_factor=4), "multiple of 64"), (dict(coarse_factor=1), "at least 2"),
                      (dict(padding="valid"), "same")]:
        with pytest.raises(FetalheadError, match=match):
            coarse_size(tiny_cfg(coarse_fraction=0.5, **kw))
    with pytest.raises(FetalheadError, match="multiple of 64"):  # refused before any folder is made
        fit(tiny_cfg(coarse_fraction=0.5, coarse_factor=4), synthetic_set(8), synthetic_set(4, seed=1),
            tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("budget", [None, 6.0])
def test_the_first_fraction_of_the_run_trains_coarse_then_full_size(tmp_path, monkeypatch, budget):
    import fetalhead.train as train_module

    sizes = []
    real = train_module.augment_batch

    def spy(x, y, *args):
        sizes.append(tuple(x.shape[2:]))
        return real(x, y, *args)

    validated = []
    real_eval = train_module.evaluate_arrays

    def eval_spy(model, images, *args, **kwargs):
        validated.append(tuple(images.shape[2:]))
        return real_eval(model, images, *args, **kwargs)

    monkeypatch.setattr(train_module, "augment_batch", spy)
    monkeypatch.setattr(train_module, "evaluate_arrays", eval_spy)
    cfg = tiny_cfg(epochs=4, patience=10, coarse_fraction=0.5, time_budget_s=budget, last_every_s=1e9)
    res = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path, progress=False,
              clock=FakeClock(0.05))
    coarse, full = (32, 48), SIZE
    assert set(sizes) == {coarse, full}
    first_full = sizes.index(full)
    assert all(s == coarse for s in sizes[:first_full]) and all(s == full for s in sizes[first_full:])
    if budget is None:  # epochs 1-2 begin before half of 4 epochs: 2 steps each at batch 4
        assert sizes == [coarse] * 4 + [full] * 4
    else:  # the switch comes about half-way through the budget's seconds
        assert 0.3 < first_full / len(sizes) < 0.7
    assert np.isfinite(res.history["val_dice"]).all()
    assert validated and set(validated) == {full}  # every epoch validates at full size


# ----------------------------------------------------------------------------- training crops


def test_random_crops_are_windows_of_each_image_and_its_mask():
    b, H, W, h, w = 16, 40, 56, 16, 32
    x = torch.arange(b * H * W, dtype=torch.float32).reshape(b, 1, H, W)  # each value says where it is
    y = x.clone() + 0.5
    cx, cy = random_crops(x, y, (h, w), torch.Generator().manual_seed(3))
    assert cx.shape == cy.shape == (b, 1, h, w)
    torch.testing.assert_close(cy, cx + 0.5)  # the mask's window is the image's
    places = set()
    for i in range(b):
        flat = int(cx[i, 0, 0, 0]) - i * H * W
        top, left = divmod(flat, W)
        assert 0 <= top <= H - h and 0 <= left <= W - w
        torch.testing.assert_close(cx[i, 0], x[i, 0, top:top + h, left:left + w])
        places.add((top, left))
    assert len(places) > b // 2  # each image its own place
    again, _ = random_crops(x, y, (h, w), torch.Generator().manual_seed(3))
    torch.testing.assert_close(again, cx)  # seeded: the same windows
    whole, _ = random_crops(x, y, (H, W), torch.Generator().manual_seed(3))
    torch.testing.assert_close(whole, x)


def test_crop_size_must_fit_in_multiples_of_16(tmp_path):
    check_crop_size(tiny_cfg())  # off by default
    check_crop_size(tiny_cfg(crop_size=(32, 48)))
    for kw, match in [(dict(crop_size=(40, 48)), "multiple of 16"), (dict(crop_size=(80, 48)), "fit in image_size"),
                      (dict(crop_size=(32, 48), padding="valid"), "same"),
                      (dict(crop_size=(32, 48), coarse_fraction=0.5), "cannot be combined")]:
        with pytest.raises(FetalheadError, match=match):
            check_crop_size(tiny_cfg(**kw))
    with pytest.raises(FetalheadError, match="fit in image_size"):  # refused before any folder is made
        fit(tiny_cfg(crop_size=(80, 96)), synthetic_set(8), synthetic_set(4, seed=1), tmp_path / "run",
            progress=False)
    assert not (tmp_path / "run").exists()


def test_training_steps_see_crops_and_validation_whole_images(tmp_path, monkeypatch):
    import fetalhead.train as train_module

    stepped, validated = [], []
    real_step, real_eval = train_module.train_step, train_module.evaluate_arrays

    def step_spy(model, x, y, *args, **kwargs):
        stepped.append((tuple(x.shape[2:]), tuple(y.shape[2:])))
        return real_step(model, x, y, *args, **kwargs)

    def eval_spy(model, images, *args, **kwargs):
        validated.append(tuple(images.shape[2:]))
        return real_eval(model, images, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step_spy)
    monkeypatch.setattr(train_module, "evaluate_arrays", eval_spy)
    res = fit(tiny_cfg(epochs=2, crop_size=(32, 48)), synthetic_set(8), synthetic_set(4, seed=1), tmp_path,
              progress=False)
    assert stepped and set(stepped) == {((32, 48), (32, 48))}
    assert validated and set(validated) == {SIZE}
    assert np.isfinite(res.history["val_dice"]).all()


def test_the_history_records_the_rate_each_epochs_last_step_trained_with(tmp_path):
    """One-cycle over 3 epochs of 2 steps: the last step trains at lr / 25 / 1e4 (not at the
    rate one step past the schedule's end), the first epoch's last step below the peak."""
    from fetalhead.optim import ONECYCLE_DIV, ONECYCLE_FINAL_DIV

    cfg = tiny_cfg(epochs=3, patience=9, schedule="onecycle")
    res = fit(cfg, synthetic_set(8), synthetic_set(4, seed=1), tmp_path, progress=False)
    lr = res.history["lr"].to_numpy()
    assert lr[-1] == pytest.approx(cfg.lr / ONECYCLE_DIV / ONECYCLE_FINAL_DIV, rel=1e-3)
    assert lr[0] < cfg.lr


def test_the_threads_are_counted_in_words():
    from fetalhead.device import threads_text

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert threads_text() == "1 thread"
        torch.set_num_threads(2)
        assert threads_text() == "2 threads"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("said", "raised"), [("", RuntimeError), ("some other failure", RuntimeError),
                                              ("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0",
                                               FetalheadError)])
def test_only_a_failed_write_is_reported_as_one(tmp_path, monkeypatch, said, raised):
    import fetalhead.checkpoint as checkpoint

    def failing_save(obj, f):
        raise RuntimeError(said)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(raised) as caught:
        checkpoint.save_checkpoint(tmp_path / "x.pt", build_model(tiny_cfg()), tiny_cfg(), epoch=1)
    assert ("is the disk full?" in str(caught.value)) == (raised is FetalheadError)
    assert list(tmp_path.iterdir()) == []  # no part of the file left
