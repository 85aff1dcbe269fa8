"""recommend/index.py: the exact index is brute-force argsort (ids and scores, ties to the lower
id, whatever the chunking); k > N gives N; excluded ids never come back and the next best fill
in; bad input raises CadenzaError naming the problem; IVF and HNSW reach recall@10 >= 0.9 on
clustered data; the factory rejects unknown kinds and options; the benchmark's smoke run scores
every kind, exact at recall 1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.errors import CadenzaError, ConfigError
from cadenza.recommend.index import ExactIndex, FaissIndex, make_index

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from recommender_index import run_index_benchmark, synthetic_embeddings  # noqa: E402


def _brute(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.T.astype(np.float64)  # [B, N]
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]  # stable: equal scores keep lower id first
    return np.take_along_axis(s, ids, 1), ids


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def rand() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((1500, 24)).astype(np.float32),
        rng.standard_normal((40, 24)).astype(np.float32),
    )


@pytest.mark.parametrize("block", [1 << 24, 700, 30], ids=["one-chunk", "chunked", "tiny-chunks"])
def test_exact_matches_brute_force(rand: tuple[np.ndarray, np.ndarray], block: int) -> None:
    x, q = rand
    scores, ids = ExactIndex(block=block).build(x).search(q, 15)
    want_s, want_i = _brute(x, q, 15)
    assert scores.shape == ids.shape == (40, 15)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_exact_ties_go_to_lower_id() -> None:
    x = np.zeros((50, 4), np.float32)
    x[[7, 20, 33], 0] = 1.0  # three best, all equal; 47 others tie at zero behind them
    _, ids = ExactIndex(block=10).build(x).search(np.array([[1.0, 0, 0, 0]]), 6)
    assert ids.tolist() == [[7, 20, 33, 0, 1, 2]]


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw"])
def test_k_above_catalog_size_returns_all(kind: str, rand: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = rand
    scores, ids = make_index(kind).build(x[:60]).search(q[:3], 100)
    assert ids.shape == (3, 60)
    assert sorted(ids[0].tolist()) == list(range(60))
    assert np.isfinite(scores).all()


def test_exact_exclude_fills_in_with_the_next_best(rand: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = rand
    _, full = _brute(x, q, 20)
    exclude = [full[r, ::2][:5] for r in range(len(q))]  # 5 of each query's top 10
    _, ids = ExactIndex(block=5000).build(x).search(q, 10, exclude=exclude)
    for r in range(len(q)):
        assert not set(ids[r]) & set(exclude[r])
        assert ids[r].tolist() == [i for i in full[r] if i not in set(exclude[r])][:10]


def test_exclude_everything_pads_with_minus_one() -> None:
    x = np.eye(4, dtype=np.float32)
    scores, ids = ExactIndex().build(x).search(np.ones((2, 4)), 3, exclude=[[0, 1, 2], []])
    assert ids[0].tolist() == [3, -1, -1] and np.isneginf(scores[0, 1:]).all()
    assert ids[1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_faiss_exclude_never_returns_excluded(kind: str) -> None:
    x = synthetic_embeddings(3000, 32, seed=1)
    q = x[:20]  # each query is its own best match, and must be excluded
    _, exact = ExactIndex().build(x).search(q, 10)
    exclude = [exact[r, :4] for r in range(20)]
    _, ids = make_index(kind, nprobe=64, ef_search=128).build(x).search(q, 10, exclude=exclude)
    assert all(not set(ids[r]) & set(exclude[r]) for r in range(20))
    assert (ids >= 0).all()
    assert _recall(ids[:, :6], exact[:, 4:10]) >= 0.9


@pytest.mark.parametrize(
    ("kind", "options"),
    [("ivf", {"nprobe": 16}), ("hnsw", {"m": 16, "ef_search": 64})],
    ids=["ivf", "hnsw"],
)
def test_approximate_recall_on_clustered_data(kind: str, options: dict[str, int]) -> None:
    data = synthetic_embeddings(5200, 32, seed=0)
    x, q = data[200:], data[:200]
    _, truth = ExactIndex().build(x).search(q, 10)
    index = make_index(kind, **options).build(x)
    scores, ids = index.search(q, 10)
    assert _recall(ids, truth) >= 0.9
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert index.nbytes >= x.nbytes


def test_hnsw_over_many_identical_tracks_finds_what_exact_search_finds() -> None:
    """Every track a recommender never saw played (no content) has one embedding: 2,236 of
    Last.fm's 17,632. As graph nodes they trapped HNSW's search (top-10 agreement 0.75 at any
    efSearch); one node per distinct vector, expanded to its tracks by id, finds them all."""
    x = synthetic_embeddings(3000, 32, seed=2)
    x = np.vstack([x, np.repeat(x[:1], 2000, axis=0), np.repeat(x[1:2], 500, axis=0)])
    q = np.vstack([synthetic_embeddings(100, 32, seed=3), x[:2]])
    _, truth = ExactIndex().build(x).search(q, 10)
    scores, ids = FaissIndex("hnsw").build(x).search(q, 10)
    assert _recall(ids, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first, a node's tracks tied
    # A query at the duplicated vector: its copies first, lowest ids first, as exact search.
    assert ids[-2, 0] == 0 and set(ids[-2]) <= {0, *range(3000, 5000)}
    assert (np.diff(ids[-2, 1:]) > 0).all()
    # Excluded tracks are dropped from a node's tracks, the rest of the node still counts.
    _, kept = FaissIndex("hnsw").build(x).search(x[:1], 5, exclude=[[0, 3000, 3001]])
    assert kept[0].tolist() == [3002, 3003, 3004, 3005, 3006]


def test_ivf_small_catalog_shrinks_lists_or_goes_flat() -> None:
    x = synthetic_embeddings(400, 8, seed=0)
    ivf = FaissIndex("ivf").build(x)
    assert ivf.lists == 400 // 39
    flat = FaissIndex("ivf").build(x[:50])
    assert flat.lists == 0
    _, ids = flat.search(x[:5], 3)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ix, q: ix.search(q[0], 5), "2-D"),
        (lambda ix, q: ix.search(q[:, :3], 5), "dims"),
        (lambda ix, q: ix.search(np.where(q > 1, np.nan, q), 5), "NaN"),
        (lambda ix, q: ix.search(q, 0), "k must be"),
        (lambda ix, q: ix.search(q, 2.5), "k must be"),
        (lambda ix, q: ix.search(q[:0], 5), "empty"),
        (lambda ix, q: ix.search(q, 5, exclude=[[1]]), "one id list per query"),
        (lambda ix, q: ix.search(q, 5, exclude=[[1500]] * len(q)), "outside the catalog"),
        (lambda ix, q: ExactIndex().search(q, 5), "before build"),
        (lambda ix, q: ExactIndex().build(np.array([["a", "b"]])), "real numbers"),
        (lambda ix, q: ExactIndex().build(np.full((3, 2), np.inf)), "NaN or inf"),
    ],
    ids=["1-d", "dim", "nan", "k0", "k-float", "empty", "exclude-len", "exclude-id", "unbuilt",
         "strings", "inf"],
)  # fmt: skip
def test_bad_input_raises_clear_error(rand: tuple[np.ndarray, np.ndarray], call, message) -> None:
    x, q = rand
    index = ExactIndex().build(x)
    with pytest.raises(CadenzaError, match=message):
        call(index, q)


def test_factory_rejects_unknown_kind_and_option() -> None:
    with pytest.raises(ConfigError, match="exact, ivf, hnsw"):
        make_index("annoy")
    with pytest.raises(ConfigError, match="nprobe"):
        make_index("exact", nprobe=8)
    with pytest.raises(ConfigError, match="nprobe"):
        make_index("ivf", nprobe=0)
    assert isinstance(make_index("hnsw", m=8), FaissIndex)


def test_importing_the_index_does_not_load_faiss() -> None:
    import subprocess

    code = "import sys, cadenza.recommend.index; print('faiss' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_building_a_faiss_index_under_info_logging_prints_no_loader_noise() -> None:
    """The CLIs log INFO to stdout; faiss's loader would write each build it failed to load
    there (with a ModuleNotFoundError) before `cadenza-recommend index=hnsw`'s picks."""
    import subprocess

    code = ("import logging, sys, numpy as np; "
            "logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
            "from cadenza.recommend.index import make_index; "
            "x = np.eye(8, dtype=np.float32); "
            "print(make_index('hnsw').build(x).search(x[:1], 1)[1][0, 0])")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0", done.stdout
    assert "faiss" not in done.stderr and "Could not load" not in done.stderr


def test_benchmark_smoke() -> None:
    threads = torch.get_num_threads()
    try:
        result = run_index_benchmark(sizes=(2000,), queries=20, dim=16)
    finally:  # the benchmark sets the process's thread count; leave it as other tests had it
        torch.set_num_threads(threads)
    kinds = {row["index"] for row in result["rows"]}
    assert kinds == {"exact", "ivf", "hnsw"}
    for row in result["rows"]:
        assert 0.0 <= row["recall@100"] <= 1.0
        assert row["p99_ms"] >= row["p50_ms"] > 0 and row["batch_qps"] > 0 and row["bytes"] > 0
    exact = [row for row in result["rows"] if row["index"] == "exact"]
    assert [row["recall@100"] for row in exact] == [1.0]
    assert result["k"] == 100 and result["sizes"] == [2000]
