"""Reasons for recommendations (recommend/explain.py): the hybrid score split exactly into its
listening and content parts, features' integrated gradients adding up, leave-one-out pulls
that are what they say, neighbourhood terms that make up their scores, and the user-kNN
recommender against a dense brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cadenza.errors import ConfigError
from cadenza.recommend.baselines import ItemKNN, UserKNN
from cadenza.recommend.explain import (
    _split,
    content_gradients,
    explain_itemknn,
    explain_model_picks,
    explain_userknn,
)
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.workflow import listener_history, recommend_catalog
from tests.fixtures.smoke import SmokeRuns


@pytest.fixture(scope="module")
def model(smoke: SmokeRuns) -> RecommenderModule:
    return RecommenderModule.load(smoke["smoke_recommender"].ckpt)


def _random_plays(users: int = 40, items: int = 30, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < 0.2).astype(np.float64))


@pytest.mark.parametrize("method", ["hybrid", "content"])
def test_listening_and_content_parts_add_up_to_each_score(model, method) -> None:
    picks = recommend_catalog(model, user="listener3", k=5, method=method)
    for p in picks:
        why = p.reasons
        assert why["listening"] + why["content"] == pytest.approx(p.score, abs=2e-3)
        assert why["summary"].startswith("because you played")
        assert sum(r["share"] for r in why["played"]) <= 1.0 + 1e-3
        # A feature's share is of what the features raised: never over 100 % of anything.
        assert why["features"] and all(0 < r["share"] <= 1 for r in why["features"])
        assert sum(r["share"] for r in why["features"]) <= 1.0 + 1e-3
        if method == "content":
            assert why["listening"] == 0.0 and "from plays" not in why["summary"]
        elif why["listening"] == 0.0:  # a cold track: content only, no split to say
            assert "from plays" not in why["summary"]
        elif min(round(why["listening"], 2), round(why["content"], 2)) >= 0:  # the split, in words
            shares = {k: max(v, 0.0) for k, v in why["shares"].items()}  # as said: -0.0 is 0
            split = (f"score {100 * shares['listening']:.0f}% from plays, "
                     f"{100 * shares['content']:.0f}% from content")  # fmt: skip
            assert why["summary"].endswith(split), why["summary"]
        else:  # a part that pulls the score down is said as an amount, not a share
            assert why["summary"].endswith("pulled it down)"), why["summary"]


def test_the_split_holds_for_several_heads_and_cold_tracks() -> None:
    torch.manual_seed(0)
    m = RecommenderModule(n_users=3, n_items=12, feature_dim=5, n_history=0, dim=8, heads=3,
                          hidden=16, feature_names=[f"f{i}" for i in range(5)]).eval()  # fmt: skip
    with torch.no_grad():
        m.item_features.normal_()
        m.item_known[:8] = True  # the last four are cold: content alone
        taste = m.taste_of(torch.rand(1, 12))
        picks = np.arange(12)
        tracks = m.catalog_embeddings()
        scores = m.score(taste, tracks)[0]
    reasons = explain_model_picks(m, taste, None, picks, tracks)
    for j, why in enumerate(reasons):
        assert why["listening"] + why["content"] == pytest.approx(float(scores[j]), abs=1e-3)
        assert (why["listening"] == 0.0) == (j >= 8)
        assert (" from plays" in why["summary"]) == (j < 8), why["summary"]  # the split


def test_feature_parts_add_up_to_the_content_above_an_average_track(model) -> None:
    """Integrated gradients are complete: the features' parts sum to the content part of the
    score less what the catalog's average track (standardised features 0) would get."""
    taste = model.taste_of(listener_history(model, user="listener3")).view(1, -1)
    net = model.tracks.content
    scale = torch.tensor([1.7])  # any fixed per-head normalisation
    with torch.no_grad():
        for j in (0, 7, 33):
            x = model.item_features[j]
            ig = content_gradients(net, x[None], taste, scale[None], steps=64)[0]

            def g(point: torch.Tensor) -> float:
                return float((net(point[None]).view(1, 1, -1) * taste).sum() * scale)

            assert float(ig.sum()) == pytest.approx(g(x) - g(torch.zeros_like(x)), abs=5e-3)
    names = model.hparams.feature_names
    pick = recommend_catalog(model, user="listener3", k=1)[0]
    assert all(f["name"] in names and f["part"] > 0 for f in pick.reasons["features"])


def test_closed_form_gradients_equal_autograd_and_the_picks_keep_their_scored_vectors(
    model,
) -> None:
    """The recommender's content network gets integrated gradients in closed form; any other
    network by autograd. Both give the same numbers, and reasons computed without the picks'
    vectors use the ones `track_embeddings` gives (what the picks were scored with)."""

    class Opaque(torch.nn.Module):  # the same network, hidden from the closed form
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    net = model.tracks.content
    heads = model.hparams.heads
    taste = torch.randn(heads, model.hparams.dim, generator=torch.Generator().manual_seed(0))
    x, scale = model.item_features[:6], torch.rand(6, heads) + 0.5
    with torch.no_grad():
        closed = content_gradients(net, x, taste, scale)
        graph = content_gradients(Opaque(net), x, taste, scale)
    torch.testing.assert_close(closed, graph, atol=1e-5, rtol=1e-4)
    hist = listener_history(model, user="listener3")
    with torch.no_grad():
        taste = model.taste_of(hist)
        picks = np.array([0, 5, 9])
        given = model.track_embeddings(torch.as_tensor(picks))
    assert explain_model_picks(model, taste, hist, picks) == explain_model_picks(
        model, taste, hist, picks, given
    )


