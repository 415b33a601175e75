"""MLRSNetScheduler: the torch scheduler protocol, LR semantics, param groups, multi-checkpoint swaps."""

import io

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from mlrsnet.checkpoint import save_mlrsnet
from mlrsnet.errors import CheckpointError
from mlrsnet.net import MLRSNet, recomputed_gamma
from mlrsnet.schedules.scheduler import DEFAULT_CHECKPOINT, MLRSNetScheduler, resolve_checkpoint

LOSSES = [2.3, 1.9, 1.2, 0.8, 0.5, 0.42, 0.3, 0.31, 0.2, 0.1]


def make_net(seed: int = 0, gamma: float = 0.5) -> MLRSNet:
    torch.manual_seed(seed)
    return MLRSNet(gamma=gamma)


def reference_lrs(nets: list[MLRSNet], losses: list[float], boundaries: list[int] | None = None) -> list[float]:
    """The LRs the in-memory nets emit on ``losses``, the state carried across steps (and nets)."""
    out, state = [], None
    for t, loss in enumerate(losses):
        k = 0 if boundaries is None else sum(t >= b for b in boundaries)
        with torch.no_grad():
            lr, state = nets[k](torch.tensor(loss), state)
        out.append(float(lr))
    return out


def two_group_optimizer(cls=torch.optim.SGD, **kw) -> torch.optim.Optimizer:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    return cls([{"params": a.parameters(), "lr": 0.1}, {"params": b.parameters(), "lr": 0.01}], **kw)


def test_lr_sequence_equals_the_in_memory_net():
    net = make_net()
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=123.0)
    sched = MLRSNetScheduler(opt, net, scale="checkpoint")
    got = []
    for loss in LOSSES:
        sched.step(torch.tensor(loss))
        got.append(opt.param_groups[0]["lr"])
    assert got == reference_lrs([net], LOSSES)
    assert sched.get_last_lr() == [got[-1]]
    assert isinstance(sched, LRScheduler)


def test_each_group_gets_its_initial_lr_times_the_normalised_output():
    net = make_net(gamma=0.8)
    opt = two_group_optimizer(momentum=0.9)
    sched = MLRSNetScheduler(opt, net, scale=None)
    for loss, ref in zip(LOSSES, reference_lrs([net], LOSSES), strict=True):
        sched.step(torch.tensor(loss))
        s = ref / 0.8
        assert 0 < s < 1
        assert sched.get_last_lr() == pytest.approx([0.1 * s, 0.01 * s], rel=1e-6)


def test_float_scale_sets_group_zero_and_keeps_the_ratios():
    net = make_net(gamma=0.8)
    opt = two_group_optimizer(torch.optim.Adam)
    sched = MLRSNetScheduler(opt, net, scale=2.0)
    for loss, ref in zip(LOSSES, reference_lrs([net], LOSSES), strict=True):
        sched.step(loss)  # a Python float works too
        s = ref / 0.8
        assert sched.get_last_lr() == pytest.approx([2.0 * s, 0.2 * s], rel=1e-6)


def test_works_inside_a_real_loop_with_any_optimizer_and_several_groups():
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop):
        a, b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)
        for scale in (None, "recompute"):
            opt = cls([{"params": a.parameters(), "lr": 0.01}, {"params": b.parameters(), "lr": 0.001}])
            sched = MLRSNetScheduler(opt, total_steps=6, scale=scale)
            for _ in range(6):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(b(torch.relu(a(x))), y)
                loss.backward()
                opt.step()
                sched.step(loss)
            lr0, lr1 = sched.get_last_lr()
            # scale=None: the optimizer's LR is the largest the net emits; recompute: the paper's gamma.
            high = 0.01 if scale is None else max(sched.gammas)
            assert 0 < lr0 < high and lr1 == pytest.approx(lr0 / 10)


def test_the_net_is_frozen_and_the_callers_net_untouched():
    net = make_net()
    sched = MLRSNetScheduler(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1), net)
    frozen = sched.nets[0]
    assert frozen is not net and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in net.parameters()) and net.training
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    sched.step(torch.tensor(1.0, requires_grad=True) * 2)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())


def test_state_dict_round_trip_restores_the_lstm_state():
    net = make_net()

    def fresh() -> tuple[torch.optim.Optimizer, MLRSNetScheduler]:
        opt = two_group_optimizer()
        return opt, MLRSNetScheduler(opt, net)

    _, straight = fresh()
    expected = []
    for loss in LOSSES:
        straight.step(loss)
        expected.append(straight.get_last_lr())

    _, first = fresh()
    for loss in LOSSES[:4]:
        first.step(loss)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    opt, second = fresh()
    second.load_state_dict(torch.load(buf))
    assert second.last_epoch == 4 and [g["lr"] for g in opt.param_groups] == expected[3]
    resumed = []
    for loss in LOSSES[4:]:
        second.step(loss)
        resumed.append(second.get_last_lr())
    assert resumed == expected[4:]


