"""The recommender family on a small synthetic catalog: shapes, learning, cold start, new
listeners, context, checkpoints, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.sparse as sp
import torch

from cadenza.errors import CadenzaError, ConfigError
from cadenza.recommend.datamodule import Catalog, InteractionDataModule
from cadenza.recommend.fit import _FixedSource, fit_recommender
from cadenza.recommend.interactions import split_per_user
from cadenza.recommend.module import RecommenderModule

N_ITEMS, N_USERS, GROUPS = 60, 80, 2


def two_taste_catalog(seed: int = 0) -> Catalog:
    """Items in 2 groups told apart by their features; each user plays 10 tracks of one group
    and 3 of the other (so asking for the other group, as a context, has answers to learn)."""
    rng = np.random.default_rng(seed)
    group = np.arange(N_ITEMS) % GROUPS
    features = np.eye(GROUPS)[group] * 2.0 + rng.normal(0, 0.3, (N_ITEMS, 4))[:, :GROUPS]
    rows, cols = [], []
    for u in range(N_USERS):
        main, other = np.flatnonzero(group == u % GROUPS), np.flatnonzero(group != u % GROUPS)
        liked = np.concatenate(
            [rng.choice(main, 10, replace=False), rng.choice(other, 3, replace=False)]
        )
        rows += [u] * len(liked)
        cols += list(liked)
    plays = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (N_USERS, N_ITEMS))
    # Items 0 and 1 are cold: nobody's training history holds them.
    cold = np.array([0, 1])
    warm_plays = sp.csr_matrix(plays.multiply((~np.isin(np.arange(N_ITEMS), cold))[None, :]))
    warm_plays.eliminate_zeros()
    split = split_per_user(warm_plays, seed=seed)
    mean, std = features.mean(0), features.std(0)
    return Catalog(
        item_keys=[f"track{i}" for i in range(N_ITEMS)],
        user_keys=[f"u{u}" for u in range(N_USERS)],
        features=((features - mean) / std).astype(np.float32),
        feature_mean=mean.astype(np.float32), feature_std=std.astype(np.float32),
        history=split.train.astype(np.float32), train=split.train, valid=split.valid,
        test=split.test, item_context=group.astype(np.int64), contexts=["even", "odd"],
        cold_items=cold, feature_kind="test",
    )  # fmt: skip


def build(catalog: Catalog, **kw) -> RecommenderModule:
    dm = InteractionDataModule(_FixedSource(catalog))
    model = RecommenderModule(**dm.model_sizing(), **{"dim": 8, "heads": 2, "hidden": 16, **kw})
    model.attach(catalog)
    return model


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return two_taste_catalog()


@pytest.fixture(scope="module")
def trained(catalog: Catalog) -> RecommenderModule:
    return fit_recommender(catalog, max_epochs=30, patience=30, seed=0, batch_size=16, lr=0.01,
                           dim=8, heads=2, hidden=16, context_prob=0.3)  # fmt: skip


def test_shapes_and_unit_vectors(catalog: Catalog) -> None:
    model = build(catalog)
    users = torch.arange(5)
    tastes, tracks = model.user_taste(users), model.catalog_embeddings()
    assert tastes.shape == (5, 16) and tracks.shape == (N_ITEMS, 16)  # H * D = 2 * 8
    # each head unit length, scaled by 1/sqrt(H): the whole vector has norm 1
    assert torch.allclose(tracks.norm(dim=1), torch.ones(N_ITEMS), atol=1e-5)
    scores = model.score(tastes, tracks)
    assert scores.shape == (5, N_ITEMS)
    assert torch.equal(model.score_users(users, tracks), scores)
    with_context = model.score_users(users, tracks, torch.tensor([0, 1, -1, 0, 1]))
    assert with_context.shape == (5, N_ITEMS)
    assert scores.abs().max() <= 1 / model.hparams.tau + 1e-4  # a mean cosine over tau


def test_a_training_step_lowers_the_loss_on_a_fixed_batch(catalog: Catalog) -> None:
    torch.manual_seed(0)
    model = build(catalog, history_dropout=0.0, id_dropout=0.0)
    batch = {"history": model.history(torch.arange(16))}
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = model.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0]


def test_sampled_softmax_step_is_finite_and_learns(catalog: Catalog) -> None:
    torch.manual_seed(0)
    model = build(catalog, negatives=10)
    batch = {"history": model.history(torch.arange(16))}
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = model.training_step(batch, 0)
    for _ in range(30):
        loss = model.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss < first


def test_trained_model_ranks_each_users_group_first(trained: RecommenderModule) -> None:
    with torch.no_grad():
        scores = trained.score(
            trained.user_taste(torch.arange(N_USERS)), trained.catalog_embeddings()
        )
    top = scores.topk(10, dim=1).indices.numpy()
    same_group = (top % GROUPS) == (np.arange(N_USERS)[:, None] % GROUPS)
    assert same_group.mean() > 0.8


def test_cold_track_is_scored_from_content_alone(trained: RecommenderModule, catalog) -> None:
    assert not trained.item_known[0] and not trained.item_known[1]  # nobody played 0 or 1
    with torch.no_grad():
        before = trained.catalog_embeddings()[:2].clone()
        trained.tracks.ids.weight[:2] += 5.0  # an untrained ID vector must not matter
        after = trained.catalog_embeddings()[:2]
        trained.tracks.ids.weight[:2] -= 5.0
        # a track from outside the catalog with the same raw content embeds the same way
        raw = catalog.features[:2] * catalog.feature_std + catalog.feature_mean
        outside = trained.embed_features(raw)
        tastes = trained.user_taste(torch.arange(N_USERS))
        cold_scores = trained.score(tastes, outside)  # [U, 2]
    assert torch.allclose(before, after)
    assert torch.allclose(outside, before, atol=1e-5)
    # track 0 is in group 0: users of group 0 score it above track 1, users of group 1 below
    prefers_0 = (cold_scores[:, 0] > cold_scores[:, 1]).numpy()
    assert prefers_0[0::2].mean() > 0.8 and prefers_0[1::2].mean() < 0.2


def test_new_listener_taste_equals_known_listener_with_same_history(trained) -> None:
    with torch.no_grad():
        known = trained.user_taste(torch.tensor([3]))
        hist = trained.history(torch.tensor([3]))
        fresh = trained.taste_of(hist.clone())
    assert torch.allclose(known, fresh)


def test_context_moves_scores_towards_that_context(trained: RecommenderModule) -> None:
    # group-0 listeners asked for "odd" (group 1) tracks get more of them in their top 10
    users = torch.arange(0, N_USERS, 2)
    hist, tracks = trained.history(users), trained.catalog_embeddings()
    odd = torch.ones(len(users), dtype=torch.long)
    with torch.no_grad():
        plain = trained.score(trained.taste_of(hist), tracks)
        asked = trained.score(trained.taste_of(hist, odd), tracks)
    share = lambda s: float((s.topk(10, dim=1).indices % 2 == 1).float().mean())  # noqa: E731
    assert share(asked) > share(plain) + 0.3


def test_checkpoint_round_trip_weights_only(trained, catalog, tmp_path: Path) -> None:
    trainer = pl.Trainer(accelerator="cpu", max_epochs=0, logger=False)
    trainer.strategy.connect(trained)
    path = tmp_path / "rec.ckpt"
    trainer.save_checkpoint(path)
    loaded = RecommenderModule.load(path)
    assert loaded.hparams.item_keys == catalog.item_keys
    with torch.no_grad():
        a = trained.score(trained.user_taste(torch.arange(4)), trained.catalog_embeddings())
        b = loaded.score(loaded.user_taste(torch.arange(4)), loaded.catalog_embeddings())
    assert torch.allclose(a, b)


def test_not_a_recommender_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    torch.save({"hyper_parameters": {"family": "lstm"}, "state_dict": {}}, path)
    with pytest.raises(CadenzaError, match="not a recommender checkpoint"):
        RecommenderModule.load(path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("tau", 0.0), ("heads", 0), ("history_dropout", 1.5), ("dim", "wide"), ("negatives", -3)],
)
def test_bad_config_values_name_the_key(catalog: Catalog, key: str, value) -> None:
    with pytest.raises(ConfigError, match=f"model.{key}"):
        build(catalog, **{key: value})


def test_catalog_of_other_size_is_refused(catalog: Catalog) -> None:
    model = build(catalog)
    other = two_taste_catalog()
    other.features = other.features[:, :1]
    with pytest.raises(ConfigError, match="item_features"):
        model.attach(other)


def test_taste_recommender_keeps_the_baselines_contract(catalog: Catalog) -> None:
    from cadenza.recommend.fit import TasteRecommender
    from cadenza.recommend.interactions import from_triples

    pairs = (catalog.train + catalog.valid + catalog.test).tocoo()
    data = from_triples(pairs.row, pairs.col, np.full(pairs.nnz, 3.0))
    split = split_per_user(data.matrix, seed=0)
    rec = TasteRecommender(data, seed=0, tags=0, max_epochs=3, dim=8, heads=1, hidden=8)
    scores = rec.fit(split.train, split.valid).scores(np.arange(4))
    assert scores.shape == (4, data.n_items) and np.isfinite(scores).all()
    assert rec.model.hparams.feature_dim == 0  # tags=0: an ID-only model still trains and ranks
