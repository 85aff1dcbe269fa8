"""metrics/ranking.py on hand-computed cases: a perfect ranking, a partial one worked out by hand,
masking of train (and valid) items, users without held-out items, k past the catalog's size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from cadenza.metrics.ranking import evaluate, ndcg_at_k, recall_at_k, top_k_items


def rows(n_items: int, *item_lists: list[int]) -> sp.csr_matrix:
    """A [len(item_lists), n_items] 0/1 matrix with the listed items set in each row."""
    m = np.zeros((len(item_lists), n_items))
    for r, items in enumerate(item_lists):
        m[r, items] = 1.0
    return sp.csr_matrix(m)


def fixed(scores: np.ndarray):
    """A scores_fn that looks its users up in a fixed [U, I] table."""
    return lambda users: scores[users]


def test_perfect_ranking_scores_one() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    out = evaluate(fixed(scores), rows(5, []), rows(5, [0, 1]), ks=(1, 2, 5))
    assert out["recall@2"] == out["ndcg@2"] == out["ndcg@1"] == out["ndcg@5"] == 1.0
    assert out["recall@1"] == 0.5  # recall divides by |P| = 2, not by min(k, |P|)


def test_partial_ranking_by_hand() -> None:
    # Ranking 4, 0, 5, 1, 2, 3; held out {0, 1, 3}: hits at ranks 2, 4 and 6.
    scores = np.array([[5.0, 3.0, 2.0, 1.0, 6.0, 4.0]])
    out = evaluate(fixed(scores), rows(6, []), rows(6, [0, 1, 3]), ks=(2, 4, 6))
    # Recall@2 = 1/3, Recall@4 = 2/3, Recall@6 = 1.
    assert out["recall@2"] == pytest.approx(1 / 3)
    assert out["recall@4"] == pytest.approx(2 / 3)
    assert out["recall@6"] == pytest.approx(1.0)
    # NDCG@2: DCG = 1/log2(3) = 0.63093; IDCG over min(2, 3) = 2 ranks = 1 + 1/log2(3) = 1.63093.
    assert out["ndcg@2"] == pytest.approx(0.38685, abs=1e-5)  # 0.63093 / 1.63093
    # NDCG@4: DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161;
    # IDCG over min(4, 3) = 3 ranks = 1 + 0.63093 + 0.5 = 2.13093 -> 0.49819.
    assert out["ndcg@4"] == pytest.approx(0.49819, abs=1e-5)
    # NDCG@6 adds 1/log2(7) = 0.35621 to DCG -> 1.41781 / 2.13093 = 0.66535.
    assert out["ndcg@6"] == pytest.approx(0.66535, abs=1e-5)


def test_train_items_are_masked() -> None:
    # Item 0 scores highest but is a train item: it must neither take a rank nor count as a miss.
    scores = np.array([[9.0, 1.0, 5.0, 0.0]])
    out = evaluate(fixed(scores), rows(4, [0]), rows(4, [1]), ks=(1, 2))
    assert out["recall@1"] == 0.0  # item 2 is first once 0 is masked
    assert out["recall@2"] == 1.0
    assert out["ndcg@2"] == pytest.approx(1 / math.log2(3))
    # At test time, valid items are masked too (`exclude`): item 2 drops out and 1 comes first.
    out = evaluate(fixed(scores), rows(4, [0]), rows(4, [1]), exclude=rows(4, [2]), ks=(1,))
    assert out["recall@1"] == out["ndcg@1"] == 1.0


def test_users_without_heldout_items_are_ignored() -> None:
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    heldout = rows(3, [0], [], [0])  # user 1 has nothing held out; user 2 misses at k = 1
    out = evaluate(fixed(scores), rows(3, [], [], []), heldout, ks=(1,))
    assert out["n_users"] == 2
    assert out["recall@1"] == 0.5 and out["ndcg@1"] == 0.5


def test_k_larger_than_the_catalog() -> None:
    scores = np.array([[0.1, 0.3, 0.2]])
    out = evaluate(fixed(scores), rows(3, []), rows(3, [0, 2]), ks=(10,))
    assert out["recall@10"] == 1.0
    # Ranking 1, 2, 0: hits at ranks 2 and 3; IDCG over min(10, 2) = 2 ranks.
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    assert out["ndcg@10"] == pytest.approx(dcg / (1 + 1 / math.log2(3)))


def test_batches_do_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(37, 50))
    train = sp.csr_matrix(rng.random((37, 50)) < 0.2)
    heldout = sp.csr_matrix((rng.random((37, 50)) < 0.1) & ~train.toarray())
    one = evaluate(fixed(scores), train, heldout, batch_size=1)
    assert evaluate(fixed(scores), train, heldout, batch_size=1000) == pytest.approx(one)


def test_per_user_functions_and_top_k() -> None:
    top = top_k_items(np.array([[0.2, 0.9, 0.5, 0.1]]), 3)
    np.testing.assert_array_equal(top, [[1, 2, 0]])
    hits = np.array([[False, True, False, True]])
    np.testing.assert_allclose(recall_at_k(hits, np.array([4]), 4), [0.5])
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / sum(
        1 / math.log2(r + 1) for r in range(1, 5)
    )
    np.testing.assert_allclose(ndcg_at_k(hits, np.array([4]), 4), [expected])


def test_wrong_score_shape_is_caught() -> None:
    with pytest.raises(ValueError, match="scores_fn returned"):
        evaluate(lambda users: np.zeros((len(users), 2)), rows(3, []), rows(3, [0]))
    with pytest.raises(ValueError, match="NaN"):
        evaluate(lambda users: np.full((len(users), 3), np.nan), rows(3, []), rows(3, [0]))
