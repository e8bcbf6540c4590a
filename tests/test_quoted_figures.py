"""Figures quoted in the prose of README.md and benchmarks/README.md (outside the tables that
`fetalhead cards` generates) equal the stored results they name: each quote is rebuilt here
from its file, so a rerun that changes a result fails this test until the prose follows."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest

from fetalhead.checkpoint import load_checkpoint
from fetalhead.paths import PACKAGE_DIR, repo_root

ROOT = repo_root()


def _read(path: str) -> dict[str, Any]:
    return json.loads((ROOT / path).read_text())


def _mean(path: str, metric: str) -> float:
    return _read(path)["metrics"][metric]["mean"]


def _hc(record: str) -> float:
    """HC mean absolute difference (mm) of a stored evaluation record `results/<record>.json`."""
    return _mean(f"results/{record}.json", "hc_abs_error_mm")


def _mib(model: str) -> str:
    return f"{(PACKAGE_DIR / 'weights' / f'fetalhead_{model}.pt').stat().st_size / 2**20:.1f} MiB"


def _size(model: str) -> str:
    """A shipped model's input size as the README gives it: "HxW px"."""
    cfg = load_checkpoint(PACKAGE_DIR / "weights" / f"fetalhead_{model}.pt")[1]
    return f"{cfg.image_size[0]}x{cfg.image_size[1]} px"


def _prose(path: str) -> str:
    """The document with whitespace runs made single spaces (prose is wrapped anywhere)."""
    return re.sub(r"\s+", " ", (ROOT / path).read_text())


def _speeds(path: str) -> dict[str, float]:
    """Training images/s by precision in a `fetalhead bench --precision` file."""
    return {r["precision"]: r["images_per_s"] for r in _read(path)["throughput"]}


def _throughput(path: str) -> str:
    speed = _speeds(path)
    return f"{speed['fp32']:.1f} images/s in fp32 and {speed['bf16']:.1f} images/s in bf16"


def _interval_quotes() -> list[str]:
    """The HC interval's constants, out-of-fold coverage and test coverage (benchmarks/hc_interval.py)."""
    from fetalhead.interval import half_width_mm

    r = _read("results/review/hc_interval_small.json")
    chosen, flat = r["offsets_mm"][str(r["offset_mm"])], r["offsets_mm"]["inf"]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    c = {m: r["checks"][f"{m}_test"] for m in ("small", "default")}
    held = [f"{c[m]['n_inside']} of {c[m]['n']} images with `{m}` ({pct(c[m]['coverage'])} %"
            f" [{pct(c[m]['coverage_ci'][0])}, {pct(c[m]['coverage_ci'][1])}]" for m in c]
    flagged = " and ".join(f"{c[m]['by_status']['review']['n_inside']} of {c[m]['by_status']['review']['n']}" for m in c)
    return [f"HC +- {r['factor']:.3f} x (pixel size + {r['offset_mm']:g} mm) mm",
            f"+-{half_width_mm(0.1):.1f} mm at 0.1 mm per pixel, +-{half_width_mm(0.25):.1f} mm at 0.25",
            f"the {r['n_rows']} out-of-fold predictions",
            f"it holds {pct(min(chosen['coverage_by_third']))} to {pct(max(chosen['coverage_by_third']))} % of the",
            f"(median +-{flat['median_half_width_mm']:.2f} mm) holds {pct(flat['coverage_by_third'][0])} % of the "
            f"finest third and {pct(flat['coverage_by_third'][2])} % of the coarsest",
            *held, f"flagged for review, {flagged}:"]


def _gpu_runs_quote() -> str:
    """Validation HC of the H200 runs of 300 s: the default preset against the small recipe."""
    val = lambda run: _hc(f"{run}_val")  # noqa: E731
    recipe = [val(f"small{x}_h200_300s") for x in ("", "_s1", "_w16", "_w32")]
    return (f"HC {val('default_w32pw_h200_300s'):.2f} mm at width 32, {val('default_w16pw_h200_300s'):.2f} mm at width 16) "
            f"than the `small` recipe at 192x288 ({min(recipe):.2f} to {max(recipe):.2f} mm at widths 8 to 32)")


