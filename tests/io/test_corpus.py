"""cadenza.io.corpus: music21's bundled scores as MIDI bytes."""

from __future__ import annotations

import pytest

from cadenza.errors import BadMidiError, CadenzaError
from cadenza.io.corpus import corpus_paths, corpus_to_midi_bytes
from cadenza.io.midi import load_midi_bytes, tracks_of


def test_bach_collection_lists_chorales():
    paths = corpus_paths("bach")
    assert len(paths) > 400
    assert all(p.is_file() for p in paths[:20])


def test_unknown_collection_names_valid_ones():
    with pytest.raises(CadenzaError, match="bach"):
        corpus_paths("no-such-composer")


def test_chorale_converts_to_four_voices():
    path = next(p for p in corpus_paths("bach") if p.name == "bwv66.6.mxl")
    pm = load_midi_bytes(corpus_to_midi_bytes(path), name=path.name)
    voiced = [t for t in tracks_of(pm) if len(t.notes)]
    assert len(voiced) == 4
    assert 20 < sum(len(t.notes) for t in voiced) < 400


def test_unparseable_score_is_bad_midi(tmp_path):
    bad = tmp_path / "bad.mxl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BadMidiError) as info:
        corpus_to_midi_bytes(bad)
    assert info.value.reason == "corrupt" and "bad.mxl" in str(info.value)
