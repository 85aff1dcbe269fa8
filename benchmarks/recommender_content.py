"""The recommender's content path on four real styles with simulated listeners (issue 6).

- cold start: per seed a StyleListenersCatalog (listeners whose tastes mix styles, Dirichlet 0.3
  over 4 styles; 20% of each style's tracks cold, all their plays held out) and the styles
  recommender (configs/experiment/styles_recommender.yaml); cold tracks ranked for every user
  with a cold play, against random, style popularity and content kNN on the same candidates.
- generated: jsb_lstm and nottingham_lstm trained through the real CLI; do JSB lovers prefer
  the JSB model's 8-bar samples (and Nottingham lovers the other's)? Rows for held-out catalog
  pieces and for 8-bar crops of the generators' own training data; a nearest-centroid check.
- conditioning: per listener, keep 5 of a budget of generated pieces: sample both models then
  rerank, route generation by the recommender's p(style | taste), or both.

    CADENZA_DATA=../shared/data python benchmarks/recommender_content.py --out /tmp/content.json

Prints the tables last; --out gets {"cold_start", "generated", "conditioning", "provenance"}.
Generator logs and checkpoints: benchmarks/runs/recommender_content/ (reused unless --retrain).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch

from cadenza.atomic import write_atomically
from cadenza.errors import BadFileError, CadenzaError
from cadenza.metrics.ranking import evaluate, hits_matrix, ndcg_at_k, recall_at_k, top_k_items
from cadenza.recommend.datamodule import Catalog, StyleListenersCatalog
from cadenza.recommend.fit import fit_recommender
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.workflow import style_mix
from cli_runs import max_time, provenance, run_train

RUNS = Path(__file__).parent / "runs" / "recommender_content"
KS = (10, 20)
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
MODEL = {"dim": 64, "heads": 1, "hidden": 256, "id_dropout": 0.5, "context_prob": 0.3}
KNN_AGGREGATES = ("mean", "max", "top5")
# style -> (experiment, overrides). The JSB generator learns from the same chorales the catalog
# holds (Coconet's 16th-note arrays, data=jsb_satb, whole pieces), not Boulanger's JSB set: that
# one is quantised to quarter notes, so even its own pieces look rhythmically unlike the
# catalog's chorales (a first run showed JSB fans preferring crops of it only 0.64 of the time).
GENERATORS: dict[str, tuple[str, list[str]]] = {
    "jsb": ("jsb_lstm", ["data=jsb_satb", "~data.source.name", "data.window_bars=null",
                         "representation.steps_per_beat=4", "data.batch_size=16"]),
    "nottingham": ("nottingham_lstm", []),
}  # fmt: skip
# One style-conditional model in place of the two: the frame Transformer-NADE with a learned
# style prefix (configs/experiment/jsb_nottingham_transformer.yaml), trained on the two styles'
# catalog sources at the 16th-note grid, for the two style models' minutes together.
CONDITIONAL: tuple[str, list[str]] = ("jsb_nottingham_transformer", [])
# A time-bounded run cannot size its cosine from epochs: the steps a minute on one core
# (measured, with validation each epoch), so the rate decays over the run it gets.
COND_STEPS_PER_MINUTE = 240
BARS = 8
Log = Callable[[str], None]


# --- cold start --------------------------------------------------------------------------------
def rank_metrics(scores: np.ndarray, held: sp.csr_matrix) -> dict[str, float]:
    """Mean Recall/NDCG@k of scores [B, C] against held-out [B, C] (every row has a positive)."""
    n_pos = held.getnnz(axis=1)
    hits = hits_matrix(top_k_items(np.asarray(scores, np.float64), max(KS)), held)
    out = {f"recall@{k}": recall_at_k(hits, n_pos, k).mean() for k in KS}
    out.update({f"ndcg@{k}": ndcg_at_k(hits, n_pos, k).mean() for k in KS})
    return {m: float(out[m]) for m in METRICS}


def random_expected(n_pos: np.ndarray, n_candidates: int) -> dict[str, float]:
    """Closed form for a uniformly random ranking: each rank holds a positive w.p. |P| / C."""
    out = {}
    for k in KS:
        kk = min(k, n_candidates)
        disc = 1.0 / np.log2(np.arange(2, kk + 2))
        idcg = np.cumsum(disc)[np.minimum(n_pos, kk) - 1]
        out[f"recall@{k}"] = kk / n_candidates
        out[f"ndcg@{k}"] = float((n_pos / n_candidates * disc.sum() / idcg).mean())
    return {m: out[m] for m in METRICS}


def _averaged(draw: Callable[[], dict[str, float]], draws: int) -> dict[str, float]:
    runs = [draw() for _ in range(draws)]
    return {m: float(np.mean([r[m] for r in runs])) for m in METRICS}


def knn_scores(features: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray,
               aggregate: str) -> np.ndarray:  # fmt: skip
    """[B, C]: cosine of each candidate's features to those of the user's history tracks
    (history [B, I], its nonzeros), aggregated: mean, max, or mean of the 5 most similar."""
    f = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-8)
    sim = f @ f[candidates].T  # [I, C]
    out = np.zeros((history.shape[0], len(candidates)))
    for row in range(history.shape[0]):
        s = sim[history.indices[history.indptr[row] : history.indptr[row + 1]]]  # [n_h, C]
        if len(s):
            pick = {"mean": np.mean, "max": np.max, "top5": lambda x, axis: np.sort(x, axis)[-5:]
                    .mean(axis)}[aggregate]  # fmt: skip
            out[row] = pick(s, axis=0)
    return out


@torch.no_grad()
def evaluate_cold_start(model: RecommenderModule, catalog: Catalog, draws: int = 20,
                        seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Rank the cold tracks only, for users with >= 1 cold play: the model (content alone, cold
    tracks have no trained ID) and the baselines on the same candidates and users; plus the
    model's warm valid/test figures (full catalog, seen tracks masked, as its own test step)."""
    cold, train = catalog.cold_items, sp.csr_matrix(catalog.train)
    held = sp.csr_matrix(catalog.cold_test[:, cold])  # [U, C]
    users = np.flatnonzero(held.getnnz(axis=1) > 0)
    held = held[users]
    rng = np.random.default_rng(seed)
    tracks = model.catalog_embeddings()  # [I, D]
    ours = model.score(model.user_taste(torch.as_tensor(users)), tracks[cold]).numpy()
    # "Popularity" of a cold track: the training plays of its style (it has none of its own).
    style_plays = np.bincount(catalog.item_context[train.indices], minlength=len(catalog.contexts))
    pop = style_plays[catalog.item_context[cold]].astype(np.float64)
    models = {
        "ours": rank_metrics(ours, held),
        "random": _averaged(lambda: rank_metrics(rng.random(held.shape), held), draws),
        "random (closed form)": random_expected(held.getnnz(axis=1), len(cold)),
        "style popularity": _averaged(
            lambda: rank_metrics(pop + 0.5 * rng.random(held.shape), held), draws
        ),
    }
    # The kNN's one knob, chosen as the model's epoch is: warm validation NDCG@10.
    every = np.arange(len(catalog.item_keys))
    knn_valid = {a: evaluate(lambda u, a=a: knn_scores(catalog.features, train[u], every, a),
                             train, catalog.valid)["ndcg@10"] for a in KNN_AGGREGATES}  # fmt: skip
    best = max(knn_valid, key=knn_valid.get)
    knn = knn_scores(catalog.features, train[users], cold, best)
    models["content kNN"] = rank_metrics(knn, held)

    def scores_fn(u: np.ndarray) -> np.ndarray:
        return model.score(model.user_taste(torch.as_tensor(u)), tracks).numpy()

    warm = {"valid": evaluate(scores_fn, train, catalog.valid),
            "test": evaluate(scores_fn, train, catalog.test, exclude=catalog.valid)}  # fmt: skip
    return {"models": models, "n_cold": int(len(cold)), "n_users": int(len(users)),
            "knn": {"aggregate": best, "valid_ndcg@10": knn_valid},
            "warm": {s: {m: w[m] for m in METRICS} for s, w in warm.items()}}  # fmt: skip