def _history(run: str) -> pd.DataFrame:
    """A recorded training run's history: one row per epoch (`seconds`: wall clock so far)."""
    return pd.read_csv(ROOT / "results" / "training" / f"{run}.csv")


def _epochs(run: str) -> int:
    return len(_history(run))


def _seconds(run: str) -> int:
    return round(float(_history(run)["seconds"].iloc[-1]))


def _epochs_quotes() -> list[str]:
    """Runs side by side on one GPU train fewer epochs each, and validation HC follows epochs."""
    alone, shared = "default_h200_330s", "default_w32pw_h200_300s"
    call2 = sum(_epochs(f"small{x}_h200_300s") for x in ("_160", "_w16", "_w32", "_s1"))
    return [f"made {_epochs(alone)} epochs in {_seconds(alone)} s alone, `{alone}`, and {_epochs(shared)} epochs in "
            f"{_seconds(shared)} s beside three others",
            f"seed 0, {_epochs('small_cpu_bf16_ema_5100s')} epochs on the CPU (`small_cpu_bf16_ema_5100s`) against "
            f"{_epochs('small_h200_300s')} on the GPU (`small_h200_300s`): HC {_hc('small_val'):.2f} against "
            f"{_hc('small_h200_300s_val'):.2f} mm",
            f"seed 1, {_epochs('small_cpu_bf16_ema_s1_5100s')} epochs against {_epochs('small_s1_h200_300s')} "
            f"(`small_cpu_bf16_ema_s1_5100s`, `small_s1_h200_300s`): HC {_hc('small_cpu_bf16_ema_s1_val'):.2f} against "
            f"{_hc('small_s1_h200_300s_val'):.2f} mm",
            f"the four runs of the second call made {call2} epochs together in 300 s",
            _avx2_quote("made {avx2} epochs in its 85 minutes (`{name}`): HC {hc_avx2:.2f} mm, worse than "
                        "{gpu} epochs' {hc_gpu:.2f}")]


def _coarse_quote() -> str:
    """The coarse-to-fine run: its epochs at each size (those begun in the first half of its
    budget were coarse), its validation HC and ellipse Dice, against the GPU's seed-0 run."""
    name = "small_cpu_bf16_coarse_5100s"
    started = _history(name)["seconds"].shift(1, fill_value=0.0)
    coarse = int((started < 0.5 * 5100).sum())
    full_epoch = _history(name)["seconds"].diff().iloc[coarse + 1:].median()  # s, validation included
    plain_epoch = _seconds("small_cpu_bf16_ema_5100s") / _epochs("small_cpu_bf16_ema_5100s")
    return (f"{coarse} epochs at 96x144 and {_epochs(name) - coarse} at 192x288 on a machine slower than the first "
            f"bf16 run's ({full_epoch:.0f} s a full-size epoch against {plain_epoch:.1f}; `precision_cpu_amd_2026-12-03.json`), validation HC "
            f"{_hc(f'{name}_val'):.2f} mm (`results/{name}_val.json`; ellipse Dice "
            f"{100 * _mean(f'results/{name}_val.json', 'ellipse_dice'):.2f} %, 3 images off by more than 6 mm), about "
            f"what {_epochs('small_h200_300s')} full-size epochs gave on the GPU ({_hc('small_h200_300s_val'):.2f} mm)")


def _avx2_quote(template: str) -> str:
    """The small preset's seed-0 run on a CPU without bf16 hardware, set against the other two."""
    name = "small_cpu_avx2_5100s"
    return template.format(name=name, avx2=_epochs(name), hc_avx2=_hc(f"{name}_val"), gpu=_epochs("small_h200_300s"),
                           hc_gpu=_hc("small_h200_300s_val"), cpu=_epochs("small_cpu_bf16_ema_5100s"), hc_cpu=_hc("small_val"))


