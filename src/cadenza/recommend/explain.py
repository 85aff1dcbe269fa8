"""Why a track was recommended: reasons a listener can read, with their shares.

The hybrid model (`module.py`) scores score = sum_h <t_h, e_h> / tau with each head's track
vector e_h = (id_h + content_h) / |id_h + content_h|, so the score splits exactly in two:

- **listening**: sum_h <t_h, id_h> / |..| / tau, what plays taught the model about the track;
- **content**: sum_h <t_h, content_h> / |..| / tau, what its tags or notes say.

Either part can be negative. The summary gives the split as shares of the score only when both
raise it, and otherwise as the two amounts, naming the part that pulled the score down
(`_split`): "-19% from plays, 119% from content" reads as nonsense.

The content part is split over the track's features by integrated gradients (Sundararajan et
al. 2017) from the catalog's average track (standardised features all 0) to this one, the norm
held at the track's own: the features' parts add up to the content part less what the average
track would get. A feature's `share` is its part of all the features' positive parts: features
also pull a score down, so against the score itself one feature could read over 100 %.

The played tracks that pulled a pick up are found by leaving each one out of the history in
turn: `pull` is how much the pick's score falls without it, and `share` its part of all the
played tracks' positive pulls (the taste is not linear in the history, so pulls need not add
up to the score).

Item- and user-neighbourhood recommenders (`baselines.ItemKNN`, `baselines.UserKNN`) are sums,
so their reasons are exact: the played tracks (item-kNN) or the like-minded listeners
(user-kNN) whose terms make up the score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cadenza.recommend.catalog_names import item_names
from cadenza.recommend.embedder import heads_to_vector
from cadenza.recommend.module import RecommenderModule

TOP = 3  # reasons of each kind shown per pick
IG_STEPS = 16


def _share(part: float, total: float) -> float:
    # + 0.0: a share that rounds to zero from below is 0.0, not the -0.0 JSON would show
    return round(part / total, 4) + 0.0 if abs(total) > 1e-12 else 0.0


def _summary(played: list[dict], features: list[dict], listeners: list[dict],
             parts: dict[str, float] | None = None) -> str:  # fmt: skip
    bits = []
    if played:
        bits.append("because you played " + ", ".join(
            f"{r.get('name') or r['key']} ({100 * r['share']:.0f}%)" for r in played))  # fmt: skip
    if listeners:
        bits.append("listeners like you played it: " + ", ".join(
            f"{r['key']} ({100 * r['share']:.0f}%)" for r in listeners))  # fmt: skip
    if features:
        bits.append("it matches " + ", ".join(
            f"{r['name']} ({100 * r['share']:.0f}%)" for r in features))  # fmt: skip
    if parts and parts["listening"] != 0.0:  # both parts: say how the score splits
        bits.append(_split(parts["listening"], parts["content"], parts["shares"]))
    return "; ".join(bits) or "close to your taste overall"


def _split(listening: float, content: float, shares: dict[str, float]) -> str:
    """The score's two parts in words. As shares of the score they only read right when both
    raise it: a part that pulls the score down would read as "-19% from plays, 119% from
    content", so then the parts are said as the amounts they add to the score."""
    total = listening + content
    # As said: a part that rounds to 0.00 pulls nothing down ("-0.00 from plays" did).
    listening, content = round(listening, 2) + 0.0, round(content, 2) + 0.0
    if listening >= 0 and content >= 0:
        shares = {k: max(v, 0.0) for k, v in shares.items()}  # a share of -0.0004 reads "-0%"
        return (f"score {100 * shares['listening']:.0f}% from plays, "
                f"{100 * shares['content']:.0f}% from content")  # fmt: skip
    down = " and ".join(what for what, part in (("plays", listening), ("content", content))
                        if part < 0)  # fmt: skip
    return (f"score {total:+.2f}: {listening:+.2f} from plays, {content:+.2f} from content "
            f"({down} pulled it down)")  # fmt: skip


