"""Comparing two sets of pieces feature by feature, after Yang & Lerch (2018).

For each per-piece feature (every key of `piece_metrics`), each set's values become a Gaussian
KDE (`scipy.stats.gaussian_kde`, Scott's bandwidth); the overlapping area of the two densities
(1 = same distribution, 0 = disjoint) and KL(reference || generated) in nats are integrated
numerically on one shared grid. Yang & Lerch's own code integrates each density on its own grid;
a shared grid is what makes the KL a KL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import gaussian_kde

from cadenza.metrics.music import Roll
from cadenza.metrics.music_sets import piece_metrics

GRID_POINTS = 1024  # per set; the shared grid is the union of both sets' points
# Densities are floored at this fraction of their peak (of the total, for histograms) inside the
# KL's log, so disjoint sets give a large finite KL (about 23 nats) rather than inf, which JSON
# cannot hold.
DENSITY_FLOOR = 1e-10


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr[np.isfinite(arr)]


def _kl(p: np.ndarray, q: np.ndarray, floor: float, grid: np.ndarray | None = None) -> float:
    """KL of probabilities (grid None) or of densities sampled on `grid`; >= 0."""
    integrand = p * np.log(np.maximum(p, floor) / np.maximum(q, floor))
    total = integrand.sum() if grid is None else np.trapezoid(integrand, grid)
    return max(0.0, float(total))  # rounding can leave identical densities a hair below 0


def compare_values(
    reference: Sequence[float], generated: Sequence[float]
) -> tuple[float, float, str]:
    """(overlap, KL(reference || generated) in nats, method) of two samples of one feature.

    Non-finite values (a metric undefined for a piece) are dropped first. Then:
    - fewer than 2 values in either set: (NaN, NaN, "too few values"), no density to estimate;
    - either set constant (no spread beyond rounding: a KDE's covariance is singular): both
      become histograms
      on shared bins (numpy's "auto" edges of the pooled values), overlap = sum of min of the
      two bin probabilities, KL the discrete KL: method "histogram";
    - otherwise the two KDEs on a shared grid covering each set's values and 4 of its
      bandwidths beyond either end, each renormalised to integrate to 1 there: method "kde".
    """
    ref, gen = _finite(reference), _finite(generated)
    if len(ref) < 2 or len(gen) < 2:
        return math.nan, math.nan, "too few values"
    if _constant(ref) or _constant(gen):
        edges = np.histogram_bin_edges(np.concatenate([ref, gen]), bins="auto")
        p = np.histogram(ref, edges)[0] / len(ref)
        q = np.histogram(gen, edges)[0] / len(gen)
        return float(np.minimum(p, q).sum()), _kl(p, q, DENSITY_FLOOR), "histogram"
    kde_ref, kde_gen = gaussian_kde(ref), gaussian_kde(gen)
    # Each density gets its own stretch of grid, so a narrow one is resolved even when the other
    # set spreads a hundred times wider; the two stretches are merged into one shared grid.
    grid = np.unique(np.concatenate([_support(kde_ref, ref), _support(kde_gen, gen)]))
    p, q = kde_ref(grid), kde_gen(grid)
    p, q = p / np.trapezoid(p, grid), q / np.trapezoid(q, grid)
    overlap = min(1.0, float(np.trapezoid(np.minimum(p, q), grid)))
    floor = DENSITY_FLOOR * max(p.max(), q.max())
    return overlap, _kl(p, q, floor, grid), "kde"


def _constant(values: np.ndarray) -> bool:
    # Relative: float sums can leave "equal" values 1e-16 apart, and a KDE of bandwidth 1e-16
    # is a spike no grid can integrate.
    return bool(np.ptp(values) <= 1e-9 * max(1.0, float(np.abs(values).max())))


def _support(kde: gaussian_kde, values: np.ndarray) -> np.ndarray:
    """GRID_POINTS from the smallest to the largest value, 4 bandwidths beyond either end."""
    bandwidth = math.sqrt(kde.covariance[0, 0])
    return np.linspace(values.min() - 4 * bandwidth, values.max() + 4 * bandwidth, GRID_POINTS)


def compare_sets(
    generated: Sequence[Roll],
    reference: Sequence[Roll],
    qn_threshold: int | None = None,
    dp_tolerance: float = 0.1,
) -> dict[str, dict[str, float | str]]:
    """{feature: {"overlap", "kl", "method"}} for every key of `piece_metrics` found in either
    set (reference's keys first), from the per-piece values; see `compare_values`."""
    per_ref = [piece_metrics(r, qn_threshold, dp_tolerance) for r in reference]
    per_gen = [piece_metrics(r, qn_threshold, dp_tolerance) for r in generated]
    keys = list(dict.fromkeys(k for m in per_ref + per_gen for k in m))
    out: dict[str, dict[str, float | str]] = {}
    for key in keys:
        overlap, kl, method = compare_values(
            [m.get(key, math.nan) for m in per_ref], [m.get(key, math.nan) for m in per_gen]
        )
        out[key] = {"overlap": overlap, "kl": kl, "method": method}
    return out
