"""The recommender's nearest-neighbour index (issue 6 point 4): exact top-100 by matrix product
against FAISS IVF and HNSW, on synthetic track embeddings of 10k, 100k and 1M tracks.

Data: isotropic Gaussian vectors have no near neighbours worth finding (every point is about as
far as every other), so approximate search on them measures nothing. These embeddings are a
two-level mixture, as a music catalog is (genres, then sub-styles): 50 genre centres, 1,000
cluster centres around them with log-normal sizes (the largest ~1,000x the smallest), points
around their cluster with a per-cluster spread, rows L2-normalised (inner product = cosine).
Queries are held-out points from the same mixture. One draw of max(sizes) + queries points is
made and each size takes a prefix, so every size has the same cluster structure.

Per size and index: build seconds; the index's bytes (FAISS: its serialised size); top-k latency
of one query at a time (p50 / p99 ms, through `search()` with its input checks, after a 10-query
warm-up); throughput of one batch of all the queries (queries/s); recall@k against the exact
top-k. The exact single-query timing uses min(queries, max(100, 1e8 / N)) queries (100 at 1M);
the approximate ones use all. IVF shows several nprobe, HNSW several efSearch, on one build each.

    python benchmarks/recommender_index.py                       # ~10 minutes on 2 cores
    python benchmarks/recommender_index.py --sizes 10000 100000 --out /tmp/index.json

Prints the table last; writes the result dict (with provenance) to --out only when given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.atomic import write_atomically
from cadenza.recommend.index import NearestNeighbourIndex, make_index
from cli_runs import provenance

KINDS = ("exact", "ivf", "hnsw")
# Search-time settings tried on one build of each kind: the speed / recall trade-off.
SEARCH_SETTINGS: dict[str, list[dict[str, int]]] = {
    "exact": [{}],
    "ivf": [{"nprobe": 8}, {"nprobe": 32}, {"nprobe": 128}],
    "hnsw": [{"ef_search": 64}, {"ef_search": 128}, {"ef_search": 256}, {"ef_search": 512}],
}
WARMUP = 10


def synthetic_embeddings(
    n: int, dim: int, seed: int = 0, clusters: int = 1000, genres: int = 50
) -> np.ndarray:
    """[n, dim] float32 unit rows from the two-level mixture described in the module docstring."""
    rng = np.random.default_rng(seed)
    genre = rng.standard_normal((genres, dim), dtype=np.float32)
    centre = genre[rng.integers(0, genres, clusters)]
    centre += 0.7 * rng.standard_normal((clusters, dim), dtype=np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    weight = rng.lognormal(0.0, 1.0, clusters)
    spread = rng.uniform(0.5, 1.0, clusters).astype(np.float32)  # noise norm / centre norm
    label = rng.choice(clusters, n, p=weight / weight.sum())
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x *= (spread[label] / np.sqrt(dim))[:, None]
    x += centre[label]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth|, for id arrays [B, k] (-1 = no result)."""
    per_query = [
        len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, int((t >= 0).sum()))
        for f, t in zip(found, truth)
    ]
    return float(np.mean(per_query))


def _single_latency_ms(index: NearestNeighbourIndex, q: np.ndarray, k: int) -> np.ndarray:
    for j in range(min(WARMUP, len(q))):
        index.search(q[j : j + 1], k)
    ms = np.empty(len(q))
    for j in range(len(q)):
        t0 = time.perf_counter()
        index.search(q[j : j + 1], k)
        ms[j] = (time.perf_counter() - t0) * 1e3
    return ms


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_index_benchmark(
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    dim: int = 128,
    queries: int = 1000,
    k: int = 100,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    settings: Mapping[str, Sequence[Mapping[str, int]]] = SEARCH_SETTINGS,
    threads: int | None = None,
) -> dict[str, Any]:
    """Build every kind of index on every size and time its top-k search; see the docstring."""
    import faiss

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    data = synthetic_embeddings(max(sizes) + queries, dim, seed)
    q, catalog = data[:queries], data[queries:]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        x = catalog[:n]
        truth = None
        for kind in ("exact", *[k_ for k_ in kinds if k_ != "exact"]):  # exact first: the truth
            t0 = time.perf_counter()
            index = make_index(kind, **({} if kind == "exact" else {"seed": seed})).build(x)
            build_s = time.perf_counter() - t0
            nbytes = index.nbytes
            _log(f"n={n:,} {kind}: built in {build_s:.1f} s")
            if kind not in kinds:  # exact only for the truth the others are scored against
                truth = index.search(q, k)[1]
            for setting in settings.get(kind, [{}]) if kind in kinds else []:
                for name, value in setting.items():
                    setattr(index, name, value)
                t0 = time.perf_counter()
                _, ids = index.search(q, k)
                batch_s = time.perf_counter() - t0
                if kind == "exact":
                    truth = ids
                timed = q if kind != "exact" else q[: min(queries, max(100, 10**8 // n))]
                ms = _single_latency_ms(index, timed, k)
                params = dict(setting)
                if kind == "ivf":
                    params = {"nlist": index.lists, **params}
                elif kind == "hnsw":
                    params = {"m": index.m, "ef_construction": index.ef_construction, **params}
                row = {
                    "n": n, "index": kind, "params": params, "build_s": round(build_s, 3),
                    "p50_ms": round(float(np.percentile(ms, 50)), 4),
                    "p99_ms": round(float(np.percentile(ms, 99)), 4),
                    "timed_queries": len(timed), "batch_qps": round(queries / batch_s, 1),
                    f"recall@{k}": round(recall(ids, truth), 4), "bytes": nbytes,
                }  # fmt: skip
                rows.append(row)
                _log(f"  {params}: p50 {row['p50_ms']} ms, recall {row[f'recall@{k}']}")
            del index
    return {
        "sizes": list(sizes), "dim": dim, "k": k, "queries": queries, "threads": threads,
        "seed": seed, "rows": rows,
    }  # fmt: skip


def index_table(result: dict[str, Any]) -> str:
    k = result["k"]
    lines = [
        f"Top-{k} inner-product search, {result['dim']}-dim synthetic track embeddings "
        f"(1,000-cluster mixture, unit rows), {result['queries']} held-out queries, "
        f"{result['threads']} threads (torch and faiss).",
        "p50/p99: one query per call; batch: all queries in one call. Exact single-query "
        "timings use the 'timed' count of queries; recall is against the exact top-k.",
        "",
        f"{'N':>9}  {'index':<6} {'params':<40} {'build s':>8} {'MB':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'timed':>5} {'batch q/s':>10} {'recall@' + str(k):>10}",
    ]
    for r in result["rows"]:
        params = ", ".join(f"{name}={value}" for name, value in r["params"].items()) or "-"
        lines.append(
            f"{r['n']:>9,}  {r['index']:<6} {params:<40} {r['build_s']:>8.2f} "
            f"{r['bytes'] / 2**20:>7.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
            f"{r['timed_queries']:>5} {r['batch_qps']:>10,.0f} {r[f'recall@{k}']:>10.4f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the result dict as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run_index_benchmark(args.sizes, args.dim, args.queries, args.k, args.seed)
    seconds = time.perf_counter() - started
    args_given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/recommender_index.py", *args_given])
    result["provenance"] = provenance(command, seconds)
    if args.out is not None:
        write_atomically(args.out, json.dumps(result, indent=2) + "\n")
    print(f"\nwall time {seconds:.0f} s")
    print(index_table(result))


if __name__ == "__main__":
    main()