def _mean_std(values: list[dict[str, float]]) -> dict[str, Any]:
    a = {m: np.array([v[m] for v in values]) for m in METRICS}
    out: dict[str, Any] = {m: float(x.mean()) for m, x in a.items()}
    out["std"] = {m: float(x.std(ddof=1)) if len(x) > 1 else 0.0 for m, x in a.items()}
    return out


def run_cold_start(seeds: Sequence[int] = (0, 1, 2), per_style: int = 150, n_users: int = 1000,
                   max_epochs: int = 40, patience: int = 5, log: Log = print,
                   keep: dict[int, tuple[RecommenderModule, Catalog]] | None = None,
                   ) -> dict[str, Any]:  # fmt: skip
    """Cold start over `seeds` (each its own catalog draw, listeners, split and model);
    `keep`, if given, receives {seed: (model, catalog)}."""
    runs = []
    for seed in seeds:
        source = StyleListenersCatalog(per_style=per_style, n_users=n_users, seed=seed)
        catalog = source.build()
        log(f"cold start seed {seed}: {source.describe()}")
        model = fit_recommender(catalog, max_epochs, patience, seed, log=log, **MODEL)
        fig = evaluate_cold_start(model, catalog, seed=seed)
        fig.update(seed=seed, best_epoch=int(model.best_epoch),
                   tracks_per_style=np.bincount(catalog.item_context).tolist())  # fmt: skip
        log(f"  seed {seed} ndcg@10: " + ", ".join(f"{k} {v['ndcg@10']:.4f}"
                                                   for k, v in fig["models"].items()))  # fmt: skip
        runs.append(fig)
        if keep is not None:
            keep[seed] = (model, catalog)
    settings = {k: getattr(source, k) for k in ("per_style", "n_users", "listens",
                                                "concentration", "cold_fraction")}  # fmt: skip
    settings.update(n_cold=[r["n_cold"] for r in runs], seeds=list(seeds), model=MODEL,
                    n_users_evaluated=[r["n_users"] for r in runs], max_epochs=max_epochs,
                    patience=patience)  # fmt: skip
    return {"settings": settings,
            "models": {n: _mean_std([r["models"][n] for r in runs]) for n in runs[0]["models"]},
            "warm": {s: _mean_std([r["warm"][s] for r in runs]) for s in ("valid", "test")},
            "seeds": runs}  # fmt: skip


