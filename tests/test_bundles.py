"""Transfer bundles: the paper's meta-test protocol in MLRSNetScheduler (swaps at equal fractions, gamma
recomputed as |sqrt(L) ln(LC) / (4 C^0.25)| at the start and at each swap), the two-line use, torch's
scheduler combinators, and the bundle mlrsnet.train writes."""

import math

import pytest
import torch
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, SequentialLR

from mlrsnet.checkpoint import load_nets, save_bundle
from mlrsnet.errors import SchedulerCompositionError
from mlrsnet.net import MLRSNet, recomputed_gamma
from mlrsnet.schedules.scheduler import MLRSNetScheduler

LOSSES = [2.3, 1.9, 1.2, 0.8, 0.5, 0.42, 0.3, 0.31, 0.2, 0.1, 0.08, 0.05]


def nets3(gamma: float = 0.5) -> list[MLRSNet]:
    out = []
    for seed in range(3):
        torch.manual_seed(seed)
        out.append(MLRSNet(gamma=gamma))
    return out


def outputs(nets: list[MLRSNet], losses: list[float], boundaries: list[int]) -> list[float]:
    """The nets' normalised outputs (in (0, 1)) on ``losses``, the state carried across swaps."""
    out, state = [], None
    for t, loss in enumerate(losses):
        k = sum(t >= b for b in boundaries)
        with torch.no_grad():
            lr, state = nets[k](torch.tensor(loss), state)
        out.append(float(lr) / float(nets[k].gamma))
    return out


def formula(loss: float, c: int) -> float:
    return abs(math.sqrt(loss) * math.log(loss * c) / (4 * c ** 0.25))


def opt_for(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=lr)


def test_recomputed_gamma_is_the_absolute_value_of_the_formula():
    assert recomputed_gamma(2.3, 10) == pytest.approx(formula(2.3, 10))
    # L < 1/C: the formula is negative, the reference takes its absolute value.
    assert formula(0.02, 10) > 0 and math.sqrt(0.02) * math.log(0.02 * 10) < 0
    assert recomputed_gamma(0.02, 10) == pytest.approx(formula(0.02, 10))
    assert recomputed_gamma(0.02, 10, gamma_min=0.5) == 0.5
    with pytest.raises(ValueError):
        recomputed_gamma(float("nan"), 10)


def test_window_mean_recompute_in_a_users_loop():
    nets = nets3()
    opt = opt_for()
    sched = MLRSNetScheduler(opt, nets, total_steps=12, num_classes=10, scale="recompute")
    got = []
    for loss in LOSSES:
        sched.step(torch.tensor(loss))
        got.append(opt.param_groups[0]["lr"])
    s = outputs(nets, LOSSES, [4, 8])
    g0 = formula(LOSSES[0], 10)                       # L_0: the first loss
    g1 = formula(sum(LOSSES[0:4]) / 4, 10)            # the mean of the losses since the previous swap
    g2 = formula(sum(LOSSES[4:8]) / 4, 10)
    want = [g0 * x for x in s[:4]] + [g1 * x for x in s[4:8]] + [g2 * x for x in s[8:]]
    assert got == pytest.approx(want, rel=1e-5)
    assert sched.gammas == pytest.approx([g0, g1, g2])


def test_train_loss_callable_gives_l_at_the_start_and_at_each_swap():
    nets = nets3()
    calls = []
    full = iter([2.2, 0.6, 0.05])

    def train_loss() -> float:
        calls.append(len(calls))
        return next(full)

    opt = opt_for()
    sched = MLRSNetScheduler(opt, nets, total_steps=12, num_classes=10, train_loss=train_loss, scale="recompute")
    assert len(calls) == 1  # at the start
    assert opt.param_groups[0]["lr"] == pytest.approx(
        formula(2.2, 10) * float(nets[0](torch.tensor(2.2), None)[0].detach()) / 0.5, rel=1e-5)
    for loss in LOSSES:
        sched.step(loss)
    assert len(calls) == 3
    assert sched.swap_losses == [2.2, 0.6, 0.05]
    assert sched.gammas == pytest.approx([formula(2.2, 10), formula(0.6, 10), formula(0.05, 10)])


