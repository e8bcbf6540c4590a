"""Benchmark: FLOP counting against torch's counter, the peak table, and CPU smoke runs of
`fetalhead bench`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fetalhead.bench import forward_flops, peak_flops
from fetalhead.checkpoint import load_checkpoint
from fetalhead.cli import main
from fetalhead.config import get_config
from fetalhead.model import build_model
from fetalhead.paths import SHIPPED_MODELS, shipped_checkpoint


@pytest.mark.parametrize("size,padding", [((64, 96), "same"), ((50, 70), "same"), ((188, 188), "valid")])
def test_forward_flops_match_torch_flop_counter(size, padding):
    cfg = get_config("default", quick=False, base_channels=4, padding=padding)
    model = build_model(cfg).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, *size))
    assert forward_flops(cfg, size) == counter.get_total_flops() > 0


def test_forward_flops_closed_form_for_the_first_layer_pair():
    """Full-width level of a base-c U-Net at H x W: 2*9*(1*c + c*c)*H*W for the two input
    convs; the whole net is more, and FLOPs scale with c^2 and with H*W."""
    c, (h, w) = 4, (64, 96)
    first = 2 * 9 * (1 * c + c * c) * h * w
    total = forward_flops(get_config("default", quick=False, base_channels=c), (h, w))
    assert total > first
    doubled = forward_flops(get_config("default", quick=False, base_channels=2 * c), (h, w))
    assert 3.5 < doubled / total < 4.0  # c^2 dominates; the 1-channel in/out convs are linear in c
    assert forward_flops(get_config("default", quick=False, base_channels=c), (2 * h, 2 * w)) == 4 * total


def test_peak_table():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA H100 NVL") == peak_flops("NVIDIA H200 NVL") == 835e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("NVIDIA GeForce GTX 1080") is None


def test_quick_benchmark_on_a_compact_cache(synthetic_hc18, cache_tmp, tmp_path, capsys):
    from fetalhead.cache import build_compact_cache

    cache = build_compact_cache(tmp_path / "compact.npz", size=(64, 96), root=synthetic_hc18,
                                progress=False)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--device", "cpu", "--cache", str(cache), "--cap", "20",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["device"] and res["device_type"] == "cpu" and res["peak_bf16_flops"] is None
    rows = res["throughput"]
    assert {(r["recipe"], tuple(r["size"])) for r in rows} == {
        (rec, s) for rec in ("reference", "default") for s in ((64, 64), (64, 96))}
    for r in rows:
        assert r["images_per_s"] > 0 and r["step_ms"] > 0 and r["mfu"] is None
        assert r["achieved_flops"] == pytest.approx(r["train_flops_per_image"] * r["images_per_s"])
        assert r["batch"] == {"reference": 2, "default": 16}[r["recipe"]]
    assert set(res["speedup"]) == {"64x64", "64x96"} and all(v > 0 for v in res["speedup"].values())
    t = res["time_to_dice"]
    assert t["target"] == 0.97 and t["epochs_run"] >= 1 and 0 <= t["best_val_dice"] <= 1
    assert t["image_size"] == [64, 96]
    lat = res["latency"]["cpu"]
    assert lat["network_ms"] > 0 and lat["predict_ms"] > 0 and lat["input_shape"] == [540, 800]
    assert lat["predict_flips_ms"] > 0  # the mirrored pass is timed too
    assert "img/s" in capsys.readouterr().out


def test_results_are_written_after_every_measurement(synthetic_hc18, cache_tmp, tmp_path, monkeypatch):
    """A run cut short (here: the latency step fails) keeps the throughput rows it measured."""
    import fetalhead.bench as bench
    from fetalhead.cache import build_compact_cache

    cache = build_compact_cache(tmp_path / "compact.npz", size=(64, 96), root=synthetic_hc18,
                                progress=False)

    def broken(*a, **k):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(bench, "measure_latency", broken)
    out = tmp_path / "bench.json"
    with pytest.raises(RuntimeError):
        main(["bench", "--quick", "--device", "cpu", "--cache", str(cache), "--no-train", "--out", str(out)])
    res = json.loads(out.read_text())
    assert len(res["throughput"]) == 4 and set(res["speedup"]) == {"64x64", "64x96"}
    assert "latency" not in res


def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text("earlier results")
    for argv, words in [(["--cache", tmp_path / "nope.npz"], "no such file"),
                        (["--out", old], "use --overwrite")]:
        argv = ["bench", "--quick", "--device", "cpu", "--out", tmp_path / "b.json", *argv]
        assert main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fetalhead: error: ") and words in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"] and old.read_text() == "earlier results"


def test_latency_only_reports_the_shipped_models_and_the_architectures_on_the_cpu(tmp_path):
    out = tmp_path / "lat.json"
    assert main(["bench", "--latency-only", "--quick", "--device", "cpu", "--out", str(out)]) == 0  # one run each
    res = json.loads(out.read_text())
    lat = res["latency"]
    assert set(lat) == {"default", "small", "cpu"}
    assert res["date"].endswith("UTC") and res["commit"] and isinstance(res["cpu_bf16_units"], bool)  # where and when
    shipped = [m for m in SHIPPED_MODELS if shipped_checkpoint(m).is_file()]
    assert shipped and list(res["models"]) == shipped
    for name, per_device in res["models"].items():  # each with its own weights' size and width
        cfg, meta = load_checkpoint(shipped_checkpoint(name))[1:]
        row = per_device["cpu"]
        assert row["image_size"] == list(cfg.image_size) and row["base_channels"] == cfg.base_channels
        assert row["training_run"] == meta["training_run"] and row["dtype"] == meta["dtype"]
        assert all(np.isfinite(row[k]) and row[k] > 0 for k in ("network_ms", "predict_ms", "predict_flips_ms"))
    # timings are only checked for being measured (no speed assertions: the bench is the measure)
    for preset in lat:
        row = lat[preset]["cpu"]
        assert row["image_size"] == list(get_config(preset, quick=False).image_size)
        assert row["input_shape"] == [540, 800] and row["repeats"] == 1
        assert all(np.isfinite(row[k]) and row[k] > 0 for k in ("network_ms", "predict_ms", "predict_flips_ms"))


def test_precision_comparison_measures_both_precisions_of_one_preset(tmp_path, capsys):
    out = tmp_path / "precision.json"
    assert main(["bench", "--precision", "small", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    fp32, bf16 = res["throughput"]
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    size = list(get_config("small", quick=True).image_size)
    assert fp32["size"] == bf16["size"] == size and fp32["base_channels"] == 8
    assert res["bf16_over_fp32"] == pytest.approx(bf16["images_per_s"] / fp32["images_per_s"])
    assert res["auto_resolves_to"] in ("bf16", "fp32") and res["preset"] == "small"
    assert res["date"].endswith("UTC") and res["device"] in res["machine"]
    assert "bf16 / fp32" in capsys.readouterr().out


def test_precision_and_latency_only_do_not_mix(tmp_path, capsys):
    argv = ["bench", "--precision", "small", "--latency-only", "--out", str(tmp_path / "x.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "not allowed with" in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()
