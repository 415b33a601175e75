"""The exact meta backend's UpdateRule against torch's own optimisers: for every optimiser it supports, the
direction ``d`` it predicts from the current grads and state is the one ``optimizer.step()`` then takes
(``theta' = theta - lr * d``), step after step, also when parameters join late (so their Adam step counts,
and so their bias corrections, differ within one group) and with maximize, dampening and Nesterov."""

from __future__ import annotations

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.meta.hypergrad import UpdateRule, update_direction

OPTIMISERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05),
    "sgd-wd": lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.01),
    "sgdm": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "sgdm-dampening": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "sgd-maximize": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, maximize=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
    "adam-wd": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.05),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.05),
    "adam-decoupled": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.05, decoupled_weight_decay=True),
    "adam-maximize": lambda ps: torch.optim.Adam(ps, lr=0.01, maximize=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("late", [0, 3])
def test_the_predicted_direction_is_the_step_torch_takes(name, late):
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64)),
              torch.nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))]
    opt = OPTIMISERS[name](params)
    lr = opt.param_groups[0]["lr"]
    for step in range(8):
        for i, p in enumerate(params):
            # the second parameter has no gradient for its first `late` steps, so it starts its moments
            # (and Adam its step count) later than the first: a group of mixed step counts
            p.grad = None if (i == 1 and step < late) else torch.randn(p.shape, generator=g, dtype=torch.float64)
        [predicted] = update_direction(opt)
        before = [p.detach().clone() for p in params]
        opt.step()
        for p, b, d in zip(params, before, predicted, strict=True):
            if p.grad is None:
                assert d is None and torch.equal(p.detach(), b)
            else:
                torch.testing.assert_close(d, (b - p.detach()) / lr, rtol=1e-9, atol=1e-10)


def test_an_optimiser_it_cannot_predict_is_a_clear_error():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ConfigError, match="meta.backend=higher"):
        UpdateRule.of(torch.optim.RMSprop(p))
    with pytest.raises(ConfigError, match="amsgrad=false"):
        UpdateRule.of(torch.optim.Adam(p, amsgrad=True))