def test_recompute_with_the_default_bundle_anneals_as_the_loss_falls():
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, total_steps=30, scale="recompute")
    assert len(sched.nets) == 3
    lrs = []
    for t in range(30):
        sched.step(torch.tensor(2.3 * math.exp(-0.15 * t)))
        lrs.append(opt.param_groups[0]["lr"])
    assert sched.num_classes == round(math.exp(2.3))  # C estimated from the first loss
    first, last = sum(lrs[:10]) / 10, sum(lrs[20:]) / 10
    assert last < first / 2, (first, last)


def test_a_single_net_still_works_with_every_scale():
    torch.manual_seed(0)
    net = MLRSNet(gamma=0.8)
    for scale in ("optimizer", "recompute", "checkpoint", 0.3, None):
        opt = opt_for()
        sched = MLRSNetScheduler(opt, net, scale=scale, num_classes=10, initial_loss=2.3)
        for loss in LOSSES:
            sched.step(loss)
        assert 0 < opt.param_groups[0]["lr"] < 1


def test_sequential_lr_after_a_linear_warmup():
    nets = nets3()
    warm = 3
    opt = opt_for(0.2)
    warmup = LinearLR(opt, start_factor=0.1, total_iters=warm)
    mlrs = MLRSNetScheduler(opt, nets, scale="checkpoint", total_steps=9)
    seq = SequentialLR(opt, [warmup, mlrs], milestones=[warm])
    got = []
    for loss in LOSSES:
        mlrs.observe(loss)
        seq.step()
        got.append(opt.param_groups[0]["lr"])
    ramp = [0.2 * (0.1 + 0.9 * t / warm) for t in range(1, warm)]
    assert got[:warm - 1] == pytest.approx(ramp)
    # From the milestone on, the LR is the nets' on the losses observed from then on.
    alone = MLRSNetScheduler(opt_for(0.2), nets, scale="checkpoint", total_steps=9)
    want = []
    for loss in LOSSES[warm - 1:]:
        alone.step(loss)
        want.append(alone.get_last_lr()[0])
    assert got[warm - 1:] == pytest.approx(want, rel=1e-6)


def test_sequential_lr_without_the_loss_is_a_one_line_error():
    opt = opt_for()
    seq = SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=1), MLRSNetScheduler(opt, nets3(), total_steps=9)],
                       milestones=[1])
    with pytest.raises(SchedulerCompositionError, match="observe") as e:
        seq.step()
    assert "\n" not in str(e.value)


def test_chained_scheduler_is_a_one_line_error_saying_why():
    opt = opt_for()
    mlrs = MLRSNetScheduler(opt, nets3(), total_steps=9)
    chained = ChainedScheduler([LinearLR(opt, 0.5, total_iters=2), mlrs])
    mlrs.observe(1.0)
    with pytest.raises(SchedulerCompositionError, match="ChainedScheduler") as e:
        chained.step()
    assert "SequentialLR" in str(e.value) and "\n" not in str(e.value)


def test_state_dict_round_trip_keeps_the_recomputed_gammas():
    nets = nets3()
    opt = opt_for()
    sched = MLRSNetScheduler(opt, nets, total_steps=12, num_classes=10, scale="recompute")
    for loss in LOSSES[:6]:
        sched.step(loss)
    state = sched.state_dict()
    opt2 = opt_for()
    other = MLRSNetScheduler(opt2, nets, total_steps=12, num_classes=10, scale="recompute")
    other.load_state_dict(state)
    for loss in LOSSES[6:]:
        sched.step(loss)
        other.step(loss)
        assert other.get_last_lr() == pytest.approx(sched.get_last_lr())
    assert other.gammas == pytest.approx(sched.gammas)


def test_bundle_file_round_trip(tmp_path):
    nets = nets3(0.4)
    save_bundle(tmp_path / "b.pt", nets, [1, 15, 30], task="t")
    loaded, meta = load_nets(tmp_path / "b.pt")
    assert meta["epochs"] == [1, 15, 30] and meta["gammas"] == pytest.approx([0.4] * 3)
    for a, b in zip(nets, loaded, strict=True):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert ka == kb and torch.equal(va, vb)
    opt = opt_for()
    sched = MLRSNetScheduler(opt, str(tmp_path / "b.pt"), scale="checkpoint", total_steps=12)
    got = []
    for loss in LOSSES:
        sched.step(loss)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx([0.4 * x for x in outputs(nets, LOSSES, [4, 8])], rel=1e-6)
