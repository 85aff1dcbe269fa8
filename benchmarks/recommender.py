"""The recommender's benchmarks: Last.fm against tuned baselines, the content path, the index.

Sections (`--sections`, all by default): `lastfm` (below), `content` (cold start, generated
pieces and conditioning vs rerank on real pieces of 4 styles with simulated listeners:
benchmarks/recommender_content.py) and `index` (top-100 latency and recall of exact vs FAISS
search over 10k / 100k / 1M synthetic embeddings: benchmarks/recommender_index.py).

Last.fm HetRec 2K under RecBole's protocol, our model against tuned baselines.

Protocol (RecBole's general-recommendation defaults): every (user, artist) pair is one implicit
interaction; each user's pairs are put in random order and split 8:1:1 into train / valid / test
(`cadenza.recommend.interactions.split_per_user`, RecBole's rounding); every model ranks the full
catalog of 17,632 artists with the user's own train items masked (valid stage) or train + valid
items masked (test stage); Recall@k and NDCG@k (k = 10, 20) are averaged over users with at
least one held-out item.

Every model is tuned per seed on that seed's split: each config of its grid
(`cadenza.recommend.baselines.GRIDS`) is fitted on train and ranked on valid, the config with the
best validation NDCG@10 is kept, and that same fitted model (trained on train only, as RecBole
does: no refit on train + valid) is scored once on test. The table is the mean ± sample std of
the test figures over the split seeds, beside RecBole's published figures for this dataset.

    CADENZA_DATA=../shared/data python benchmarks/recommender.py --seeds 0 1 2
    python benchmarks/recommender.py --sections lastfm --seeds 0 --models ease als ours
    python benchmarks/recommender.py --sections index --index-sizes 10000 100000

Writes benchmarks/results/recommender.json as {"lastfm": {"<model>": {"recall@10", "ndcg@10",
"recall@20", "ndcg@20", "std", "seeds": [per-seed test/valid figures and chosen config], ...}},
"cold_start": {...}, "generated": {...}, "conditioning": {...}, "index": {...},
"provenance": {"lastfm": {...}, "content": {...}, "index": {...}}}; models and sections not run
this time keep their figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.atomic import write_atomically
from cadenza.metrics.ranking import evaluate
from cadenza.recommend.baselines import FACTORIES, GRIDS, Recommender, tune
from cadenza.recommend.fit import ContentOnly, TasteRecommender
from cadenza.recommend.interactions import (
    Interactions,
    Split,
    lastfm_path,
    load_lastfm,
    split_per_user,
)
from cli_runs import provenance

RESULTS = Path(__file__).parent / "results" / "recommender.json"
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
BASELINES = tuple(GRIDS)

# RecBole's published full-ranking figures on Last.fm HetRec 2K (Recall@10 / NDCG@10 only).
PUBLISHED = {
    "RecBole BPR-MF (published)": {"recall@10": 0.1761, "ndcg@10": 0.1674},
    "RecBole LightGCN (published)": {"recall@10": 0.2064, "ndcg@10": 0.1972},
}
# Quoted in issue 6, one seeded 8:1:1 split (not this run): how strong tuned baselines get here.
ISSUE_SINGLE_SPLIT = {
    "ALS 256 factors (issue 6, one split)": {"recall@10": 0.2196, "ndcg@10": 0.2163},
    "EASE (issue 6, one split)": {"recall@10": 0.2095, "ndcg@10": 0.2028},
}


@dataclass(frozen=True)
class Entry:
    """How to build a model from one config of its grid and the split seed, and its grid."""

    make: Callable[[dict[str, Any], int, Interactions], Recommender]  # (config, seed, data)
    grid: dict[str, Sequence[Any]]


# Anything with fit(train, valid) and scores(users) -> [B, n_items] joins as an Entry; it is
# tuned, scored and tabled like the baselines, on the same splits, in the same run.
MODELS: dict[str, Entry] = {
    name: Entry(lambda p, seed, data, name=name: FACTORIES[name](p, seed), GRIDS[name])
    for name in BASELINES
}
# Ours: the RecommenderModule (configs/model/recommender.yaml) fitted with early stopping on
# validation NDCG@10. Its settings were chosen, like the baselines' grid ranges, by a look at
# seed 0's validation figures: a cosine score at tau 0.1 beat a plain dot product (valid
# NDCG@10 0.192 vs 0.182), log-play history weights edged binary ones, tags added little, and
# three heads (a small ensemble trained in one pass) gained ~0.003-0.005 over one.
_OURS: dict[int, TasteRecommender] = {}  # each split seed's model (fit() fills it in place)


def _ours(p: dict[str, Any], seed: int, data: Interactions) -> TasteRecommender:
    _OURS[seed] = TasteRecommender(data, seed=seed, **p)
    return _OURS[seed]


def _ours_content(p: dict[str, Any], seed: int, data: Interactions) -> Recommender:
    """Ours ranking by its content path alone (tags): the model `ours` fitted on this seed when
    it ran before, else one fitted when this is."""
    return ContentOnly(_OURS.get(seed) or TasteRecommender(data, seed=seed, **p))


OURS_GRID = {"heads": (3,), "tau": (0.1,), "history_dropout": (0.5,)}
MODELS["ours"] = Entry(_ours, OURS_GRID)
# Issue 20: the content-based recommender beside the hybrid and the neighbourhoods (userknn and
# itemknn are baselines above), so a user can choose from one table.
MODELS["ours_content"] = Entry(_ours_content, OURS_GRID)


def run_one(name: str, entry: Entry, split: Split, data: Interactions) -> dict[str, Any]:
    """Tune `name` on split.valid, score the chosen model on split.test."""
    started = time.perf_counter()
    result = tune(lambda p: entry.make(p, split.seed, data), entry.grid, split, log=print)
    test = evaluate(result.model.scores, split.train, split.test, exclude=split.valid)
    seconds = time.perf_counter() - started
    if result.at_edge:
        print(f"  note: {name} chose the edge of its grid on {result.at_edge}")
    figures = " ".join(f"{m} {test[m]:.4f}" for m in METRICS)
    print(
        f"[{name}] seed {split.seed}: {result.params} test {figures} ({seconds:.0f}s)", flush=True
    )
    return {
        "seed": split.seed,
        "params": result.params,
        "test": {m: test[m] for m in METRICS},
        "valid": {m: result.valid[m] for m in METRICS},
        "test_users": int(test["n_users"]),
        "at_edge": result.at_edge,
        "trials": result.trials,
        "seconds": round(seconds, 1),
    }


def summarise(runs: list[dict[str, Any]], grid: dict[str, Sequence[Any]]) -> dict[str, Any]:
    """Mean and sample std (ddof 1; null for one seed) of the test figures over seeds."""
    values = {m: np.array([r["test"][m] for r in runs]) for m in METRICS}
    out: dict[str, Any] = {m: float(v.mean()) for m, v in values.items()}
    # One seed has no spread to give: null, and the table prints the mean alone.
    out["std"] = {m: float(v.std(ddof=1)) if len(v) > 1 else None for m, v in values.items()}
    out["split_seeds"] = [r["seed"] for r in runs]  # entries of other runs may be kept beside
    out["selected_on"] = "valid ndcg@10"
    out["grid"] = {k: list(v) for k, v in grid.items()}
    out["seeds"] = runs
    return out


def table(lastfm: dict[str, Any], names: Sequence[str], seeds: Sequence[int]) -> str:
    def cell(entry: dict[str, Any], m: str) -> str:
        if m not in entry:
            return f"{'–':>15}"
        std = entry.get("std", {}).get(m)
        return f"{entry[m]:.4f} ± {std:.4f}" if std is not None else f"{entry[m]:>15.4f}"

    lines = [
        f"Last.fm HetRec 2K, RecBole protocol (8:1:1 random per user, full ranking, train(+valid) "
        f"masked); test, mean ± std over split seeds {' '.join(map(str, seeds))}",
        f"{'model':38s} " + " ".join(f"{m:>15s}" for m in METRICS),
    ]
    for name in names:
        lines.append(f"{name:38s} " + " ".join(cell(lastfm[name], m) for m in METRICS))
    for label, figures in {**PUBLISHED, **ISSUE_SINGLE_SPLIT}.items():
        lines.append(f"{label:38s} " + " ".join(cell(figures, m) for m in METRICS))
    baselines = [n for n in names if n in BASELINES]
    if baselines:  # the bar: our model above the best baseline of this run on both metrics
        bar = []
        for m in ("recall@10", "ndcg@10"):
            best = max(baselines, key=lambda n: lastfm[n][m])
            bar.append(f"{m} {lastfm[best][m]:.4f} ({best})")
        lines.append("best tuned baseline of this run: " + ", ".join(bar))
    lines.append("chosen on validation NDCG@10, per seed:")
    for name in names:
        chosen = "; ".join(json.dumps(r["params"]) for r in lastfm[name]["seeds"])
        lines.append(f"  {name}: {chosen}")
    return "\n".join(lines)


SECTIONS = ("lastfm", "content", "index")


def run_lastfm(args: argparse.Namespace, results: dict[str, Any], command: str) -> str:
    """Fills results["lastfm"][model] for the models run (others in the file are kept)."""
    started = time.perf_counter()
    path = lastfm_path()
    data = load_lastfm()
    print(f"{path}: {data.n_users} users x {data.n_items} items, {data.matrix.nnz} pairs")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.models}
    for seed in args.seeds:
        split = split_per_user(data.matrix, (0.8, 0.1, 0.1), seed=seed)
        print(f"seed {seed}: train {split.train.nnz}, valid {split.valid.nnz}, "
              f"test {split.test.nnz} pairs", flush=True)  # fmt: skip
        for name in args.models:
            runs[name].append(run_one(name, MODELS[name], split, data))
    seconds = time.perf_counter() - started
    lastfm = results.setdefault("lastfm", {})
    for name in args.models:
        lastfm[name] = summarise(runs[name], MODELS[name].grid)
    prov = provenance(command, seconds)
    prov["machine"] = str(prov["machine"]) + f", implicit {version('implicit')}"
    prov["data"] = {
        "file": f"lastfm-hetrec2011-2k/{path.name}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "users": data.n_users, "items": data.n_items, "pairs": int(data.matrix.nnz),
    }  # fmt: skip
    prov["seeds"] = list(args.seeds)
    prov["models"] = list(args.models)
    results.setdefault("provenance", {})["lastfm"] = prov
    # Per model too: a run of some --models keeps the others' figures, and their own record.
    made = results["provenance"].setdefault("lastfm_models", {})
    for name in args.models:
        made[name] = {k: prov[k] for k in ("command", "date", "machine", "seeds")}
    return table(lastfm, args.models, args.seeds)


def run_content(args: argparse.Namespace, results: dict[str, Any], command: str) -> str:
    """The content path on real pieces of 4 styles with simulated listeners (cold start,
    generated pieces, conditioning vs rerank): benchmarks/recommender_content.py."""
    import recommender_content

    started = time.perf_counter()
    sections, text = recommender_content.run_all(
        args.seeds, minutes=args.generator_minutes, retrain=args.retrain_generators
    )
    results.update(sections)
    results.setdefault("provenance", {})["content"] = provenance(
        command, time.perf_counter() - started
    )
    return text


def run_index(args: argparse.Namespace, results: dict[str, Any], command: str) -> str:
    """Top-100 latency and recall, exact vs FAISS: benchmarks/recommender_index.py."""
    import recommender_index

    started = time.perf_counter()
    results["index"] = recommender_index.run_index_benchmark(sizes=args.index_sizes)
    results.setdefault("provenance", {})["index"] = provenance(
        command, time.perf_counter() - started
    )
    return recommender_index.index_table(results["index"])


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument(
        "--generator-minutes",
        type=float,
        default=4.0,
        help="content section: CPU minutes to train each style's generator",
    )
    ap.add_argument(
        "--retrain-generators",
        action="store_true",
        help="content section: retrain the style generators (else reuse them)",
    )
    ap.add_argument("--index-sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/recommender.py", *given])
    runners = {"lastfm": run_lastfm, "content": run_content, "index": run_index}
    tables = []
    for section in args.sections:
        # Each section is written as soon as it is done, merged into the file as it is then
        # (another run may have written other sections meanwhile); the rest keep their figures.
        mine: dict[str, Any] = {}
        tables.append(runners[section](args, mine, command))
        results = json.loads(args.out.read_text()) if args.out.is_file() else {}
        for key, value in mine.items():
            if key in ("lastfm", "provenance"):  # merged per model / per section
                results.setdefault(key, {}).update(value)
            else:
                results[key] = value
        write_atomically(args.out, json.dumps(results, indent=1))
        print(f"wrote {args.out} ({section})", flush=True)
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
