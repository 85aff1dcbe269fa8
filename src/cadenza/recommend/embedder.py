"""TrackEmbedder: one function from a track to its embedding, for catalog and generated tracks.

A track is embedded from two signals, per head h of the model's small ensemble:

    e_h(track) = normalise( id_h[track] * known(track)  +  content_h(features(track)) )

- `id_h`: a learned vector per catalog track (the collaborative signal; what plays taught us);
- `content_h`: an MLP over the track's content features (symbolic features of its notes, audio
  features, or Last.fm tags), so a track nobody has played (a cold catalog track, or a piece the
  generator wrote a second ago) still gets an embedding, from content alone.

During training each track's ID vector is hidden with probability `id_dropout`, so the content
path learns to stand on its own instead of leaning on the IDs. The heads are concatenated and
scaled by 1/sqrt(H): an inner product of two such vectors is the mean cosine over heads, so any
inner-product index (`cadenza.recommend.index`) ranks by the model's own score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def heads_to_vector(x: torch.Tensor) -> torch.Tensor:
    """[N, H, D] -> [N, H * D]: each head unit-normalised, the whole scaled by 1/sqrt(H)."""
    return F.normalize(x, dim=-1).flatten(1) / math.sqrt(x.shape[1])


class TrackEmbedder(nn.Module):
    def __init__(
        self, n_items: int, feature_dim: int, dim: int, heads: int, hidden: int = 512
    ) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.ids = nn.Embedding(n_items, heads * dim)
        nn.init.normal_(self.ids.weight, std=0.01)
        # No content at all (feature_dim 0) leaves an ID-only model: cold tracks then embed to a
        # constant, which the caller is told about (RecommenderModule.embed_tracks).
        self.content = (
            nn.Sequential(nn.Linear(feature_dim, hidden), nn.GELU(), nn.Linear(hidden, heads * dim))
            if feature_dim > 0
            else None
        )

    def forward(
        self,
        features: torch.Tensor | None,
        ids: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-head track vectors [N, H, D] (not yet normalised).

        features [N, F] (standardised content features; None when feature_dim is 0), ids [N]
        catalog indices of the same tracks (None: no track has an ID, e.g. generated ones),
        known [N] bool/float: which of them have a trained ID vector (the rest use content only).
        """
        n = features.shape[0] if features is not None else ids.shape[0]  # type: ignore[union-attr]
        out = torch.zeros(n, self.heads * self.dim, device=self.ids.weight.device)
        if ids is not None:
            gate = known.float().unsqueeze(1) if known is not None else 1.0
            out = out + self.ids(ids) * gate
        if self.content is not None and features is not None:
            out = out + self.content(features)
        return out.view(n, self.heads, self.dim)