def _second_opinion_quote() -> str:
    """The two shipped models as each other's second opinion on the test part, at the shipped thresholds."""
    small, default = (_read(f"results/review/second_opinion_{m}_test.json") for m in ("small", "default"))
    verdict = ("it adds nothing" if all(r["flag alone"] == r["flag or second opinion"] for r in (small, default))
               else "it adds")
    threshold = _read("results/review/calibration_small.json")["review_below"]
    return (f"at the shipped thresholds ({threshold:g}, below) {verdict}, as the flag alone already catches "
            f"{small['flag alone']['gross_caught']} of {small['flag alone']['n_gross']} (`small`) and "
            f"{default['flag alone']['gross_caught']} of {default['flag alone']['n_gross']} (`default`)")


def _calibration_quotes() -> list[str]:
    """Each shipped model's threshold from the challenge images, and what it flags held out."""
    cal = {m: _read(f"results/review/calibration_{m}.json") for m in ("small", "default")}
    flags = {(m, p): _read(f"results/{m}_{p}.json")["review_flag"] for m in ("small", "default") for p in ("val", "test")}
    small, default = cal["small"], cal["default"]
    assert small["review_below"] == default["review_below"], "the prose gives one threshold for both"
    dval, st, dt = flags[("default", "val")], flags[("small", "test")], flags[("default", "test")]
    same_test = f"{100 * st['fraction_set_aside']:.1f} % ({st['n_review']} of {st['n_images']})"
    assert dt["fraction_set_aside"] == st["fraction_set_aside"], "the prose says both flag the same share"

    def kept(f: dict[str, Any]) -> str:
        lo, hi = f["hc_abs_error_mm_kept_ci"]
        return f"{f['hc_abs_error_mm_kept']:.2f} mm [{lo:.2f}, {hi:.2f}]"

    assert dval["gross_caught"] == dval["n_gross"] == 2, "the prose says both gross errors were flagged"
    return [f"{small['review_below']:g} for both, flagging {100 * small['fraction_flagged']:.1f} % of the challenge images "
            f"(0.28 flagged {100 * small['fraction_flagged_as_predicted']:.1f} % and "
            f"{100 * default['fraction_flagged_as_predicted']:.1f} %)",
            f"flags {100 * dval['fraction_set_aside']:.1f} % of it ({dval['n_review']} of {dval['n_images']}, both gross "
            f"errors among them)",
            f"on the test part both models flag {same_test}",
            f"catching {st['gross_caught']} of {st['n_gross']} gross errors (`small`) and {dt['gross_caught']} of "
            f"{dt['n_gross']} (`default`)",
            f"the unflagged HC mean absolute difference falls to {kept(st)} and {kept(dt)}",
            f"({st['hc_abs_error_mm_all']:.2f} and {dt['hc_abs_error_mm_all']:.2f} mm for all)",
            f"({flags[('small', 'test')]['n_gross']} and {dt['n_gross']} gross errors against "
            f"{flags[('small', 'val')]['n_gross']} and {dval['n_gross']})"]


def _annotation_quotes() -> list[str]:
    """The offset of HC from the filled annotations against the CSV, and what the correction leaves."""
    r = _read("results/annotation/offset.json")
    every, left = r["all"], {part: r["parts"][part]["mae_left_mm"] for part in ("train", "val", "test")}
    return [f"an HC {every['mean_mm']:.2f} mm larger than the CSV on average (all {every['n_images']} images; at most "
            f"{every['max_abs_mm']:.1f} mm; {every['n_mask_smaller']} of them smaller). That offset is a fixed "
            f"{r['estimated_on_train']['per_pixel_px']:.1f} px of perimeter",
            f"on the validation part the ground-truth masks then match the CSV to {left['val']['per_pixel']:.3f} mm "
            f"(train {left['train']['per_pixel']:.3f} mm, test {left['test']['per_pixel']:.3f} mm; a constant in mm "
            f"would leave {left['val']['additive']:.2f} mm on the validation part)",
            f"all {every['n_images']} annotations (HC from mask vs CSV: {every['mean_mm']:.2f} mm mean)"]


