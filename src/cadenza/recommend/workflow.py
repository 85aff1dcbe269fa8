"""The listener's and the producer's recommender workflows, as functions the CLI and tests call.

- `recommend_catalog`: the k best catalog tracks for a known user (`user=ID`), for a new
  listener given as a list of catalog tracks they like (`history=[...]`, taste computed on the
  fly) or as a description in words (`text="calm piano for studying"`, through the model's
  text -> taste map), optionally asking for a context (a style or tag the model was trained with).
- `recommend_generated`: sample `candidates` pieces from any generator checkpoint, embed them
  from their notes exactly as catalog tracks are embedded (the recommender's content features),
  score them for the listener, keep the k best as MIDI (+ piano roll, + audio) with their scores
  and where each would rank among the catalog for that listener.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cadenza.atomic import write_atomically
from cadenza.errors import BadFileError, CadenzaError, ConfigError
from cadenza.models.base import Ability, GenerativeModule, check_int
from cadenza.recommend.catalog_names import history_ids, item_names
from cadenza.recommend.index import NearestNeighbourIndex, make_index
from cadenza.recommend.module import RecommenderModule


@dataclass
class Pick:
    rank: int
    key: str  # catalog key, or the generated file's name
    score: float  # the model's score: mean cosine over heads / tau
    catalog_percentile: float | None = None  # generated: share of the catalog it outscores
    midi: str | None = None
    png: str | None = None
    audio: str | None = None
    reasons: dict[str, Any] | None = None  # why it was picked (explain.py)
    name: str | None = None  # what a listener calls it (Last.fm: the artist), where known


class NoTasteError(ConfigError):
    """A listener with nothing to recommend from: no plays (a user whose history is empty, as
    a forgotten listener's is) or an empty history=[]. Ranking the catalog for a taste of
    nothing would give every track the same score and pass the key order off as picks."""

    def __init__(self, message: str, user: str | None = None) -> None:
        super().__init__(message)
        self.user = user  # the listener named, None for an empty history=[]


def listener_taste(
    model: RecommenderModule,
    user: str | int | None = None,
    history: list[str] | None = None,
    context: str | None = None,
    text: str | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Taste [1, D] and the catalog ids the listener already has (to leave out)."""
    taste, hist = _taste_and_history(model, user, history, context, text)
    seen = np.zeros(0, np.int64) if hist is None else np.flatnonzero(hist[0].numpy() > 0)
    return taste, seen


def _taste_and_history(
    model: RecommenderModule, user: Any, history: Any, context: Any, text: Any
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Taste [1, D] and the history [1, I] it came from (None for a listener in words)."""
    if sum(x is not None for x in (user, history, text)) != 1:
        raise ConfigError("give exactly one of user=ID (a known listener), history=[track, ...] "
                          "(a new listener's catalog tracks) or text=\"...\" (what they like, "
                          "in words)")  # fmt: skip
    if text is not None:
        if context is not None:
            raise ConfigError("context= shifts a listener's history; with text= say it in the "
                              "words instead")  # fmt: skip
        with torch.no_grad():
            return model.taste_of_text([text]), None
    hist = listener_history(model, user, history)
    ctx = None
    if context is not None:
        if context not in model.contexts:
            raise ConfigError(f"context={context} is not one this model was trained with: "
                              f"{model.contexts or 'none (it takes no context)'}")  # fmt: skip
        ctx = torch.tensor([model.contexts.index(context)])
    with torch.no_grad():
        return model.taste_of(hist, ctx), hist


def listener_history(
    model: RecommenderModule, user: str | int | None = None, history: list[str] | None = None
) -> torch.Tensor:
    """A known listener's training history, or a new one's liked catalog tracks, [1, I]."""
    if user is not None:
        row = model.user_rows.get(str(user))
        if row is None:
            users = model.hparams.user_keys or []
            raise ConfigError(
                f"user={user} is not a listener this model knows ({len(users)} "
                f"users, e.g. {[str(u) for u in users[:3]]}); for a new listener pass "
                "history=[...]"
            )
        hist = model.history(torch.tensor([row]))  # [1, I]
        if not bool(hist.any()):
            raise NoTasteError(f"user={user} has no plays in this model's histories (none in "
                               "training, or forgotten), so there is no taste to recommend "
                               "for: give a user with plays, history=[track, ...] or "
                               "text=\"...\"", user=str(user))  # fmt: skip
    else:
        if not history:
            raise NoTasteError("history is empty, so there is no taste to recommend for: name "
                               "the catalog tracks the listener likes, history=[key or name, "
                               "...], or give a user with plays (user=ID) or "
                               "text=\"...\"")  # fmt: skip
        hist = torch.zeros(1, model.hparams.n_items)
        hist[0, history_ids(model, history)] = 1.0
    return hist


def recommend_catalog(
    model: RecommenderModule,
    *,
    user: str | int | None = None,
    history: list[str] | None = None,
    context: str | None = None,
    text: str | None = None,
    k: int = 10,
    exclude_seen: bool = True,
    index: str | NearestNeighbourIndex = "exact",
    method: str = "hybrid",
    explain: bool = True,
    name_listeners: bool = True,
) -> list[Pick]:
    """`index`: a kind (exact | ivf | hnsw) built over the catalog now, or one already built
    over `model.catalog_embeddings()` (a service builds it once). `method` (METHODS): the
    hybrid model, its content path alone, or an item- or user-neighbourhood recommender over the
    checkpoint's training histories. `explain`: each pick carries its reasons (explain.py);
    `name_listeners` false: user-kNN's reasons rank the like-minded listeners, not name them."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    k = check_int("k", k)
    if method in NEIGHBOURHOODS:
        return _neighbourhood_picks(model, method, user, history, context, text, k,
                                    exclude_seen, explain, name_listeners)  # fmt: skip
    taste, hist = _taste_and_history(model, user, history, context, text)
    seen = np.zeros(0, np.int64) if hist is None else np.flatnonzero(hist[0].numpy() > 0)
    keys = model.hparams.item_keys or [str(i) for i in range(model.hparams.n_items)]
    tau = model.hparams.tau
    if method == "content" and model.tracks.content is None:
        raise ConfigError("method=content needs a recommender trained with content features; "
                          "this one has none")  # fmt: skip
    if method == "content":
        idx = content_index(model)
    elif isinstance(index, str):
        with torch.no_grad():
            idx = make_index(index).build(model.catalog_embeddings().numpy())
    else:
        idx = index
    scores, ids = idx.search(taste.numpy(), k, exclude=[seen] if exclude_seen else None)
    names = item_names(model)
    picks = [Pick(r + 1, keys[i], float(s) / tau, name=names[i] if names else None)
             for r, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0]  # fmt: skip
    if explain and picks:
        from cadenza.recommend.explain import explain_model_picks

        chosen = np.array([i for i in ids[0] if i >= 0])
        reasons = explain_model_picks(model, taste, hist, chosen,
                                      content_only=method == "content")  # fmt: skip
        for pick, why in zip(picks, reasons):
            pick.reasons = why
    return picks


METHODS = ("hybrid", "content", "itemknn", "userknn")
NEIGHBOURHOODS = {
    # What Last.fm's validation split chose (benchmarks/recommender.py, split seeds 0-2):
    # item-kNN k 400 / 100 / 200 with shrink 10 (the median kept), user-kNN k 25 on all three,
    # shrink 10 on two. BENCHMARKS.md has their test figures beside the hybrid's.
    "itemknn": {"k": 200, "shrink": 10.0},
    "userknn": {"k": 25, "shrink": 10.0},
}


def content_index(model: RecommenderModule) -> NearestNeighbourIndex:
    """An exact index over the catalog embedded from content alone, built once per loaded
    model (a second on Last.fm's 17,632 artists: not per request)."""
    cached = model.__dict__.setdefault("_content_index", [])
    if not cached:
        with torch.no_grad():
            cached.append(make_index("exact").build(
                model.catalog_embeddings(content_only=True).numpy()))  # fmt: skip
    return cached[0]


def training_matrix(model: RecommenderModule) -> sp.csr_matrix:
    """The checkpoint's training histories as a sparse [U, I] matrix of weights."""
    p = model.hparams
    return sp.csr_matrix(
        (model.history_weights.numpy(), model.history_items.numpy(),
         model.history_indptr.numpy()), shape=(p.n_users, p.n_items),
    )  # fmt: skip


def forget_listeners(model: RecommenderModule, users: set[str]) -> int:
    """Empty the stored training histories of these listeners (their rows of the history
    buffers), and drop the neighbourhood recommenders fitted on them: their taste, their
    neighbours and their explanations are then a new listener's with no history. The trained
    weights still carry what training learned from everyone; only retraining without them
    removes that. -> how many listeners were emptied."""
    rows = sorted(model.user_rows[u] for u in users if u in model.user_rows)
    if not rows:
        return 0
    indptr = model.history_indptr
    row_of = torch.repeat_interleave(torch.arange(len(indptr) - 1), indptr.diff())
    keep = ~torch.isin(row_of, torch.tensor(rows))
    counts = torch.bincount(row_of[keep], minlength=len(indptr) - 1)
    model.history_items = model.history_items[keep]
    model.history_weights = model.history_weights[keep]
    model.history_indptr = torch.cat([indptr.new_zeros(1), counts.cumsum(0)])
    model.__dict__.pop("_neighbourhoods", None)
    return len(rows)


def neighbourhood(model: RecommenderModule, method: str) -> Any:
    """An item- or user-kNN over the checkpoint's histories, fitted once per loaded model."""
    from cadenza.recommend.baselines import FACTORIES

    fitted = model.__dict__.setdefault("_neighbourhoods", {})
    if method not in fitted:
        fitted[method] = FACTORIES[method](NEIGHBOURHOODS[method], 0).fit(training_matrix(model))
    return fitted[method]


def _neighbourhood_picks(
    model: RecommenderModule, method: str, user: Any, history: Any, context: Any, text: Any,
    k: int, exclude_seen: bool, explain: bool, name_listeners: bool = True,
) -> list[Pick]:  # fmt: skip
    from cadenza.recommend import explain as why

    if text is not None or context is not None:
        raise ConfigError(f"method={method} works from plays: name a user or a history (text= "
                          "and context= need method=hybrid or content)")  # fmt: skip
    hist = listener_history(model, user, history)
    played = np.flatnonzero(hist[0].numpy() > 0)
    knn = neighbourhood(model, method)
    row = sp.csr_matrix((hist.numpy() > 0).astype(np.float64))  # plays, not their weights
    users = None  # a known listener is not their own neighbour
    if user is not None:
        users = np.array([[str(u) for u in model.hparams.user_keys].index(str(user))])
    if method == "itemknn":
        scores = (row @ knn.weights).toarray()
    else:
        similar = knn.similarities(row, users)
        scores = (similar @ knn.x).toarray()
    scores = scores[0].astype(np.float64)
    if exclude_seen:
        scores[played] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[np.isfinite(scores[order]) & (scores[order] > 0)]
    keys = model.hparams.item_keys or [str(i) for i in range(model.hparams.n_items)]
    names = item_names(model)
    picks = [Pick(r + 1, keys[i], float(scores[i]), name=names[i] if names else None)
             for r, i in enumerate(order)]  # fmt: skip
    if explain and picks:
        if method == "itemknn":
            reasons = why.explain_itemknn(knn.weights, played, order, keys, names)
        else:
            listeners = [str(u) for u in model.hparams.user_keys] if name_listeners else None
            reasons = why.explain_userknn(similar, knn.x, order, listeners)
        for pick, reason in zip(picks, reasons):
            pick.reasons = reason
    return picks


def content_features(model: RecommenderModule, midis: list[Any]) -> np.ndarray:
    """The recommender's own content features for MIDI pieces [N, F]."""
    kind = model.hparams.get("feature_kind")
    if kind != "symbolic":
        raise ConfigError(f"this recommender's content is {kind or 'nothing'}, not notes, so it "
                          "cannot score MIDI it has not seen: use one trained on MIDI content, "
                          "e.g. `cadenza-train experiment=styles_recommender`")  # fmt: skip
    from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES, symbolic_summary

    names = model.hparams.get("feature_names") or SYMBOLIC_NAMES
    cols = [SYMBOLIC_NAMES.index(n) for n in names]
    return np.stack([symbolic_summary(pm)[cols] for pm in midis])


def style_mix(
    model: RecommenderModule, catalog_scores: torch.Tensor, styles: list[str]
) -> tuple[list[str], torch.Tensor]:
    """p(style | taste) from listeners' scores over the catalog [B, I]: the softmax mass on each
    style's catalog tracks (the chance the next play is of that style), renormalised over the
    `styles` that are also the recommender's contexts. -> (those styles, p [B, S])."""
    shared = [s for s in styles if s in model.contexts]
    scores = catalog_scores.double()
    mass = [torch.logsumexp(scores[:, model.item_context == model.contexts.index(s)], 1)
            for s in shared]  # fmt: skip
    if not mass:
        return [], scores.new_zeros(len(scores), 0)
    return shared, torch.softmax(torch.stack(mass, 1), 1)


def taste_style_mix(
    model: RecommenderModule, catalog_scores: torch.Tensor, styles: list[str]
) -> dict[str, float] | None:
    """One listener's `style_mix` (catalog scores [I]) as style -> weight, the `style=` a
    style-conditional generator takes; None when the two share no style name."""
    names, p = style_mix(model, catalog_scores[None], styles)
    return {s: round(float(v), 4) for s, v in zip(names, p[0])} or None


def recommend_generated(
    model: RecommenderModule,
    generator: Any,
    out_dir: str | Path,
    *,
    user: str | int | None = None,
    history: list[str] | None = None,
    context: str | None = None,
    text: str | None = None,
    candidates: int = 32,
    k: int = 5,
    render: str | None = None,
    png: bool = True,
    synth: str = "auto",
    soundfont: str | None = None,
    sample_rate: int = 44100,
    tempo: float | None = None,
    report_user: str | None = None,
    **controls: Any,
) -> list[Pick]:
    """Sample `candidates` pieces from `generator` (a GenerativeModule, or its checkpoint's
    path) (controls: seed, temperature, top_k, top_p, bars, steps,
    primer, style), keep the k best for the listener in out_dir as rank01_....mid +
    picks.json; every candidate's MIDI stays in `candidates/`. The pieces are scored in memory,
    as generated; `tempo` (quarter notes a minute) is the tempo the k best are written at.

    A style-conditional generator asked for no style is conditioned on the listener's taste:
    the style mix p(style | taste) over the styles it shares with the recommender's contexts
    (`taste_style_mix`). benchmarks/recommender_content.py measured this against routing and
    sample-then-rerank (BENCHMARKS.md)."""
    from cadenza.generation import generate
    from cadenza.generation.writers import check_tempo, write_piece

    if isinstance(generator, str | Path):  # a checkpoint, as the CLI's generator= is
        generator = GenerativeModule.load(generator)
    k, candidates = check_int("k", k), check_int("candidates", candidates)
    if k > candidates:
        raise ConfigError(f"k={k} is more than candidates={candidates}")
    if generator.codec.output != "midi":
        raise ConfigError(f"the {generator.family} generator writes {generator.codec.output}; "
                          "the recommender scores MIDI from its notes")  # fmt: skip
    check_tempo(tempo)  # the picks are written at it; they are scored as the model wrote them
    controls.pop("n", None)  # `candidates` is how many pieces are drawn
    taste, hist = _taste_and_history(model, user, history, context, text)
    with torch.no_grad():
        catalog = model.score(taste, model.catalog_embeddings())[0]  # [I]
    if controls.get("style") is None and generator.can(Ability.STYLE):
        controls["style"] = taste_style_mix(model, catalog, generator.styles)
    out = Path(out_dir)
    pool = out / "candidates"
    pool.mkdir(parents=True, exist_ok=True)
    pieces = generate(generator, candidates, prefix="candidate", **controls)
    good, names, skipped = [], [], {}
    for piece in pieces:
        write_piece(piece, pool, png=False)  # kept for the producer to browse; never re-read
        try:
            good.append((piece, content_features(model, [piece.music])[0]))
            names.append(piece.files["midi"].name)
        except BadFileError as e:  # an empty sample (no notes) cannot be scored
            skipped[piece.files["midi"].name] = str(e)
    if not good:
        raise CadenzaError(f"none of the {candidates} samples could be scored: {skipped}")
    with torch.no_grad():
        emb = model.embed_features(np.stack([f for _, f in good]))
        scores = model.score(taste, emb)[0].numpy()
    catalog = catalog.numpy()
    order = np.argsort(-scores, kind="stable")[:k]
    from cadenza.recommend.explain import explain_model_picks

    raw = torch.as_tensor(np.stack([good[j][1] for j in order]), dtype=torch.float32)
    reasons = explain_model_picks(
        model, taste, hist, np.full(len(order), -1), emb[order],
        features=(raw - model.feature_mean) / model.feature_std,
    )  # fmt: skip
    picks = []
    for rank, j in enumerate(order, start=1):
        piece = good[j][0]
        piece.name = f"rank{rank:02d}_{piece.name}"
        piece.files = {}
        write_piece(piece, out, png=png, render=render, synth=synth, soundfont=soundfont,
                    sample_rate=sample_rate, tempo=tempo,
                    title=f"rank {rank}: score {scores[j]:.2f}")  # fmt: skip
        files = {key: str(piece.files[key]) if key in piece.files else None
                 for key in ("midi", "png", "audio")}  # fmt: skip
        picks.append(Pick(rank, names[j], float(scores[j]), float((catalog < scores[j]).mean()),
                          **files, reasons=reasons[rank - 1]))  # fmt: skip
    summary = {
        # A service names the listener by pseudonym (report_user), never by ID.
        "listener": {"user": report_user or user, "history": history, "context": context,
                     "text": text},
        "style": controls.get("style"), "tempo": tempo, "candidates": len(pieces),
        "scored": len(good),
        "skipped": skipped,
        "picks": [asdict(p) for p in picks],
        "all_scores": {name: float(score) for name, score in zip(names, scores)},
    }  # fmt: skip
    write_atomically(out / "picks.json", json.dumps(summary, indent=2))
    return picks