def _named(key: str, names: list[str] | None, i: int) -> dict[str, str]:
    """A track's key, and its name where the catalog has names."""
    return {"key": key} if names is None else {"key": key, "name": names[i]}


def _played_pulls(model: RecommenderModule, history: torch.Tensor, taste: torch.Tensor,
                  tracks: torch.Tensor, keys: list[str], names: list[str] | None,
                  top: int) -> list[list[dict]]:  # fmt: skip
    """Per pick (tracks [P, H*D]): the played tracks whose absence lowers its score most."""
    played = history[0].nonzero().flatten()
    if len(played) < 2:  # one track is the whole taste: nothing to weigh it against
        only = [{**_named(keys[int(i)], names, int(i)), "pull": None, "share": 1.0}
                for i in played]  # fmt: skip
        return [list(only) for _ in range(len(tracks))]
    weights = history[0, played]  # [Np]
    without = weights.repeat(len(played), 1).fill_diagonal_(0.0)  # [Np, Np]: row i drops i
    tastes = heads_to_vector(model.taste.forward_rows(without, played))
    full = model.score(taste, tracks)[0]  # [P]
    # In NumPy from here: a request's reasons are ~100 scalars, and reading each from a tensor
    # cost more than the model's arithmetic (a service answers this per recommendation).
    pulls = (full[None, :] - model.score(tastes, tracks)).numpy().T  # [P, Np]
    totals = pulls.clip(min=0).sum(1)  # [P]
    orders = np.argsort(-pulls, axis=1, kind="stable")[:, :top]  # [P, top]
    played_ids = played.tolist()
    return [[{**_named(keys[played_ids[i]], names, played_ids[i]), "pull": round(float(row[i]), 4),
              "share": _share(float(row[i]), float(total))}
             for i in order.tolist() if row[i] > 0]
            for row, order, total in zip(pulls, orders, totals)]  # fmt: skip


def content_gradients(content_net: torch.nn.Module, x: torch.Tensor, taste: torch.Tensor,
                      scale: torch.Tensor, steps: int = IG_STEPS) -> torch.Tensor:  # fmt: skip
    """Integrated gradients [N, F] of g_n(x_n) = sum_h <taste_h, content_h(x_n)> * scale[n, h]
    from the average track (x = 0) to each x [N, F] (scale [N, H]): row n adds up to
    g_n(x_n) - g_n(0), up to the midpoint rule's error. One pass for all N; in closed form for
    the content network the recommender builds (`_mlp_gradients`), by autograd otherwise."""
    layers = list(content_net) if isinstance(content_net, torch.nn.Sequential) else []
    if (len(layers) == 3 and isinstance(layers[0], torch.nn.Linear)
            and isinstance(layers[1], torch.nn.GELU) and layers[1].approximate == "none"
            and isinstance(layers[2], torch.nn.Linear)):  # fmt: skip
        return _mlp_gradients(layers[0], layers[2], x, taste, scale, steps)
    heads, (n, f) = taste.shape[0], x.shape
    with torch.enable_grad():
        alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps  # midpoints of the path
        path = (alphas[None, :, None] * x[:, None, :]).requires_grad_(True)  # [N, S, F]
        out = content_net(path.reshape(n * steps, f)).view(n, steps, heads, -1)
        g = ((out * taste).sum(-1) * scale[:, None, :]).sum()
        (grad,) = torch.autograd.grad(g, path)
    return (grad.mean(1) * x).detach()


