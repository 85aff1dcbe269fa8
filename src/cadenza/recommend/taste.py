"""TasteEncoder: a listener's taste vector from what they have played (and an optional context).

    t_h(user) = normalise( tanh( normalise(history) @ Q_h )  +  context_h[c] )

`history` [B, I] holds the user's weights over the catalog (log play counts, or 1 per listened
track). Because taste is a function of the history rather than a free vector per user ID, the
same learned encoder gives a known user's taste (from their training history, kept inside the
checkpoint) and a new user's taste from a listening history seen for the first time: no
retraining, no gradient step (Liang et al. 2018's Mult-DAE family of user encoders). The
optional context (a requested style or mood tag) shifts the taste towards that part of the
catalog; it is trained by asking the model for the user's own tracks of one context at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TasteEncoder(nn.Module):
    def __init__(self, n_items: int, dim: int, heads: int, n_contexts: int = 0) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.history = nn.Parameter(torch.randn(n_items, heads * dim) * 0.01)  # Q [I, H*D]
        self.context = nn.Embedding(n_contexts, heads * dim) if n_contexts > 0 else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)  # no context and a new context start equal

    def forward(
        self,
        history: torch.Tensor,
        context: torch.Tensor | None = None,
        dropout: float = 0.0,
    ) -> torch.Tensor:
        """history [B, I] -> per-head taste [B, H, D] (not yet normalised).

        context [B] long, -1 where none was asked for. `dropout` hides each listened track
        with that probability, independently per head (a denoising objective: the model must
        predict the whole history from part of it, and the heads see different parts).
        """
        b = history.shape[0]
        if dropout > 0:
            keep = torch.rand(self.heads, *history.shape, device=history.device) >= dropout
            x = F.normalize(history.unsqueeze(0) * keep, dim=-1)  # [H, B, I]
            q = self.history.view(-1, self.heads, self.dim).transpose(0, 1)  # [H, I, D]
            t = torch.tanh(torch.bmm(x, q)).transpose(0, 1)  # [B, H, D]
        else:
            t = torch.tanh(F.normalize(history, dim=-1) @ self.history).view(b, self.heads, -1)
        return self._with_context(t, context)

    def forward_rows(
        self, weights: torch.Tensor, items: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """forward() of histories that are zero outside `items` [P]: weights [B, P] ->
        [B, H, D], reading P rows of Q instead of multiplying through all I (explanations
        score a history with each played track left out: B = P rows of P tracks)."""
        b = weights.shape[0]
        t = torch.tanh(F.normalize(weights, dim=-1) @ self.history[items]).view(b, self.heads, -1)
        return self._with_context(t, context)

    def _with_context(self, t: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self.context is not None and context is not None:
            b = t.shape[0]
            asked = (context >= 0).float().view(b, 1, 1)
            t = t + self.context(context.clamp(min=0)).view(b, self.heads, self.dim) * asked
        return t
