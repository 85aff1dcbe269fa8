"""recommend/baselines.py on tiny block-structured data: every personalised baseline ranks a
user's held-out in-block items above the other blocks' items; popularity is the item counts;
EASE's weights have a zero diagonal and its dual (Woodbury) form equals the textbook inverse;
item-kNN's weights are brute-force cosine with shrinkage, top-k per item; tuning picks by
validation NDCG@10 and flags a winner at a grid's edge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cadenza.metrics.ranking import evaluate
from cadenza.recommend.baselines import (
    ALS,
    BPR,
    EASE,
    FACTORIES,
    GRIDS,
    ItemKNN,
    Popularity,
    grid_configs,
    top_k_per_row,
    tune,
)
from cadenza.recommend.interactions import Split

BLOCKS, USERS_PER_BLOCK, ITEMS_PER_BLOCK, HELD_OUT = 3, 12, 8, 2


def block_data(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Users of block b play only block b's items: train [36, 24] has 6 of the 8 per user,
    heldout the other 2. Also returns each user's block [36]."""
    rng = np.random.default_rng(seed)
    n_users, n_items = BLOCKS * USERS_PER_BLOCK, BLOCKS * ITEMS_PER_BLOCK
    train, heldout = np.zeros((n_users, n_items)), np.zeros((n_users, n_items))
    block = np.repeat(np.arange(BLOCKS), USERS_PER_BLOCK)
    for u in range(n_users):
        items = block[u] * ITEMS_PER_BLOCK + rng.permutation(ITEMS_PER_BLOCK)
        train[u, items[HELD_OUT:]] = 1.0
        heldout[u, items[:HELD_OUT]] = 1.0
    return sp.csr_matrix(train), sp.csr_matrix(heldout), block


MODELS = {
    "itemknn": lambda: ItemKNN(k=10, shrink=1.0),
    "ease": lambda: EASE(lam=1.0),
    # One factor per block: with more, ALS is free to fit each user's 6 train items exactly.
    "als": lambda: ALS(factors=3, regularization=0.1, alpha=10.0, iterations=15, threads=1),
    "bpr": lambda: BPR(factors=8, learning_rate=0.05, regularization=0.001, iterations=300),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_heldout_in_block_items_beat_other_blocks(name: str) -> None:
    train, heldout, block = block_data()
    model = MODELS[name]().fit(train)
    scores = model.scores(np.arange(train.shape[0]))
    assert scores.shape == train.shape
    item_block = np.arange(train.shape[1]) // ITEMS_PER_BLOCK
    for u in range(train.shape[0]):
        held = scores[u, heldout[u].indices]
        others = scores[u, item_block != block[u]]
        assert held.min() > others.max(), f"{name}: user {u}"
    # So with train masked, each user's top 2 are exactly its 2 held-out items.
    out = evaluate(model.scores, train, heldout, ks=(2,))
    assert out["recall@2"] == out["ndcg@2"] == 1.0


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_implicit_models_are_fixed_by_their_seed(cls: type) -> None:
    train = block_data()[0]
    a, b, c = (cls(factors=4, iterations=5, seed=s).fit(train) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, c.item_factors)


def test_popularity_is_the_item_counts() -> None:
    train, _, _ = block_data()
    model = Popularity().fit(train * 3.0)  # values are play counts: users are counted, not plays
    scores = model.scores(np.array([0, 5, 7]))
    np.testing.assert_array_equal(scores, np.tile(train.getnnz(axis=0), (3, 1)))


@pytest.mark.parametrize("n_users", [36, 10], ids=["primal", "dual"])  # 24 items
def test_ease_matches_the_closed_form_with_zero_diagonal(n_users: int) -> None:
    train = block_data()[0][:n_users]
    lam = 3.0
    x = train.toarray()
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    expected = np.eye(x.shape[1]) - p / np.diag(p)
    model = EASE(lam=lam).fit(train)
    weights = model.item_weights()
    np.testing.assert_allclose(np.diag(weights), 0.0, atol=1e-12)
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    np.testing.assert_allclose(model.scores(np.arange(n_users)), x @ expected, atol=1e-10)


def test_itemknn_is_top_k_cosine_with_shrinkage() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((30, 12)) < 0.3).astype(float)
    k, shrink = 3, 2.0
    norms = np.sqrt(x.sum(axis=0))
    sim = (x.T @ x) / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(sim, 0.0)
    expected = np.zeros_like(sim)
    for j in range(sim.shape[0]):  # item j keeps its k most similar items as neighbours
        nn = np.argsort(-sim[j], kind="stable")[:k]
        expected[nn, j] = sim[j, nn]
    model = ItemKNN(k=k, shrink=shrink).fit(sp.csr_matrix(x))
    np.testing.assert_allclose(model.weights.toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(model.scores(np.arange(30)), x @ expected, atol=1e-12)


def test_top_k_per_row_keeps_the_largest() -> None:
    m = sp.csr_matrix(np.array([[0.1, 0.5, 0.0, 0.3], [0.0, 0.0, 0.2, 0.0], [0.4, 0.4, 0.4, 0.9]]))
    np.testing.assert_array_equal(
        top_k_per_row(m, 2).toarray(),
        [[0.0, 0.5, 0.0, 0.3], [0.0, 0.0, 0.2, 0.0], [0.4, 0.0, 0.0, 0.9]],
    )


def test_tune_selects_on_validation_ndcg_and_flags_the_edge() -> None:
    train, heldout, _ = block_data()
    split = Split(train, heldout, heldout, seed=0)
    result = tune(lambda p: FACTORIES["itemknn"](p, 0), {"k": (1, 10), "shrink": (0.0,)}, split)
    assert [t["params"] for t in result.trials] == [
        {"k": 1, "shrink": 0.0},
        {"k": 10, "shrink": 0.0},
    ]
    best = max(result.trials, key=lambda t: t["valid"]["ndcg@10"])
    assert result.params == best["params"] and result.valid == best["valid"]
    assert result.at_edge == ["k"]  # any winner of a two-value axis is at its edge
    assert isinstance(result.model, ItemKNN) and result.model.k == result.params["k"]


def test_every_grid_builds_its_model() -> None:
    assert set(GRIDS) == set(FACTORIES)
    for name, grid in GRIDS.items():
        configs = grid_configs(grid)
        assert configs, name
        FACTORIES[name](configs[0], 0)  # every key of the grid is an argument of the model
