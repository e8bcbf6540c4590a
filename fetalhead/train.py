"""Training: `fit()`, its checkpoints and the history CSV (the optimizer, the learning-rate
schedule, the moving average of the weights and early stopping are `fetalhead.optim`).

The loop is written in the open (numbered steps, in the spirit of nanoGPT's train.py). The
whole resized training set sits on the device as one uint8 tensor; each step indexes a batch
from a seeded permutation, converts it to float and augments it on the device
(`fetalhead.transforms.augment_batch`), so no data loader or worker process is involved.

Validation Dice is measured at the training resolution (e.g. 256x384), on masks resized with
the images; the held-out evaluation at the original 540x800 resolution is `fetalhead.evaluate`.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from fetalhead.checkpoint import (
    export_weights,
    read_checkpoint,
    save_checkpoint,
    unwrap,
)
from fetalhead.config import TrainConfig
from fetalhead.device import (
    autocast_settings,
    device_name,
    precision_name,
    resolve_device,
    threads_text,
)
from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file
from fetalhead.frame import network_scale
from fetalhead.losses import BCEDiceLoss
from fetalhead.metrics import dice_batch
from fetalhead.model import build_model
from fetalhead.optim import (
    ONECYCLE_WARMUP,
    EarlyStopping,
    averaged_model,
    build_optimizer,
    build_scheduler,
)
from fetalhead.transforms import AugmentParams, augment_batch, to_float

__all__ = ["FitResult", "HISTORY_COLUMNS", "center_crop_like", "check_crop_size", "coarse_size", "downscale_arrays",
           "evaluate_arrays", "fit", "image_weights", "random_crops", "stops_early", "train_step"]

# history.csv: 1-based epoch, mean training loss, validation loss and Dice (training resolution),
# learning rate of the epoch's last step, wall seconds since the run began (summed over resumes)
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds"]


@dataclass
class FitResult:
    """What `fit` returns. `seconds` is the wall time of the whole run (resumed parts included)."""

    model: nn.Module  # best weights restored, on the training device, eval mode
    history: pd.DataFrame  # one row per epoch, columns HISTORY_COLUMNS
    best_epoch: int  # 1-based epoch of the best validation Dice
    best_val_dice: float  # at the training resolution
    checkpoint_path: Path  # best.pt
    seconds: float


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
               amp_dtype: torch.dtype | None, channels_last: bool,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """One optimisation step on an augmented batch; returns the detached loss (0-d tensor).

    x: float images (B, 1, H, W) in [0, 1]; y: float masks {0, 1} (B, 1, H, W); weight: (B,)
    per-image loss weights or None. `fit` and the benchmark both call this, so the benchmark
    times exactly what training runs.
    """
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # forward in mixed precision; the loss in fp32 for a stable log/sigmoid
    with torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
        logits = model(x)
    loss = loss_fn(logits.float(), center_crop_like(y, logits), weight) if weight is not None \
        else loss_fn(logits.float(), center_crop_like(y, logits))
    # backward (scaled for fp16), step, schedule
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.detach()


# ----------------------------------------------------------------------------- the loop


def center_crop_like(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Centre-crop target (B,1,H,W) to the size of logits (B,1,h,w); with padding="valid" the
    U-Net's output is smaller than its input (572 -> 388 pixels in the paper)."""
    h, w = logits.shape[-2:]
    th, tw = target.shape[-2:]
    if (h, w) == (th, tw):
        return target
    top, left = (th - h) // 2, (tw - w) // 2
    return target[..., top:top + h, left:left + w]


