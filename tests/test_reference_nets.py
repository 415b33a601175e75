"""The reference cells and the authors' published nets: width hidden // 2, their .pth format recognised by its
keys, read by default as their meta-test code reads it (network.py's cell) and by option as their meta-train
module would, the shipped paper bundle, the authors' own CIFAR-10 log reproduced from their nets, and our own
checkpoints loading exactly as they were trained."""

import json
import math
from pathlib import Path

import pytest
import torch

from mlrsnet.checkpoint import (
    from_reference_state_dict,
    is_reference_state_dict,
    load_mlrsnet,
    load_nets,
    resolve_checkpoint,
    save_bundle,
    save_mlrsnet,
)
from mlrsnet.errors import CheckpointError
from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma
from mlrsnet.schedules.scheduler import MLRSNetScheduler

LOG = Path(__file__).parent / "fixtures" / "reference_cifar10_log.json"
OURS = {"ih.0": "layer1.fc_i2h.0", "ih.2": "layer1.fc_i2h.2", "hh.0": "layer1.fc_h2h.0", "hh.2": "layer1.fc_h2h.2",
        "head": "layer3"}


def reference_state_dict(seed: int, hidden: int = 50) -> dict[str, torch.Tensor]:
    """Random weights in the authors' format (the shapes of their mlr_snet *.pth)."""
    g = torch.Generator().manual_seed(seed)
    w = hidden // 2

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.5

    return {
        "layer1.fc_i2h.0.weight": r(w, 1), "layer1.fc_i2h.0.bias": r(w),
        "layer1.fc_i2h.2.weight": r(4 * hidden, w), "layer1.fc_i2h.2.bias": r(4 * hidden),
        "layer1.fc_h2h.0.weight": r(w, hidden), "layer1.fc_h2h.0.bias": r(w),
        "layer1.fc_h2h.2.weight": r(4 * hidden, w), "layer1.fc_h2h.2.bias": r(4 * hidden),
        "layer3.weight": r(1, hidden), "layer3.bias": r(1),
    }


def _maps(sd: dict[str, torch.Tensor], x: float, h: torch.Tensor) -> list[torch.Tensor]:
    def mlp(prefix: str, v: torch.Tensor) -> torch.Tensor:
        hid = torch.relu(v @ sd[f"{prefix}.0.weight"].T + sd[f"{prefix}.0.bias"])
        return hid @ sd[f"{prefix}.2.weight"].T + sd[f"{prefix}.2.bias"]

    gates = mlp("layer1.fc_i2h", torch.tensor([[x]], dtype=h.dtype)) + mlp("layer1.fc_h2h", h)
    n = h.shape[1]
    return [gates[:, k * n:(k + 1) * n] for k in range(4)]


def meta_test_cell(sd: dict[str, torch.Tensor], x: float, h: torch.Tensor, c: torch.Tensor):
    """meta-test/model/network.py's LSTMCell and head, written from its equations, independently of
    mlrsnet.net: gates split as input, forget (no shift), candidate (tanh), output."""
    i, f, g, o = _maps(sd, x, h)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return float(torch.sigmoid(h @ sd["layer3.weight"].T + sd["layer3.bias"])), h, c


def meta_train_cell(sd: dict[str, torch.Tensor], x: float, h: torch.Tensor, c: torch.Tensor):
    """meta-train/image-classification/module.py's MLRSNetCell: input, forget - 1, output, candidate."""
    i, f, o, g = _maps(sd, x, h)
    c = torch.sigmoid(f - 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return float(torch.sigmoid(h @ sd["layer3.weight"].T + sd["layer3.bias"])), h, c


def our_cell(sd: dict[str, torch.Tensor], x: float, h: torch.Tensor, c: torch.Tensor):
    """The cell mlrsnet meta-trains (rows input, forget, candidate, output; forget gate shifted by -1), written
    the way mlrsnet.net computes it, so that equality is exact."""
    with torch.no_grad():
        gates = (torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(
            torch.tensor(x).reshape(1, 1), sd["ih.0.weight"], sd["ih.0.bias"])), sd["ih.2.weight"], sd["ih.2.bias"])
            + torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(h, sd["hh.0.weight"], sd["hh.0.bias"])),
                                         sd["hh.2.weight"], sd["hh.2.bias"]))
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f + -1.0) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return sd["gamma"] * torch.sigmoid(torch.nn.functional.linear(h, sd["head.weight"], sd["head.bias"])), h, c


