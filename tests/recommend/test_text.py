"""Text -> taste: descriptions checked, the bundled sentence model read offline, the ridge map,
Last.fm descriptions from training tags only and never an artist's name, and the map a trained
recommender carries in its checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cadenza.errors import ConfigError
from cadenza.recommend.interactions import (
    lastfm_artist_names,
    lastfm_tag_assignments,
    load_lastfm,
    split_per_user,
    tag_descriptions,
)
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.style_catalog import STYLE_TEXT, STYLES
from cadenza.recommend.text import (
    MAX_DESCRIPTION_CHARS,
    TEXT_DIM,
    check_description,
    sentence_embedder,
)
from cadenza.recommend.text_taste import TextMapFitter, apply_map, text_pairs
from tests.fixtures.data import data_root
from tests.fixtures.smoke import SmokeRuns


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "is empty"), ("   \n\t", "is empty"), ("x" * (MAX_DESCRIPTION_CHARS + 1), "characters"),
     (123, "got int"), (["rock"], "got list"), (None, "got NoneType"), ("1234 !!", "no words")],
)  # fmt: skip
def test_unusable_descriptions_are_config_errors_naming_the_key(text: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as e:
        check_description(text, name="text")
    assert "text" in str(e.value)


def test_descriptions_are_stripped_and_their_spaces_collapsed() -> None:
    assert check_description("  calm   piano\nfor studying ") == "calm piano for studying"


def test_the_bundled_sentence_model_loads_offline_and_reads_meaning() -> None:
    embedder = sentence_embedder()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    texts = ["calm piano for studying", *STYLE_TEXT.values(), "calm piano for studying"]
    x = embedder.encode(texts)
    assert x.shape == (len(texts), TEXT_DIM) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[-1])  # repeated texts: one encoding, same vector
    similarity = dict(zip(STYLE_TEXT, x[1:-1] @ x[0]))
    assert max(similarity, key=similarity.get) == "piano_midi", similarity
    assert embedder.encode([]).shape == (0, TEXT_DIM)


def test_the_ridge_map_recovers_a_linear_relation_and_chooses_its_penalty() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16))
    w, b = rng.normal(size=(16, 6)), rng.normal(size=6)
    y = x @ w + b + 0.01 * rng.normal(size=(400, 6))
    fitted = TextMapFitter(x, alphas=(0.3, 1000.0)).fit(y)
    assert fitted.alpha == 0.3 and fitted.heldout_cosine > 0.999 and fitted.pairs == 400
    assert fitted.weights.shape == (17, 6)
    np.testing.assert_allclose(apply_map(fitted.weights, x), y, atol=0.1)
    with pytest.raises(ValueError, match="at least 5"):
        TextMapFitter(x[:4])


def test_text_pairs_cap_keeps_a_seeded_sample_of_listeners_and_tracks_in_order() -> None:
    from types import SimpleNamespace

    catalog = SimpleNamespace(
        user_text=[f"user {u}" if u % 3 else "" for u in range(40)],
        item_text=[f"track {i}" for i in range(60)],
        description="x",
    )
    users, items, texts = text_pairs(catalog)
    assert len(texts) == len(users) + len(items) == 26 + 60
    u, i, t = text_pairs(catalog, max_pairs=20)
    assert len(t) == len(u) + len(i) == 20 and u.size and i.size
    assert set(u) <= set(users) and set(i) <= set(items)
    assert t == [f"user {x}" for x in u] + [f"track {x}" for x in i]  # users first, aligned
    assert all(np.diff(u) > 0) and all(np.diff(i) > 0)
    u2, i2, _ = text_pairs(catalog, max_pairs=20)
    assert (u2 == u).all() and (i2 == i).all()  # seeded: the same sample every fit


def test_tag_descriptions_rank_by_use_and_leave_out_artist_names() -> None:
    names = {1: "rock", 2: "indie", 3: "radiohead", 4: "90s", 5: "jazz"}
    owners = np.array([0, 0, 0, 0, 0, 0, 2, 2, 1])
    tags = np.array([2, 2, 1, 3, 3, 3, 5, 4, 5])
    out = tag_descriptions(owners, tags, 4, names, banned={"radiohead"}, per_owner=2)
    # owner 0: radiohead (3 uses) is an artist's name; then indie (2), then rock (1), capped at 2;
    # owner 2 used jazz and 90s once each: jazz first, used more overall; owner 3 tagged nothing
    assert out == ["indie, rock", "jazz", "jazz, 90s", ""]


def test_lastfm_descriptions_come_from_training_tags_and_name_no_artist() -> None:
    from cadenza.recommend.datamodule import lastfm_catalog

    data_root()
    data = load_lastfm()
    split = split_per_user(data.matrix, (0.8, 0.1, 0.1), seed=0)
    catalog = lastfm_catalog(data, split.train, split.valid, split.test)
    assert len(catalog.user_text) == data.n_users and len(catalog.item_text) == data.n_items
    described = [t for t in catalog.user_text if t]
    assert len(described) > 0.8 * data.n_users  # most Last.fm users tagged something
    artists = lastfm_artist_names()
    assert not {w for t in described for w in t.split(", ")} & artists
    # Every word of a user's description is a tag they gave one of their *training* artists.
    assigned = lastfm_tag_assignments(data, split.train)
    for u in np.flatnonzero([bool(t) for t in catalog.user_text])[:200]:
        given = {assigned.names[t] for t in assigned.tags[assigned.users == u]}
        assert set(catalog.user_text[u].split(", ")) <= given
        assert all(split.train[u, i] > 0 for i in assigned.items[assigned.users == u])
    assert len(catalog.feature_names) == catalog.features.shape[1] == 500
    assert "rock" in catalog.feature_names


def test_a_trained_recommender_carries_its_text_map(smoke: SmokeRuns) -> None:
    """The map refitted after the checkpoint's validation epoch was fitted on (a track's style
    text, the taste of a listener of that one track): each style's words move the predicted
    taste away from the average in the direction of that style's listeners (a seconds-long
    smoke model's tastes are mostly noise, so the penalty is large and the moves small, but
    their direction is the style's). benchmarks/text_taste.py measures what it is worth."""
    model = RecommenderModule.load(smoke["smoke_recommender"].ckpt)
    assert model.hparams.text and model.text_map.shape == (TEXT_DIM + 1, model.hparams.dim)
    assert bool(model.text_map.any())
    with torch.no_grad():
        tastes = model.taste_of_text(list(STYLE_TEXT.values()) + ["calm piano for studying"])
        targets = model.taste_of(torch.eye(model.hparams.n_items)).numpy()  # one track each
    assert tastes.shape == (5, model.hparams.dim)
    torch.testing.assert_close(tastes.norm(dim=1), torch.ones(5))  # one head, unit norm
    w = model.text_map.numpy()
    moved = apply_map(w, sentence_embedder().encode(list(STYLE_TEXT.values()))) - targets.mean(0)
    styles = model.item_context.numpy()
    toward = np.stack([targets[styles == s].mean(0) for s in range(len(STYLES))]) - targets.mean(0)
    cosine = (moved / np.linalg.norm(moved, axis=1, keepdims=True)) @ (
        toward / np.linalg.norm(toward, axis=1, keepdims=True)).T  # fmt: skip
    assert (cosine.argmax(axis=1) == np.arange(len(STYLES))).all(), cosine
    assert (np.diag(cosine) > 0.5).all(), cosine
    with pytest.raises(ConfigError, match="is empty"):
        model.taste_of_text([" "])
