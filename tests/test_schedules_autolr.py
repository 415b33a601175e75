import copy
import math

import pytest
import torch

from mlrsnet.errors import ConfigError
from mlrsnet.schedules.autolr import AutoLRTuner, choose_factor

CURV = 4.0  # f(w) = 0.5 * CURV * w^2: one SGD step lands on the minimum at lr = 1/CURV


def _quadratic(lr, momentum=0.0, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def loss_fn(m, curv):
        return 0.5 * curv * (m.weight**2).sum()

    kw = {"interval": 10, "horizon": 1, "min_lr": 1e-6, "max_lr": 10.0, **kw}
    return model, opt, AutoLRTuner(opt, model, loss_fn, **kw)


def test_moves_toward_the_known_best_lr():
    model, opt, tuner = _quadratic(lr=0.1 / CURV)
    gaps = [abs(math.log(opt.param_groups[0]["lr"] * CURV))]
    for step in range(0, 40, 10):
        assert tuner.maybe_tune(step, [CURV])
        gaps.append(abs(math.log(opt.param_groups[0]["lr"] * CURV)))
    assert gaps[1] < gaps[0] and all(b <= a + 1e-6 for a, b in zip(gaps, gaps[1:], strict=False))
    # Settles at 0.8/CURV: losses at 0.4/CURV and 1.6/CURV tie, so the parabola in ln(lr) centres
    # on their geometric mean; the grid, not the tuner, limits how close it gets.
    assert gaps[-1] < math.log(1.3)
    assert len(tuner.history) == 4 and tuner.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_also_moves_down_from_a_too_large_lr():
    _, opt, tuner = _quadratic(lr=1.8 / CURV, horizon=3)
    tuner.maybe_tune(0, [CURV])
    assert opt.param_groups[0]["lr"] < 1.8 / CURV


def test_restores_the_snapshot_and_the_rng():
    model, opt, tuner = _quadratic(lr=0.1 / CURV, momentum=0.9, horizon=3)
    for _ in range(2):  # build a momentum buffer
        opt.zero_grad()
        (0.5 * CURV * (model.weight**2).sum()).backward()
        opt.step()
    weights = model.weight.detach().clone()
    buf = opt.state[model.weight]["momentum_buffer"].clone()
    grad = model.weight.grad.clone()
    rng = torch.get_rng_state()

    tuner.maybe_tune(0, [CURV, CURV])

    assert torch.equal(model.weight.detach(), weights)
    assert torch.equal(opt.state[model.weight]["momentum_buffer"], buf)
    assert torch.equal(model.weight.grad, grad)
    assert torch.equal(torch.get_rng_state(), rng)
    assert opt.param_groups[0]["lr"] != 0.1 / CURV


def test_holds_between_probes():
    model, opt, tuner = _quadratic(lr=0.1 / CURV, interval=5)
    weights = model.weight.detach().clone()
    for step in range(1, 5):
        assert not tuner.maybe_tune(step, [CURV])
        assert opt.param_groups[0]["lr"] == 0.1 / CURV and torch.equal(model.weight.detach(), weights)
    assert tuner.maybe_tune(5, [CURV]) and opt.param_groups[0]["lr"] != 0.1 / CURV


def test_lr_is_clipped_to_bounds():
    _, opt, tuner = _quadratic(lr=0.1 / CURV, max_lr=0.15 / CURV)
    tuner.maybe_tune(0, [CURV])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.15 / CURV)


def test_choose_factor():
    factors = [1.0, 0.25, 4.0, 0.5, 2.0]  # order does not matter
    xs = [math.log(f) for f in factors]
    # an exact parabola in ln f with its minimum at ln 1.5: the local fit recovers it
    assert choose_factor(factors, [(x - math.log(1.5)) ** 2 for x in xs]) == pytest.approx(1.5)
    # a lopsided curve: the fit through the best probe and its neighbours, not through all probes
    ys = [math.exp(3 * (x - math.log(1.5))) - 3 * (x - math.log(1.5)) for x in xs]
    assert 1.0 < choose_factor(factors, ys) < 2.0
    # the best probe at an end of the range: that factor, no extrapolation
    assert choose_factor(factors, [(x - 5.0) ** 2 for x in xs]) == pytest.approx(4.0)
    # a diverged neighbour: the best probe
    assert choose_factor(factors, [2.0, 3.0, math.inf, 2.5, math.nan]) == 1.0
    assert choose_factor(factors, [math.nan] * 5) == 0.25


def test_state_dict_round_trip():
    """A tuner restored from its state dict (with the model's and optimiser's) then tunes and trains
    exactly as the original: the same LRs, probe losses and weights after further tuning rounds."""
    model, opt, tuner = _quadratic(lr=0.1 / CURV, momentum=0.9, horizon=2)
    tuner.maybe_tune(0, [CURV])
    model2, opt2, other = _quadratic(lr=0.3 / CURV, momentum=0.9, horizon=2)
    model2.load_state_dict(model.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    other.load_state_dict(tuner.state_dict())
    assert other.history == tuner.history and other.get_last_lr() == tuner.get_last_lr()
    for step in (10, 20):
        for m, o, t in ((model, opt, tuner), (model2, opt2, other)):
            t.maybe_tune(step, [CURV])
            o.zero_grad()
            (0.5 * CURV * (m.weight**2).sum()).backward()
            o.step()
    assert other.history == tuner.history and len(tuner.history) == 3
    assert other.get_last_lr() == tuner.get_last_lr() != [0.1 / CURV]
    assert torch.equal(model.weight, model2.weight)


@pytest.mark.parametrize("kw,names", [({"interval": 0}, "interval=0"), ({"horizon": 0}, "horizon=0"),
                                      ({"factors": [1.0]}, "factors="), ({"factors": [0.0, 1.0]}, "factors="),
                                      ({"min_lr": 1.0, "max_lr": 0.5}, "min_lr <= max_lr")])
def test_bad_parameters(kw, names):
    with pytest.raises(ConfigError, match=f"AutoLR: .*{names}"):
        _quadratic(lr=0.1, **kw)


def test_no_batches_is_a_config_error():
    _, _, tuner = _quadratic(lr=0.1)
    with pytest.raises(ConfigError, match="no batches"):
        tuner.maybe_tune(0, [])