def _mlp_gradients(
    first: torch.nn.Linear, second: torch.nn.Linear, x: torch.Tensor, taste: torch.Tensor,
    scale: torch.Tensor, steps: int,
) -> torch.Tensor:  # fmt: skip
    """`content_gradients` of content(x) = W2 gelu(W1 x + b1) + b2 without autograd, the same
    midpoints: the gradient at a * x is W1^T (gelu'(a W1 x + b1) * W2^T c) with c the
    taste scaled per head, so its mean over the path is W1^T (mean_a gelu'(..) * W2^T c). For a
    service's 10 picks, 0.22-0.24 ms against autograd's 0.65-0.74 (1 thread;
    benchmarks/recommend_latency.py): the graph and its backward pass cost more than the
    arithmetic."""
    n = x.shape[0]
    c = (taste[None] * scale[:, :, None]).reshape(n, -1)  # [N, H*D], d g_n / d content
    u = c @ second.weight  # [N, hidden], d g_n / d gelu(..)
    z = x @ first.weight.T  # [N, hidden], W1 x
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps  # midpoints of the path
    h = torch.addcmul(first.bias, alphas[None, :, None], z[:, None, :])  # [N, S, hidden]
    # gelu'(h) = Phi(h) + h phi(h), the exact (erf) GELU's derivative
    slope = (
        0.5 * (1.0 + torch.erf(h * 0.5**0.5)) + h * torch.exp(-0.5 * h * h) * (2 * torch.pi) ** -0.5
    )
    return ((u * slope.mean(1)) @ first.weight) * x  # [N, F]


def _parts(model: RecommenderModule, taste: torch.Tensor, features: torch.Tensor | None,
           ids: torch.Tensor | None, known: torch.Tensor | None, names: list[str],
           top: int) -> tuple[list[dict[str, Any]], torch.Tensor]:  # fmt: skip
    """Per pick: listening and content parts of the score, and the features' parts; and the
    picks' per-head track vectors [N, H, D] (listening + content), as the model scores them."""
    p = model.hparams
    tau, heads = p.tau, p.heads
    t = taste.view(heads, -1)  # [H, D], each head already scaled by 1/sqrt(H)
    n = len(features) if features is not None else len(ids)
    listening = torch.zeros(n, heads, p.dim)
    if ids is not None:
        listening = model.tracks.ids(ids).view(n, heads, -1) * known.float().view(n, 1, 1)
    content_net = model.tracks.content
    if content_net is None or features is None:
        content = torch.zeros_like(listening)
    else:
        content = content_net(features).view(n, heads, -1)
    norm = (listening + content).norm(dim=-1).clamp(min=1e-12)  # [N, H]
    # The score's normalisation of each head (unit norm, 1/sqrt(H), 1/tau), held fixed below.
    heads_scale = 1.0 / (norm * tau * heads**0.5)
    part_listening = ((listening * t).sum(-1) * heads_scale).sum(-1)  # [N]
    part_content = ((content * t).sum(-1) * heads_scale).sum(-1)  # [N]
    gradients = None
    if content_net is not None and features is not None:
        gradients = content_gradients(content_net, features, t, heads_scale)  # [N, F]
    scores = (part_listening + part_content).tolist()
    listened, contents = part_listening.tolist(), part_content.tolist()
    out: list[dict[str, Any]] = [
        {"score": round(scores[j], 4), "listening": round(listened[j], 4),
         "content": round(contents[j], 4), "features": []}
        for j in range(n)
    ]  # fmt: skip
    if gradients is not None:  # in NumPy, as the played tracks' pulls (why there)
        ig = gradients.numpy()  # [N, F]
        orders = np.argsort(-ig, axis=1, kind="stable")[:, :top]
        raised = np.where(ig > 0, ig, 0.0).sum(axis=1)  # [N]
        for entry, row, order, total in zip(out, ig, orders, raised.tolist()):
            entry["features"] = [{"name": names[f] if names else str(f),
                                  "part": round(float(row[f]), 4),
                                  "share": _share(float(row[f]), total)}
                                 for f in order.tolist() if row[f] > 0]  # fmt: skip
    return out, listening + content


