"""Pre-norm (DETR-style) transformer used inside the AEG bottleneck.

Sequences are sequence-first ``(L, B, D)`` as in ``nn.MultiheadAttention(batch_first=False)``,
whose packed ``in_proj_weight``/``out_proj`` parameters are the checkpoint keys. There is
no positional encoding on the memory; the decoder adds the style query embedding to its
queries. Dropout layers are omitted: the released models are only run in eval mode, and
the parameter-free dropout modules carry no state-dict keys. Attention is called with
the default ``need_weights=True`` on purpose: that is the explicit softmax path the
official code takes, rather than the fused kernel, so outputs match bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EncoderLayer(nn.Module):
    """``x += SelfAttn(LN1(x)); x += W2 relu(W1 LN2(x))``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        h = self.norm1(src)
        src = src + self.self_attn(h, h, h)[0]
        return src + self.linear2(F.relu(self.linear1(self.norm2(src))))


class DecoderLayer(nn.Module):
    """Self-attention, cross-attention to the memory, feed-forward; each pre-normed.

    ``query_pos`` is added to the queries (and self-attention keys), never to values.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(tgt)
        q = h + query_pos
        tgt = tgt + self.self_attn(q, q, h)[0]
        h = self.norm2(tgt)
        tgt = tgt + self.multihead_attn(h + query_pos, memory, memory)[0]
        return tgt + self.linear2(F.relu(self.linear1(self.norm3(tgt))))


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` then a final LayerNorm."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src)
        return self.norm(src)


class Decoder(nn.Module):
    """A stack of :class:`DecoderLayer` then a final LayerNorm.

    DETR's ``return_intermediate`` stack is not built: PASL only reads the last entry,
    which equals the final-normed output returned here.
    """

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, dim_feedforward) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tgt = layer(tgt, memory, query_pos)
        return self.norm(tgt)