CELLS = {"meta_test": meta_test_cell, "meta_train": meta_train_cell}
LOSSES = [2.3 * math.exp(-0.08 * t) + 0.05 * math.sin(t) for t in range(50)]


def _max_difference(net: MLRSNet, sd: dict[str, torch.Tensor], cell) -> float:
    h, c = torch.zeros(1, net.hidden_size), torch.zeros(1, net.hidden_size)
    state, diffs = None, []
    for loss in LOSSES:
        want, h, c = cell(sd, loss, h, c)
        with torch.no_grad():
            got, state = net(torch.tensor(loss), state)
        diffs.append(abs(float(got) / float(net.gamma) - want))
    return max(diffs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_authors_pth_reads_as_their_meta_test_cell_by_default(seed, tmp_path):
    sd = reference_state_dict(seed)
    path = tmp_path / "mlr_snet 1.pth"
    torch.save(sd, path)
    net, meta = load_mlrsnet(path)
    assert meta["source"] == "reference" and meta["reading"] == "meta_test" and float(net.gamma) == 1.0
    assert net.config.mlp_width == 25 and net.config.hidden_size == 50
    # float32, the precision of the authors' nets (float64 would amplify the rounding of the input loss
    # through 50 recurrent steps of random weights, not a reading error).
    assert _max_difference(net, sd, meta_test_cell) <= 1e-6
    # The other reading is an option, and it is a different cell.
    other, meta = load_mlrsnet(path, reading="meta_train")
    assert meta["reading"] == "meta_train"
    assert _max_difference(other, sd, meta_train_cell) <= 1e-6
    assert _max_difference(other, sd, meta_test_cell) > 1e-3 and _max_difference(net, sd, meta_train_cell) > 1e-3


def _authors_weights(net: MLRSNet) -> dict[str, torch.Tensor]:
    """A net's weights under the authors' key names (the rows as stored)."""
    sd = net.state_dict()
    return {f"{OURS[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in sd.items() if k != "gamma"}


@pytest.mark.parametrize("reading", ["auto", "meta_test", "meta_train"])
def test_the_shipped_paper_bundle_takes_either_reading_of_the_authors_weights(reading):
    path = resolve_checkpoint("paper_cifar10_resnet18")
    nets, meta = load_nets(path, reading=reading)
    assert len(nets) == 3 and meta["epochs"] == [1, 100, 200] and meta["gammas"] == [1.0, 1.0, 1.0]
    assert meta["reference_weights"] and all(n.config.mlp_width == 25 for n in nets)
    want = "meta_test" if reading == "auto" else reading
    assert meta["reading"] == want
    # The weights are the authors' rows, unchanged, whatever the reading.
    default, _ = load_nets(path)
    for net, plain in zip(nets, default, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), plain.state_dict().values(),
                                                     strict=True))
        assert _max_difference(net, _authors_weights(net), CELLS[want]) <= 1e-6
    sources = [s["sha256"] for s in meta["source_files"]]  # the published files' hashes (commit 5d1eec4)
    assert sources == ["7159d1e0b20dc1f2f340a8d73757b4b94fea923e62539653571bb75014bcb07d",
                       "c2da6fd9cd9015e8217b3e9ff3c604ae96888adfb675435252864b406eaebecd",
                       "5d19565c6065a0d1dff653a082ce65b8f7e66e00765f36e77f86b9cab1c9ea65"]
    assert "MIT" in (path.parent / "LICENSE-MLR-SNet").read_text()


def _settled(net: MLRSNet, losses: list[float], steps: int = 50) -> float:
    """The net's output (a fraction of gamma) after reading each loss ``steps`` times, state carried."""
    state = None
    with torch.no_grad():
        for loss in losses:
            for _ in range(steps):
                out, state = net(torch.tensor(loss), state)
    return float(out) / float(net.gamma)


