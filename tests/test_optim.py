"""How the weights move and which are kept (`fetalhead.optim`): early stopping on score
sequences, the moving average's warm-up, the learning-rate schedules against torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetalhead.config import get_config
from fetalhead.errors import FetalheadError
from fetalhead.model import build_model
from fetalhead.optim import (
    EarlyStopping,
    averaged_model,
    build_optimizer,
    build_scheduler,
    ema_decay_at,
    lr_factor,
)


def tiny_cfg(**kw):
    return get_config("default", quick=False, **{**dict(image_size=(64, 96), base_channels=4), **kw})


def test_early_stopping_on_a_score_sequence():
    model = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=2, min_delta=0.001)
    scores = [0.50, 0.60, 0.6005, 0.59, 0.70]  # 0.6005 is not better by min_delta
    stopped_at = None
    for epoch, s in enumerate(scores, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # weights that name their epoch
        stopper.step(s, epoch, model)
        if stopper.should_stop:
            stopped_at = epoch
            break
    assert stopped_at == 4 and stopper.best_epoch == 2 and stopper.best_score == 0.60
    with torch.no_grad():
        model.weight.fill_(-1.0)
    stopper.restore(model)
    assert model.weight.item() == 2.0
    again = EarlyStopping(patience=2, min_delta=0.001)
    again.load_state_dict(stopper.state_dict())
    assert (again.best_epoch, again.bad_epochs, again.should_stop) == (2, 2, True)


def test_a_tie_is_not_an_improvement():
    # "improved by min_delta" with min_delta 0 means strictly better: an equal score keeps the
    # earlier epoch's weights and counts as a bad epoch
    model = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=1, min_delta=0.0)
    for epoch in (1, 2):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        assert stopper.step(0.5, epoch, model) is (epoch == 1)
    assert (stopper.best_epoch, stopper.bad_epochs, stopper.should_stop) == (1, 1, True)
    stopper.restore(model)
    assert model.weight.item() == 1.0


def test_the_average_warms_up_to_its_decay():
    """At update n the decay is min(decay, (1 + n) / (10 + n)): the first updates follow the
    network (a short run's average does not hold its start), and from n = 8990 it is 0.999."""
    assert ema_decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 8989) < 0.999 == ema_decay_at(0.999, 8990) == ema_decay_at(0.999, 10**6)
    assert ema_decay_at(0.5, 1) == pytest.approx(2 / 11) and ema_decay_at(0.5, 8) == 0.5
    # after 2,700 updates (a width-32 run of 63 epochs) the first 100 weigh little in the average
    kept = np.prod([ema_decay_at(0.999, n) for n in range(100, 2700)])
    assert kept < 1e-3 < np.prod([0.999] * 2600)


def test_the_average_follows_its_warm_up_update_by_update():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    average = averaged_model(model, 0.999)
    expected = None
    for n in range(4):
        with torch.no_grad():
            model[0].weight.fill_(float(n + 1))
        average.update_parameters(model)
        d = ema_decay_at(0.999, n)
        expected = 1.0 if n == 0 else d * expected + (1 - d) * (n + 1)
        assert average.module[0].weight.flatten()[0].item() == pytest.approx(expected), n
    assert averaged_model(model, 0.0) is None


def test_the_average_moves_nothing_between_devices(monkeypatch):
    """On a GPU, reading a count or a weight back to the CPU, or copying the count to the GPU,
    makes the CPU wait for the GPU; the average's updates do neither. Weights on the "meta"
    device (no data: any read raises) stand in for the GPU, and no tensor is moved (`.to`)."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).to("meta")
    average = averaged_model(model, 0.999)
    moved = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):  # a move to a device (a cast of dtype moves nothing)
        if "device" in kwargs or any(isinstance(a, (str, torch.device, torch.Tensor)) for a in args):
            moved.append(args)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    for _ in range(3):
        average.update_parameters(model)
    assert int(average.n_averaged) == 3 and moved == []


def test_lr_factor_has_the_shape_of_torch_onecycle():
    total = 1000
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, cycle_momentum=False)
    for step in range(total - 1):
        want = opt.param_groups[0]["lr"]
        got = lr_factor("onecycle", step / (total - 1))
        assert got == pytest.approx(want, rel=0.02, abs=2e-3), step
        opt.step()
        sched.step()
    assert lr_factor("onecycle", 1.0) < 1e-5 and lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor("constant", 0.7) == 1.0
    with pytest.raises(FetalheadError, match="unknown schedule"):
        lr_factor("linear", 0.5)


def test_optimizer_and_schedule_settings():
    cfg = tiny_cfg(optimizer="sgd", schedule="onecycle", lr=0.1)
    model = build_model(cfg)
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt, total_steps=100)
    lrs = []
    for _ in range(100):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[0]["momentum"] == 0.99  # the paper's momentum is kept
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and lrs[-1] < 1e-3 and 20 < int(np.argmax(lrs)) < 40
    cos = build_scheduler(tiny_cfg(schedule="cosine", lr=0.1), build_optimizer(cfg, model), 10)
    assert cos.get_last_lr()[0] == pytest.approx(0.1)
    with pytest.raises(FetalheadError):
        build_optimizer(tiny_cfg(optimizer="lion"), model)
