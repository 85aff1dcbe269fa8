"""benchmarks/recommender_content.py on a tiny synthetic catalog (no real data, no CLI runs):
the cold-start evaluation's keys and ranges, random matching its closed form, the model and the
content kNN beating random when styles are separable, the tables, and the conditioning figures
(rerank and routing beat the random floor, none passes the ceiling)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cadenza.recommend.datamodule import Catalog
from cadenza.recommend.fit import fit_recommender
from cadenza.recommend.interactions import split_per_user
from cadenza.recommend.module import RecommenderModule

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from recommender_content import (  # noqa: E402
    METRICS,
    Pool,
    _mean_std,
    cold_start_table,
    conditioning_table,
    evaluate_cold_start,
    random_expected,
    run_conditioning,
)

STYLES, PER_STYLE, N_USERS = 4, 10, 30


def style_catalog(seed: int = 0) -> Catalog:
    """40 items in 4 styles told apart by their features; 30 users who each play 7 tracks of one
    style and 1 of another; 2 tracks per style are cold (their plays held out whole)."""
    rng = np.random.default_rng(seed)
    style = np.repeat(np.arange(STYLES), PER_STYLE)
    features = np.eye(STYLES)[style] * 3.0 + rng.normal(0, 0.3, (len(style), STYLES))
    cold = np.concatenate([np.flatnonzero(style == s)[:2] for s in range(STYLES)])
    rows, cols = [], []
    for u in range(N_USERS):
        fav = u % STYLES
        liked = [*rng.choice(np.flatnonzero(style == fav), 7, replace=False),
                 rng.choice(np.flatnonzero(style != fav))]  # fmt: skip
        rows += [u] * len(liked)
        cols += liked
    plays = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (N_USERS, len(style)))
    is_cold = np.isin(np.arange(len(style)), cold)
    warm = sp.csr_matrix(plays.multiply(~is_cold[None, :]))
    cold_test = sp.csr_matrix(plays.multiply(is_cold[None, :]))
    warm.eliminate_zeros()
    cold_test.eliminate_zeros()
    split = split_per_user(warm, seed=seed)
    mean, std = features[~is_cold].mean(0), features[~is_cold].std(0)
    return Catalog(
        item_keys=[f"t{i}" for i in range(len(style))], user_keys=[f"u{u}" for u in range(N_USERS)],
        features=((features - mean) / std).astype(np.float32), feature_mean=mean.astype(np.float32),
        feature_std=std.astype(np.float32), history=split.train.astype(np.float32),
        train=split.train, valid=split.valid, test=split.test, item_context=style.astype(np.int64),
        contexts=[f"s{s}" for s in range(STYLES)], cold_items=cold, cold_test=cold_test,
        feature_kind="test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return style_catalog()


def fit(catalog: Catalog, epochs: int) -> RecommenderModule:
    return fit_recommender(catalog, max_epochs=epochs, patience=epochs, seed=0, batch_size=8,
                           lr=0.01, dim=8, heads=1, hidden=16, context_prob=0.3)  # fmt: skip


@pytest.fixture(scope="module")
def result(catalog: Catalog) -> dict:
    return evaluate_cold_start(fit(catalog, 3), catalog, draws=200)


def test_keys_ranges_and_random_closed_form(catalog: Catalog, result: dict) -> None:
    held = catalog.cold_test[:, catalog.cold_items]
    assert result["n_cold"] == 8 and result["n_users"] == int((held.getnnz(axis=1) > 0).sum())
    names = {"ours", "random", "random (closed form)", "style popularity", "content kNN"}
    assert set(result["models"]) == names
    for figures in [*result["models"].values(), *result["warm"].values()]:
        assert set(figures) == set(METRICS)
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert result["knn"]["aggregate"] in result["knn"]["valid_ndcg@10"]
    # 8 candidates: top 10 holds every cold track, so recall@10 is 1 whatever the order
    assert result["models"]["random"]["recall@10"] == pytest.approx(1.0)
    closed = random_expected(np.array([1, 2, 3]), 40)
    assert closed["recall@10"] == pytest.approx(10 / 40)
    assert result["models"]["random"]["ndcg@10"] == pytest.approx(
        result["models"]["random (closed form)"]["ndcg@10"], abs=0.02
    )


def test_random_ranking_matches_closed_form() -> None:
    from recommender_content import rank_metrics

    rng = np.random.default_rng(0)
    held = sp.csr_matrix((rng.random((300, 60)) < 0.05) | (np.arange(60) == 0)[None, :])
    draws = [rank_metrics(rng.random(held.shape), held) for _ in range(30)]
    closed = random_expected(held.getnnz(axis=1), 60)
    for m in METRICS:
        assert np.mean([d[m] for d in draws]) == pytest.approx(closed[m], abs=0.01)


def test_separable_styles_beat_random_on_cold_start(result: dict) -> None:
    models = result["models"]
    for name in ("ours", "content kNN"):
        assert models[name]["ndcg@10"] > models["random"]["ndcg@10"] + 0.1, name
    table = cold_start_table({
        "settings": {"per_style": PER_STYLE, "n_users": N_USERS, "listens": [8, 8],
                     "concentration": 0.3, "cold_fraction": 0.2, "n_cold": [8],
                     "n_users_evaluated": [result["n_users"]], "seeds": [0]},
        "models": {n: _mean_std([f]) for n, f in models.items()},
        "warm": {s: _mean_std([f]) for s, f in result["warm"].items()},
        "seeds": [{**result, "best_epoch": 3}],
    })  # fmt: skip
    assert "content kNN" in table and f"{models['ours']['ndcg@10']:.4f}" in table


def _pool(rng: np.random.Generator, taste2: np.ndarray, style: int | None, p_jsb: float,
          n: int = 32) -> Pool:  # fmt: skip
    """Pieces whose heard style is jsb with probability p_jsb; a listener scores each piece by
    their taste for its heard style (a recommender that knows the taste), plus noise."""
    heard = (rng.random(n) >= p_jsb).astype(int)
    return Pool(taste2[:, heard] * 5 + rng.normal(0, 0.5, (len(taste2), n)), style, heard)


def test_conditioning_between_floor_and_ceiling() -> None:
    rng = np.random.default_rng(0)
    taste2 = rng.dirichlet([0.3, 0.3], 40)
    pools = {"jsb": _pool(rng, taste2, 0, 1.0), "nottingham": _pool(rng, taste2, 1, 0.0)}
    result = run_conditioning(pools, taste2, taste2, np.ones(40), reps=3)
    u = {name: r["all"]["utility"] for name, r in result["strategies"].items()}
    assert len(u) == 5  # A-C, random and the ceiling: no conditional model given
    floor, ceiling = u["random 5 of pool"], u["ceiling: all from the truly preferred style"]
    for name, value in u.items():
        assert value <= ceiling + 1e-9, name
        if name.startswith(("A", "C")):
            assert value > floor + 0.1, name
    # Pieces heard as the style they were generated in: both utilities agree.
    for name, r in result["strategies"].items():
        if not name.startswith("ceiling"):
            assert r["all"]["utility"] == pytest.approx(r["all"]["utility_heard"]), name
    assert "route between two style models" in conditioning_table(result)


def test_a_conditional_model_that_follows_the_mix_beats_random() -> None:
    rng = np.random.default_rng(1)
    taste2 = rng.dirichlet([0.3, 0.3], 60)
    pools = {"jsb": _pool(rng, taste2, 0, 1.0), "nottingham": _pool(rng, taste2, 1, 0.0),
             "conditional jsb": _pool(rng, taste2, 0, 0.9),
             "conditional nottingham": _pool(rng, taste2, 1, 0.1)}  # fmt: skip
    pools |= {f"mix {b}": _pool(rng, taste2, None, b / 10) for b in range(11)}
    result = run_conditioning(pools, taste2, taste2, np.ones(60), reps=3)
    s = result["strategies"]
    assert {n[0] for n in s} >= set("ABCDEFG")
    d, e = (next(v for n, v in s.items() if n.startswith(x))["all"] for x in "DE")
    assert d["utility"] is None and e["utility"] is None  # a mix has no one style it was made in
    floor = s["random 5 of pool"]["all"]["utility_heard"]
    assert d["utility_heard"] > floor + 0.1 and e["utility_heard"] > d["utility_heard"]
    assert "D-E draw from one style-conditional model" in conditioning_table(result)