def test_load_state_dict_rejects_another_architecture():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    state = MLRSNetScheduler(opt, [make_net(0), make_net(1)], total_steps=4).state_dict()
    with pytest.raises(ValueError, match="cannot be loaded"):
        MLRSNetScheduler(opt, make_net(0)).load_state_dict(state)


def test_initial_loss_sets_the_first_lr_without_advancing_the_state():
    net = make_net()
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, net, scale="checkpoint", initial_loss=torch.tensor(LOSSES[0]))
    first = reference_lrs([net], LOSSES[:1])[0]
    assert opt.param_groups[0]["lr"] == first
    sched.step(LOSSES[0])
    assert opt.param_groups[0]["lr"] == first


def test_without_initial_loss_the_first_step_runs_at_the_scale():
    opt = two_group_optimizer()
    MLRSNetScheduler(opt, make_net(gamma=0.8), scale=0.3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3, 0.03])


def test_several_checkpoints_are_swapped_at_equal_fractions_with_the_state_carried():
    nets = [make_net(0, gamma=0.5), make_net(1, gamma=0.5), make_net(2, gamma=0.5)]
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, nets, scale="checkpoint", total_steps=9)
    got = []
    for loss in LOSSES[:9]:
        sched.step(loss)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx(reference_lrs(nets, LOSSES[:9], boundaries=[3, 6]), rel=1e-6)
    assert [sched.net_index(t) for t in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_checkpoint_gammas_are_normalised_away_unless_kept():
    nets = [make_net(0, gamma=0.5), make_net(1, gamma=2.0)]
    ref = reference_lrs(nets, LOSSES[:4], boundaries=[2])
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, nets, scale=1.0, total_steps=4)
    got = []
    for loss in LOSSES[:4]:
        sched.step(loss)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx([ref[0] / 0.5, ref[1] / 0.5, ref[2] / 2.0, ref[3] / 2.0], rel=1e-6)


def test_argument_errors():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        MLRSNetScheduler(opt, [make_net(0), make_net(1)])
    with pytest.raises(ValueError, match="scale"):
        MLRSNetScheduler(opt, make_net(), scale="paper")
    with pytest.raises(ValueError, match="loss_scale"):
        MLRSNetScheduler(opt, make_net(), loss_scale=0)
    with pytest.raises(CheckpointError, match="gamma must be positive"):
        MLRSNetScheduler(opt, make_net(gamma=0.0))


def test_default_is_the_shipped_checkpoint_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = resolve_checkpoint(None)
    assert path.is_file() and path.as_posix().endswith(f"mlrsnet/checkpoints/{DEFAULT_CHECKPOINT}.pt")
    sched = MLRSNetScheduler(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1), total_steps=30,
                             scale="recompute")
    assert len(sched.nets) == 3
    sched.step(2.3)
    assert 0 < sched.get_last_lr()[0] < recomputed_gamma(2.3, 10)


def test_checkpoint_file_round_trip_and_errors(tmp_path):
    net = make_net(gamma=0.7)
    path = tmp_path / "net.pt"
    save_mlrsnet(path, net, task="test")
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, str(path), scale="checkpoint")
    got = []
    for loss in LOSSES:
        sched.step(loss)
        got.append(opt.param_groups[0]["lr"])
    assert got == reference_lrs([net], LOSSES)

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt is corrupt"):
        MLRSNetScheduler(opt, bad)
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        MLRSNetScheduler(opt, tmp_path / "missing.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, fused=True),
    lambda p: torch.optim.Adam(p, lr=1e-3, capturable=True),
    lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True),
])
def test_cuda_steps_never_sync_with_the_host(make_opt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).cuda()
    opt = make_opt(model.parameters())
    # Within a window no step syncs (a recompute at a swap in the window-mean mode reads the mean once).
    sched = MLRSNetScheduler(opt, total_steps=30, num_classes=10, initial_loss=2.3, scale="recompute")
    x, y = torch.randn(32, 8, device="cuda"), torch.randn(32, 1, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            sched.step(loss)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    lr = sched.get_last_lr()[0]
    assert isinstance(lr, torch.Tensor) and lr.device.type == "cuda"
    assert 0 < float(lr) < recomputed_gamma(2.3, 10)


def _steps(sched: MLRSNetScheduler, opt: torch.optim.Optimizer, n: int = 3) -> None:
    for loss in LOSSES[:n]:
        opt.step()
        sched.step(loss)  # the line a warning must point at


def test_the_recomputed_gamma_under_adam_warns_once_at_the_users_line_and_names_scale():
    from mlrsnet.errors import AdaptiveScaleWarning

    for cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop):
        opt = cls(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
        sched = MLRSNetScheduler(opt, [make_net(0), make_net(1)], total_steps=4, scale="recompute")
        with pytest.warns(AdaptiveScaleWarning) as caught:
            _steps(sched, opt, 4)  # a swap at step 2 recomputes gamma again: still one warning
        assert len(caught) == 1, [str(w.message) for w in caught]
        message = str(caught[0].message)
        assert cls.__name__ in message and "scale='optimizer'" in message
        assert f"{sched.gammas[0]:.3g}" in message
        assert caught[0].filename == __file__  # the user's line, not the scheduler's internals
    # known at construction (initial_loss): the warning comes from the constructor's line
    opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    with pytest.warns(AdaptiveScaleWarning) as caught:
        MLRSNetScheduler(opt, make_net(), initial_loss=2.3, num_classes=10, scale="recompute")
    assert caught[0].filename == __file__


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.1),                      # the paper's case: gamma is an SGD LR
    lambda p: torch.optim.Adam(p, lr=1e-3),                    # scale=None and the default below
])
def test_no_scale_warning_under_sgd_or_with_an_explicit_scale(make, recwarn):
    import warnings

    warnings.simplefilter("always")
    opt = make(torch.nn.Linear(2, 1).parameters())
    scale = "recompute" if isinstance(opt, torch.optim.SGD) else None
    _steps(MLRSNetScheduler(opt, make_net(), scale=scale), opt)
    opt = make(torch.nn.Linear(2, 1).parameters())
    _steps(MLRSNetScheduler(opt, make_net(), scale=0.002), opt)
    opt = make(torch.nn.Linear(2, 1).parameters())
    _steps(MLRSNetScheduler(opt, make_net()), opt)  # the default: the optimizer's LR
    assert not [w for w in recwarn if "MLRSNetScheduler" in str(w.message)]