def cold_start_table(result: dict[str, Any]) -> str:
    s = result["settings"]
    rows = {**result["models"], **{f"ours, warm {k}": v for k, v in result["warm"].items()}}
    return "\n".join([
        f"Cold start: {s['per_style']} real pieces per style x 4 styles; {s['n_users']} simulated "
        f"listeners whose tastes mix styles (Dirichlet {s['concentration']} over the 4 styles, "
        f"{s['listens'][0]}-{s['listens'][1]} plays each); {s['cold_fraction']:.0%} of each "
        f"style's tracks cold ({s['n_cold']}), every play of them held out. Candidates: the cold "
        f"tracks only; users with >= 1 cold play ({s['n_users_evaluated']}); mean ± std over "
        f"seeds {s['seeds']}.",
        "style popularity = the training plays of the track's *style* (cold tracks have none of "
        "their own), random tie-break; random and style popularity: mean of 20 draws. content "
        "kNN = cosine of standardised note features to the user's training tracks, aggregate "
        f"chosen on warm valid NDCG@10 ({[r['knn']['aggregate'] for r in result['seeds']]}). "
        "'warm' rows: the full catalog, seen tracks masked, as the module's val/test step.",
        f"{'model':22s} " + " ".join(f"{m:>17s}" for m in METRICS),
        *(f"{name:22s} " + " ".join(f"{e[m]:.4f} ± {e['std'][m]:.4f}".rjust(17) for m in METRICS)
          for name, e in rows.items()),
    ])  # fmt: skip


# --- generated pieces --------------------------------------------------------------------------
def train_generator(experiment: str, minutes: float, seed: int, retrain: bool,
                    log: Log, overrides: Sequence[str] = (),
                    threads: int | None = 1) -> tuple[Path, float]:  # fmt: skip
    """The checkpoint and its training seconds. An earlier run's checkpoint is reused only when
    it was trained as asked (minutes, seed, overrides: `trained.json` beside it), so a figure
    labelled with a budget was made with that budget."""
    root = RUNS / experiment
    ckpt = root / "checkpoints" / experiment / "latest.ckpt"  # train() links the best here
    asked = {"minutes": minutes, "seed": seed, "overrides": list(overrides)}
    record = root / "trained.json"
    if ckpt.is_file() and not retrain:
        done = json.loads(record.read_text()) if record.is_file() else {}
        if {k: done.get(k) for k in asked} == asked:
            log(f"{experiment}: reusing {ckpt} (trained {done['date']}, {minutes} min)")
            return ckpt, float(done["train_seconds"])
        log(f"{experiment}: {ckpt} was not trained as asked ({asked}); training again")
    root.mkdir(parents=True, exist_ok=True)
    log(f"{experiment}: training {minutes} min (log {root / 'train.log'})")
    root_dir, ckpt_root = root.resolve(), ckpt.parent.resolve()
    args = [f"experiment={experiment}", f"trainer.max_time={max_time(minutes)}", "logger=none",
            "sample.n=0", "test=false", "trainer.enable_progress_bar=false", f"seed={seed}",
            f"paths.root_dir={root_dir}", f"paths.checkpoint_root={ckpt_root}",
            *overrides]  # fmt: skip
    seconds = run_train(experiment, args, root / "train.log", threads)
    record.write_text(json.dumps({**asked, "train_seconds": seconds,
                                  "date": str(date.today())}))  # fmt: skip
    return ckpt, seconds


