"""recommend/interactions.py: RecBole's per-user split sizes, a split that is disjoint, complete
and fixed by its seed, id maps, a missing file's message, and the real Last.fm 2K file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cadenza.errors import CadenzaError, ConfigError
from cadenza.recommend.interactions import (
    from_triples,
    lastfm_path,
    load_lastfm,
    split_per_user,
    split_sizes,
)
from tests.fixtures.data import data_root


@pytest.mark.parametrize(
    ("n", "sizes"),
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (5, (3, 1, 1)),
     (10, (8, 1, 1)), (19, (17, 1, 1)), (20, (16, 2, 2)), (29, (25, 2, 2)), (30, (24, 3, 3)),
     (50, (40, 5, 5))],
)  # fmt: skip
def test_split_sizes_follow_recbole(n: int, sizes: tuple[int, int, int]) -> None:
    assert split_sizes(n) == sizes
    assert sum(split_sizes(n)) == n


def random_matrix(n_users: int = 60, n_items: int = 80, seed: int = 0) -> sp.csr_matrix:
    """Users with 0 to 50 items each, like Last.fm's 1 to 50, with play-count-like values."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(0, 51), replace=False)
        m[u, items] = rng.integers(1, 1000, size=len(items))
    return sp.csr_matrix(m)


def test_split_sizes_per_user_disjoint_and_complete() -> None:
    m = random_matrix()
    s = split_per_user(m, seed=3)
    for part in (s.train, s.valid, s.test):
        assert part.shape == m.shape
    for u in range(m.shape[0]):
        got = (s.train[u].nnz, s.valid[u].nnz, s.test[u].nnz)
        assert got == split_sizes(m[u].nnz), f"user {u}"
    # Disjoint, and together exactly the data with its values.
    assert s.train.multiply(s.valid).nnz == s.train.multiply(s.test).nnz == 0
    assert s.valid.multiply(s.test).nnz == 0
    assert abs(s.train + s.valid + s.test - m).max() == 0
    assert abs(s.seen_before_test - (s.train + s.valid)).max() == 0


def test_split_is_fixed_by_its_seed() -> None:
    m = random_matrix()
    a, b, c = split_per_user(m, seed=1), split_per_user(m, seed=1), split_per_user(m, seed=2)
    for part in ("train", "valid", "test"):
        assert (getattr(a, part) != getattr(b, part)).nnz == 0
    assert (a.test != c.test).nnz > 0
    # The same matrix stored in another order splits the same way.
    shuffled = sp.csr_matrix(m.tocoo().T.tocsr().T)
    assert (split_per_user(shuffled, seed=1).test != a.test).nnz == 0


def test_bad_ratios_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="three non-negative"):
        split_per_user(random_matrix(), ratios=(0.8, 0.2))


def test_ids_are_remapped_and_repeats_add_up() -> None:
    data = from_triples(
        np.array([7, 7, 3, 7]), np.array([100, 5, 100, 100]), np.array([2, 1, 4, 3])
    )
    np.testing.assert_array_equal(data.user_ids, [3, 7])
    np.testing.assert_array_equal(data.item_ids, [5, 100])
    np.testing.assert_array_equal(data.matrix.toarray(), [[0, 1], [1, 1]])
    np.testing.assert_array_equal(data.plays.toarray(), [[0, 4], [1, 5]])


def test_missing_file_says_where_and_what_to_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CADENZA_DATA", str(tmp_path))
    with pytest.raises(CadenzaError) as err:
        load_lastfm()
    assert str(lastfm_path(tmp_path)) in str(err.value)
    assert "CADENZA_DATA" in str(err.value)


def test_a_file_of_the_wrong_kind_is_rejected(tmp_path) -> None:
    path = lastfm_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("userID\tfriendID\n2\t275\n")
    with pytest.raises(CadenzaError, match="expected the header"):
        load_lastfm(tmp_path)


def test_real_lastfm_matches_dataset_md() -> None:
    data = load_lastfm(data_root())
    assert (data.n_users, data.n_items, data.matrix.nnz) == (1892, 17632, 92834)
    assert set(np.unique(data.matrix.data)) == {1.0}
    assert data.plays.data.min() == 1 and data.plays.data.max() == 352698
    per_user = data.matrix.getnnz(axis=1)
    assert per_user.min() == 1 and per_user.max() == 50
    s = split_per_user(data.matrix, seed=0)
    expected = np.array([split_sizes(n) for n in per_user]).sum(axis=0)
    assert (s.train.nnz, s.valid.nnz, s.test.nnz) == tuple(expected)
    assert sum(expected) == 92834
