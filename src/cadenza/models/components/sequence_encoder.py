"""One vector per piece from any codec's steps: the classifier family's encoder.

Shapes: B pieces, T codec steps, In input width (frame keys, mel bins, or flattened tracks),
V vocabulary, D width, H GRU units per direction.

    steps [B, T, In] float | ids [B, T] (or [B, T, K] tracks) long
      -> input projection / embedding (tracks summed)              [B, T, D]
      -> 2 convolutions, kernel 5, stride 2 (local motifs; T / 4)  [B, T/4, D]
      -> bidirectional GRU                                          [B, T/4, 2H]
      -> mean and max over each piece's real steps                  [B, 4H]

The strided convolutions make a 4,000-frame piece a 1,000-step recurrence; mean and max pooling
make the vector independent of length, so a model trained on crops reads whole pieces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (2, 2)


class SequenceEncoder(nn.Module):
    def __init__(
        self, input_dim: int | None, vocab_size: int | None, width: int, hidden: int, dropout: float
    ) -> None:
        super().__init__()
        if (input_dim is None) == (vocab_size is None):
            raise ValueError("a SequenceEncoder reads either float steps or token ids")
        self.project = nn.Linear(input_dim, width) if input_dim is not None else None
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0) if vocab_size else None
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 5, stride=s, padding=2) for s in STRIDES)
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out_dim = 4 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x [B, T, ...] padded, lengths [B] -> [B, 4H]."""
        if self.embed is not None:
            h = self.embed(x.long())  # [B, T, D] or [B, T, K, D]
            if h.dim() == 4:
                h = h.sum(2)  # the tracks of a step together
        else:
            h = self.project(x.flatten(2).float())  # [B, T, D]
        # Padding is zeroed before every convolution: a projection's bias (or a convolution's)
        # would otherwise leak past a piece's end into its last real steps.
        h = _zero_padding(self.drop(h).transpose(1, 2), lengths)  # [B, D, T]
        for conv, stride in zip(self.convs, STRIDES, strict=True):
            lengths = (lengths + stride - 1) // stride
            h = _zero_padding(F.gelu(conv(h)), lengths)
        h = self.drop(h.transpose(1, 2))  # [B, T', D]
        lengths = lengths.clamp(1, h.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(
            h, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # [B, T'', 2H]
        mask = torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None].to(
            out.device
        )  # [B, T'']
        m = mask[..., None].to(out.dtype)
        mean = (out * m).sum(1) / m.sum(1)
        peak = out.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return torch.cat([mean, peak], dim=-1)


def _zero_padding(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """h [B, D, T] with every step at or after its row's length set to 0."""
    keep = torch.arange(h.shape[2], device=h.device)[None, :] < lengths[:, None].to(h.device)
    return h * keep[:, None, :].to(h.dtype)