def piece_features(model: RecommenderModule, midis: list[Any]) -> tuple[np.ndarray, int]:
    """Raw content features [N', F] of the pieces that have notes, and how many had none."""
    from cadenza.recommend.workflow import content_features

    rows = []
    for pm in midis:
        try:
            rows.append(content_features(model, [pm])[0])
        except BadFileError:  # an empty piece cannot be scored
            continue
    return np.stack(rows), len(midis) - len(rows)


def sample_midis(ckpt: Path, n: int, seed: int, style: Any = None) -> list[Any]:
    from cadenza.generation import generate
    from cadenza.models import GenerativeModule

    pieces = generate(GenerativeModule.load(ckpt), n, seed=seed, temperature=1.0, bars=BARS,
                      style=style)  # fmt: skip
    return [p.music for p in pieces]


def crops(style: str, n: int) -> list[Any]:
    """The first BARS bars (120 bpm) of n test pieces of the generator's own training data."""
    from cadenza.data.sources import BoulangerSource, CoconetSource
    from cadenza.io.midi import as_pretty_midi, clip_midi

    src = CoconetSource() if style == "jsb" else BoulangerSource(style)
    items = [it for it in src.items() if it.split == "test"][:n]
    return [clip_midi(as_pretty_midi(src.load(it)), BARS * 4 * 60.0 / 120.0) for it in items]


def true_taste(catalog: Catalog, per_style: int, n_users: int, seed: int) -> np.ndarray:
    """[U, S] the simulated listeners' style mix, drawn again as StyleListenersCatalog drew it."""
    from cadenza.recommend.style_catalog import load_style_catalog, simulate_listeners

    src = StyleListenersCatalog(per_style=per_style, n_users=n_users, seed=seed)
    styles = load_style_catalog(per_style, seed, src.root, src.workers).styles
    listeners = simulate_listeners(styles, n_users, src.listens, src.concentration, seed=seed)
    plays = (catalog.train + catalog.valid + catalog.test + catalog.cold_test) > 0
    if (plays != (listeners.matrix > 0)).nnz:
        raise CadenzaError("re-simulated listeners differ from the catalog's: pass the catalog "
                           "built with the same per_style / n_users / seed")  # fmt: skip
    return listeners.taste


