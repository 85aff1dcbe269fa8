"""Text -> taste: a ridge map from sentence vectors (`text.py`) into the recommender's taste space.

Fitted on pairs the training data gives: (a listener's description, the taste their training
history gives) where the catalog has descriptions of listeners (Last.fm: the tags each user
applied to artists in training), and (a track's text, the taste of a listener who played only
that track) for every track with text (Last.fm: its tags; the four-style catalog: its style's
description). The second kind needs no written listener at all, so every catalog with track
texts gets a map.

    taste(text) = heads_to_vector( e(text) @ W + b )       W [E, H*D], b [H*D]

The ridge penalty is chosen on a held-out fifth of the pairs (mean cosine between predicted and
true taste), then the map is refitted on all of them. One SVD of the centred inputs per set serves
every penalty, so refitting after each validation epoch costs a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HOLDOUT = 0.2


@dataclass
class TextMap:
    weights: np.ndarray  # [E + 1, T] float32: W, then the bias row
    alpha: float  # the chosen ridge penalty
    heldout_cosine: float  # mean cosine of predicted vs true taste on the held-out pairs
    pairs: int


class _Ridge:
    """Centred ridge regression from fixed inputs x [N, E] to any targets y [N, T]."""

    def __init__(self, x: np.ndarray) -> None:
        self.x_mean = x.mean(axis=0)
        u, s, vt = np.linalg.svd(x - self.x_mean, full_matrices=False)
        self.u, self.s, self.vt = u, s, vt

    def solve(self, y: np.ndarray, alpha: float) -> np.ndarray:
        """-> [E + 1, T]: W, then b, so that x @ W + b fits y."""
        y_mean = y.mean(axis=0)
        w = self.vt.T @ ((self.s / (self.s**2 + alpha))[:, None] * (self.u.T @ (y - y_mean)))
        return np.vstack([w, y_mean - self.x_mean @ w]).astype(np.float32)


def apply_map(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ weights[:-1] + weights[-1]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((num / np.maximum(den, 1e-12)).mean())


class TextMapFitter:
    """Holds the pairs' sentence vectors (fixed) and fits a TextMap to any targets for them."""

    def __init__(self, x: np.ndarray, seed: int = 0, alphas: tuple[float, ...] = ALPHAS) -> None:
        if len(x) < 5:
            raise ValueError(f"a text map needs at least 5 (text, taste) pairs, got {len(x)}")
        self.x, self.alphas = np.asarray(x, np.float64), alphas
        order = np.random.default_rng(seed).permutation(len(x))
        n_out = max(1, int(round(HOLDOUT * len(x))))
        self.held, self.fit_rows = order[:n_out], order[n_out:]
        self._part = _Ridge(self.x[self.fit_rows])
        self._all = _Ridge(self.x)

    def fit(self, y: np.ndarray) -> TextMap:
        y = np.asarray(y, np.float64)
        scores = {
            a: _cosine(apply_map(self._part.solve(y[self.fit_rows], a), self.x[self.held]),
                       y[self.held])
            for a in self.alphas
        }  # fmt: skip
        alpha = max(scores, key=lambda a: scores[a])
        return TextMap(self._all.solve(y, alpha), alpha, scores[alpha], len(y))


def text_pairs(catalog: Any, max_pairs: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """(users with words [U'], tracks with words [I'], their texts, users' first) of a Catalog;
    ConfigError when it has none, since text -> taste then has nothing to learn from.
    `max_pairs`: a seeded random subset of at most that many (embedding every text is the cost
    of a fit: ~30 s for Last.fm's 3,300 on two cores), users and tracks in proportion."""
    from cadenza.errors import ConfigError

    users = [(u, t) for u, t in enumerate(catalog.user_text or []) if t]
    items = [(i, t) for i, t in enumerate(catalog.item_text or []) if t]
    if max_pairs is not None and len(users) + len(items) > max_pairs:
        n_users = len(users)
        keep = np.sort(np.random.default_rng(0).choice(n_users + len(items), max_pairs,
                                                       replace=False))  # fmt: skip
        users, items = ([users[k] for k in keep if k < n_users],
                        [items[k - n_users] for k in keep if k >= n_users])  # fmt: skip
    if len(users) + len(items) < 5:
        where = catalog.description or "in memory"
        raise ConfigError(f"model.text=true, but the catalog ({where}) has words for "
                          f"{len(users)} listeners and {len(items)} tracks; set model.text=false "
                          "or use a catalog with tags or style texts")  # fmt: skip
    return (np.array([u for u, _ in users], np.int64), np.array([i for i, _ in items], np.int64),
            [t for _, t in users] + [t for _, t in items])  # fmt: skip
