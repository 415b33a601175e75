"""The reference cell and the authors' published nets: width hidden // 2, their .pth format recognised by its
keys and converted (gate order), the shipped paper bundle, old checkpoints loading by their stored config."""

import math

import pytest
import torch

from mlrsnet.checkpoint import (
    from_reference_state_dict,
    is_reference_state_dict,
    load_mlrsnet,
    load_nets,
    resolve_checkpoint,
    save_mlrsnet,
)
from mlrsnet.errors import CheckpointError
from mlrsnet.net import MLRSNet, MLRSNetConfig


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


def reference_cell(sd: dict[str, torch.Tensor], x: float, h: torch.Tensor, c: torch.Tensor):
    """The reference cell written from its equations, independently of mlrsnet.net: Linear-ReLU-Linear maps,
    gates split as input, forget, output, cell candidate; forget gate shifted by -1; sigmoid head."""
    def mlp(prefix: str, v: torch.Tensor) -> torch.Tensor:
        hid = torch.relu(v @ sd[f"{prefix}.0.weight"].T + sd[f"{prefix}.0.bias"])
        return hid @ sd[f"{prefix}.2.weight"].T + sd[f"{prefix}.2.bias"]

    gates = mlp("layer1.fc_i2h", torch.tensor([[x]], dtype=h.dtype)) + mlp("layer1.fc_h2h", h)
    n = h.shape[1]
    i, f, o, g = (gates[:, k * n:(k + 1) * n] for k in range(4))
    c = torch.sigmoid(f - 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    out = torch.sigmoid(h @ sd["layer3.weight"].T + sd["layer3.bias"])
    return float(out), h, c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converted_reference_net_matches_an_independent_reference_cell(seed, tmp_path):
    sd = reference_state_dict(seed)
    path = tmp_path / "mlr_snet 1.pth"
    torch.save(sd, path)
    net, meta = load_mlrsnet(path)
    assert meta["source"] == "reference" and float(net.gamma) == 1.0
    assert net.config.mlp_width == 25 and net.config.hidden_size == 50
    # float32, the precision of the authors' nets (float64 would amplify the rounding of the input loss
    # through 50 recurrent steps of random weights, not a conversion error).
    h, c = torch.zeros(1, 50), torch.zeros(1, 50)
    state = None
    diffs = []
    losses = [2.3 * math.exp(-0.08 * t) + 0.05 * math.sin(t) for t in range(50)]
    for loss in losses:
        want, h, c = reference_cell(sd, loss, h, c)
        with torch.no_grad():
            got, state = net(torch.tensor(loss), state)
        diffs.append(abs(float(got) - want))
    assert max(diffs) <= 1e-6, max(diffs)
    # The gate order matters: without the conversion the outputs differ.
    naive = MLRSNet(MLRSNetConfig(), gamma=1.0)
    naive.load_state_dict({**{k: v for k, v in net.state_dict().items()}, **{
        "ih.2.weight": sd["layer1.fc_i2h.2.weight"], "ih.2.bias": sd["layer1.fc_i2h.2.bias"],
        "hh.2.weight": sd["layer1.fc_h2h.2.weight"], "hh.2.bias": sd["layer1.fc_h2h.2.bias"]}})
    with torch.no_grad():
        first_naive, _ = naive(torch.tensor(losses[0]), None)
    assert abs(float(first_naive) - reference_cell(sd, losses[0], torch.zeros(1, 50), torch.zeros(1, 50))[0]) > 1e-4


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


def test_shipped_paper_bundle_holds_the_authors_three_nets():
    path = resolve_checkpoint("paper_cifar10_resnet18")
    nets, meta = load_nets(path)
    assert len(nets) == 3 and meta["epochs"] == [1, 100, 200] and meta["gammas"] == [1.0, 1.0, 1.0]
    assert all(n.config.mlp_width == 25 for n in nets)
    # The authors' nets emit about 0.7 (of gamma) for almost any loss: the annealing of a transferred
    # schedule comes from the swaps and the gamma recompute.
    for net in nets:
        state = None
        outs = []
        for loss in (2.3, 1.5, 0.8, 0.3, 0.05):
            with torch.no_grad():
                out, state = net(torch.tensor(loss), state)
            outs.append(float(out))
        assert all(0.5 < o < 0.9 for o in outs), outs
    assert "MIT" in (path.parent / "LICENSE-MLR-SNet").read_text()


def test_from_reference_state_dict_reads_the_sizes_off_the_shapes():
    net = from_reference_state_dict(reference_state_dict(0, hidden=20))
    assert net.config.hidden_size == 20 and net.config.mlp_width == 10
