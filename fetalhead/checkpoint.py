"""Checkpoint files: full checkpoints to resume training, small weights-only files to ship.

Every file carries the marker `CHECKPOINT_FORMAT`, is written atomically (a temporary file,
then a rename: an interrupted run never leaves half a file) and is read with
`torch.load(weights_only=True)`, which never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fetalhead.config import TrainConfig
from fetalhead.errors import FetalheadError
from fetalhead.files import atomic_file
from fetalhead.model import build_model

__all__ = ["CHECKPOINT_FORMAT", "WEIGHT_DTYPES", "dequantize_int8", "export_weights", "load_checkpoint",
           "quantize_int8", "read_checkpoint", "save_checkpoint", "unwrap"]

CHECKPOINT_FORMAT = "fetalhead-checkpoint-v1"  # marks our files; anything else is refused
WEIGHT_DTYPES = ("float32", "float16", "int8")  #: how `export_weights` can store the weights


def unwrap(model: nn.Module) -> nn.Module:
    """The module under a torch.compile wrapper (its state_dict keys have no prefix)."""
    return getattr(model, "_orig_mod", model)


def _atomic_save(obj: Any, path: Path) -> Path:
    """`torch.save(obj)` into `path` in one rename; a write that fails (a full disk: torch
    says "unexpected pos" or "failed writing file") is a one-line FetalheadError, and no part
    of the file is left."""
    try:
        with atomic_file(path) as tmp:  # an interrupted run never leaves a half-written checkpoint
            torch.save(obj, tmp)
    except RuntimeError as e:  # torch's writer reports a failed write so, not as an OSError
        said = str(e).strip().splitlines()
        if not said or not any(w in said[-1] for w in ("unexpected pos", "failed writing", "write")):
            raise  # not a failed write: torch's own error
        raise FetalheadError(f"cannot write a checkpoint in {path.parent}: {said[-1][:160]} "
                             "(is the disk full?)") from None
    return path


def save_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: TrainConfig, *, epoch: int,
                    metrics: dict[str, float] | None = None, **state: Any) -> Path:
    """Write a full checkpoint: model weights (fp32), config, metrics, epoch and any extra
    `state` (optimizer, scheduler, scaler, early_stopping, rng, history ...). Returns the path."""
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "weights_only": False,
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "config": cfg.to_dict(),
        "metrics": dict(metrics or {}),
        "epoch": int(epoch),
        **state,
    }
    return _atomic_save(ckpt, Path(path))


def export_weights(model: nn.Module, cfg: TrainConfig, metrics: dict[str, float] | None,
                   path: str | os.PathLike, epoch: int | None = None, dtype: str = "float16",
                   **info: str | float | int | None) -> Path:
    """Write a small weights-only file: config, metrics, epoch, `info` (e.g.
    trained_on="NVIDIA H200") and the weights stored as `dtype` (one of `WEIGHT_DTYPES`):

    - "float32": as trained (best.pt during training);
    - "float16": half the size, the default for shipping;
    - "int8": a quarter of the size: each weight tensor of 2 or more dimensions as int8 with
      one fp32 scale per slice along its first dimension (max |w| / 127, so |error| <= scale
      / 2); biases and norms in fp16.

    `load_checkpoint` reads all three back as fp32.
    """
    if dtype not in WEIGHT_DTYPES:
        raise FetalheadError(f"unknown weight dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}")
    weights: dict[str, torch.Tensor] = {}
    scales: dict[str, torch.Tensor] = {}
    for k, v in unwrap(model).state_dict().items():
        v = v.detach().cpu()
        if not v.is_floating_point():
            weights[k] = v
        elif dtype == "int8" and v.ndim >= 2:
            weights[k], scales[k] = quantize_int8(v)
        else:
            weights[k] = v.float() if dtype == "float32" else v.half()
    ckpt = {"format": CHECKPOINT_FORMAT, "weights_only": True, "dtype": dtype, "model": weights,
            "config": cfg.to_dict(), "metrics": dict(metrics or {}), "epoch": epoch, **info}
    if scales:
        ckpt["scales"] = scales
    return _atomic_save(ckpt, Path(path))


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float tensor (C, ...) -> (int8 tensor (C, ...) in [-127, 127], fp32 scales (C,)): one
    symmetric scale per slice along the first dimension, max |w| / 127 (an all-zero slice gets
    scale 1 and stays zero). `dequantize_int8` inverts it to within scale / 2 per element."""
    w = weight.detach().float()
    peak = w.abs().reshape(w.shape[0], -1).amax(dim=1)
    scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
    q = torch.round(w / scale.view(-1, *[1] * (w.ndim - 1))).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 tensor (C, ...) and scales (C,) -> fp32 tensor (C, ...)."""
    return q.float() * scale.float().view(-1, *[1] * (q.ndim - 1))


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw dict of a fetalhead checkpoint file (weights, config, metrics, metadata), read
    without unpickling arbitrary objects; FetalheadError when it is missing or not ours."""
    path = Path(path)
    if path.is_dir():
        raise FetalheadError(f"checkpoint {path} is a folder; give a .pt file")
    if not path.is_file():
        raise FetalheadError(f"checkpoint not found: {path}")
    try:
        # weights_only: never unpickle arbitrary objects from a file someone handed us; torch's
        # warnings about a foreign file would only add lines to the one-line error below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip, pickle and unpickler errors all mean "not ours"
        raise FetalheadError(f"{path}: not a fetalhead checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FetalheadError(f"{path}: not a fetalhead checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return ckpt


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Read a checkpoint or an `export_weights` file -> (model fp32 in eval mode, config, meta).

    `meta` holds everything else in the file (metrics, epoch, history, optimizer state ...).
    The last.pt of a run that averages its weights gives the averaged weights, as its best.pt
    does: those the run validates (the raw ones, for resuming, are read by `fit`).
    A file that is not a fetalhead checkpoint, or whose weights do not fit the U-Net its config
    describes, raises FetalheadError with a one-line message naming the file.
    """
    ckpt = read_checkpoint(path, map_location)
    try:
        cfg = TrainConfig.from_dict(ckpt.get("config"))
    except (TypeError, ValueError) as e:
        raise FetalheadError(f"{path}: bad config in the checkpoint ({str(e)[:160]})") from None
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "config", "scales")}
    _check_meta(path, meta)
    try:
        model = build_model(cfg)
        model.load_state_dict(_kept_weights(ckpt), strict=True)  # copies fp16 exports into fp32 params
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FetalheadError(f"{path}: weights do not match the model in its config ({first[:160]})") from None
    model.to(map_location).eval()
    return model, cfg, meta


def _kept_weights(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The weights a checkpoint's run validates and keeps: in the last.pt of a run that averages
    its weights (`ema_decay`), the moving average; else the model's own, int8 ones dequantized
    with their scales. ValueError when an int8 tensor has no fitting scale."""
    ema = ckpt.get("ema")
    if isinstance(ema, dict):
        return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
    weights = dict(ckpt["model"])
    scales = ckpt.get("scales", {})
    if not isinstance(scales, dict):
        raise ValueError("its int8 scales are not a dict")
    for k, v in weights.items():
        if isinstance(v, torch.Tensor) and v.dtype == torch.int8:
            scale = scales.get(k)
            if not isinstance(scale, torch.Tensor) or scale.shape != (v.shape[0],):
                raise ValueError(f"int8 weights {k!r} without a scale per slice")
            weights[k] = dequantize_int8(v, scale)
    return weights


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: entries of a checkpoint besides weights and config that fetalhead reads back: name -> (check, what it must be)
_META_CHECKS: dict[str, tuple[Any, str]] = {
    "metrics": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_number(x) for k, x in v.items()),
                "a dict of numbers"),
    "epoch": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "a whole number"),
    "dtype": (lambda v: v in WEIGHT_DTYPES, " or ".join(WEIGHT_DTYPES)),
    "tta": (lambda v: isinstance(v, bool), "true or false"),
    "review_below": (lambda v: _is_number(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "seconds": (lambda v: v is None or (_is_number(v) and v >= 0), "seconds, at least 0"),
    **{k: (lambda v: v is None or isinstance(v, str), "text") for k in ("trained_on", "precision", "training_run")},
}


def _check_meta(path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """FetalheadError (one line) when an entry fetalhead reads from a checkpoint has the wrong type."""
    for key, (ok, what) in _META_CHECKS.items():
        if key in meta and not ok(meta[key]):
            raise FetalheadError(f"{path}: bad {key!r} in the checkpoint ({meta[key]!r:.60}: expected {what})")