@torch.no_grad()
def evaluate_arrays(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: nn.Module,
                    batch_size: int, amp_dtype: torch.dtype | None = None,
                    channels_last: bool = False) -> tuple[float, float]:
    """(mean loss, mean per-image Dice) of `model` on uint8 images/masks (N,1,H,W) on its device.

    Dice is that of the thresholded logits at the arrays' resolution (the training one).
    """
    model.eval()
    n = images.shape[0]
    loss_sum = torch.zeros((), device=images.device)  # summed on the device: one sync at the end
    dice_sum = torch.zeros((), device=images.device)
    autocast = torch.autocast(images.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    for i in range(0, n, batch_size):
        x = to_float(images[i:i + batch_size])
        y = masks[i:i + batch_size].float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(x)
        logits = logits.float()
        y = center_crop_like(y, logits)
        loss_sum += loss_fn(logits, y) * x.shape[0]
        dice_sum += dice_batch(logits, y).sum()
    return float(loss_sum) / n, float(dice_sum) / n


def _epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Two independent seeds (permutation, augmentation) for one epoch.

    Deriving them from (seed, epoch) rather than carrying generators along makes a resumed
    run draw exactly the batches and augmentations of an uninterrupted one.
    """
    a, b = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2)
    return int(a), int(b)


def image_weights(pixel_size_mm: np.ndarray, exponent: float) -> np.ndarray:
    """Per-image loss weights (N,) float32, ``(pixel_size / mean pixel_size) ** exponent``
    renormalised to mean 1, for pixel sizes (N,) in mm (`fit` gives mm per network pixel:
    `_pixel_sizes`). With exponent 1 an image weighs in proportion to the millimetres one of its
    pixels spans, as
    its head-circumference error in mm does; exponent 0 weighs all images alike."""
    px = np.asarray(pixel_size_mm, dtype=np.float64)
    if px.ndim != 1 or len(px) == 0 or not np.all(np.isfinite(px)) or np.any(px <= 0):
        raise FetalheadError("per-image loss weights need a positive pixel size (mm) for every training image")
    w = (px / px.mean()) ** float(exponent)
    return (w / w.mean()).astype(np.float32)


def _pixel_sizes(arrays: Any, size: tuple[int, int]) -> np.ndarray:
    """The mm per network pixel (N,) of an ArraySet's images at `size` (H, W) px: its meta's
    `pixel_size_mm` times `fetalhead.frame.network_scale` of each `orig_h` x `orig_w` frame
    (without those columns, the pixel sizes as they are); FetalheadError without pixel sizes."""
    meta = getattr(arrays, "meta", None)
    if meta is None or "pixel_size_mm" not in meta:
        raise FetalheadError("pixel_size_weight needs the training images' pixel sizes (an ArraySet with meta)")
    px = meta["pixel_size_mm"].to_numpy(dtype=np.float64)
    if {"orig_h", "orig_w"} <= set(meta.columns):  # frames of other sizes: what one network pixel spans
        px = px * np.array([network_scale((h, w), size) for h, w in zip(meta["orig_h"], meta["orig_w"], strict=True)])
    return px


def stops_early(cfg: TrainConfig, stopper: EarlyStopping, epochs_done: int) -> bool:
    """Whether an epoch-mode run stops after `epochs_done` epochs: `stopper`'s patience has run
    out, and a one-cycle schedule has finished its warm-up (`ONECYCLE_WARMUP` of
    `cfg.epochs`): a run stopped while its rate still rises has not trained at its peak."""
    warm = cfg.schedule == "onecycle" and epochs_done < ONECYCLE_WARMUP * cfg.epochs
    return stopper.should_stop and not warm


def _resumable(resume: str | os.PathLike, cfg: TrainConfig) -> dict[str, Any]:
    """The raw checkpoint `resume` when it can continue a run of `cfg`; a one-line
    FetalheadError for a weights-only file or one trained with other settings (named)."""
    ckpt = read_checkpoint(resume)
    if ckpt.get("weights_only"):
        raise FetalheadError(f"{resume}: a weights-only file cannot be resumed; use last.pt")
    was = TrainConfig.from_dict(ckpt["config"])
    if was != cfg:
        differ = [f"{f.name}={getattr(was, f.name)!r} (now {getattr(cfg, f.name)!r})"
                  for f in fields(cfg) if getattr(was, f.name) != getattr(cfg, f.name)]
        raise FetalheadError(f"{resume}: its run had {', '.join(differ)}; resume with the same settings")
    return ckpt


def coarse_size(cfg: TrainConfig) -> tuple[int, int] | None:
    """The (H, W) px of the coarse phase (`cfg.coarse_fraction`), or None without one.
    FetalheadError where `cfg.coarse_factor` does not divide `cfg.image_size` into multiples of
    16 (the U-Net's four poolings) or the padding is "valid" (its sizes are fixed)."""
    if not cfg.coarse_fraction:
        return None
    f, (h, w) = cfg.coarse_factor, cfg.image_size
    if cfg.padding != "same":
        raise FetalheadError('coarse_fraction needs padding="same" (a "valid" network takes one input size)')
    if f < 2 or h % (16 * f) or w % (16 * f):
        raise FetalheadError(f"coarse_factor={f}: it must be at least 2, and image_size {h}x{w} a multiple of "
                             f"{16 * f} on each side (the coarse images must be multiples of 16)")
    return h // f, w // f


def check_crop_size(cfg: TrainConfig) -> None:
    """FetalheadError where `cfg.crop_size` is not a crop of `cfg.image_size` in multiples of 16
    px (the U-Net's four poolings), or comes with "valid" padding or a coarse phase."""
    if cfg.crop_size is None:
        return
    (h, w), (H, W) = cfg.crop_size, cfg.image_size
    if cfg.padding != "same":
        raise FetalheadError('crop_size needs padding="same" (a "valid" network takes one input size)')
    if cfg.coarse_fraction:
        raise FetalheadError("crop_size and coarse_fraction cannot be combined: choose one")
    if not (0 < h <= H and 0 < w <= W) or h % 16 or w % 16:
        raise FetalheadError(f"crop_size={h}x{w}: it must fit in image_size {H}x{W} and be a multiple of 16 "
                             "on each side")


def random_crops(images: torch.Tensor, masks: torch.Tensor, size: tuple[int, int],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks (B,1,H,W) -> (B,1,h,w) with `size` = (h, w) px: each sample's own
    uniformly drawn window (the same for its image and mask), on their device, no sync."""
    b, _, H, W = images.shape
    h, w = size
    dev = images.device
    top = torch.randint(0, H - h + 1, (b,), generator=generator, device=generator.device).to(dev)
    left = torch.randint(0, W - w + 1, (b,), generator=generator, device=generator.device).to(dev)
    rows = (top[:, None] + torch.arange(h, device=dev))[:, :, None]  # (B, h, 1)
    cols = (left[:, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, w)
    batch = torch.arange(b, device=dev)[:, None, None]
    return images[batch, 0, rows, cols][:, None], masks[batch, 0, rows, cols][:, None]


def downscale_arrays(images: torch.Tensor, masks: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks uint8 (N,1,H,W) -> uint8 (N,1,H/factor,W/factor): images by area
    averaging, masks by the majority of each factor x factor block (ties count as head)."""
    x = F.avg_pool2d(images.float(), factor).round().to(torch.uint8)
    y = (F.avg_pool2d(masks.float(), factor) >= 0.5).to(torch.uint8)
    return x, y


def _to_device_arrays(arrays: Any, limit: int | None, size: tuple[int, int], device: torch.device,
                      what: str, seed: int = 0, weights: np.ndarray | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(images uint8 (N,1,H,W), masks uint8 (N,1,H,W), `weights` float32 (N,) or None) on
    `device`, a seeded random `limit` of them when given."""
    images, masks = np.asarray(arrays.images), np.asarray(arrays.masks)
    if limit is not None and limit < len(images):
        # a seeded random sample, not the first `limit`: HC18 file names follow gestational age,
        # so the first images are all small early heads
        keep = np.sort(np.random.default_rng(seed).choice(len(images), size=limit, replace=False))
        images, masks = images[keep], masks[keep]
        weights = None if weights is None else weights[keep]
    if images.ndim != 3 or images.shape != masks.shape or len(images) == 0:
        raise FetalheadError(f"{what} arrays must be non-empty (N,H,W) images and masks, got {images.shape} and {masks.shape}")
    if tuple(images.shape[1:]) != tuple(size):
        raise FetalheadError(f"{what} arrays are {images.shape[1]}x{images.shape[2]} but the config's "
                             f"image_size is {size[0]}x{size[1]}; load them with that size")
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8))[:, None].to(device)  # noqa: E731
    w = None if weights is None else torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)).to(device)
    return to(images), to(masks), w


def fit(
    cfg: TrainConfig,
    train: Any,
    val: Any,
    out_dir: str | os.PathLike,
    resume: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    callback: Callable[[int, pd.DataFrame], bool | None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    init: Mapping[str, torch.Tensor] | None = None,
    replace: Sequence[str] = (),
) -> FitResult:
    """Train a U-Net on `train` (an ArraySet: images uint8 (N,H,W), masks uint8 {0,1} (N,H,W),
    H x W = cfg.image_size), select on `val`, write best.pt, last.pt and history.csv to `out_dir`.

    Without `cfg.time_budget_s`: `cfg.epochs` epochs, early stopping after `cfg.patience`
    (`stops_early`: not during a one-cycle warm-up).
    With it: train until that many seconds (validation included) have passed; the learning
    rate follows the elapsed fraction of the budget less one validation (the last one's
    seconds: the training time), so the schedule is sized by the speed
    measured as the run goes and anneals fully inside the budget; the best epoch by
    validation Dice is kept. The last epoch may be cut short. With `cfg.coarse_fraction`, the
    epochs that begin in that first fraction of the run train on the arrays downscaled by
    `cfg.coarse_factor` (`downscale_arrays`); validation stays at `cfg.image_size`.
    `resume`: a last.pt to continue from, exactly as if never interrupted (epoch mode).
    `callback(epoch, history)` runs after every epoch; returning True stops training there.
    `clock`: seconds (tests pass a fake one). `init`: a state dict of the same network to start
    from instead of random weights (fine-tuning; `resume` still wins). `replace`: file names
    of an earlier run in `out_dir`, set aside once every check has passed (none of them is then
    left beside the new run's files) and deleted when the run ends normally. A run that fails
    or is interrupted puts them back when it has written none of its own, else keeps them
    beside its own as `earlier-<name>` and warns. Returns a FitResult with the best weights
    restored.
    """
    aside: list[tuple[Path, Path]] = []
    try:
        result = _fit(cfg, train, val, Path(out_dir), resume, device, progress, callback, clock, init, replace, aside)
    except BaseException:
        _keep_earlier(aside)
        raise
    for _, hidden in aside:  # the new run is whole: the earlier one goes
        hidden.unlink(missing_ok=True)
    return result


def _set_aside(out_dir: Path, names: Sequence[str], aside: list[tuple[Path, Path]]) -> None:
    """Rename each file of `names` present in `out_dir` to a hidden name beside it, adding
    (name, hidden name) to `aside` as each is moved."""
    for name in names:
        path = out_dir / name
        if path.exists():
            hidden = out_dir / f".{name}.earlier"
            os.replace(path, hidden)
            aside.append((path, hidden))


def _keep_earlier(aside: list[tuple[Path, Path]]) -> None:
    """After a failed run: the files set aside back under their names when the run wrote none
    of its own, else as `earlier-<name>` beside them (and a warning that says so)."""
    if not aside:
        return
    if not any(name.exists() for name, _ in aside):
        for name, hidden in aside:
            os.replace(hidden, name)
        return
    kept = []
    for name, hidden in aside:
        os.replace(hidden, name.with_name(f"earlier-{name.name}"))
        kept.append(f"earlier-{name.name}")
    warnings.warn(f"the run stopped after writing some of its files; the earlier run's are kept in "
                  f"{aside[0][0].parent} as {', '.join(kept)}", stacklevel=3)


def _fit(cfg: TrainConfig, train: Any, val: Any, out_dir: Path, resume: str | os.PathLike | None,
         device: str | torch.device | None, progress: bool,
         callback: Callable[[int, pd.DataFrame], bool | None] | None, clock: Callable[[], float],
         init: Mapping[str, torch.Tensor] | None, replace: Sequence[str],
         aside: list[tuple[Path, Path]]) -> FitResult:
    """`fit`'s work; the earlier run's files it sets aside are appended to `aside`."""
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    budget = float(cfg.time_budget_s) if cfg.time_budget_s else None
    if budget is not None and budget <= 0:
        raise FetalheadError(f"time budget must be positive seconds, got {cfg.time_budget_s}")

    # 1. seed, model, and its memory layout
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    if init is not None:
        try:
            model.load_state_dict(init)
        except RuntimeError as exc:  # missing keys or other shapes: another network
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise FetalheadError(f"the starting weights are not of preset {cfg.name!r}'s network "
                                 f"(width {cfg.base_channels}, {cfg.padding} padding): {first}") from None
    coarse = coarse_size(cfg)
    check_crop_size(cfg)
    ckpt = _resumable(resume, cfg) if resume is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)  # after the checks above: a refused run leaves no folder
    _set_aside(out_dir, replace, aside)  # after the checks too: a refused run leaves the earlier one whole
    model = model.to(dev)
    channels_last = bool(cfg.channels_last and cuda)  # NHWC helps tensor cores; not the CPU path
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels

    # 2. the data, once, on the device as uint8 (1 byte per pixel: the whole set fits easily)
    weights = image_weights(_pixel_sizes(train, cfg.image_size), cfg.pixel_size_weight) if cfg.pixel_size_weight else None
    train_x, train_y, train_w = _to_device_arrays(train, cfg.max_train_images, cfg.image_size, dev, "training",
                                                  cfg.seed, weights)
    val_x, val_y, _ = _to_device_arrays(val, cfg.max_val_images, cfg.image_size, dev, "validation", cfg.seed)
    coarse_x, coarse_y = downscale_arrays(train_x, train_y, cfg.coarse_factor) if coarse else (None, None)
    n_train = train_x.shape[0]
    batch = min(cfg.batch_size, n_train)
    steps_per_epoch = n_train // batch  # drop the last partial batch: BatchNorm dislikes tiny ones

    # 3. loss, optimizer, schedule (by step, or by the elapsed fraction of the training time), precision
    seconds_before = 0.0
    t_run = clock()
    elapsed = lambda: seconds_before + clock() - t_run  # noqa: E731  (wall seconds of the whole run)
    val_seconds = 0.0  # the last validation's seconds, once there is one

    def budget_progress() -> float:  # of the training time: the budget less one validation
        left = budget - val_seconds
        return elapsed() / left if left > 0 else 1.0

    loss_fn = BCEDiceLoss(cfg.bce_weight, cfg.dice_weight, cfg.dice_smooth)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, cfg.epochs * steps_per_epoch,
                                progress=budget_progress if budget else None)
    amp_dtype, use_scaler = autocast_settings(cfg.precision, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
    aug = AugmentParams.from_config(cfg)
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    ema = averaged_model(unwrap(model), cfg.ema_decay)
    kept = unwrap(model) if ema is None else ema.module  # the weights validated and kept
    rows: list[dict[str, float]] = []
    start_epoch = 1

    # 4. resume: weights, optimizer, schedule, scaler, early-stopping counters and history
    if ckpt is not None:
        unwrap(model).load_state_dict(ckpt["model"])
        if ema is not None:
            if "ema" not in ckpt:
                raise FetalheadError(f"{resume}: no averaged weights in it, though the config asks for them")
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        stopper.load_state_dict(ckpt["early_stopping"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        rows = list(ckpt.get("history", []))
        start_epoch = int(ckpt["epoch"]) + 1
        seconds_before = float(rows[-1]["seconds"]) if rows else 0.0
        # the best weights so far: best.pt beside last.pt (weights only). A run stopped after an
        # improvement that last.pt (saved now and then) has not seen left a best.pt newer than
        # last.pt: its weights beat those of last.pt's best epoch, so they are kept, and best.pt
        # stays as it is; the counters stay last.pt's (the epochs after it are trained again)
        best_path = Path(resume).parent / "best.pt"
        on_disk = read_checkpoint(best_path) if best_path.is_file() else None
        if on_disk is not None and int(on_disk["epoch"]) > int(ckpt["epoch"]):
            best_src = on_disk
        elif ckpt["epoch"] == stopper.best_epoch:
            best_src = ckpt
        else:
            best_src = on_disk if on_disk is not None else read_checkpoint(best_path)  # its one-line error
            if int(best_src["epoch"]) != stopper.best_epoch:
                raise FetalheadError(f"{best_path}: from epoch {best_src['epoch']}, expected the best epoch {stopper.best_epoch}")
        best_weights = kept.state_dict() if best_src is ckpt else best_src["model"]
        stopper.best_state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().clone()
                              for k, v in best_weights.items()}  # a copy: `kept` trains on
        if best_src is ckpt:
            export_weights(kept, cfg, ckpt.get("metrics"), out_dir / "best.pt", epoch=stopper.best_epoch, dtype="float32")
        elif best_path.resolve() != (out_dir / "best.pt").resolve():
            with atomic_file(out_dir / "best.pt") as tmp:  # out_dir must hold the best so far, whole
                shutil.copyfile(best_path, tmp)
        t_run = clock()

    def done() -> bool:  # the budget is spent (keeping back one validation's time)
        return budget is not None and elapsed() + val_seconds >= budget

    train_model = torch.compile(model) if (cfg.compile and cuda) else model
    if budget is not None:
        bar = tqdm(total=round(budget), disable=not progress, desc="fit", unit="s", dynamic_ncols=True,
                   initial=min(round(seconds_before), round(budget)))
    else:
        bar = tqdm(total=max(cfg.epochs - start_epoch + 1, 0) * steps_per_epoch, disable=not progress,
                   desc="fit", unit="step", dynamic_ncols=True)
    last_saved = elapsed()
    trained_on = device_name(dev) + ("" if cuda else f", {threads_text()}")
    stopped = False
    epoch = start_epoch
    while not stopped and (budget is not None or epoch <= cfg.epochs):
        if budget is None and stops_early(cfg, stopper, epoch - 1):
            break
        # 5. this epoch's batches: a permutation and an augmentation stream derived from (seed, epoch)
        # (the first cfg.coarse_fraction of the run trains on the downscaled arrays)
        progress = elapsed() / budget if budget is not None else (epoch - 1) / max(cfg.epochs, 1)
        xs, ys = (coarse_x, coarse_y) if coarse and progress < cfg.coarse_fraction else (train_x, train_y)
        seed_perm, seed_aug = _epoch_seeds(cfg.seed, epoch)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed_perm)).to(dev)
        gen = torch.Generator(device=dev).manual_seed(seed_aug)
        model.train()
        loss_sum = torch.zeros((), device=dev)  # summed on the device: no sync per step
        steps = 0
        for step in range(steps_per_epoch):
            # 6. a batch: index, uint8 -> float in [0, 1], augment image and mask together
            idx = perm[step * batch:(step + 1) * batch]
            x, y = augment_batch(to_float(xs[idx]), ys[idx].float(), aug, gen)
            if cfg.crop_size is not None:  # a window of each augmented picture, at its pixel scale
                x, y = random_crops(x, y, cfg.crop_size, gen)
            # 7. forward (mixed precision), loss, backward, optimizer and schedule step
            lr = optimizer.param_groups[0]["lr"]  # the rate this step trains with (history's lr: the last one's)
            loss = train_step(train_model, x, y, loss_fn, optimizer, scheduler, scaler, amp_dtype,
                              channels_last, None if train_w is None else train_w[idx])
            loss_sum += loss
            steps += 1
            if ema is not None:
                ema.update_parameters(unwrap(model))
            # 8. the budget: stop mid-epoch when it is spent (checked every 8 steps: a sync)
            if budget is not None:
                if step % 8 == 7 or step == steps_per_epoch - 1:
                    if cuda:
                        torch.cuda.synchronize()
                    bar.update(max(min(round(elapsed()), round(budget)) - bar.n, 0))
                    if done():
                        stopped = True
                        break
            else:
                bar.update(1)
        train_loss = float(loss_sum) / max(steps, 1)

        # 9. validate at the training resolution (eval mode: BatchNorm running statistics)
        t_val = clock()
        val_loss, val_dice = evaluate_arrays(train_model if ema is None else kept, val_x, val_y, loss_fn, batch,
                                             amp_dtype, channels_last)
        val_seconds = clock() - t_val
        seconds = elapsed()
        rows.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_dice=val_dice,
                         lr=lr, seconds=seconds))
        history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        with atomic_file(out_dir / "history.csv") as tmp:  # a run killed mid-write keeps the last whole one
            history.to_csv(tmp, index=False)
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.4f}", val_dice=f"{val_dice:.4f}")

        # 10. best.pt (weights only) on improvement; last.pt (full state) every
        #     cfg.last_every_s seconds (0: every epoch) and at the end
        metrics = dict(train_loss=train_loss, val_loss=val_loss, val_dice=val_dice)
        if stopper.step(val_dice, epoch, kept):
            export_weights(kept, cfg, metrics, out_dir / "best.pt", epoch=epoch, dtype="float32",
                           trained_on=trained_on, seconds=seconds,
                           precision=precision_name(cfg.precision, dev))
        if callback is not None and callback(epoch, history):
            stopped = True
        stopped = stopped or done()
        final = stopped or (budget is None and (epoch == cfg.epochs or stops_early(cfg, stopper, epoch)))
        if final or cfg.last_every_s <= 0 or seconds - last_saved >= cfg.last_every_s:
            state = dict(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         scaler=scaler.state_dict(), rng={"torch": torch.get_rng_state()}, history=rows)
            if ema is not None:
                state["ema"] = ema.state_dict()
            save_checkpoint(out_dir / "last.pt", model, cfg, epoch=epoch, metrics=metrics,
                            early_stopping=stopper.state_dict(), trained_on=trained_on, seconds=seconds,
                            precision=precision_name(cfg.precision, dev), **state)
            last_saved = seconds
        epoch += 1
    bar.close()

    # 11. put the best weights back
    stopper.restore(unwrap(model))
    model.eval()
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    if not rows:
        raise FetalheadError(f"nothing to train: epochs={cfg.epochs} and the run starts at epoch {start_epoch}")
    return FitResult(model=model, history=history, best_epoch=stopper.best_epoch,
                     best_val_dice=float(stopper.best_score), checkpoint_path=out_dir / "best.pt",
                     seconds=float(rows[-1]["seconds"]))
