"""Text -> taste on Last.fm HetRec 2K: listeners known only by a description in words.

    CADENZA_DATA=../shared/data python benchmarks/text_taste.py --seeds 0 1 2

The recommender benchmark's protocol (benchmarks/recommender.py): RecBole's random 8:1:1 split
per user, the full catalog of 17,632 artists ranked, the user's train (+ valid) artists masked,
Recall@10 / NDCG@10 on held-out artists. What differs is what each method may read about the
user: only a description, built from the tags that user applied to their *training* artists
(their ten most used, less any tag that is an artist's name: `lastfm_catalog`'s user_text), for
the users who tagged anything in training. No method sees the user's history, except the last
row, which is there to say how close words come to it.

- popularity: training play counts; reads nothing about the user.
- tfidf: TF-IDF keyword matching of the description against each artist's training tags (the
  artist's ten most used), plus a popularity prior: score = cosine + lam * log-popularity.
  Tuned on validation over whole tags or words, sublinear term frequency or not, and lam.
- sentence match: the same sentence model the recommender reads text with (all-MiniLM-L6-v2),
  cosine between the description and each artist's tag text, plus lam * log-popularity, lam
  tuned on validation. The sentence model without the recommender.
- ours, text, new listener: the recommender's text -> taste map (`text_taste.py`), cross-fitted
  over 5 folds of users: a user's words go through a map fitted without that user (no pair of
  their description and their history was seen), which is what a listener new to the service
  who types a description gets.
- ours, text, as trained: the map the checkpoint carries, fitted on every training user's
  description and history (this user's training tags and history included; never a held-out
  artist). What the same user gets from `cadenza-recommend text=...` with the shipped model.
- ours, history: the same model from the user's training history (the recommender benchmark's
  model), as the ceiling words are measured against.

The recommender is trained once per seed as the recommender benchmark trains it (early stopping
on validation NDCG@10), with model.text=true. Writes benchmarks/results/text_taste.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cadenza.metrics.ranking import evaluate
from cadenza.recommend.baselines import grid_configs
from cadenza.recommend.datamodule import Catalog, lastfm_catalog
from cadenza.recommend.embedder import heads_to_vector
from cadenza.recommend.fit import fit_recommender
from cadenza.recommend.interactions import load_lastfm, split_per_user
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.text import sentence_embedder
from cadenza.recommend.text_taste import TextMapFitter, apply_map
from cli_runs import provenance, save_entry

RESULTS = Path(__file__).parent / "results" / "text_taste.json"
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
FOLDS = 5
LAMBDAS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
ScoresFn = Callable[[np.ndarray], np.ndarray]


def log_popularity(train: sp.csr_matrix) -> np.ndarray:
    """[I] log(1 + training listeners), scaled to [0, 1]."""
    pop = np.log1p(np.asarray(train.getnnz(axis=0), np.float64))
    return pop / max(pop.max(), 1e-12)


def tfidf_scores(catalog: Catalog, analyzer: str, sublinear: bool) -> np.ndarray:
    """[U, I] cosine of each user's description to each artist's tag text, TF-IDF weighted."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer == "tags":  # a whole tag ("hip hop", "90s") is one term
        vec = TfidfVectorizer(analyzer=lambda d: [t for t in d.split(", ") if t],
                              sublinear_tf=sublinear)  # fmt: skip
    else:
        vec = TfidfVectorizer(sublinear_tf=sublinear)
    items = vec.fit_transform(catalog.item_text)
    return (vec.transform(catalog.user_text) @ items.T).toarray()


def tuned(name: str, candidates: dict[str, ScoresFn], stage: Callable) -> dict[str, Any]:
    """Pick the candidate with the best validation NDCG@10, score it on test."""
    valid = {k: stage(fn, "valid") for k, fn in candidates.items()}
    best = max(valid, key=lambda k: valid[k]["ndcg@10"])
    print(f"  {name}: chose {best} (valid ndcg@10 {valid[best]['ndcg@10']:.4f})", flush=True)
    return {"test": stage(candidates[best], "test"), "valid": valid[best], "chosen": best,
            "trials": {k: round(v["ndcg@10"], 4) for k, v in valid.items()}}  # fmt: skip


def cross_fitted_tastes(model: RecommenderModule, users: np.ndarray, seed: int) -> np.ndarray:
    """Tastes [len(users), H*D] from words alone, each fold of users mapped by a map fitted
    on the tracks' pairs and the other folds' users."""
    pair_users, _, texts = model._text_pairs
    x, y = sentence_embedder().encode(texts), model.text_targets()
    n = len(pair_users)  # the model's pairs: described users first, then tracks
    row_of = {u: r for r, u in enumerate(pair_users)}
    fold = np.random.default_rng(seed).integers(0, FOLDS, n)
    out = np.zeros((len(users), y.shape[1]), np.float32)
    alphas = []
    for f in range(FOLDS):
        keep = np.concatenate([fold != f, np.ones(len(x) - n, bool)])
        fitted = TextMapFitter(x[keep], seed=seed).fit(y[keep])
        alphas.append(fitted.alpha)
        for j, u in enumerate(users):
            if fold[row_of[u]] == f:
                out[j] = apply_map(fitted.weights, x[row_of[u]])
    print(f"  cross-fitted maps chose alpha {alphas}", flush=True)
    return heads_to_vector(torch.from_numpy(out).view(len(users), model.hparams.heads, -1)).numpy()


