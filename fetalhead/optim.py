"""How the weights move and which are kept: the optimizer, the learning-rate schedule (by step,
or by the elapsed fraction of a wall-clock budget), the moving average of the weights, and
early stopping. `fetalhead.train.fit` uses them; the benchmark times the same optimizer and
schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from fetalhead.config import TrainConfig
from fetalhead.errors import FetalheadError

__all__ = ["EarlyStopping", "MovingAverage", "ONECYCLE_WARMUP", "SGD_MOMENTUM", "averaged_model", "build_optimizer", "build_scheduler",
           "ema_decay_at", "lr_factor"]

SGD_MOMENTUM = 0.99  # Ronneberger et al. 2015, section 3: "a high momentum (0.99)"


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW, or SGD with the paper's momentum 0.99, at peak learning rate `cfg.lr`."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay)
    raise FetalheadError(f"unknown optimizer {cfg.optimizer!r}; choose adamw or sgd")


ONECYCLE_WARMUP = 0.3  # fraction of the run spent warming up (OneCycleLR's default pct_start)
ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 25.0, 1e4  # start at lr/25, end at lr/25/1e4 (OneCycleLR's defaults)


def lr_factor(schedule: str, progress: float) -> float:
    """Learning rate / peak learning rate at `progress` in [0, 1] of the run (time-budget mode).

    "onecycle": cosine warm-up from 1/25 to 1 over the first 30 %, then cosine down to 1/25e4,
    the shape of torch's OneCycleLR; "cosine": cosine from 1 to 0; "constant": 1.
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "onecycle":
        lo, end = 1.0 / ONECYCLE_DIV, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
        if p < ONECYCLE_WARMUP:
            q = p / ONECYCLE_WARMUP
            return lo + (1.0 - lo) * (1 - math.cos(math.pi * q)) / 2
        q = (p - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP)
        return end + (1.0 - end) * (1 + math.cos(math.pi * q)) / 2
    if schedule == "cosine":
        return (1 + math.cos(math.pi * p)) / 2
    if schedule == "constant":
        return 1.0
    raise FetalheadError(f"unknown schedule {schedule!r}; choose onecycle, cosine or constant")


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                    progress: Callable[[], float] | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step learning-rate schedule over `total_steps` optimizer steps.

    With `progress` (a function returning the elapsed fraction of a time budget's training
    time, 0..1) the
    rate follows `lr_factor(cfg.schedule, progress())` instead, whatever the step count.
    """
    if progress is not None:
        lr_factor(cfg.schedule, 0.0)  # unknown schedule names fail here, not mid-run
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg.schedule, progress()))
    total_steps = max(int(total_steps), 1)
    if cfg.schedule == "onecycle":
        # Smith & Topin 2017, one-cycle: warm up over 30% of the steps, then cosine down.
        # Momentum cycling would overwrite SGD's 0.99, so it is only used with AdamW (beta1).
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total_steps, cycle_momentum=cfg.optimizer == "adamw")
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise FetalheadError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine or constant")


# ----------------------------------------------------------------------------- keeping the best


class EarlyStopping:
    """Stop when the validation Dice has not improved by `min_delta` for `patience` epochs.

    Keeps a CPU copy of the best weights so `restore` can put them back at the end.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best_score = -math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def step(self, score: float, epoch: int, model: nn.Module | None = None) -> bool:
        """Record epoch `epoch`'s score; True when it is a new best (weights copied from `model`)."""
        if score > self.best_score + self.min_delta or self.best_epoch == 0:
            self.best_score, self.best_epoch, self.bad_epochs = float(score), int(epoch), 0
            if model is not None:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once `patience` epochs in a row brought no improvement."""
        return self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best weights seen into `model` (no-op before the first `step` with a model)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        """Counters for a checkpoint (the best weights are stored as best.pt, not here)."""
        return dict(best_score=self.best_score, best_epoch=self.best_epoch, bad_epochs=self.bad_epochs,
                    patience=self.patience, min_delta=self.min_delta)

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Inverse of `state_dict` (patience and min_delta stay those of the current run)."""
        self.best_score, self.best_epoch, self.bad_epochs = d["best_score"], d["best_epoch"], d["bad_epochs"]


# ----------------------------------------------------------------------------- averaging the weights


def ema_decay_at(decay: float, n: int) -> float:
    """The moving average's decay at its update number `n` (n >= 1; update 0 copies the
    weights): `decay`, warmed up as min(decay, (1 + n) / (10 + n)) so that a short run's
    average follows the network instead of holding its first steps (0.999 from n = 8990)."""
    return min(decay, (1.0 + n) / (10.0 + n))


class MovingAverage(AveragedModel):
    """torch's AveragedModel (its state_dict, its `module`) with an update of its own that
    moves nothing between devices: torch's copies its update count to the weights' device
    twice a step (floats, then BatchNorm's integer counter), and on a GPU each such copy makes
    the CPU wait for the GPU. The count stays on the CPU; the decay is `ema_decay_at`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, use_buffers=True)
        self.decay = float(decay)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """averaged <- d averaged + (1 - d) current for every weight and buffer of `model`
        (the first update copies them), d = ema_decay_at(decay, updates so far)."""
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [t.detach() for t in (*model.parameters(), *model.buffers())]
        n = int(self.n_averaged)  # a CPU buffer: reading it waits for nothing
        if n == 0:
            torch._foreach_copy_(averaged, current)
        else:
            d = ema_decay_at(self.decay, n)
            floats = [i for i, a in enumerate(averaged) if torch.is_floating_point(a)]
            torch._foreach_lerp_([averaged[i] for i in floats], [current[i] for i in floats], 1.0 - d)
            for a, c in zip(averaged, current, strict=True):
                if not torch.is_floating_point(a):  # integer buffers (BatchNorm's step count)
                    a.copy_(a * d + c * (1.0 - d))
        self.n_averaged += 1


def averaged_model(model: nn.Module, decay: float) -> MovingAverage | None:
    """An exponential moving average of `model`'s weights and buffers (None for decay 0): its
    first update copies the weights, the later ones decay by `ema_decay_at(decay, n)`, n the
    updates so far (`MovingAverage`)."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise FetalheadError(f"ema_decay must be in [0, 1), got {decay}")
    return MovingAverage(model, decay)