def _latency_quote() -> str:
    """How much less time the presets' `predict` took on the Intel Xeon than in the current file."""
    now, xeon = (_read(f"benchmarks/{f}.json")["latency"] for f in ("latency_cpu", "latency_cpu_xeon"))
    ratios = [now[p]["cpu"]["predict_ms"] / xeon[p]["cpu"]["predict_ms"] for p in now]
    return f"the presets' `predict` took {min(ratios):.1f}x to {max(ratios):.1f}x less time"


def _part_mix_quote() -> str:
    """What each part's mix of pixel sizes predicts, against the default model's two figures."""
    mix = _read("results/review/part_mix_small.json")
    return (f"predicts {mix['val']['expected_mae_mm']:.2f} mm for the validation part and "
            f"{mix['test']['expected_mae_mm']:.2f} mm for the test part (`results/review/part_mix_small.json`, "
            f"`benchmarks/part_mix.py`), far less than the gap between `default`'s own two "
            f"({_hc('default_val'):.2f} and {_hc('default_test'):.2f} mm)")


def _part_mix_figures() -> tuple[str, str]:
    """benchmarks/README.md's sentence on the four parts' predicted errors."""
    mix = _read("results/review/part_mix_small.json")
    m = mix["out_of_fold"]["mae_per_band_mm"]
    return (f"({m[0]:.2f} mm out of fold up to 0.1 mm per pixel, {m[-1]:.2f} mm above 0.25)",
            f"the mixes predict {mix['train']['expected_mae_mm']:.2f} mm for the train part (its own mean, as it "
            f"must), {mix['val']['expected_mae_mm']:.2f} for the validation part, {mix['test']['expected_mae_mm']:.2f} "
            f"for the test part and {mix['challenge']['expected_mae_mm']:.2f} for the challenge images: "
            f"{mix['test']['expected_mae_mm'] - mix['val']['expected_mae_mm']:.2f} mm between validation and test")


def _frame_quote(record: str) -> str:
    """HC on HC18's frames and on black canvases of other shapes, padded and resized as they are
    (benchmarks/frame_shapes.py, results/robustness/frame_shapes_<record>.json)."""
    c = _read(f"results/robustness/frame_shapes_{record}.json")["canvases"]
    hc = lambda name, way: c[name][way]["hc_abs_error_mm"]["mean"]  # noqa: E731
    gross = lambda way: sum(c[n][way]["n_gross"] for n in ("4:3", "square", "16:9"))  # noqa: E731
    pairs = [f"{hc(n, 'padded'):.2f} against {hc(n, 'resized as it is'):.2f} mm on {label}"
             for n, label in (("4:3", "4:3 canvases"), ("square", "square ones"), ("16:9", "16:9 ones"))]
    return (f"HC mean absolute difference {hc('hc18', 'padded'):.2f} mm on HC18's own frames; padded against "
            f"resized as they are, {pairs[0]}, {pairs[1]} and {pairs[2]} ({gross('padded')} against "
            f"{gross('resized as it is')} gross errors on the three)")


def _frame_resolution_quote() -> str:
    """Held-out test images resized to twice and half their size (benchmarks/frame_resolution.py)."""
    parts = []
    for m in ("small", "default"):
        f = _read(f"results/robustness/frame_resolution_{m}_test.json")["factors"]

        def moved(k: str, key: str, f: dict = f) -> float:
            return f[k][key]["mean"]

        parts.append(f"`{m}`'s HC moved {moved('2', 'hc_change_mm'):+.2f} mm on average at twice the resolution "
                     f"and {moved('0.5', 'hc_change_mm'):+.2f} mm at half (with a fixed correction of 0.93 frame "
                     f"pixels {moved('2', 'hc_change_fixed_mm'):+.2f} and {moved('0.5', 'hc_change_fixed_mm'):+.2f} mm)")
    return "; ".join(parts)


