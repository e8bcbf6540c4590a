"""Benchmarks: training throughput, model FLOP utilisation, time to a target Dice, latency.

    fetalhead bench [--cache FILE] [--steps N] [--out FILE.json] [--quick] [--latency-only]
    fetalhead bench --precision small [--device cpu]

`--precision PRESET` instead measures that preset's training throughput in fp32 and in bf16
on one device, and their ratio (on CPUs with bf16 matrix units "auto" trains in bf16).

1. Throughput (images/s) of the reference and default recipes (`fetalhead.config.PRESETS`) on
   the same device at the same image sizes (572x572 and the default preset's 320x480), and
   their ratio. A step is exactly `fit`'s: index a batch from the uint8 arrays on the device,
   convert, augment, forward, loss, backward, optimizer and schedule step. Warm-up steps are not timed; CUDA is
   synchronised before the clock is read.
2. Model FLOP utilisation (MFU, as in Chowdhery et al. 2022, PaLM, appendix B): forward FLOPs
   counted from the conv layers (2 Cin Cout k^2 Hout Wout per conv, Hin Win for transposed
   convs), a training step taken as 3 forwards (the backward pass costs two), divided by the
   GPU's dense bf16 peak, for both recipes (on CUDA the reference's fp32 convolutions run as
   TF32, cuDNN's default, recorded as `tf32_convolutions`: TF32's dense peak is half of
   bf16's). Unknown devices get FLOP/s only.
3. Time to validation Dice 0.97 (training resolution) with the default recipe: `fit` with a
   callback that stops at the target or at a time cap.
4. Inference latency per 800x540 image: the network alone and `Predictor.predict` (resize,
   network, resize back, ellipse, HC), on the CPU with all cores and on the GPU if present
   (`--latency-only` also measures each shipped model with its own weights and input size).

Data come from a compact cache file (`fetalhead prepare-cache`), so the benchmark runs on a
machine that cannot see the HC18 folder; see benchmarks/README.md.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fetalhead.config import TrainConfig, get_config
from fetalhead.device import autocast_settings, device_name, precision_name, resolve_device
from fetalhead.errors import FetalheadError
from fetalhead.losses import BCEDiceLoss
from fetalhead.model import build_model
from fetalhead.optim import build_optimizer, build_scheduler
from fetalhead.train import fit, train_step
from fetalhead.transforms import AugmentParams, augment_batch, to_float

__all__ = [
    "PEAK_BF16_FLOPS",
    "compare_precision",
    "device_name",
    "format_latency",
    "format_precision",
    "format_table",
    "forward_flops",
    "latency_only",
    "measure_latency",
    "measure_throughput",
    "peak_flops",
    "run_benchmark",
    "time_to_dice",
]

#: Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from NVIDIA's data sheets (which also
#: give twice these "with sparsity"); the NVL cards (H100 NVL, H200 NVL) run at a lower power
#: than the SXM ones.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "NVL": 835e12, "A100": 312e12}
# the reference recipe's size and ours (the default preset's, HC18's 540x800 aspect)
SIZES = [(572, 572), get_config("default", quick=False).image_size]
HC18_SHAPE = (540, 800)  # (H, W) of an HC18 image, pixels


def peak_flops(name: str) -> float | None:
    """Dense bf16 peak FLOP/s for a CUDA device name, None when unknown."""
    n = name.upper()
    if "NVL" in n and ("H100" in n or "H200" in n):
        return PEAK_BF16_FLOPS["NVL"]
    if "H200" in n:
        return PEAK_BF16_FLOPS["H200"]
    if "H100" in n:
        # "NVIDIA H100 80GB HBM3" is the SXM card, "NVIDIA H100 PCIe" the PCIe one
        return PEAK_BF16_FLOPS["H100 PCIe"] if "PCIE" in n else PEAK_BF16_FLOPS["H100 SXM"]
    if "A100" in n:
        return PEAK_BF16_FLOPS["A100"]
    return None


def forward_flops(cfg: TrainConfig, size: tuple[int, int]) -> float:
    """FLOPs of one forward pass of `cfg`'s U-Net on one (1, H, W) image: multiply-adds x 2 of
    every Conv2d (2 Cin/groups Cout kh kw Hout Wout) and ConvTranspose2d (2 Cin Cout/groups
    kh kw Hin Win). Runs on the meta device: no memory, no arithmetic."""
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        if isinstance(m, nn.ConvTranspose2d):
            _, cin, h, w = inp[0].shape
            total += 2 * cin * (m.out_channels // m.groups) * kh * kw * h * w
        else:
            _, cout, h, w = out.shape
            total += 2 * (m.in_channels // m.groups) * cout * kh * kw * h * w

    with torch.device("meta"):
        model = build_model(cfg)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.register_forward_hook(hook)
        model(torch.empty(1, 1, *size))
    return float(total)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _resize_u8(x: torch.Tensor, size: tuple[int, int], mask: bool) -> torch.Tensor:
    """uint8 (N,1,h,w) -> uint8 (N,1,H,W): bilinear for images, nearest for masks."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mask:
        return F.interpolate(x.float(), size=size, mode="nearest").to(torch.uint8)
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def measure_throughput(cfg: TrainConfig, images: torch.Tensor, masks: torch.Tensor, steps: int = 20,
                       warmup: int = 5, device: torch.device | None = None) -> dict[str, Any]:
    """Training images/s of recipe `cfg` on uint8 images/masks (N,1,H,W) already on `device`.

    The step mirrors `fetalhead.train.fit` (steps 6-7 there; no budget check, no weight averaging). Returns a dict with the recipe
    settings, images_per_s, step_ms, train FLOPs per image and achieved FLOP/s.
    """
    dev = device or images.device
    size = tuple(images.shape[-2:])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev)
    channels_last = bool(cfg.channels_last and dev.type == "cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    step_model = torch.compile(model) if (cfg.compile and dev.type == "cuda") else model
    loss_fn = BCEDiceLoss(cfg.bce_weight, cfg.dice_weight, cfg.dice_smooth)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, steps + warmup)
    amp_dtype, use_scaler = autocast_settings(cfg.precision, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
    aug = AugmentParams.from_config(cfg)
    gen = torch.Generator(device=dev).manual_seed(0)
    n, batch = images.shape[0], cfg.batch_size
    model.train()
    t0 = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(dev)
            t0 = time.perf_counter()
        idx = torch.randint(n, (batch,), generator=gen, device=dev)
        x, y = augment_batch(to_float(images[idx]), masks[idx].float(), aug, gen)
        loss = train_step(step_model, x, y, loss_fn, optimizer, scheduler, scaler, amp_dtype, channels_last)
    _sync(dev)
    seconds = time.perf_counter() - t0
    ips = steps * batch / seconds
    flops_img = 3 * forward_flops(cfg, size)  # backward = 2 forwards (input and weight grads)
    del model, step_model, optimizer
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return dict(recipe=cfg.name, size=list(size), batch=batch, base_channels=cfg.base_channels,
                precision=precision_name(cfg.precision, dev),
                tf32_convolutions=dev.type == "cuda" and bool(torch.backends.cudnn.allow_tf32),
                channels_last=channels_last, compile=bool(cfg.compile and dev.type == "cuda"),
                steps=steps, images_per_s=ips, step_ms=1000 * seconds / steps,
                train_flops_per_image=flops_img, achieved_flops=flops_img * ips,
                final_loss=float(loss))


def time_to_dice(cfg: TrainConfig, train: Any, val: Any, target: float = 0.97, cap_s: float = 600.0,
                 device: torch.device | None = None) -> dict[str, Any]:
    """Train `cfg` with `fit` until validation Dice (training resolution) reaches `target` or
    `cap_s` seconds pass. Returns seconds to the target (None if not reached) and the curve."""
    def stop(epoch: int, history) -> bool:
        last = history.iloc[-1]
        return bool(last["val_dice"] >= target or last["seconds"] >= cap_s)

    with tempfile.TemporaryDirectory() as tmp:
        res = fit(cfg, train, val, tmp, device=device, progress=False, callback=stop)
    h = res.history
    hit = h[h["val_dice"] >= target]
    return dict(target=target, cap_s=cap_s, reached=not hit.empty,
                seconds=float(hit["seconds"].iloc[0]) if not hit.empty else None,
                epoch=int(hit["epoch"].iloc[0]) if not hit.empty else None,
                epochs_run=len(h), best_val_dice=res.best_val_dice, recipe=cfg.name,
                image_size=list(cfg.image_size), n_train=min(len(train.images), cfg.max_train_images or 10**9),
                val_dice=[round(float(v), 5) for v in h["val_dice"]],
                seconds_per_epoch=float(h["seconds"].iloc[-1]) / len(h))


def measure_latency(cfg: TrainConfig, device: torch.device, repeats: int = 10, warmup: int = 2,
                    model: nn.Module | None = None) -> dict[str, Any]:
    """Median milliseconds per 800x540 image (batch 1) on `device`: the network alone at the
    training size, `Predictor.predict` end to end (resize, network, resize back, ellipse,
    quality), and the same with test-time flips (a second, mirrored network pass). `model`:
    trained weights of `cfg`'s architecture (default: freshly initialised ones)."""
    from fetalhead.predict import Predictor

    if model is None:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg)
    model = model.eval()
    pred = Predictor(model, cfg.image_size, device=device)
    flips = Predictor(model, cfg.image_size, device=device, tta=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, HC18_SHAPE, dtype=np.uint8)
    yy, xx = np.mgrid[: HC18_SHAPE[0], : HC18_SHAPE[1]]
    image[((yy - 270) / 180.0) ** 2 + ((xx - 400) / 250.0) ** 2 <= 1] += 120  # a bright "head"
    x = torch.rand(1, 1, *cfg.image_size, device=device)

    def timed(fn) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times.append(1000 * (time.perf_counter() - t))
        return statistics.median(times)

    with torch.inference_mode():
        net_ms = timed(lambda: pred.model(x))
    predict_ms = timed(lambda: pred.predict(image, 0.15))
    flips_ms = timed(lambda: flips.predict(image, 0.15))
    return dict(device=device_name(device), network_ms=net_ms, predict_ms=predict_ms, predict_flips_ms=flips_ms,
                image_size=list(cfg.image_size), input_shape=list(HC18_SHAPE), repeats=repeats,
                threads=torch.get_num_threads() if device.type == "cpu" else None, precision="fp32")