def test_the_meta_test_reading_reproduces_the_authors_cifar10_log():
    """The authors' log (tests/fixtures/reference_cifar10_log.json) records the LR of every step of the
    meta-training run that wrote these nets. Fed the log's own training losses (the six epochs up to epoch
    E), the net saved after epoch E, times the log's gamma, gives the LR the log records at epoch E: under
    the meta-test reading (within a factor 1.6), never under the meta-train reading (16-25x too high)."""
    log = json.loads(LOG.read_text())
    # The log's gamma: the formula at a fresh 10-class model's loss ln 10 (its first LR, 0.417, is 0.62 of it).
    gamma = compute_gamma(math.log(10), 10)
    assert 0.66 < gamma < 0.68 and log["lr_first"][0] / gamma == pytest.approx(0.623, abs=0.01)
    path = resolve_checkpoint("paper_cifar10_resnet18")
    readings = {r: load_nets(path, reading=r)[0] for r in ("auto", "meta_train")}
    for net_index, epoch in ((1, 100), (2, 200)):
        losses = log["train_loss"][epoch - 6:epoch]
        logged = log["lr_mean"][epoch - 1]
        ratio = gamma * _settled(readings["auto"][net_index], losses) / logged
        assert 1 / 1.6 < ratio < 1.6, (epoch, ratio)
        assert gamma * _settled(readings["meta_train"][net_index], losses) / logged > 10
    # The anneal itself: the log's LR falls 15x from epoch 1 to epoch 100 and again to epoch 200; so do the nets.
    assert log["lr_mean"][0] / log["lr_mean"][99] > 10 and log["lr_mean"][199] < log["lr_mean"][99]
    outs = [_settled(net, log["train_loss"][e - 6:e]) for net, e in zip(readings["auto"], (6, 100, 200), strict=True)]
    assert outs[0] > 10 * outs[1] and outs[2] < outs[1]


def test_our_own_nets_load_exactly_as_they_were_trained(tmp_path):
    """Nets meta-trained here are the meta-train cell in our row order; a file without the cell fields
    (written before them) loads with the same cell, bit for bit, and no reading changes it."""
    nets, meta = load_nets(resolve_checkpoint("digits_cnn_sym40"))
    assert meta["reading"] == "as_trained"
    for net in nets:
        assert (net.config.forget_bias, net.config.gate_order) == (-1.0, "ifgo")
        sd = {k: v.clone() for k, v in net.state_dict().items()}
        h, c = torch.zeros(1, 50), torch.zeros(1, 50)
        state = None
        for loss in LOSSES:
            want, h, c = our_cell(sd, loss, h, c)
            with torch.no_grad():
                got, state = net(torch.tensor(loss), state)
            assert torch.equal(got.reshape(()), want.reshape(()))
    old = MLRSNet(MLRSNetConfig(), gamma=0.5)
    path = tmp_path / "old.pt"
    save_bundle(path, [old], [1])
    raw = torch.load(path, weights_only=False)
    for entry in raw["nets"]:  # a file of the format before forget_bias / gate_order were recorded
        entry["net_config"] = {k: v for k, v in entry["net_config"].items() if k not in ("forget_bias", "gate_order")}
    torch.save(raw, path)
    for reading in ("auto", "meta_train"):
        (net,), _ = load_nets(path, reading=reading)
        with torch.no_grad():
            assert torch.equal(net(torch.tensor(1.3))[0], old(torch.tensor(1.3))[0])
    with pytest.raises(CheckpointError) as e:
        load_nets(path, reading="meta_test")
    assert "applies to the authors' nets only: set reading=auto" in str(e.value) and "\n" not in str(e.value)