def _best_frame_quote() -> str:
    """The frame `predict --frame best` keeps against a frame at random (benchmarks/best_frame.py)."""
    record = _read("results/review/best_frame.json")

    def part(name: str, label: str) -> str:
        s = record[name]
        lo, hi = s["chosen_minus_random_ci"]
        return (f"{label} {s['hc_abs_error_mm_chosen']:.2f} against {s['hc_abs_error_mm_random']:.2f} mm "
                f"({s['chosen_minus_random_mm']:+.2f} [{lo:+.2f}, {hi:+.2f}])")

    return "; ".join([part("default_val", "`default` on the validation part"), part("small_test", "`small` on the test part"),
                      part("default_test", "`default` on the test part")])


def _video_codecs_quote() -> str:
    """Held-out test images through lossy video codecs (benchmarks/video_codecs.py)."""
    parts = []
    for m in ("small", "default"):
        r = _read(f"results/robustness/video_codecs_{m}_test.json")["codecs"]
        parts.append(f"`{m}` HC mean absolute difference {r['png']['hc_abs_error_mm']['mean']:.2f} mm as stored, "
                     f"{r['mp4v']['hc_abs_error_mm']['mean']:.2f} through MPEG-4 (mp4v) and "
                     f"{r['mjpeg']['hc_abs_error_mm']['mean']:.2f} through MJPEG; each HC moved "
                     f"{r['mp4v']['hc_change_mm_mean']:.2f} and {r['mjpeg']['hc_change_mm_mean']:.2f} mm on average, "
                     f"at most {r['mp4v']['hc_change_mm_max']:.2f} and {r['mjpeg']['hc_change_mm_max']:.2f}")
    return "; ".join(parts)


def _clip_reading_quote() -> str:
    """A long clip, cine loop and TIFF stack read frame after frame (benchmarks/clip_reading.py)."""
    r = _read("benchmarks/clip_reading_cpu.json")
    v, d, t = r["video"], r["dicom"], r["tiff"]
    return (f"each of {r['frames']} frames of {r['shape_px'][1]}x{r['shape_px'][0]} px read in turn in "
            f"{v['kept']['seconds']:.2f} s against {v['afresh']['seconds']:.2f} s with a seek per frame (MPEG-4, a key "
            f"frame every {v['file']['gop']} frames), in {d['kept']['seconds']:.2f} s against "
            f"{d['afresh']['seconds']:.2f} s parsing the whole loop for each frame (uncompressed DICOM, "
            f"{d['file']['mib']:.1f} MiB), and in {t['kept']['seconds']:.2f} s against {t['afresh']['seconds']:.2f} s "
            f"opening the stack for each page (uncompressed TIFF)")


def _predict_outputs_quote() -> str:
    """What predict spends writing its PNGs, and per image (benchmarks/predict_outputs.py)."""
    from fetalhead.checkpoint import load_checkpoint
    from fetalhead.paths import shipped_checkpoint
    from fetalhead.report import PNG_LEVEL

    r = _read("benchmarks/predict_outputs_cpu.json")
    assert r["level_used"] == PNG_LEVEL, "fetalhead.report.PNG_LEVEL changed: measure predict_outputs.py again"
    assert r["model"] == load_checkpoint(shipped_checkpoint("small"))[2]["training_run"], (
        "benchmarks/predict_outputs_cpu.json measured other weights than the shipped small: measure it again")
    slow, fast = r["levels"]["6"], r["levels"][str(r["level_used"])]
    return (f"{1000 * slow['seconds_per_image']:.1f} ms per image at Pillow's default zlib level 6 against "
            f"{1000 * fast['seconds_per_image']:.1f} ms at level {r['level_used']} ({r['write_speedup']:.1f}x; overlays "
            f"{100 * (r['overlay_size_ratio'] - 1):.0f} % larger, {slow['overlay_kib']:.0f} against "
            f"{fast['overlay_kib']:.0f} KiB), so `predict` takes {1000 * r['per_image_s'][str(r['level_used'])]:.0f} ms "
            f"per {r['shape_px'][1]}x{r['shape_px'][0]} px image instead of {1000 * r['per_image_s']['6']:.0f} with the "
            f"shipped `small` model")