@torch.no_grad()
def explain_model_picks(
    model: RecommenderModule, taste: torch.Tensor, history: torch.Tensor | None,
    picks: np.ndarray, tracks: torch.Tensor | None = None,
    features: torch.Tensor | None = None, content_only: bool = False, top: int = TOP,
) -> list[dict[str, Any]]:  # fmt: skip
    """Reasons for the hybrid (or content-only) model's picks.

    taste [1, H*D]; history [1, I] or None (a listener in words); picks [P] catalog ids, or
    -1 for tracks from outside the catalog whose standardised features [P, F] are given;
    tracks [P, H*D] the picks' embeddings as scored (None: the ones the reasons compute,
    equal to `model.track_embeddings(picks, content_only)`)."""
    keys = model.hparams.item_keys or [str(i) for i in range(model.hparams.n_items)]
    track_names = item_names(model)
    names = list(model.hparams.get("feature_names") or [])
    ids = torch.as_tensor(np.maximum(picks, 0))
    known = model.item_known[ids] & torch.as_tensor(picks >= 0)
    if content_only:
        known = torch.zeros_like(known)
    if features is None and model.hparams.feature_dim > 0:
        features = model.item_features[ids]
    parts, vectors = _parts(model, taste, features, ids, known, names, top)
    if tracks is None:
        tracks = heads_to_vector(vectors)
    played = (_played_pulls(model, history, taste, tracks, keys, track_names, top)
              if history is not None else [[] for _ in picks])  # fmt: skip
    out = []
    for part, pulls in zip(parts, played):
        total = part.pop("score")
        part["shares"] = {"listening": _share(part["listening"], total),
                          "content": _share(part["content"], total)}  # fmt: skip
        summary = _summary(pulls, part["features"], [], part)
        out.append({"summary": summary, "played": pulls, **part})
    return out


def explain_itemknn(weights: sp.csr_matrix, history: np.ndarray, picks: np.ndarray,
                    keys: list[str], names: list[str] | None = None,
                    top: int = TOP) -> list[dict[str, Any]]:  # fmt: skip
    """Item-kNN: score(u, j) = sum of W[i, j] over the played i; each i's term is its part."""
    out = []
    for j in picks:
        terms = np.asarray(weights[history][:, j].toarray()).ravel()  # [len(history)]
        total = float(terms.sum())
        order = np.argsort(-terms, kind="stable")[:top]
        played = [{**_named(keys[int(history[i])], names, int(history[i])),
                   "part": round(float(terms[i]), 4),
                   "share": _share(float(terms[i]), total)}
                  for i in order if terms[i] > 0]  # fmt: skip
        out.append({"summary": _summary(played, [], []), "played": played})
    return out


def explain_userknn(
    similar: sp.csr_matrix, x: sp.csr_matrix, picks: np.ndarray, user_keys: list[str] | None,
    top: int = TOP,
) -> list[dict[str, Any]]:  # fmt: skip
    """User-kNN: score(u, j) = sum of sim(u, v) over the neighbours v who played j.
    `user_keys` None: the neighbours are not named but ranked, "similar listener 1" being the
    most similar (the same listener has the same label in every pick), for a caller who may
    not read who other listeners are."""
    similar = sp.csr_matrix(similar)
    neighbours, sims = similar.indices, similar.data
    if user_keys is None:
        rank = np.empty(len(sims), np.int64)
        rank[np.argsort(-sims, kind="stable")] = np.arange(1, len(sims) + 1)
        labels = [f"similar listener {r}" for r in rank.tolist()]
    else:
        labels = [user_keys[int(v)] for v in neighbours]
    out = []
    for j in picks:
        terms = sims * np.asarray(x[neighbours, j].toarray()).ravel()
        total = float(terms.sum())
        order = np.argsort(-terms, kind="stable")[:top]
        listeners = [{"key": labels[int(i)], "part": round(float(terms[i]), 4),
                      "share": _share(float(terms[i]), total)}
                     for i in order if terms[i] > 0]  # fmt: skip
        out.append({"summary": _summary([], [], listeners), "listeners": listeners})
    return out
