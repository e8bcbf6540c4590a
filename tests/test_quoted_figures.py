"""Figures quoted in the prose of README.md and benchmarks/README.md (outside the tables that
`fetalhead cards` generates) equal the stored results they name: each quote is rebuilt here
from its file, so a rerun that changes a result fails this test until the prose follows."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fetalhead.paths import PACKAGE_DIR, repo_root

ROOT = repo_root()


def _read(path: str) -> dict[str, Any]:
    return json.loads((ROOT / path).read_text())


def _mean(path: str, metric: str) -> float:
    return _read(path)["metrics"][metric]["mean"]


def _mib(model: str) -> str:
    return f"{(PACKAGE_DIR / 'weights' / f'fetalhead_{model}.pt').stat().st_size / 2**20:.1f} MiB"


def _prose(path: str) -> str:
    """The document with whitespace runs made single spaces (prose is wrapped anywhere)."""
    return re.sub(r"\s+", " ", (ROOT / path).read_text())


def _throughput(path: str) -> str:
    d = _read(path)
    speed = {r["precision"]: r["images_per_s"] for r in d["throughput"]}
    return f"{speed['fp32']:.1f} images/s in fp32 and {speed['bf16']:.1f} images/s in bf16"


def _readme_quotes() -> list[str]:
    shipped, before = "results/small_test.json", "results/small_cpu_bf16_ema_test.json"
    refit = (f"ellipse Dice {100 * _mean(shipped, 'ellipse_dice'):.2f} vs {100 * _mean(before, 'ellipse_dice'):.2f} %, "
             f"HC {_mean(shipped, 'hc_abs_error_mm'):.2f} vs {_mean(before, 'hc_abs_error_mm'):.2f} mm, "
             f"mean difference {_mean(shipped, 'hc_error_mm'):.2f} vs {_mean(before, 'hc_error_mm'):.2f} mm")
    seed = (f"HC {_mean('results/small_cpu_bf16_ema_s1_val.json', 'hc_abs_error_mm'):.2f} mm: "
            f"`results/small_cpu_bf16_ema_s1_val.json`; "
            f"{_mean('results/small_cpu_bf16_pw_s1_val.json', 'hc_abs_error_mm'):.2f} mm without averaging")
    ratios = [f"{_read(f'benchmarks/{name}.json')['bf16_over_fp32']:.2f}x on" for name in ("precision_cpu", "precision_cpu_amd")]
    return [refit, seed, f"192x288 px, {_mib('small')}", f"320x480 px, {_mib('default')} in int8", *ratios]


def _benchmarks_quotes() -> list[str]:
    seeds = _read("results/review/signals_small.json")["second_model"]["hc_error_correlation"]
    nets = _read("results/review/signals_small_vs_cpu.json")["second_model"]["hc_error_correlation"]
    fits = _read("results/review/fit_variants_small.json")["variants"]
    others = [v for k, v in fits.items() if k != "library"]
    fit = (f"HC mean absolute difference {fits['library']['hc_abs_error_mm']:.3f} mm; the others "
           f"{min(v['hc_abs_error_mm'] for v in others):.3f} to {max(v['hc_abs_error_mm'] for v in others):.3f}, "
           f"and {min(v['n_gross'] for v in others)} to {max(v['n_gross'] for v in others)} gross errors against "
           f"{fits['library']['n_gross']}")
    q8, fp16 = "results/default_val.json", "results/quantization/default_fp16_val.json"
    int8 = (f"moved by {_mean(q8, 'hc_abs_error_mm') - _mean(fp16, 'hc_abs_error_mm'):+.3f} mm of HC and "
            f"{100 * (_mean(q8, 'ellipse_dice') - _mean(fp16, 'ellipse_dice')):+.3f} points of ellipse Dice")
    return [f"HC errors correlate {seeds:.2f} across seeds, {nets:.2f} across the two networks", fit, int8,
            _throughput("benchmarks/precision_cpu.json") + " mixed precision, "
            f"{_read('benchmarks/precision_cpu.json')['bf16_over_fp32']:.2f}x",
            _throughput("benchmarks/precision_cpu_amd.json") + ", "
            f"{_read('benchmarks/precision_cpu_amd.json')['bf16_over_fp32']:.2f}x"]


@pytest.mark.parametrize(("doc", "quotes"), [("README.md", _readme_quotes), ("benchmarks/README.md", _benchmarks_quotes)])
def test_quoted_figures_equal_the_stored_results(doc, quotes):
    prose = _prose(doc)
    missing = [q for q in quotes() if q not in prose]
    assert not missing, f"{doc} does not quote the stored figures: {missing}"
