"""recommend/style_catalog.py: simulated listeners follow their style mix, the cold-start split
is stratified, and the catalog of real pieces loads, caches and lists bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadenza.data.sources import MidiFolderSource
from cadenza.errors import ConfigError
from cadenza.recommend import style_catalog
from cadenza.recommend.style_catalog import (
    STYLES,
    cold_start_split,
    load_style_catalog,
    simulate_listeners,
    style_source,
)
from cadenza.recommend.symbolic_features import SYMBOLIC_NAMES
from tests.fixtures.data import data_root
from tests.fixtures.midi_factory import write_broken_folder, write_chords, write_scale

STYLE_OF_TRACK = np.repeat(np.arange(4), [150, 120, 100, 130])  # [500] uneven on purpose


# --- simulated listeners -----------------------------------------------------------------------
def test_listeners_shapes_and_counts() -> None:
    lis = simulate_listeners(STYLE_OF_TRACK, n_users=300, listens=(20, 60), seed=3)
    assert lis.matrix.shape == (300, 500) and lis.taste.shape == (300, 4)
    assert set(np.unique(lis.matrix.data)) == {1.0}  # binary, no repeated pair
    per_user = np.diff(lis.matrix.indptr)
    assert per_user.min() >= 20 and per_user.max() <= 60 and per_user.max() > per_user.min()
    np.testing.assert_allclose(lis.taste.sum(axis=1), 1.0)
    for s in range(4):  # appeal is a distribution within each style
        assert lis.appeal[s == STYLE_OF_TRACK].sum() == pytest.approx(1.0)


def test_listeners_are_deterministic() -> None:
    a = simulate_listeners(STYLE_OF_TRACK, n_users=50, seed=7)
    b = simulate_listeners(STYLE_OF_TRACK, n_users=50, seed=7)
    c = simulate_listeners(STYLE_OF_TRACK, n_users=50, seed=8)
    assert (a.matrix != b.matrix).nnz == 0 and np.array_equal(a.taste, b.taste)
    assert (a.matrix != c.matrix).nnz > 0


def test_listeners_follow_their_taste() -> None:
    lis = simulate_listeners(STYLE_OF_TRACK, n_users=1000, seed=0)
    favourite = lis.taste.argmax(axis=1)
    devoted = np.flatnonzero(lis.taste.max(axis=1) > 0.9)
    assert len(devoted) > 50  # concentration 0.3: many listeners live in one style
    share = [np.mean(STYLE_OF_TRACK[lis.matrix[u].indices] == favourite[u]) for u in devoted]
    # Not 90 % each: drawing without replacement uses up a style's most appealing tracks.
    assert np.mean(share) > 0.8
    # Popular tracks are popular for everyone: the top-appeal track of each style is played
    # far more than the style's median track.
    plays = np.asarray(lis.matrix.sum(axis=0)).ravel()
    for s in range(4):
        members = np.flatnonzero(s == STYLE_OF_TRACK)
        top = members[np.argmax(lis.appeal[members])]
        assert plays[top] > 3 * np.median(plays[members])


def test_listeners_reject_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="listens"):
        simulate_listeners(STYLE_OF_TRACK, n_users=5, listens=(30, 10))
    with pytest.raises(ConfigError, match="concentration"):
        simulate_listeners(STYLE_OF_TRACK, n_users=5, concentration=0.0)


def test_cold_start_split_is_stratified_and_disjoint() -> None:
    warm, cold = cold_start_split(STYLE_OF_TRACK, cold_fraction=0.2, seed=1)
    assert len(np.intersect1d(warm, cold)) == 0
    np.testing.assert_array_equal(np.sort(np.r_[warm, cold]), np.arange(len(STYLE_OF_TRACK)))
    for s, n in enumerate([150, 120, 100, 130]):
        assert np.sum(STYLE_OF_TRACK[cold] == s) == round(0.2 * n)
    again = cold_start_split(STYLE_OF_TRACK, cold_fraction=0.2, seed=1)
    assert np.array_equal(again[1], cold)
    # A tiny style is still seen warm and tested cold.
    _, cold_small = cold_start_split(np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]), 0.1)
    assert set(np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])[cold_small]) == {0, 1}
    with pytest.raises(ConfigError, match="cold_fraction"):
        cold_start_split(STYLE_OF_TRACK, cold_fraction=1.0)


# --- the catalog -------------------------------------------------------------------------------
def test_unknown_style() -> None:
    with pytest.raises(ConfigError, match="valid styles"):
        style_source("jazz")


def test_real_catalog_loads_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = data_root()
    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    fresh = load_style_catalog(per_style=5, workers=1, cache=False, root=root)
    assert fresh.n_tracks == 20 and fresh.skipped == {}
    np.testing.assert_array_equal(np.bincount(fresh.styles), [5, 5, 5, 5])
    assert fresh.features.shape == (20, len(SYMBOLIC_NAMES)) and fresh.features.dtype.kind == "f"
    assert np.isfinite(fresh.features).all()
    assert [k.split("/")[0] for k in fresh.keys] == [s for s in STYLES for _ in range(5)]
    # Nottingham's full tunes only, never the melody/ or chords/ copies below them.
    assert all("/" not in k.split("/", 1)[1] for k in fresh.keys if k.startswith("nottingham"))

    written = load_style_catalog(per_style=5, workers=1, root=root)
    assert len(list((tmp_path / "cache" / "recommend").glob("*.npz"))) == 1

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cache hit must not parse any file")

    monkeypatch.setattr(style_catalog, "_featurise_all", no_parsing)
    hit = load_style_catalog(per_style=5, workers=1, root=root)
    for other in (written, hit):
        assert other.keys == fresh.keys and other.skipped == fresh.skipped
        np.testing.assert_array_equal(other.styles, fresh.styles)
        np.testing.assert_array_equal(other.features, fresh.features)
    with pytest.raises(AssertionError, match="cache hit"):  # another seed is another catalog
        load_style_catalog(per_style=5, seed=1, workers=1, root=root)


def test_broken_files_are_listed_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "midis"
    reasons = write_broken_folder(folder)
    write_scale(folder / "scale.mid")
    write_chords(folder / "chords.mid", transpose=3)
    catalog = load_style_catalog(
        per_style=50, workers=2, cache=False, sources={"piano_midi": MidiFolderSource(folder)}
    )
    assert catalog.keys == ["piano_midi/chords.mid", "piano_midi/scale.mid"]
    np.testing.assert_array_equal(catalog.styles, [STYLES.index("piano_midi")] * 2)
    assert {k: v.split(":")[0] for k, v in catalog.skipped.items()} == {
        f"piano_midi/{name}": reason for name, reason in reasons.items()
    }
    assert np.isfinite(catalog.features).all()
    with pytest.raises(ConfigError, match="unknown styles"):
        load_style_catalog(sources={"jazz": MidiFolderSource(folder)}, cache=False)
