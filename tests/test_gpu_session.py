"""The GPU session script, run dry on the CPU: every stage runs, files come back, failures are
logged with their exit codes and do not stop the stages after them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from scripts import load_benchmark

from fetalhead.checkpoint import load_checkpoint

MAX_FILES, MAX_MIB = 8, 16  # what the GPU machine gives back
BUDGET_S = 600  # a run's seconds where only a skip keeps the test short


def _module():
    return load_benchmark("gpu_session")


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
    assert files == ["bench.json", "fetalhead_default.pt", "fetalhead_small.pt", "histories.csv",
                     "session.log", "stages.json"]
    assert len(files) <= MAX_FILES and all((out / f).stat().st_size < MAX_MIB * 2**20 for f in files)
    histories = pd.read_csv(out / "histories.csv")
    for preset in ("default", "small"):
        model, cfg, meta = load_checkpoint(out / f"fetalhead_{preset}.pt")
        hist = histories[histories["run"] == preset]
        assert cfg.name == preset and meta["weights_only"] and meta["dtype"] == "float16"
        assert len(hist) >= 1 and meta["metrics"]["val_dice"] == pytest.approx(hist["val_dice"].max())
        assert cfg.time_budget_s == 3.0
    bench = json.loads((out / "bench.json").read_text())
    assert bench["throughput"] and bench["latency"]["cpu"]["predict_ms"] > 0


def test_candidate_runs_with_their_own_settings(carry, tmp_path):
    mod = _module()
    out = tmp_path / "out"
    rc = mod.main(["--cache", str(carry), "--out", str(out), "--dry-run", "--python", sys.executable,
                   "--run", "w4=cpu:60:base_channels=4,seed=3,ema_decay=0.99", "--run", "plain=cpu:60",
                   "--stages", "env,smoke,train"])
    stages = json.loads((out / "stages.json").read_text())
    assert rc == 0 and [s["stage"] for s in stages] == ["env", "smoke", "train"], (out / "session.log").read_text()[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["fetalhead_plain.pt", "fetalhead_w4.pt", "histories.csv",
                                                      "session.log", "stages.json"]
    _, w4, _ = load_checkpoint(out / "fetalhead_w4.pt")
    _, plain, _ = load_checkpoint(out / "fetalhead_plain.pt")
    assert (w4.base_channels, w4.seed, w4.ema_decay) == (4, 3, 0.99) and (plain.base_channels, plain.seed) == (8, 0)
    smoke = [line for line in (out / "session.log").read_text().splitlines()
             if "$ " in line and " train --preset " in line and "smoke --time-budget" in line]
    assert len(smoke) == 1 and " --preset cpu " in smoke[0] and "--set ema_decay=0.99" in smoke[0]  # the first run's
    assert set(pd.read_csv(out / "histories.csv")["run"]) == {"w4", "plain"}
    assert mod.MAX_RUNS * 1 + 4 <= MAX_FILES  # every run's weights and the four shared files come back


@pytest.mark.parametrize(("text", "words"), [
    ("w16", "NAME=PRESET:SECONDS"), ("a b=default:60", "NAME=PRESET:SECONDS"),
    ("w16=default", "NAME=PRESET:SECONDS"), ("w16=default:soon", "not a number"),
    ("w16=default:0", "positive")])
def test_a_bad_run_is_a_one_line_error(text, words, carry, tmp_path, capsys):
    assert _module().main(["--cache", str(carry), "--out", str(tmp_path / "o"), "--run", text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and not (tmp_path / "o").exists()


def test_too_many_runs_or_an_unknown_stage_are_refused(carry, tmp_path, capsys):
    mod = _module()
    many = [x for i in range(mod.MAX_RUNS + 1) for x in ("--run", f"r{i}=small:60")]
    assert mod.main(["--cache", str(carry), "--out", str(tmp_path / "o"), *many]) == 2
    assert mod.main(["--cache", str(carry), "--out", str(tmp_path / "o"), "--run", "a=small:9",
                     "--run", "a=default:9"]) == 2
    assert mod.main(["--cache", str(carry), "--out", str(tmp_path / "o"), "--stages", "env,fly"]) == 2
    assert capsys.readouterr().err.count("\n") == 3 and not (tmp_path / "o").exists()


def test_a_failing_stage_is_logged_and_the_next_still_runs(carry, tmp_path):
    out = tmp_path / "out"
    rc = _module().main(["--cache", str(carry), "--out", str(out), "--dry-run", "--python", sys.executable,
                         "--run", "default=default:60", "--run", "bad=no-such-preset:60",
                         "--stages", "train,bench"])
    stages = {s["stage"]: s["exit_code"] for s in json.loads((out / "stages.json").read_text())}
    assert rc == 2 and stages == {"train": 2, "bench": 0}
    assert (out / "fetalhead_default.pt").is_file() and (out / "bench.json").is_file()
    assert "train-bad (exit 2)" in (out / "session.log").read_text()


def test_a_failed_smoke_stage_skips_training(carry, tmp_path):
    out = tmp_path / "out"
    rc = _module().main(["--cache", str(carry), "--out", str(out), "--dry-run", "--python", sys.executable,
                         "--run", "bad=no-such-preset:60", "--run", "good=cpu:60", "--stages", "smoke,train"])
    stages = {s["stage"]: s["exit_code"] for s in json.loads((out / "stages.json").read_text())}
    assert rc == 2 and stages == {"smoke": 2, "train": 2}
    assert "train: skipped, the smoke stage failed (exit 2)" in (out / "session.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["session.log", "stages.json"]


def test_budgets_are_cut_to_end_within_the_deadline():
    mod = _module()
    runs = [mod.Run("a", "small", 450.0), mod.Run("b", "small", 100.0, ("base_channels=32",))]
    assert mod.fit_to_deadline(runs, 1000.0) == runs  # room enough: unchanged
    cut = mod.fit_to_deadline(runs, 400.0)
    most = 400.0 - mod.START_S - 2 * mod.EXPORT_S
    assert [r.seconds for r in cut] == [most, 100.0] and cut[1].settings == ("base_channels=32",)
    with pytest.raises(ValueError, match="no time to train"):
        mod.fit_to_deadline(runs, mod.START_S + 2 * mod.EXPORT_S)
    # the GPU command as planned: env and smoke take about 35 s, then both 450 s runs fit
    assert [r.seconds for r in mod.fit_to_deadline(runs, mod.DEADLINE_S - 35)] == [450.0, 100.0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the run would train")
@pytest.mark.parametrize("stages", ["env,smoke,train,bench", "train"])
def test_without_a_gpu_the_gpu_stages_are_skipped_at_once(stages, carry, tmp_path):
    """Outside a dry run, a Python without CUDA: env fails (exit 3) and smoke, train and bench
    are skipped, not run on the CPU for their whole budget."""
    out = tmp_path / "out"
    rc = _module().main(["--cache", str(carry), "--out", str(out), "--python", sys.executable,
                         "--run", f"long=small:{BUDGET_S}", "--stages", stages])
    recorded = {s["stage"]: s["exit_code"] for s in json.loads((out / "stages.json").read_text())}
    assert rc == 3 and recorded == dict.fromkeys(stages.split(","), 3)
    assert sorted(p.name for p in out.iterdir()) == ["session.log", "stages.json"]
    assert "train: skipped" in (out / "session.log").read_text()


def test_a_missing_carry_file_is_a_one_line_error(tmp_path, capsys):
    assert _module().main(["--cache", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(("extra", "words"), [
    (["--budget-default", "-5"], "--budget-default -5: must be a positive"),
    (["--budget-small", "nan"], "--budget-small nan: must be a positive"),
    (["--out", "{file}"], "exists and is not a folder"),
    (["--out", "{file}/sub"], "cannot create --out")])
def test_bad_budgets_and_outputs_are_one_line_errors(extra, words, tmp_path, capsys):
    carry = tmp_path / "carry.npz"
    carry.write_bytes(b"")  # only its presence is checked before these
    (tmp_path / "file").write_text("mine")
    argv = ["--cache", str(carry), "--out", str(tmp_path / "o"), *(x.format(file=tmp_path / "file") for x in extra)]
    assert _module().main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o").exists() and (tmp_path / "file").read_text() == "mine"


def _travelling_bytes(root: Path) -> int:
    """Bytes of the working tree that go to the GPU machine: tracked files and untracked ones
    that git does not ignore (skips outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = {root / name for name in out.decode().split("\0") if name}
    return sum(f.stat().st_size for f in files if f.is_file())


def test_the_working_tree_and_the_carry_file_fit_what_travels(hc18_dir, cache_tmp, tmp_path):
    """The carry file the README and benchmarks/README name (320x480, train + val) is built
    from the real data, its size is the one they quote, and with the working tree it fits
    what a GPU machine takes: a new figure or weights file must not push it over."""
    import re

    from fetalhead.cache import build_compact_cache

    mod = _module()
    carry = build_compact_cache(tmp_path / "carry.npz", size=(320, 480), parts=("train", "val"),
                                root=hc18_dir, cache=False, progress=False)
    carry_mib = carry.stat().st_size / 2**20
    quoted = re.search(r"\(([\d.]+) MiB at 320x480, train \+ val", (mod.ROOT / "README.md").read_text())
    assert quoted and abs(float(quoted.group(1)) - carry_mib) < 0.05, (quoted, carry_mib)
    tree_mib = _travelling_bytes(mod.ROOT) / 2**20
    assert tree_mib + carry_mib <= mod.TRAVEL_MIB, (
        f"working tree {tree_mib:.1f} MiB + carry file {carry_mib:.1f} MiB > {mod.TRAVEL_MIB} MiB")