def test_a_played_tracks_pull_is_what_leaving_it_out_costs(model) -> None:
    pick = recommend_catalog(model, user="listener3", k=1)[0]
    top = pick.reasons["played"][0]
    hist = listener_history(model, user="listener3")
    keys = model.hparams.item_keys
    j = keys.index(pick.key)
    without = hist.clone()
    without[0, keys.index(top["key"])] = 0.0
    with torch.no_grad():
        tracks = model.catalog_embeddings()[[j]]
        drop = float(model.score(model.taste_of(hist), tracks) -
                     model.score(model.taste_of(without), tracks))  # fmt: skip
    assert drop == pytest.approx(top["pull"], abs=1e-3) and drop > 0


def test_words_have_no_played_tracks_and_neighbourhoods_need_plays(model) -> None:
    why = recommend_catalog(model, text="calm piano for studying", k=2)[0].reasons
    assert why["played"] == [] and why["summary"].startswith("it matches")
    with pytest.raises(ConfigError, match="works from plays"):
        recommend_catalog(model, text="calm piano", method="itemknn")
    with pytest.raises(ConfigError, match="method must be one of"):
        recommend_catalog(model, user="listener3", method="magic")


def test_user_knn_equals_a_dense_brute_force_and_skips_the_user_themself() -> None:
    x = _random_plays()
    knn = UserKNN(k=5, shrink=2.0).fit(x)
    dense = x.toarray()
    counts = dense.sum(1)
    sim = dense @ dense.T / (np.sqrt(np.outer(counts, counts)) + 2.0)
    np.fill_diagonal(sim, 0.0)
    expected = np.zeros_like(sim)
    for u in range(len(sim)):
        keep = np.argsort(-sim[u], kind="stable")[:5]
        expected[u, keep] = sim[u, keep]
    users = np.arange(len(sim))
    np.testing.assert_allclose(knn.similarities(x, users).toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(knn.scores(users), expected @ dense, atol=1e-12)
    # a new listener with user 3's plays has user 3 as their closest neighbour
    assert knn.similarities(x[[3]]).toarray()[0].argmax() == 3


@pytest.mark.parametrize("kind", ["itemknn", "userknn"])
def test_neighbourhood_reasons_make_up_the_score(kind) -> None:
    x = _random_plays(seed=1)
    keys = [f"t{i}" for i in range(x.shape[1])]
    users = [f"u{i}" for i in range(x.shape[0])]
    u, played = 4, x[4].indices
    if kind == "itemknn":
        knn = ItemKNN(k=10, shrink=1.0).fit(x)
        scores = knn.scores(np.array([u]))[0]
    else:
        knn = UserKNN(k=8, shrink=1.0).fit(x)
        similar = knn.similarities(x[[u]], np.array([u]))
        scores = (similar @ knn.x).toarray()[0]
    scores[played] = -np.inf
    picks = np.argsort(-scores)[:3]
    if kind == "itemknn":
        reasons = explain_itemknn(knn.weights, played, picks, keys, top=len(played))
        parts = [sum(r["part"] for r in why["played"]) for why in reasons]
    else:
        reasons = explain_userknn(similar, knn.x, picks, users, top=8)
        parts = [sum(r["part"] for r in why["listeners"]) for why in reasons]
        assert all(r["key"] != "u4" for why in reasons for r in why["listeners"])
    np.testing.assert_allclose(parts, scores[picks], atol=1e-3)


def test_neighbourhood_methods_recommend_from_the_checkpoints_histories(model) -> None:
    for method in ("itemknn", "userknn"):
        picks = recommend_catalog(model, user="listener3", k=4, method=method)
        heard = set(np.array(model.hparams.item_keys)[
            listener_history(model, user="listener3")[0].numpy() > 0])  # fmt: skip
        assert picks and not {p.key for p in picks} & heard
        assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)
        assert picks[0].reasons["summary"]


def test_the_latency_benchmark_runs_on_a_checkpoint(smoke: SmokeRuns, tmp_path) -> None:
    """benchmarks/recommend_latency.py end to end on the smoke recommender: both timings, and
    the closed-form gradients equal to autograd's."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from recommend_latency import main

    out = tmp_path / "latency.json"
    ckpt = smoke["smoke_recommender"].ckpt
    row = main(["--checkpoint", str(ckpt), "--users", "3", "--repeats", "1", "--out", str(out)])
    assert row["with_reasons_ms"] > row["without_reasons_ms"] > 0
    assert row["gradients_max_abs_difference"] < 1e-5
    assert json.loads(out.read_text())["catalog"]["rows"] == [row]


def test_a_part_that_rounds_to_nothing_pulls_nothing_down() -> None:
    """A listening part of -0.0016 read "score +4.05: -0.00 from plays, +4.05 from content
    (plays pulled it down)"."""
    said = _split(-0.0016, 4.05, {"listening": -0.0004, "content": 1.0004})
    assert said == "score 0% from plays, 100% from content"
    assert "pulled it down" in _split(-0.5, 4.05, {"listening": -0.14, "content": 1.14})
