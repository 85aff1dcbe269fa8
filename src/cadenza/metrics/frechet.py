"""A Fréchet distance between two sets of MIDI pieces, in the embedding of our own classifier.

    FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))

between Gaussians fitted to the embeddings of generated (g) and reference (r) pieces, as FID and
Fréchet Music Distance (Retkowski et al., 2024) do. The embedding is a trained classifier's
penultimate layer (`ClassifierModule.embed`): a vector that must separate styles (or composers),
so it holds what tells one kind of music from another, it loads offline from a checkpoint we
train, and it reads any codec the classifier was trained on.

With a few hundred pieces in 64-256 dimensions the sample covariance is singular or nearly so,
so both covariances are shrinkage-estimated (Ledoit-Wolf). A bootstrap over pieces of both sets
gives the 2.5th and 97.5th percentiles of the resampled distances. A Fréchet distance is biased
upward, the more so the fewer distinct pieces a set holds, and a resample repeats pieces: for
two sets drawn from the same music the whole interval can sit above the point estimate. Read it
as the spread of the distance, and compare sets of equal sizes. Each generated piece gets an
outlier score, its Mahalanobis distance from the reference Gaussian, beside the reference
pieces' own distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits


def fit_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings [N, D] -> (mean [D], Ledoit-Wolf covariance [D, D])."""
    from sklearn.covariance import LedoitWolf

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"a Gaussian needs at least 2 embeddings [N, D], got {list(x.shape)}")
    return x.mean(0), LedoitWolf().fit(x).covariance_


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Between N(mu1, s1) and N(mu2, s2). tr((s1 s2)^(1/2)) is the sum of the square roots of
    the eigenvalues of s1^(1/2) s2 s1^(1/2), which is symmetric: no complex sqrtm round-off."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = np.linalg.eigvalsh(root1 @ s2 @ root1)
    cross = np.sqrt(np.clip(middle, 0.0, None)).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(d, 0.0)


def mahalanobis(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each row of x [N, D] -> its Mahalanobis distance from N(mu, cov) [N]."""
    diff = np.asarray(x, dtype=np.float64) - mu
    return np.sqrt(np.einsum("nd,nd->n", diff @ np.linalg.inv(cov), diff).clip(0.0))


def frechet_report(
    generated: np.ndarray,
    reference: np.ndarray,
    names: Sequence[str] | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """{"frechet", "ci95": [lo, hi], "bootstrap", "n": {...}, "outliers": [{"piece",
    "mahalanobis", "reference_percentile"}] sorted most outlying first}."""
    g, r = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    mu_g, s_g = fit_gaussian(g)
    mu_r, s_r = fit_gaussian(r)
    fd = frechet_distance(mu_g, s_g, mu_r, s_r)
    rng = np.random.default_rng(seed)
    draws = []
    # One BLAS thread: each resample is a few Ledoit-Wolf fits and eigendecompositions of
    # [D, D] matrices (D ~ 128), too small to share out, and BLAS threads that spin on cores
    # other processes are using made 200 resamples of 10 pieces take 2 minutes, not 10 s.
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(bootstrap):
            gb = g[rng.integers(0, len(g), len(g))]
            rb = r[rng.integers(0, len(r), len(r))]
            draws.append(frechet_distance(*fit_gaussian(gb), *fit_gaussian(rb)))
    ci = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    ref_scores = np.sort(mahalanobis(r, mu_r, s_r))
    scores = mahalanobis(g, mu_r, s_r)
    names = list(names) if names is not None else [str(i) for i in range(len(g))]
    outliers = [
        {"piece": n, "mahalanobis": float(d),
         # The share of reference pieces closer to their own centre than this piece.
         "reference_percentile": float(np.searchsorted(ref_scores, d) / len(ref_scores))}
        for n, d in zip(names, scores, strict=True)
    ]  # fmt: skip
    outliers.sort(key=lambda o: -o["mahalanobis"])
    return {"frechet": fd, "ci95": ci, "bootstrap": bootstrap,
            "n": {"generated": len(g), "reference": len(r), "dim": int(g.shape[1])},
            "outliers": outliers}  # fmt: skip


def embed_folder(
    model: Any, folder: str | Path, key: str = "folder"
) -> tuple[np.ndarray, list[str], list[dict]]:
    """Every MIDI file (audio, for a mel classifier) under `folder` (or the file itself) ->
    (embeddings [N, D], their paths,
    [{"path", "reason"}] of the files skipped as unreadable; the reason is BadFileError's stable
    key, then its detail, as music_rolls gives it). `key`: the command's key naming the folder
    (from Python: this argument's name), said back if it holds no such file."""
    from cadenza.errors import BadFileError

    rows, kept, skipped = [], [], []
    for path in model.input_files(Path(folder), key):
        try:
            rows.append(model.embed(model.read_piece(path)).numpy())
            kept.append(str(path))
        except BadFileError as e:  # the reason without the path, which the entry holds already
            reason = f"{e.reason}: {e.detail}" if e.detail else e.reason
            skipped.append({"path": str(path), "reason": reason})
    dim = model.hparams.hidden
    return (np.stack(rows) if rows else np.zeros((0, dim))), kept, skipped