def run_benchmark(cache: str | os.PathLike | None = None, steps: int = 20, warmup: int = 5,
                  quick: bool = False, target: float = 0.97, cap_s: float = 600.0,
                  compile: bool = False, device: str | torch.device | None = None,
                  skip_time_to_dice: bool = False,
                  on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run all four benchmarks; returns the JSON-ready results dict (see the module docstring).

    `quick`: tiny models and images on whatever device (seconds on a CPU; for tests).
    `on_update(results so far)` runs after every measurement (the command line writes its
    JSON there, so a run cut short keeps what it measured).
    """
    update = on_update or (lambda res: None)
    dev = resolve_device(device)
    name = device_name(dev)
    peak = peak_flops(name) if dev.type == "cuda" else None
    # the recipes as they are (quick mode only narrows the nets and the images)
    ref = get_config("reference", quick=False)
    default = get_config("default", quick=False, compile=compile)
    sizes = SIZES
    if quick:
        ref, default = replace(ref, base_channels=4), replace(default, base_channels=4)
        steps, warmup, sizes = min(steps, 2), min(warmup, 1), [(64, 64), (64, 96)]

    # the data: the compact cache's train/val parts, or synthetic ellipses in quick mode
    if cache is not None:
        from fetalhead.cache import load_compact_cache

        parts = load_compact_cache(cache)
        if "train" not in parts or "val" not in parts:
            raise FetalheadError(f"{cache}: the compact cache needs the train and val parts")
        train, val = parts["train"], parts["val"]
    elif quick:
        from fetalhead.synthetic import synthetic_set

        train, val = synthetic_set(24, (64, 96)), synthetic_set(8, (64, 96), seed=1, split="val")
    else:
        from fetalhead.cache import load_arrays

        train = load_arrays("train", default.image_size)
        val = load_arrays("val", default.image_size)
    data_size = tuple(train.images.shape[1:])

    out: dict[str, Any] = dict(
        device=name, device_type=dev.type, torch=torch.__version__, cuda=torch.version.cuda,
        cpu_count=os.cpu_count(), quick=quick, peak_bf16_flops=peak,
        data=dict(cache=str(cache) if cache else None, n_train=len(train.images), n_val=len(val.images),
                  size=list(data_size)),
    )

    # 1-2. throughput and MFU: both recipes at each size, same device, same data
    pool = torch.from_numpy(train.images[:64])[:, None].to(dev)
    pool_m = torch.from_numpy(train.masks[:64])[:, None].to(dev)
    rows = []
    for size in sizes:
        imgs, msks = _resize_u8(pool, size, mask=False), _resize_u8(pool_m, size, mask=True)
        for cfg in (ref, default):
            r = measure_throughput(replace(cfg, image_size=size), imgs, msks, steps, warmup, dev)
            r["mfu"] = r["achieved_flops"] / peak if peak else None
            rows.append(r)
            out["throughput"] = rows
            update(out)
        out["speedup"] = {
            f"{h}x{w}": next(r["images_per_s"] for r in rows if r["recipe"] == default.name and r["size"] == [h, w])
            / next(r["images_per_s"] for r in rows if r["recipe"] == ref.name and r["size"] == [h, w])
            for h, w in sizes if sum(r["size"] == [h, w] for r in rows) == 2
        }
        update(out)

    # 3. time to the target Dice, default recipe at the cache's size
    if not skip_time_to_dice:
        cfg = get_config("default", quick=True, compile=compile) if quick else default
        cfg = replace(cfg, image_size=data_size)
        out["time_to_dice"] = time_to_dice(cfg, train, val, target, cap_s, dev)
        update(out)

    # 4. latency: CPU with every core, and the GPU if there is one
    lat_cfg = get_config("default", quick=quick)  # the default preset's architecture, fresh weights (shipped models: --latency-only)
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        lat = {"cpu": measure_latency(lat_cfg, torch.device("cpu"), repeats=3 if quick else 10,
                                      warmup=1 if quick else 2)}
    finally:
        torch.set_num_threads(threads)
    if dev.type == "cuda":
        lat["cuda"] = measure_latency(lat_cfg, dev, repeats=5 if quick else 50, warmup=2 if quick else 10)
    out["latency"] = lat
    update(out)
    return out


def format_table(res: dict[str, Any]) -> str:
    """Plain-text summary of `run_benchmark`'s results."""
    lines = [f"device: {res['device']}  (torch {res['torch']}, peak bf16 "
             f"{res['peak_bf16_flops'] / 1e12:.0f} TFLOP/s)" if res["peak_bf16_flops"]
             else f"device: {res['device']}  (torch {res['torch']}, peak unknown)", ""]
    lines.append(f"{'size':>9} {'recipe':>10} {'batch':>5} {'base':>4} {'precision':>9} {'NHWC':>4} "
                 f"{'img/s':>9} {'ms/step':>8} {'TFLOP/s':>8} {'MFU':>6}")
    for r in res["throughput"]:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        lines.append(f"{r['size'][0]}x{r['size'][1]:<5} {r['recipe']:>10} {r['batch']:>5} "
                     f"{r['base_channels']:>4} {r['precision']:>9} {'yes' if r['channels_last'] else 'no':>4} "
                     f"{r['images_per_s']:>9.1f} {r['step_ms']:>8.1f} {r['achieved_flops'] / 1e12:>8.3f} {mfu:>6}")
    lines.append("speedup default/reference: " + ", ".join(f"{k}: {v:.2f}x" for k, v in res["speedup"].items()))
    t = res.get("time_to_dice")
    if t:
        when = f"{t['seconds']:.1f} s (epoch {t['epoch']})" if t["reached"] else f"not reached in {t['epochs_run']} epochs"
        lines.append(f"time to val Dice {t['target']} ({t['image_size'][0]}x{t['image_size'][1]}, "
                     f"{t['n_train']} images): {when}; best {t['best_val_dice']:.4f}")
    for k, v in res["latency"].items():
        lines.append(f"latency {k} ({v['device']}): network {v['network_ms']:.1f} ms, "
                     f"predict {v['predict_ms']:.1f} ms per {HC18_SHAPE[1]}x{HC18_SHAPE[0]} image")
    return "\n".join(lines)


def format_latency(res: dict[str, Any]) -> str:
    """Plain-text summary of `latency_only`'s results: one line per shipped model or preset
    architecture and device."""
    rows = [(f"model {m}", per_dev) for m, per_dev in res.get("models", {}).items()]
    rows += [(f"preset {p}", per_dev) for p, per_dev in res["latency"].items()]
    return "\n".join(
        f"{name:15s} {d:5s} {r['image_size'][0]}x{r['image_size'][1]}: network {r['network_ms']:.1f} ms, "
        f"predict {r['predict_ms']:.1f} ms, with flips {r['predict_flips_ms']:.1f} ms "
        f"per {HC18_SHAPE[1]}x{HC18_SHAPE[0]} image"
        for name, per_dev in rows for d, r in per_dev.items())


def _shipped_latency(dev: torch.device, repeats: int = 10) -> dict[str, dict[str, Any]]:
    """`measure_latency` of each shipped model present, with its own weights and input size, on
    the CPU (`repeats` timed runs; and on `dev` when it is a GPU); each row also names the
    model's width, the weights' storage and their training run."""
    from fetalhead.checkpoint import load_checkpoint
    from fetalhead.paths import SHIPPED_MODELS, shipped_checkpoint

    out: dict[str, dict[str, Any]] = {}
    for name in SHIPPED_MODELS:
        path = shipped_checkpoint(name)
        if not path.is_file():
            continue
        model, cfg, meta = load_checkpoint(path)
        about = dict(base_channels=cfg.base_channels, dtype=meta.get("dtype", "float16"),
                     training_run=meta.get("training_run"))
        out[name] = {"cpu": {**measure_latency(cfg, torch.device("cpu"), repeats=repeats, model=model), **about}}
        if dev.type == "cuda":
            out[name]["cuda"] = {**measure_latency(cfg, dev, repeats=50, warmup=10, model=model.to(dev)), **about}
    return out


def latency_only(presets: tuple[str, ...] = ("default", "small", "cpu"), device: str | None = None,
                 repeats: int = 10) -> dict[str, Any]:
    """Benchmark 4 alone: per-image latency of each shipped model (its weights, its input
    size; key "models") and of each preset's architecture (freshly initialised; key "latency")
    on the CPU with all cores (medians of `repeats` timed runs), and on the GPU if present."""
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        models = _shipped_latency(dev, repeats)
        lat = {p: {"cpu": measure_latency(get_config(p, quick=False), torch.device("cpu"), repeats=repeats)}
               for p in presets}
    finally:
        torch.set_num_threads(threads)
    if dev.type == "cuda":
        for p in presets:
            lat[p]["cuda"] = measure_latency(get_config(p, quick=False), dev, repeats=50, warmup=10)
    return dict(device=device_name(dev), cpu=device_name(torch.device("cpu")), cpu_count=os.cpu_count(),
                torch=torch.__version__, models=models, latency=lat)


def compare_precision(preset: str = "small", device: str | torch.device | None = None, steps: int = 20,
                      warmup: int = 5, quick: bool = False) -> dict[str, Any]:
    """Training images/s of preset `preset` at its own size in fp32 and in bf16 on `device`,
    and the ratio bf16/fp32. The data are synthetic ellipses (throughput does not depend on
    the pixels). Also says what "auto" resolves to there. `quick`: tiny sizes, for tests."""
    from fetalhead.synthetic import synthetic_set

    dev = resolve_device(device)
    cfg = get_config(preset, quick=quick)
    if quick:
        steps, warmup = min(steps, 2), min(warmup, 1)
    data = synthetic_set(max(2 * cfg.batch_size, 16), cfg.image_size)
    images = torch.from_numpy(data.images)[:, None].to(dev)
    masks = torch.from_numpy(data.masks)[:, None].to(dev)
    rows = [measure_throughput(replace(cfg, precision=p), images, masks, steps, warmup, dev) for p in ("fp32", "bf16")]
    return dict(device=device_name(dev), torch=torch.__version__, cpu_count=os.cpu_count(),
                threads=torch.get_num_threads() if dev.type == "cpu" else None, preset=preset,
                auto_resolves_to=precision_name("auto", dev), throughput=rows,
                bf16_over_fp32=rows[1]["images_per_s"] / rows[0]["images_per_s"])


def format_precision(res: dict[str, Any]) -> str:
    """Plain-text summary of `compare_precision`'s results."""
    rows = [f"{r['precision']:>5} {r['size'][0]}x{r['size'][1]} batch {r['batch']}: "
            f"{r['images_per_s']:.1f} img/s ({r['step_ms']:.0f} ms/step)" for r in res["throughput"]]
    threads = f", {res['threads']} threads" if res["threads"] else ""
    return "\n".join([f"{res['preset']} preset on {res['device']}{threads}:", *rows,
                      f"bf16 / fp32: {res['bf16_over_fp32']:.2f}x; 'auto' trains in {res['auto_resolves_to']} here"])