def preference(fav: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Scores [U, Nf], [U, No] of the favoured style's pieces and the other's for U listeners:
    the share whose mean favoured score is higher, and the mean pairwise win rate (AUC)."""
    wins = (fav[:, :, None] > other[:, None, :]) + 0.5 * (fav[:, :, None] == other[:, None, :])
    return {"prefer_own": float((fav.mean(1) > other.mean(1)).mean()),
            "auc": float(wins.mean()), "n_listeners": int(len(fav))}  # fmt: skip


@torch.no_grad()
def run_generated(model: RecommenderModule, catalog: Catalog,
                  minutes_per_generator: float = 4.0, n_samples: int = 32, seed: int = 0,
                  per_style: int = 150, n_users: int = 1000, retrain: bool = False,
                  fan: float = 0.7, log: Log = print) -> dict[str, Any]:  # fmt: skip
    """Generated pieces scored by the styles recommender fitted on `catalog` (seed `seed`; fit
    it outside any no_grad block: Lightning's fit turns grad mode on). The result holds the
    "conditioning" section too."""
    ctx, two, cold = list(catalog.contexts), list(GENERATORS), catalog.cold_items
    sets: dict[str, dict[str, np.ndarray]] = {"generated": {}, "training data (crops)": {}}
    empty, train_s = {}, {}
    # Equal CPU minutes: the two style models side by side on a core each, then the one
    # conditional model on one core for their minutes together.
    with ThreadPoolExecutor(2) as ex:
        runs = {
            style: ex.submit(
                train_generator, exp, minutes_per_generator, seed, retrain, log, overrides
            )
            for style, (exp, overrides) in GENERATORS.items()
        }
        ckpts = {style: f.result() for style, f in runs.items()}  # fmt: skip
    cond_exp, cond_overrides = CONDITIONAL
    cond_minutes = len(GENERATORS) * minutes_per_generator
    cond_ckpt, train_s[cond_exp] = train_generator(
        cond_exp,
        cond_minutes,
        seed,
        retrain,
        log,
        [*cond_overrides, f"model.cosine_steps={int(COND_STEPS_PER_MINUTE * cond_minutes)}"],
    )
    for i, (style, (exp, _)) in enumerate(GENERATORS.items()):
        ckpt, train_s[exp] = ckpts[style]
        gen = sample_midis(ckpt, n_samples, seed + i)
        sets["generated"][style], empty[style] = piece_features(model, gen)
        sets["training data (crops)"][style] = piece_features(model, crops(style, n_samples))[0]
    # The conditional model's pools: one per p(jsb) in 0.0, 0.1, ..., 1.0 (the style mix
    # {jsb: p, nottingham: 1 - p}); p = 1 and p = 0 are its two styles.
    mixes = {}
    for b in range(MIX_BINS):
        p = b / (MIX_BINS - 1)
        gen = sample_midis(cond_ckpt, n_samples, seed + 100 + b, {"jsb": p, "nottingham": 1 - p})
        mixes[b], empty[f"conditional p(jsb)={p:.1f}"] = piece_features(model, gen)
    sets[COND_LABEL] = {"jsb": mixes[MIX_BINS - 1], "nottingham": mixes[0]}
    taste = true_taste(catalog, per_style, n_users, seed)  # [U, S]
    tastes = model.user_taste(torch.arange(len(catalog.user_keys)))  # [U, D]
    tracks = model.catalog_embeddings()
    scores = {label: {s: model.score(tastes, model.embed_features(f)).numpy() for s, f in
                      fs.items()} for label, fs in sets.items()}  # fmt: skip
    scores["held-out catalog"] = {s: model.score(tastes, tracks[cold[catalog.item_context[cold]
                                  == ctx.index(s)]]).numpy() for s in two}  # fmt: skip
    rows = {label: {f"{s} fans": preference(sc[s][taste[:, ctx.index(s)] > fan],
                                            sc[o][taste[:, ctx.index(s)] > fan])
                    for s, o in (two, two[::-1])} for label, sc in scores.items()}  # fmt: skip
    # Nearest style centroid of the standardised note features of the warm catalog tracks.
    warm = np.setdiff1d(np.arange(len(catalog.item_keys)), cold)
    cent = np.stack([catalog.features[warm][catalog.item_context[warm] == j].mean(0)
                     for j in range(len(ctx))])  # fmt: skip
    names, nearest = list(model.hparams.feature_names or []), {}
    zsets = {f"held-out {s}": catalog.features[cold[catalog.item_context[cold] == ctx.index(s)]]
             for s in two}  # fmt: skip
    for label, fs in sets.items():
        zsets.update({f"{label}: {s}": (f - catalog.feature_mean) / catalog.feature_std
                      for s, f in fs.items()})  # fmt: skip
    for who, z in zsets.items():
        near = np.argmin(((z[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
        gap = z.mean(0) - cent[ctx.index(who.split(" ")[-1])]
        nearest[who] = {"share": {c: float((near == j).mean()) for j, c in enumerate(ctx)},
                        "largest_gaps": {names[j]: round(float(gap[j]), 2)
                                         for j in np.argsort(-np.abs(gap))[:4]}}  # fmt: skip
    # p(style | taste): the model's softmax over the catalog, its mass on each style's tracks
    # (the predicted chance the next play is of that style), renormalised over the two styles.
    # The same p(style | taste) the product conditions a generator on (recommend_generated).
    routing = style_mix(model, model.score(tastes, tracks), two)[1].numpy()  # [U, 2]
    t2 = taste[:, [ctx.index(s) for s in two]]
    # The style a piece sounds like: the nearer of the two styles' centroids (as above).
    cent2 = cent[[ctx.index(s) for s in two]]

    def heard(z: np.ndarray) -> np.ndarray:  # standardised features [N, F] -> 0 jsb, 1 nott.
        return np.argmin(((z[:, None, :] - cent2[None]) ** 2).sum(-1), axis=1)

    def z(raw: np.ndarray) -> np.ndarray:
        return (raw - catalog.feature_mean) / catalog.feature_std

    pools = {s: Pool(scores["generated"][s], j, heard(z(sets["generated"][s])))
             for j, s in enumerate(two)}  # fmt: skip
    pools |= {c: Pool(scores[COND_LABEL][s], j, heard(z(sets[COND_LABEL][s])))
              for j, (c, s) in enumerate(zip(CONDITIONED, two))}  # fmt: skip
    for b, f in mixes.items():
        pools[f"mix {b}"] = Pool(model.score(tastes, model.embed_features(f)).numpy(), None,
                                 heard(z(f)))  # fmt: skip
    # How often the classifier hears the style a piece was written or generated in.
    classifier = {
        f"held-out catalog {s}": float(
            (heard(catalog.features[cold[catalog.item_context[cold] == ctx.index(s)]]) == j).mean()
        )
        for j, s in enumerate(two)
    }
    classifier |= {f"{name}": float((pools[name].classified == pools[name].label).mean())
                   for name in (*ROUTER, *CONDITIONED)}  # fmt: skip
    style_share = {f"{b / (MIX_BINS - 1):.1f}": float((pools[f"mix {b}"].classified == 0).mean())
                   for b in range(MIX_BINS)}  # fmt: skip
    conditioning = run_conditioning(pools, t2 / t2.sum(1, keepdims=True), routing, t2.sum(1),
                                    seed=seed)  # fmt: skip
    conditioning["classifier_accuracy"] = classifier
    conditioning["conditional_heard_as_jsb"] = style_share
    return {"n_samples": n_samples, "bars": BARS, "empty_samples": empty, "fan_threshold": fan,
            "generators": {e: {"minutes": minutes_per_generator * (len(GENERATORS)
                                                                   if e == cond_exp else 1),
                               "train_seconds": round(t, 1)} for e, t in train_s.items()},
            "preference": rows, "nearest_style": nearest, "conditioning": conditioning}  # fmt: skip


def generated_table(result: dict[str, Any]) -> str:
    lines = [
        f"Generated pieces: {result['n_samples']} samples of {result['bars']} bars from each of "
        + ", ".join(f"{e} ({g['minutes']} min)" for e, g in result["generators"].items())
        + f" (empty: {result['empty_samples']}), scored by the styles recommender (seed 0). "
        f"Fans: simulated listeners with taste > {result['fan_threshold']} for the style. "
        "prefer own: share of fans whose mean score of their style's pieces beats the other "
        "style's; AUC: mean over fans of the pairwise win rate (own-style piece vs other).",
        f"{'pieces':32s} {'fans':16s} {'n':>5s} {'prefer own':>11s} {'AUC':>7s}",
    ]
    for label, by_fans in result["preference"].items():
        lines += [f"{label:32s} {fans:16s} {r['n_listeners']:>5d} {r['prefer_own']:>11.3f} "
                  f"{r['auc']:>7.3f}" for fans, r in by_fans.items()]  # fmt: skip
    lines.append("Nearest style centroid (standardised note features, warm catalog tracks), "
                 "and the largest gaps in z to the own style's centroid:")  # fmt: skip
    for who, r in result["nearest_style"].items():
        shares = ", ".join(f"{c} {v:.2f}" for c, v in r["share"].items())
        lines.append(f"  {who:44s} {shares}; {r['largest_gaps']}")
    return "\n".join(lines)


# --- conditioning vs rerank --------------------------------------------------------------------
@dataclass(frozen=True)
class Pool:
    """Generated pieces one listener can be served: their recommender scores [U, N], the style
    they were generated in (0 jsb, 1 nottingham; None for a mix) and the style the note-feature
    classifier gives each [N]."""

    scores: np.ndarray
    label: int | None
    classified: np.ndarray


ROUTER = ("jsb", "nottingham")  # the two style models' pools
CONDITIONED = ("conditional jsb", "conditional nottingham")  # one model, one style each
MIX_BINS = 11  # one conditional pool per p(jsb | taste) in 0.0, 0.1, ..., 1.0: "mix <b>"
COND_LABEL = "conditional model, style named"


def run_conditioning(pools: dict[str, Pool], taste2: np.ndarray, routing: np.ndarray,
                     weight: np.ndarray, budget: int = 32, keep: int = 5, reps: int = 10,
                     seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Per listener, `reps` draws of each strategy: the kept pieces' mean recommender score and
    true utility (the listener's taste, renormalised over the two styles, for each kept
    piece's style). Utility is measured twice: by the style a piece was generated in (where it
    has one) and by the style the classifier hears in it (every strategy, so a mix can be
    compared). taste2, routing (p(style)): [U, 2]; weight [U]: the listener's two-style mass
    before renormalising. Pools: ROUTER and, when present, CONDITIONED and "mix <b>"."""
    rng = np.random.default_rng(seed)
    half = budget // 2
    names = ["random 5 of pool", f"A: sample {budget} (half each), rerank",
             f"B: routed by p(style|taste), {keep}", f"C: routed {budget}, rerank"]  # fmt: skip
    conditional = all(f"mix {b}" in pools for b in range(MIX_BINS)) and set(CONDITIONED) <= set(
        pools
    )
    if conditional:
        names += [f"D: conditioned on p(style|taste), {keep}",
                  f"E: conditioned {budget}, rerank",
                  f"F: one model routed by p(style|taste), {keep}",
                  f"G: one model routed {budget}, rerank"]  # fmt: skip
    score, util, util_cls = np.full((3, len(names), len(taste2), reps), np.nan)
    sizes = [pools[p].scores.shape[1] for p in ROUTER]
    for u in range(len(taste2)):
        mix = f"mix {round(routing[u, 0] * (MIX_BINS - 1))}"
        for r in range(reps):
            k_b, k_c = rng.binomial(keep, routing[u, 0]), rng.binomial(budget, routing[u, 0])
            plans = [(ROUTER, rng.multivariate_hypergeometric(sizes, keep), False),
                     (ROUTER, (half, budget - half), True), (ROUTER, (k_b, keep - k_b), False),
                     (ROUTER, (k_c, budget - k_c), True)]  # fmt: skip
            if conditional:
                plans += [((mix,), (keep,), False), ((mix,), (budget,), True),
                          (CONDITIONED, (k_b, keep - k_b), False),
                          (CONDITIONED, (k_c, budget - k_c), True)]  # fmt: skip
            for i, (names_i, counts, rerank) in enumerate(plans):
                sc, lab, cls = [], [], []
                for name, k in zip(names_i, counts):
                    pool = pools[name]
                    n = pool.scores.shape[1]
                    # Without replacement while a pool lasts (a fresh sample each time).
                    pick = rng.choice(n, k, replace=k > n)
                    sc.append(pool.scores[u, pick])
                    lab.append(np.full(k, -1 if pool.label is None else pool.label))
                    cls.append(pool.classified[pick])
                sc, lab, cls = np.concatenate(sc), np.concatenate(lab), np.concatenate(cls)
                top = np.argsort(-sc, kind="stable")[:keep] if rerank else slice(None)
                score[i, u, r] = sc[top].mean()
                util_cls[i, u, r] = taste2[u, cls[top]].mean()
                if (lab >= 0).all():
                    util[i, u, r] = taste2[u, lab[top]].mean()
    groups = {"all": np.ones(len(taste2), bool), "2-style mass >= .5": weight >= 0.5}
    mae = float(np.abs(routing[:, 0] - taste2[:, 0]).mean())
    out: dict[str, Any] = {"budget": budget, "keep": keep, "reps": reps, "routing_mae": mae,
                           "n_listeners": {g: int(m.sum()) for g, m in groups.items()}}  # fmt: skip

    def mean(a: np.ndarray) -> float | None:
        return None if np.isnan(a).any() else float(a.mean())

    out["strategies"] = {n: {g: {"score": mean(score[i, m]), "utility": mean(util[i, m]),
                                 "utility_heard": mean(util_cls[i, m])}
                             for g, m in groups.items()} for i, n in enumerate(names)}  # fmt: skip
    best = {g: {"score": None, "utility": float(taste2[m].max(1).mean()),
                "utility_heard": None} for g, m in groups.items()}  # fmt: skip
    out["strategies"]["ceiling: all from the truly preferred style"] = best
    return out


def conditioning_table(result: dict[str, Any]) -> str:
    groups = list(result["n_listeners"])
    head = "".join(f"{g + ': score':>26s} {'utility':>8s} {'heard':>6s}" for g in groups)
    lines = [
        f"Conditioning vs rerank: per listener ({result['n_listeners']}; {result['reps']} draws "
        f"each) keep {result['keep']} of a budget of {result['budget']} generated pieces. "
        "p(style|taste) = the recommender's softmax mass on each style's catalog tracks, "
        f"renormalised over jsb/nottingham (mean |p - true| {result['routing_mae']:.3f}). "
        "utility = mean over kept pieces of the listener's true taste for the style the piece "
        "was generated in; heard = the same for the style the note-feature classifier gives "
        "it (tastes renormalised over the two styles). A-C route between two style models; "
        "D-E draw from one style-conditional model given the listener's p(style|taste) as a "
        "style mix (pools per 0.1 of p); F-G route that one model between its two styles.",
        f"{'strategy':46s}{head}",
    ]

    def cell(x: float | None, width: int) -> str:
        return ("–" if x is None else f"{x:.3f}").rjust(width)

    for name, r in result["strategies"].items():
        cells = "".join(cell(r[g]["score"], 26) + " " + cell(r[g]["utility"], 8) + " "
                        + cell(r[g]["utility_heard"], 6) for g in groups)  # fmt: skip
        lines.append(f"{name:46s}{cells}")
    if "classifier_accuracy" in result:
        lines.append(
            "Style heard by the classifier (nearer centroid of the two styles' warm "
            "catalog tracks, note features), share agreeing with the style written in: "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["classifier_accuracy"].items())
        )
    if "conditional_heard_as_jsb" in result:
        lines.append("Conditional model, share heard as jsb by p(jsb) of its style mix: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in
                                 result["conditional_heard_as_jsb"].items()))  # fmt: skip
    return "\n".join(lines)


