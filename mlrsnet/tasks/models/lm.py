"""Word-level language models for Penn Treebank.

Every language model here has the same interface:
``forward(tokens: LongTensor (B, T), hidden=None) -> (logits (B, T, V), new_hidden)`` where
``hidden=None`` means a zero initial state, plus ``init_hidden(batch_size)`` (``None`` for stateless
models). Carrying ``new_hidden`` into the next batch (truncated BPTT) is the caller's job, including
detaching it.

Registered factories take the vocabulary size as ``vocab_size``. The task layer passes ``num_classes``
and ``in_shape`` to every model; for a language model ``num_classes`` *is* the vocabulary size, so it is
accepted in place of (or, when equal, together with) ``vocab_size``, and ``in_shape`` is ignored.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.models.registry import register_model

LSTMHidden = tuple[torch.Tensor, torch.Tensor]


def _resolve_vocab(vocab_size: int | None, num_classes: int | None) -> int:
    if vocab_size is None and num_classes is None:
        raise ConfigError("a language model needs its vocabulary size: pass vocab_size (or num_classes)")
    if vocab_size is not None and num_classes is not None and vocab_size != num_classes:
        raise ConfigError(f"vocab_size={vocab_size} and num_classes={num_classes} disagree; a language "
                          "model's classes are its vocabulary, so set only one of them")
    return int(vocab_size if vocab_size is not None else num_classes)  # type: ignore[arg-type]


class LSTMLM(nn.Module):
    """Embedding -> dropout -> multi-layer LSTM (dropout between layers) -> dropout -> linear decoder.

    As in the PyTorch word_language_model example (``RNNModel``; Zaremba et al. 2014 for the dropout
    placement, Press & Wolf 2017 / Inan et al. 2017 for weight tying). With ``tie_weights`` the decoder
    reuses the embedding matrix, which requires ``emb_size == hidden_size``.
    """

    def __init__(self, vocab_size: int, emb_size: int = 512, hidden_size: int = 512, num_layers: int = 2,
                 dropout: float = 0.5, tie_weights: bool = True) -> None:
        super().__init__()
        if tie_weights and emb_size != hidden_size:
            raise ConfigError(f"tie_weights needs emb_size == hidden_size, got {emb_size} and {hidden_size}")
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, emb_size)
        self.rnn = nn.LSTM(emb_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                           batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        _init_embeddings(self.encoder, self.decoder, tie_weights)

    def init_hidden(self, batch_size: int) -> LSTMHidden:
        """Zero ``(h, c)``, each of shape ``(num_layers, batch_size, hidden_size)``."""
        w = self.decoder.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        return w.new_zeros(shape), w.new_zeros(shape)

    def forward(self, tokens: torch.Tensor,
                hidden: LSTMHidden | None = None) -> tuple[torch.Tensor, LSTMHidden]:
        out, new_hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
        return self.decoder(self.drop(out)), new_hidden


class TransformerLM(nn.Module):
    """Small causal Transformer LM: scaled embedding + positions -> pre-LN ``nn.TransformerEncoder`` with
    a causal mask -> final LayerNorm -> tied linear decoder.

    After the PyTorch word_language_model example (``TransformerModel``, Vaswani et al. 2017) with
    pre-LayerNorm blocks and a final LayerNorm as in GPT-2 (Radford et al. 2019), which train stably
    without warm-up. ``positions`` is ``"sinusoidal"`` (fixed, Vaswani et al.) or ``"learned"``; inputs
    may be at most ``max_len`` tokens long. Stateless: the returned hidden state is always ``None``.
    """

    def __init__(self, vocab_size: int, d_model: int = 256, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 1024, dropout: float = 0.2, positions: str = "sinusoidal",
                 max_len: int = 512, tie_weights: bool = True) -> None:
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ConfigError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        self.d_model = d_model
        self.max_len = max_len
        self.encoder = nn.Embedding(vocab_size, d_model)
        self.pos_emb: nn.Embedding | None = None
        if positions == "learned":
            self.pos_emb = nn.Embedding(max_len, d_model)
            nn.init.normal_(self.pos_emb.weight, 0.0, 0.02)
        else:
            pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
            freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
            table = torch.zeros(max_len, d_model)
            table[:, 0::2] = torch.sin(pos * freq)
            table[:, 1::2] = torch.cos(pos * freq)
            self.register_buffer("pos_table", table, persistent=False)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                                 enable_nested_tensor=False)
        self.decoder = nn.Linear(d_model, vocab_size)
        _init_embeddings(self.encoder, self.decoder, tie_weights)

    def init_hidden(self, batch_size: int) -> None:
        """No recurrent state."""
        return None

    def forward(self, tokens: torch.Tensor, hidden: None = None) -> tuple[torch.Tensor, None]:
        t = tokens.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len} of TransformerLM")
        x = self.encoder(tokens) * math.sqrt(self.d_model)
        x = x + (self.pos_emb.weight[:t] if self.pos_emb is not None else self.pos_table[:t])
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=tokens.device, dtype=x.dtype)
        out = self.transformer(self.drop(x), mask=mask, is_causal=True)
        return self.decoder(out), None


@register_model("lstm_lm")
def lstm_lm(vocab_size: int | None = None, emb_size: int = 512, hidden_size: int = 512, num_layers: int = 2,
            dropout: float = 0.5, tie_weights: bool = True, num_classes: int | None = None,
            in_shape: object = None) -> LSTMLM:
    """Generic :class:`LSTMLM`; ``num_classes`` is an alias of ``vocab_size``, ``in_shape`` is ignored."""
    return LSTMLM(_resolve_vocab(vocab_size, num_classes), emb_size, hidden_size, num_layers, dropout,
                  tie_weights)


@register_model("lstm_lm_2layer")
def lstm_lm_2layer(vocab_size: int | None = None, dropout: float = 0.5, num_classes: int | None = None,
                   in_shape: object = None) -> LSTMLM:
    """The MLR-SNet paper's PTB model: 2-layer LSTM, 512 embedding/hidden units, dropout 0.5, tied weights
    (9,332,496 parameters for a 10,000-word vocabulary)."""
    return LSTMLM(_resolve_vocab(vocab_size, num_classes), 512, 512, 2, dropout, True)


@register_model("lstm_lm_3layer")
def lstm_lm_3layer(vocab_size: int | None = None, dropout: float = 0.5, num_classes: int | None = None,
                   in_shape: object = None) -> LSTMLM:
    """The MLR-SNet paper's 3-layer PTB model: as ``lstm_lm_2layer`` with a third LSTM layer."""
    return LSTMLM(_resolve_vocab(vocab_size, num_classes), 512, 512, 3, dropout, True)


@register_model("transformer_lm")
def transformer_lm(vocab_size: int | None = None, d_model: int = 256, nhead: int = 4, num_layers: int = 2,
                   dim_feedforward: int = 1024, dropout: float = 0.2, positions: str = "sinusoidal",
                   max_len: int = 512, tie_weights: bool = True, num_classes: int | None = None,
                   in_shape: object = None) -> TransformerLM:
    """Small causal :class:`TransformerLM`; ``num_classes`` is an alias of ``vocab_size``."""
    return TransformerLM(_resolve_vocab(vocab_size, num_classes), d_model, nhead, num_layers, dim_feedforward,
                         dropout, positions, max_len, tie_weights)


def _init_embeddings(encoder: nn.Embedding, decoder: nn.Linear, tie_weights: bool) -> None:
    """Uniform(-0.1, 0.1) embedding and decoder weights, zero decoder bias, as in PyTorch's
    word_language_model; with ``tie_weights`` the decoder shares the embedding matrix."""
    nn.init.uniform_(encoder.weight, -0.1, 0.1)
    nn.init.zeros_(decoder.bias)
    if tie_weights:
        decoder.weight = encoder.weight
    else:
        nn.init.uniform_(decoder.weight, -0.1, 0.1)