def test_the_scheduler_passes_the_reading_and_refuses_an_unknown_one(tmp_path):
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    by_default = MLRSNetScheduler(opt, "paper_cifar10_resnet18", total_steps=9)
    other = MLRSNetScheduler(opt, "paper_cifar10_resnet18", total_steps=9, reading="meta_train")
    assert [n.config.forget_bias for n in by_default.nets] == [0.0] * 3
    assert [n.config.forget_bias for n in other.nets] == [-1.0] * 3
    # The LSTM state carries over between nets of one shape whatever their cells: ours after the authors'.
    mixed = MLRSNetScheduler(opt, ["paper_cifar10_resnet18", "digits_cnn_sym40"], total_steps=12)
    assert len(mixed.nets) == 6
    with pytest.raises(CheckpointError, match="reading='sideways' is not one of auto, meta_test, meta_train"):
        MLRSNetScheduler(opt, "paper_cifar10_resnet18", total_steps=9, reading="sideways")


def test_a_gate_order_that_is_not_a_permutation_is_refused(tmp_path):
    with pytest.raises(ValueError, match="gate_order must order the four gates"):
        MLRSNetConfig(gate_order="iffo")
    path = tmp_path / "edited.pt"
    save_mlrsnet(path, MLRSNet(), task="digits_cnn")
    raw = torch.load(path, weights_only=False)
    raw["net_config"]["gate_order"] = "abcd"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="does not match the MLR-SNet architecture"):
        load_mlrsnet(path)


def test_default_cell_width_is_half_the_hidden_size():
    net = MLRSNet()
    assert net.ih[0].out_features == 25 and net.hh[0].out_features == 25
    assert net.ih[2].in_features == 25 and net.ih[2].out_features == 200
    assert sum(p.numel() for p in net.parameters()) == (25 + 25 + 25 * 200 + 200) + (50 * 25 + 25 + 25 * 200 + 200) + 51


def test_a_checkpoint_written_with_the_old_width_loads_by_its_stored_config(tmp_path):
    old = MLRSNet(MLRSNetConfig(mlp_ratio=2), gamma=0.669)
    assert old.ih[0].out_features == 100
    path = tmp_path / "old.pt"
    save_mlrsnet(path, old, task="digits_cnn")
    net, _ = load_mlrsnet(path)
    assert net.config.mlp_ratio == 2 and net.ih[0].out_features == 100
    with torch.no_grad():
        assert float(net(torch.tensor(1.0))[0]) == float(old(torch.tensor(1.0))[0])


def test_a_file_in_neither_format_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"layer1.weight": torch.zeros(2, 2)}, path)
    assert not is_reference_state_dict(torch.load(path))
    with pytest.raises(CheckpointError) as e:
        load_mlrsnet(path)
    assert "not an mlrsnet checkpoint" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_mlrsnet(tmp_path)


def test_from_reference_state_dict_reads_the_sizes_off_the_shapes():
    net = from_reference_state_dict(reference_state_dict(0, hidden=20))
    assert net.config.hidden_size == 20 and net.config.mlp_width == 10 and net.config.forget_bias == 0.0
    with pytest.raises(CheckpointError, match="reading='auto' of the authors' nets is not one of"):
        from_reference_state_dict(reference_state_dict(0), reading="auto")


@pytest.mark.slow
def test_transfer_reads_the_authors_bundle_as_configured(tmp_path):
    """``reading`` reaches the frozen nets of a transfer run, and the summary records it with each net's cell;
    under the meta-test reading the last third runs at a small fraction of the meta-train reading's LR."""
    from mlrsnet.transfer import transfer
    from tests.conftest import compose

    runs = {}
    for reading in ("auto", "meta_train"):
        cfg = compose("transfer", ["+query=digits_mlp", "epochs=3", "progress=false", "seed=0",
                                   "checkpoint=paper_cifar10_resnet18", f"reading={reading}"])
        runs[reading] = transfer(cfg, tmp_path / reading)
    assert runs["auto"]["reading"] == "auto" and runs["meta_train"]["reading"] == "meta_train"
    assert [c["forget_bias"] for c in runs["auto"]["cells"]] == [0.0] * 3
    assert [(c["forget_bias"], c["gate_order"]) for c in runs["meta_train"]["cells"]] == [(-1.0, "ifog")] * 3
    epochs = {r: [json.loads(line) for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()
                  if '"type": "epoch"' in line] for r in runs}
    assert epochs["auto"][-1]["lr_mean"] < 0.2 * epochs["meta_train"][-1]["lr_mean"]