# --- the default for a user's own loop: the optimizer's LR (experiments/scheduler_defaults/README.md) ---------


def test_the_default_starts_at_the_optimizers_lr_and_follows_the_nets_output_relative_to_its_first():
    net = make_net(gamma=0.8)
    opt = two_group_optimizer(momentum=0.9)
    sched = MLRSNetScheduler(opt, net)  # the two-line snippet
    assert sched.scale == "optimizer"
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]  # the first step runs at the optimizer's LR
    ref = reference_lrs([net], LOSSES)
    got = []
    for loss in LOSSES:
        sched.step(torch.tensor(loss))
        got.append(sched.get_last_lr())
    assert sched.first_fraction == pytest.approx(ref[0] / 0.8, rel=1e-6)
    assert got[0] == pytest.approx([0.1, 0.01], rel=1e-6)  # the second step too
    for lrs, r in zip(got, ref, strict=True):  # lr_g * s_t / s_0, never above lr_g / s_0
        assert lrs == pytest.approx([0.1 * r / ref[0], 0.01 * r / ref[0]], rel=1e-6)
        assert lrs[0] < 0.1 / sched.first_fraction


def test_the_default_respects_the_optimizers_lr_where_the_papers_gamma_would_not():
    # a 2-class task's loss: the paper's gamma (C=2) is far below the user's LR, the default is not
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, total_steps=30)
    sched.step(0.69)
    assert sched.get_last_lr()[0] == pytest.approx(0.1, rel=1e-6)
    assert sched.gammas == [None, None, None]  # no gamma is recomputed
    # Adam: its 1e-3 is the first LR, no SGD-scale gamma
    opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    sched = MLRSNetScheduler(opt, total_steps=30, initial_loss=2.3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-6)


def test_the_papers_protocol_is_one_argument_away():
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    sched = MLRSNetScheduler(opt, total_steps=30, scale="recompute", num_classes=2, initial_loss=0.69)
    gamma = recomputed_gamma(0.69, 2)
    assert sched.gammas[0] == pytest.approx(gamma) and gamma < 0.1
    assert opt.param_groups[0]["lr"] < gamma  # the paper's LR, whatever the optimizer's


def test_ceiling_is_none_and_optimizer_is_its_own_mode():
    net = make_net(gamma=0.8)
    a, b = two_group_optimizer(), two_group_optimizer()
    ceiling, default = MLRSNetScheduler(a, net, scale="ceiling"), MLRSNetScheduler(b, net)
    assert ceiling.scale is None and default.scale == "optimizer"
    for loss in LOSSES[:3]:
        ceiling.step(loss)
        default.step(loss)
    ratio = default.get_last_lr()[0] / ceiling.get_last_lr()[0]
    assert ratio == pytest.approx(1 / default.first_fraction, rel=1e-6)


def test_the_default_state_round_trips_with_its_first_fraction():
    net = make_net()
    opt = two_group_optimizer()
    first = MLRSNetScheduler(opt, net)
    for loss in LOSSES[:3]:
        first.step(loss)
    state = first.state_dict()
    opt2 = two_group_optimizer()
    second = MLRSNetScheduler(opt2, net)
    second.load_state_dict(state)
    assert second.first_fraction == first.first_fraction
    for loss in LOSSES[3:]:
        first.step(loss)
        second.step(loss)
        assert second.get_last_lr() == first.get_last_lr()
