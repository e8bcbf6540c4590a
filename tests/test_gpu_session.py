"""The GPU session script, run dry on the CPU: every stage runs, files come back, failures are
logged with their exit codes and do not stop the stages after them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from fetalhead.train import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.py"
MAX_FILES, MAX_MIB = 8, 16  # what the GPU machine gives back


def _module():
    spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def carry(make_synthetic_hc18, cache_tmp, tmp_path) -> Path:
    from fetalhead.cache import build_compact_cache

    root = make_synthetic_hc18(size=(135, 200), per_part=3)
    return build_compact_cache(tmp_path / "carry.npz", size=(128, 192), parts=("train", "val"),
                               root=root, progress=False)


def test_dry_run_produces_every_result_file(carry, tmp_path):
    out = tmp_path / "out"
    rc = _module().main(["--cache", str(carry), "--out", str(out), "--dry-run", "--python", sys.executable])
    stages = json.loads((out / "stages.json").read_text())
    assert [s["stage"] for s in stages] == ["env", "smoke", "train", "bench"]
    assert rc == 0 and all(s["exit_code"] == 0 for s in stages), (out / "session.log").read_text()[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.json", "fetalhead_default.pt", "fetalhead_small.pt", "history_default.csv",
                     "history_small.csv", "session.log", "stages.json"]
    assert len(files) <= MAX_FILES and all((out / f).stat().st_size < MAX_MIB * 2**20 for f in files)
    for preset in ("default", "small"):
        model, cfg, meta = load_checkpoint(out / f"fetalhead_{preset}.pt")
        hist = pd.read_csv(out / f"history_{preset}.csv")
        assert cfg.name == preset and meta["weights_only"] and meta["dtype"] == "float16"
        assert meta["metrics"]["val_dice"] == pytest.approx(hist["val_dice"].max())
        assert cfg.time_budget_s in (3.0, 4.0)
    bench = json.loads((out / "bench.json").read_text())
    assert bench["throughput"] and bench["latency"]["cpu"]["predict_ms"] > 0


def test_a_failing_stage_is_logged_and_the_next_still_runs(carry, tmp_path, monkeypatch):
    mod = _module()
    monkeypatch.setattr(mod, "PRESETS", ("default", "no-such-preset"))
    out = tmp_path / "out"
    rc = mod.main(["--cache", str(carry), "--out", str(out), "--dry-run", "--python", sys.executable])
    stages = {s["stage"]: s["exit_code"] for s in json.loads((out / "stages.json").read_text())}
    assert rc == 2 and stages == {"env": 0, "smoke": 0, "train": 2, "bench": 0}
    assert (out / "fetalhead_default.pt").is_file() and (out / "bench.json").is_file()
    assert "train-no-such-preset (exit 2)" in (out / "session.log").read_text()


def test_a_missing_carry_file_is_a_one_line_error(tmp_path, capsys):
    assert _module().main(["--cache", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
