"""Catalog tracks by name (recommend/catalog_names.py) on the real Last.fm catalog: artists'
names in the checkpoint (plain lists: it still loads weights-only), on every pick and in its
reasons; history= by name as by key; ambiguous and unknown names a clear error; and a checkpoint
from before names were kept, which still loads and recommends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.errors import ConfigError
from cadenza.recommend.catalog_names import item_names
from cadenza.recommend.explain import explain_model_picks
from cadenza.recommend.interactions import lastfm_artists
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.workflow import NoTasteError, forget_listeners, recommend_catalog
from tests.fixtures.data import data_root
from tests.recommend.lastfm_model import save_lastfm_checkpoint

# artists.dat: 51 Duran Duran, 72 Depeche Mode; "Michel Teló" is spelt by two artist IDs.
DURAN, DEPECHE = "51", "72"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lastfm-ckpt")
    return {"named": save_lastfm_checkpoint(folder / "named.ckpt"),
            "old": save_lastfm_checkpoint(folder / "old.ckpt", names=False)}  # fmt: skip


@pytest.fixture
def model(ckpts: dict[str, Path]) -> RecommenderModule:
    return RecommenderModule.load(ckpts["named"])  # weights_only=True inside


def test_the_checkpoint_keeps_artists_names_as_a_plain_list(ckpts, model) -> None:
    hp = torch.load(ckpts["named"], weights_only=True)["hyper_parameters"]
    names = hp["item_names"]
    assert type(names) is list and all(type(n) is str for n in names)
    artists = lastfm_artists(data_root())
    assert names == [artists[int(k)] for k in hp["item_keys"]]
    assert names[hp["item_keys"].index(DURAN)] == "Duran Duran"
    assert item_names(model) == names


@pytest.mark.parametrize("method", ["hybrid", "content", "itemknn"])
def test_picks_and_their_reasons_carry_the_artists_names(model, method) -> None:
    artists = lastfm_artists(data_root())
    picks = recommend_catalog(model, user="2", k=5, method=method)
    assert len(picks) == 5
    for p in picks:
        assert p.name == artists[int(p.key)]
        for played in p.reasons["played"]:
            assert played["name"] == artists[int(played["key"])]
            assert played["name"] in p.reasons["summary"]
        # the summary names artists, never their bare IDs
        assert f"because you played {p.reasons['played'][0]['name']} (" in p.reasons["summary"]


def test_history_takes_names_as_keys_any_case(model) -> None:
    by_key = recommend_catalog(model, history=[DURAN, DEPECHE], k=5)
    by_name = recommend_catalog(model, history=["duran  DURAN", "Depeche Mode"], k=5)
    mixed = recommend_catalog(model, history=["Duran Duran", DEPECHE], k=5)
    keys = [p.key for p in by_key]
    assert [p.key for p in by_name] == keys and [p.key for p in mixed] == keys
    assert [p.score for p in by_name] == [p.score for p in by_key]
    assert {DURAN, DEPECHE}.isdisjoint(keys)  # named tracks count as heard


def test_an_ambiguous_or_unknown_name_lists_what_it_could_mean(model) -> None:
    with pytest.raises(
        ConfigError,
        match=r"'michel teló' names 2 catalog tracks: \d+ \(Michel "
        r"Teló\), \d+ \(MICHEL TELÓ\); pass the key",
    ):
        recommend_catalog(model, history=["michel teló"], k=3)
    with pytest.raises(ConfigError, match=r"close to 'Duran Durn': Duran Duran \(51\)"):
        recommend_catalog(model, history=["Duran Durn"], k=3)
    with pytest.raises(
        ConfigError,
        match=r"not in the catalog: \['zzqqxx'\] \(give catalog keys "
        r"or names, e\.g\. \['MALICE MIZER \(1\)'",
    ):
        recommend_catalog(model, history=["zzqqxx"], k=3)


def test_a_checkpoint_from_before_names_loads_and_recommends(ckpts, monkeypatch) -> None:
    named = recommend_catalog(RecommenderModule.load(ckpts["named"]), user="2", k=5)
    old = RecommenderModule.load(ckpts["old"])
    assert old.hparams.item_names is None
    # A Last.fm checkpoint reads its artists' names from artists.dat where the data is at hand.
    picks = recommend_catalog(old, user="2", k=5)
    assert [(p.key, p.name, p.score) for p in picks] == [(p.key, p.name, p.score) for p in named]
    # Without the data: the same picks, shown by key.
    monkeypatch.setenv("CADENZA_DATA", str(Path("/nonexistent")))
    old = RecommenderModule.load(ckpts["old"])
    picks = recommend_catalog(old, user="2", k=5)
    assert [p.key for p in picks] == [p.key for p in named] and all(p.name is None for p in picks)
    for p in recommend_catalog(old, history=[DURAN, DEPECHE], k=3, method="itemknn"):
        assert p.name is None and all("name" not in r for r in p.reasons["played"])
        first = p.reasons["played"][0]["key"]
        assert p.reasons["summary"].startswith(f"because you played {first} (")
    with pytest.raises(ConfigError, match=r"catalog keys look like \['1', '2', '3'\]"):
        recommend_catalog(old, history=["Duran Duran"], k=3)


@pytest.mark.parametrize("method", ["hybrid", "content", "itemknn", "userknn"])
def test_an_empty_taste_is_an_error_not_the_catalog_in_key_order(model, method) -> None:
    """Before: every track scored 0 and came back in key order, "close to your taste overall"."""
    with pytest.raises(NoTasteError, match=r"history is empty.*history=\[key or name, \.\.\.\]"):
        recommend_catalog(model, history=[], k=5, method=method)
    assert recommend_catalog(model, user="2", k=5, method=method)
    assert forget_listeners(model, {"2"}) == 1  # as the service forgets a listener
    with pytest.raises(
        NoTasteError,
        match=r"user=2 has no plays .*give a user with plays, "
        r"history=\[track, \.\.\.\] or text=",
    ):
        recommend_catalog(model, user="2", k=5, method=method)
    assert recommend_catalog(model, user="3", k=5, method=method)  # everyone else untouched


def test_the_split_in_words_says_which_part_pulled_the_score_down(model) -> None:
    """Shares of the score read right only when both parts raise it; a negative part is said
    as the amount it takes away, and the two amounts add up to the score."""
    history = model.history(torch.tensor([model.user_rows["2"]]))
    with torch.no_grad():
        taste = model.taste_of(history)
    reasons = explain_model_picks(model, taste, history, np.arange(2000))
    split = [r for r in reasons if r["listening"] != 0]  # a cold track's score is all content
    # As said, to two decimals: a part of -0.001 pulls nothing down.
    down = [r for r in split if min(round(r["listening"], 2), round(r["content"], 2)) < 0]
    up = [r for r in split if min(round(r["listening"], 2), round(r["content"], 2)) >= 0]
    assert len(down) > 100 and len(up) > 100  # both kinds are common
    for r in up:
        assert r["summary"].endswith(
            f"score {100 * max(r['shares']['listening'], 0.0):.0f}% from plays, "
            f"{100 * max(r['shares']['content'], 0.0):.0f}% from content"
        )
    for r in down:
        total = r["listening"] + r["content"]
        parts = {"plays": round(r["listening"], 2) + 0.0, "content": round(r["content"], 2) + 0.0}
        said = (f"score {total:+.2f}: {parts['plays']:+.2f} from plays, "
                f"{parts['content']:+.2f} from content (")  # fmt: skip
        assert said in r["summary"] and "% from" not in r["summary"], r["summary"]
        pulled = [w for w in ("plays", "content") if parts[w] < 0]
        assert r["summary"].endswith(f"({' and '.join(pulled)} pulled it down)")
