"""The paper's architectures: shapes, gradients, parameter counts, LM state carry and weight tying."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.models import available_models, build_model
from mlrsnet.tasks.models.lm import LSTMLM
from mlrsnet.tasks.models.wrn import WideResNet


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def forward_backward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = m(x)
    out.float().pow(2).mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    return out


# Published counts for 10 classes (kuangliu/pytorch-cifar, xternalz/WideResNet-pytorch, torchvision layer
# shapes for MobileNetV2). preact_resnet18 adds the paper's final BN (+1,024) to kuangliu's count.
IMAGE_MODELS = {
    "resnet18": 11_173_962,
    "resnet34": 21_282_122,
    "preact_resnet18": 11_171_146,
    "wrn28_10": 36_479_194,
    "mobilenetv2": 2_236_682,
    "shufflenetv2": 1_263_854,
}


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
@pytest.mark.slow
def test_image_model_cifar_shapes_grads_and_param_count(name: str) -> None:
    torch.manual_seed(0)
    m = build_model(name, in_shape=(3, 32, 32), num_classes=10)
    assert abs(n_params(m) - IMAGE_MODELS[name]) <= 0.01 * IMAGE_MODELS[name]
    out = forward_backward(m, torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_exact_counts_where_we_match_the_reference_layer_for_layer() -> None:
    for name in ("resnet18", "wrn28_10", "mobilenetv2", "shufflenetv2"):
        assert n_params(build_model(name, in_shape=(3, 32, 32), num_classes=10)) == IMAGE_MODELS[name], name
    assert n_params(build_model("preact_resnet18", num_classes=10)) == IMAGE_MODELS["preact_resnet18"] + 1024


@pytest.mark.slow
def test_resnet18_tinyimagenet_size() -> None:
    m = build_model("resnet18", in_shape=(3, 64, 64), num_classes=200)
    assert forward_backward(m, torch.randn(2, 3, 64, 64)).shape == (2, 200)


def test_in_shape_sets_input_channels() -> None:
    m = build_model("resnet18", in_shape=(1, 32, 32), num_classes=5)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_registry_lists_paper_models() -> None:
    lms = {"lstm_lm", "lstm_lm_2layer", "lstm_lm_3layer", "transformer_lm"}
    assert set(IMAGE_MODELS) | {"wrn"} | lms <= set(available_models())


def test_wide_resnet_generic_depth_and_dropout() -> None:
    torch.manual_seed(0)
    m = build_model("wrn", depth=10, widen_factor=1, dropout=0.5, in_shape=(3, 16, 16), num_classes=3)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))
    with pytest.raises(ConfigError, match="6n\\+4"):
        WideResNet(depth=27)


# --- language models -------------------------------------------------------------------------------

V = 10_000
# embedding (tied with the decoder) + per layer 4 gates x (W_ih + W_hh + b_ih + b_hh) + decoder bias
LSTM_2LAYER = V * 512 + 2 * 4 * (512 * 512 * 2 + 2 * 512) + V


def test_ptb_lstm_param_counts_and_shapes() -> None:
    m2 = build_model("lstm_lm_2layer", vocab_size=V)
    assert n_params(m2) == LSTM_2LAYER == 9_332_496
    lstm_layer = 4 * (512 * 512 * 2 + 2 * 512)
    assert n_params(build_model("lstm_lm_3layer", vocab_size=V)) == LSTM_2LAYER + lstm_layer
    tokens = torch.randint(0, V, (2, 5))
    logits, (h, c) = m2(tokens)
    assert logits.shape == (2, 5, V) and h.shape == c.shape == (2, 2, 512)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in m2.parameters())


@pytest.mark.parametrize("name", ["lstm_lm_2layer", "lstm_lm_3layer", "transformer_lm"])
def test_weight_tying_shares_the_tensor(name: str) -> None:
    m = build_model(name, vocab_size=100)
    assert m.decoder.weight is m.encoder.weight
    logits, _ = m(torch.randint(0, 100, (2, 4)))
    logits.sum().backward()
    assert m.encoder.weight.grad is m.decoder.weight.grad is not None


def test_untied_lstm_has_separate_decoder() -> None:
    m = build_model("lstm_lm", vocab_size=100, emb_size=16, hidden_size=16, num_layers=1, tie_weights=False)
    assert m.decoder.weight is not m.encoder.weight
    assert n_params(m) == 100 * 16 + 4 * (16 * 16 * 2 + 2 * 16) + 100 * 16 + 100
    with pytest.raises(ConfigError, match="emb_size == hidden_size"):
        LSTMLM(100, emb_size=16, hidden_size=32)


def test_lstm_hidden_carry_matches_one_long_sequence() -> None:
    torch.manual_seed(0)
    m = build_model("lstm_lm_2layer", vocab_size=100).eval()
    tokens = torch.randint(0, 100, (2, 10))
    whole, _ = m(tokens)
    first, hidden = m(tokens[:, :5])
    second, _ = m(tokens[:, 5:], hidden)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    zero, _ = m(tokens, m.init_hidden(2))
    torch.testing.assert_close(zero, whole)


def test_lstm_lm_under_functional_call_uses_the_given_tied_weight() -> None:
    m = build_model("lstm_lm_2layer", vocab_size=100).eval()
    tokens = torch.randint(0, 100, (2, 6))
    params = {n: p.detach().clone().requires_grad_() for n, p in m.named_parameters()}
    assert "decoder.weight" not in params  # tied: one tensor, named once
    out, _ = functional_call(m, params, (tokens,))
    torch.testing.assert_close(out, m(tokens)[0])
    out.sum().backward()
    assert all(p.grad is not None for p in params.values())


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_lm_shapes_causality_and_no_state(positions: str) -> None:
    torch.manual_seed(0)
    m = build_model("transformer_lm", vocab_size=100, positions=positions, max_len=16)
    assert m.init_hidden(2) is None
    tokens = torch.randint(0, 100, (2, 8))
    logits, hidden = m(tokens)
    assert logits.shape == (2, 8, 100) and hidden is None
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 100
    torch.testing.assert_close(m(changed)[0][:, :5], m(tokens)[0][:, :5])
    assert not torch.allclose(m(changed)[0][:, 5:], m(tokens)[0][:, 5:])
    with pytest.raises(ValueError, match="max_len"):
        m(torch.randint(0, 100, (1, 17)))


def test_lm_vocab_from_num_classes_and_in_shape_ignored() -> None:
    m = build_model("lstm_lm_2layer", num_classes=50, in_shape=(35,))
    assert m.encoder.num_embeddings == 50
    assert build_model("transformer_lm", vocab_size=50, num_classes=50).encoder.num_embeddings == 50
    with pytest.raises(ConfigError, match="disagree"):
        build_model("lstm_lm_2layer", vocab_size=50, num_classes=10)
    with pytest.raises(ConfigError, match="vocabulary size"):
        build_model("transformer_lm")
    with pytest.raises(ConfigError, match="positions"):
        build_model("transformer_lm", vocab_size=50, positions="rotary")