def _readme_quotes() -> list[str]:
    shipped, before = "results/small_test.json", "results/small_cpu_bf16_ema_test.json"
    refit = (f"ellipse Dice {100 * _mean(shipped, 'ellipse_dice'):.2f} vs {100 * _mean(before, 'ellipse_dice'):.2f} %, "
             f"HC {_mean(shipped, 'hc_abs_error_mm'):.2f} vs {_mean(before, 'hc_abs_error_mm'):.2f} mm, "
             f"mean difference {_mean(shipped, 'hc_error_mm'):.2f} vs {_mean(before, 'hc_error_mm'):.2f} mm")
    seed = (f"HC {_mean('results/small_cpu_bf16_ema_s1_val.json', 'hc_abs_error_mm'):.2f} mm: "
            f"`results/small_cpu_bf16_ema_s1_val.json`; "
            f"{_mean('results/small_cpu_bf16_pw_s1_val.json', 'hc_abs_error_mm'):.2f} mm without averaging")
    ratios = [f"{_read(f'benchmarks/{name}.json')['bf16_over_fp32']:.2f}x on" for name in
              ("precision_cpu", "precision_cpu_amd", "precision_cpu_avx2")]
    fp32, bf16 = _speeds("benchmarks/precision_cpu_avx2.json")["fp32"], _speeds("benchmarks/precision_cpu_amd.json")["bf16"]
    ratios.append(f"in fp32 there: {fp32:.1f} images/s, {fp32 / bf16:.2f}x the {bf16:.1f} images/s in bf16")
    ratios.append(_avx2_quote("run `{name}` made {avx2} epochs against {cpu} there, validation HC {hc_avx2:.2f} "
                              "against {hc_cpu:.2f} mm"))
    frames = [_frame_quote(r) for r in ("default_val", "small_test", "default_test")]
    return [refit, seed, _part_mix_quote(), _best_frame_quote(), _frame_resolution_quote(), _video_codecs_quote(), _clip_reading_quote(), _predict_outputs_quote(), *_interval_quotes(), *frames, *_annotation_quotes(), _latency_quote(), _gpu_runs_quote(), f"{_size('small')}, {_mib('small')}", f"{_size('default')}, {_mib('default')} in int8",
            *ratios, _blank_quote()]


def _blank_quote() -> str:
    from fetalhead.predict import BLANK_RANGE

    return f"gray levels spanning fewer than {BLANK_RANGE},"


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
    return [*_epochs_quotes(), _second_opinion_quote(), *_calibration_quotes(), f"HC errors correlate {seeds:.2f} across seeds, {nets:.2f} across the two networks", fit, int8, _gpu_runs_quote(),
            _throughput("benchmarks/precision_cpu.json") + " mixed precision, "
            f"{_read('benchmarks/precision_cpu.json')['bf16_over_fp32']:.2f}x",
            _throughput("benchmarks/precision_cpu_amd.json") + ", "
            f"{_read('benchmarks/precision_cpu_amd.json')['bf16_over_fp32']:.2f}x",
            _throughput("benchmarks/precision_cpu_avx2.json") + " (emulated), "
            f"{_read('benchmarks/precision_cpu_avx2.json')['bf16_over_fp32']:.2f}x",
            _throughput("benchmarks/precision_cpu_amd_2026-12-03.json") + ", "
            f"{_read('benchmarks/precision_cpu_amd_2026-12-03.json')['bf16_over_fp32']:.2f}x", _coarse_quote(),
            *_part_mix_figures()]


@pytest.mark.parametrize(("doc", "quotes"), [("README.md", _readme_quotes), ("benchmarks/README.md", _benchmarks_quotes)])
def test_quoted_figures_equal_the_stored_results(doc, quotes):
    prose = _prose(doc)
    missing = [q for q in quotes() if q not in prose]
    assert not missing, f"{doc} does not quote the stored figures: {missing}"