def run_all(seeds: Sequence[int] = (0, 1, 2), per_style: int = 150, n_users: int = 1000,
            minutes: float = 4.0, n_samples: int = 32, retrain: bool = False,
            cold_start: bool = True) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Every section: ({"cold_start", "generated", "conditioning"}, the tables as text).
    cold_start=False: the generated and conditioning sections alone, on seeds[0]'s model."""
    pl.seed_everything(seeds[0], verbose=False)
    kept: dict[int, tuple[RecommenderModule, Catalog]] = {}
    cold = run_cold_start(seeds, per_style, n_users, keep=kept) if cold_start else None
    if not kept:  # fitted here, not inside run_generated: Lightning's fit turns grad mode on
        catalog = StyleListenersCatalog(per_style=per_style, n_users=n_users, seed=seeds[0])
        catalog = catalog.build()
        kept[seeds[0]] = (fit_recommender(catalog, 40, 5, seeds[0], log=print, **MODEL), catalog)
    model, catalog = kept[seeds[0]]
    gen = run_generated(model, catalog, minutes, n_samples, seed=seeds[0], per_style=per_style,
                        n_users=n_users, retrain=retrain)  # fmt: skip
    result = {"cold_start": cold, "generated": gen, "conditioning": gen.pop("conditioning")}
    tables = [cold_start_table(cold)] if cold is not None else []
    text = "\n\n".join([*tables, generated_table(gen),
                         conditioning_table(result["conditioning"])])  # fmt: skip
    return result, text


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-style", type=int, default=150)
    ap.add_argument("--n-users", type=int, default=1000)
    ap.add_argument(
        "--minutes",
        type=float,
        default=4.0,
        help="training minutes per style model (the conditional Transformer trains for twice this)",
    )
    ap.add_argument("--n-samples", type=int, default=32)
    ap.add_argument("--retrain", action="store_true", help="retrain the generators")
    ap.add_argument(
        "--skip-cold-start",
        action="store_true",
        help="only the generated and conditioning sections (seed: --seeds' first)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the result dict as JSON")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    result, text = run_all(args.seeds, args.per_style, args.n_users, args.minutes,
                           args.n_samples, args.retrain, not args.skip_cold_start)  # fmt: skip
    seconds = time.perf_counter() - started
    command = " ".join(["python benchmarks/recommender_content.py",
                        *(sys.argv[1:] if argv is None else argv)])  # fmt: skip
    result["provenance"] = provenance(command, seconds)
    if args.out is not None:
        write_atomically(args.out, json.dumps(result, indent=1) + "\n")
    print(f"\nwall time {seconds:.0f} s")
    print(text)


if __name__ == "__main__":
    main()