def run_seed(seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    data = load_lastfm()
    split = split_per_user(data.matrix, (0.8, 0.1, 0.1), seed=seed)
    catalog = lastfm_catalog(data, split.train, split.valid, split.test)
    described = np.array([bool(t) for t in catalog.user_text])
    # Only users with words are asked (the others have no description to give).
    keep = sp.diags(described.astype(np.float32))
    valid = sp.csr_matrix(keep @ split.valid)
    test = sp.csr_matrix(keep @ split.test)
    valid.eliminate_zeros(), test.eliminate_zeros()

    def stage(fn: ScoresFn, which: str) -> dict[str, float]:
        if which == "valid":
            return evaluate(fn, split.train, valid)
        return evaluate(fn, split.train, test, exclude=split.valid)

    log(f"seed {seed}: {described.sum()} of {data.n_users} users have a description; "
        f"{test.getnnz(axis=1).astype(bool).sum()} of them have a test artist")  # fmt: skip
    results: dict[str, Any] = {}
    pop = log_popularity(split.train)
    results["popularity"] = tuned("popularity", {"-": lambda b: np.tile(pop, (len(b), 1))}, stage)

    candidates = {}
    for p in grid_configs({"analyzer": ("tags", "words"), "sublinear": (True, False)}):
        sim = tfidf_scores(catalog, p["analyzer"], p["sublinear"])
        for lam in LAMBDAS:
            candidates[f"{p['analyzer']}, sublinear {p['sublinear']}, lam {lam}"] = (
                lambda b, sim=sim, lam=lam: sim[b] + lam * pop
            )
    results["tfidf"] = tuned("tfidf", candidates, stage)

    started = time.perf_counter()
    embedder = sentence_embedder()
    users_x, items_x = embedder.encode(catalog.user_text), embedder.encode(catalog.item_text)
    items_x[[not t for t in catalog.item_text]] = 0.0  # an untagged artist matches nothing
    match = users_x @ items_x.T
    log(f"  sentence vectors for {len(users_x) + len(items_x)} texts: "
        f"{time.perf_counter() - started:.0f}s")  # fmt: skip
    results["sentence match"] = tuned(
        "sentence match",
        {f"lam {lam}": (lambda b, lam=lam: match[b] + lam * pop) for lam in LAMBDAS},
        stage,
    )

    started = time.perf_counter()
    model = fit_recommender(catalog, seed=seed, log=log, heads=3, tau=0.1,
                            history_dropout=0.5, text=True)  # fmt: skip
    train_seconds = time.perf_counter() - started
    with torch.no_grad():
        tracks = model.catalog_embeddings()
        shipped = model.taste_of_text([t or "music" for t in catalog.user_text]).numpy()
        history = model.user_taste(torch.arange(data.n_users)).numpy()
    users = np.flatnonzero(described)
    fresh = np.zeros_like(shipped)
    fresh[users] = cross_fitted_tastes(model, users, seed)

    def by_taste(tastes: np.ndarray) -> ScoresFn:
        return lambda b: model.score(torch.as_tensor(tastes[b]), tracks).numpy()

    results["ours, text, new listener"] = tuned("ours, text, new listener",
                                                {"-": by_taste(fresh)}, stage)  # fmt: skip
    results["ours, text, as trained"] = tuned("ours, text, as trained",
                                              {"-": by_taste(shipped)}, stage)  # fmt: skip
    results["ours, history"] = tuned("ours, history", {"-": by_taste(history)}, stage)
    results["_model"] = {"best_epoch": int(model.best_epoch), "train_seconds": round(
        train_seconds, 1), "described_users": int(described.sum()),
        "test_users": int(test.getnnz(axis=1).astype(bool).sum())}  # fmt: skip
    return results


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in per_seed[0]:
        if name.startswith("_"):
            continue
        values = {m: np.array([r[name]["test"][m] for r in per_seed]) for m in METRICS}
        out[name] = {m: float(v.mean()) for m, v in values.items()}
        out[name]["std"] = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0
                            for m, v in values.items()}  # fmt: skip
        out[name]["chosen"] = [r[name]["chosen"] for r in per_seed]
    return out


def table(summary: dict[str, Any], seeds: list[int]) -> str:
    lines = [f"Last.fm HetRec 2K, a description of each user's training tags only; test, mean "
             f"± std over split seeds {' '.join(map(str, seeds))}",
             f"{'method':28s} " + " ".join(f"{m:>17s}" for m in METRICS)]  # fmt: skip
    for name, e in summary.items():
        lines.append(f"{name:28s} " + " ".join(f"{e[m]:.4f} ± {e['std'][m]:.4f}" for m in METRICS))
    words, hist = summary["ours, text, new listener"], summary["ours, history"]
    lines.append(f"words (new listener) / history: recall@10 "
                 f"{words['recall@10'] / hist['recall@10']:.2f}, ndcg@10 "
                 f"{words['ndcg@10'] / hist['ndcg@10']:.2f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    started = time.perf_counter()
    per_seed = [run_seed(s, print) for s in args.seeds]
    summary = summarise(per_seed)
    entry = {
        "summary": summary,
        "seeds": {str(s): r for s, r in zip(args.seeds, per_seed)},
        **provenance("python benchmarks/text_taste.py " + " ".join(sys.argv[1:]),
                     time.perf_counter() - started),
    }  # fmt: skip
    entry["seconds"] = entry.pop("train_seconds")
    save_entry(args.out, "lastfm", entry)
    print(table(summary, args.seeds))


if __name__ == "__main__":
    main()
