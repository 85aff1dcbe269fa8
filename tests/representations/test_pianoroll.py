"""PianoRollCodec: beat-grid rolls, exact round trips on real files, transposition, persistence."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, load_midi, time_to_beats, tracks_of
from cadenza.representations import Codec, PianoRollCodec
from tests.fixtures.data import real_midi, real_midi_params
from tests.fixtures.midi_factory import SCALE, chord_notes, scale_notes

REAL = real_midi_params()


@cache
def _load(rel: str):
    return load_midi(real_midi(rel))


def reference_runs(pm, spb: int, notes: np.ndarray) -> set[tuple[int, int, int]]:
    """Quantize notes [N, 4] as the spec says, then merge same-pitch intervals that touch or
    overlap (a roll cannot separate them): an independent model of what decode must give."""
    notes = notes[(notes[:, 2] >= 21) & (notes[:, 2] <= 108)]
    on = np.floor(time_to_beats(pm, notes[:, 0]) * spb + 0.5).astype(int)
    off = np.maximum(np.floor(time_to_beats(pm, notes[:, 1]) * spb + 0.5).astype(int), on + 1)
    runs = set()
    for pitch in np.unique(notes[:, 2]).astype(int):
        ivs = sorted(zip(on[notes[:, 2] == pitch], off[notes[:, 2] == pitch]))
        start, end = ivs[0]
        for a, b in ivs[1:]:
            if a <= end:
                end = max(end, b)
            else:
                runs.add((start, end, pitch))
                start, end = a, b
        runs.add((start, end, pitch))
    return runs


def decoded_runs(codec: PianoRollCodec, pm) -> list[set[tuple[int, int, int]]]:
    """Notes of a decoded PrettyMIDI, back in steps, per instrument."""
    sec = 60.0 / (codec.tempo * codec.steps_per_beat)
    out = []
    for t in tracks_of(pm):
        steps = np.round(t.notes[:, :2] / sec).astype(int)
        assert np.allclose(steps * sec, t.notes[:, :2])  # decode lands exactly on the grid
        out.append({(int(a), int(b), int(p)) for (a, b), p in zip(steps, t.notes[:, 2])})
    return out


@pytest.mark.parametrize("rel", [p.values[0] for p in REAL], ids=[p.id for p in REAL])
@pytest.mark.parametrize("spb", [4, 12], ids=["spb4", "spb12"])
def test_merge_round_trip_on_real_files(rel, spb):
    pm = _load(rel)
    codec = PianoRollCodec(steps_per_beat=spb)
    x = codec.encode(pm)
    assert x.dtype == torch.float32 and x.shape[1] == codec.feature_dim == 88
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    decoded = codec.decode(x)
    assert torch.equal(codec.encode(decoded), x)
    notes = np.concatenate([t.notes for t in tracks_of(pm, include_drums=False)])
    expected = reference_runs(pm, spb, notes)
    assert decoded_runs(codec, decoded) == [expected]
    assert x.shape[0] == max(e for _, e, _ in expected)


@pytest.mark.parametrize("rel", ["pop909/midi/001.mid", "pop909/midi/004.mid"], ids=str)
def test_instrument_blocks_on_pop909(rel):
    pm = _load(rel)
    codec = PianoRollCodec(tracks="instruments:3")
    x = codec.encode(pm)
    assert codec.feature_dim == 3 * 88 and x.shape[1] == 264
    decoded = codec.decode(x)
    assert torch.equal(codec.encode(decoded), x)
    runs = decoded_runs(codec, decoded)
    for k, track in enumerate(tracks_of(pm)):  # MELODY, BRIDGE, PIANO
        assert runs[k] == reference_runs(pm, 4, track.notes)
    # Fewer instruments asked for than present: the first ones only.
    melody = PianoRollCodec(tracks="instruments:1").encode(pm)
    assert torch.equal(melody, x[: len(melody), :88])


def test_scale_lands_on_the_grid():
    pm = build_midi([TrackNotes(0, False, "", scale_notes())])
    x = PianoRollCodec(steps_per_beat=4).encode(pm)
    assert x.shape == (32, 88) and x.sum() == 32
    for i, pitch in enumerate(SCALE):
        assert x[4 * i : 4 * i + 4, pitch - 21].tolist() == [1.0] * 4


def test_missing_instruments_stay_silent_and_drums_are_ignored():
    drums = TrackNotes(0, True, "kit", np.array([[0.0, 8.0, 40, 100]]))
    pm = build_midi([drums, TrackNotes(0, False, "", chord_notes())])
    x = PianoRollCodec(tracks="instruments:2").encode(pm)
    assert x.shape == (32, 176)  # 4 s of chords = 8 beats; the 8 s drum hit does not count
    assert x[:, :88].sum() == 12 * 8 and x[:, 88:].sum() == 0


def test_no_notes_in_range():
    pm = build_midi([TrackNotes(0, False, "", np.array([[0.0, 1.0, 10, 80]]))])
    with pytest.raises(BadMidiError) as info:
        PianoRollCodec().encode(pm)
    assert info.value.reason == "no_notes"


def test_max_steps_and_probabilities():
    pm = build_midi([TrackNotes(0, False, "", scale_notes())])
    x = PianoRollCodec(max_steps=10).encode(pm)
    assert x.shape == (10, 88)
    codec = PianoRollCodec()
    probs = codec.encode(pm) * 0.9 + 0.05  # model output: 0.95 where on, 0.05 where off
    assert torch.equal(codec.encode(codec.decode(probs)), codec.encode(pm))


@pytest.mark.parametrize("k", [-5, -1, 0, 3, 7])
def test_transpose_matches_encoding_transposed_notes(k):
    codec = PianoRollCodec(tracks="instruments:2")
    a, b = scale_notes(), chord_notes()
    x = codec.encode(build_midi([TrackNotes(0, False, "", a), TrackNotes(0, False, "", b)]))
    a2, b2 = a.copy(), b.copy()
    a2[:, 2] += k
    b2[:, 2] += k
    want = codec.encode(build_midi([TrackNotes(0, False, "", a2), TrackNotes(0, False, "", b2)]))
    got = codec.transpose(x.numpy().astype(np.uint8), k)
    assert got is not None and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want.numpy())


def test_transpose_out_of_range_is_none():
    codec = PianoRollCodec(low_pitch=48, high_pitch=84)
    x = codec.encode(build_midi([TrackNotes(0, False, "", scale_notes())])).numpy()  # 60..72
    assert codec.transpose(x, 12) is not None  # 72 + 12 = 84, the top key
    assert codec.transpose(x, 13) is None
    assert codec.transpose(x, -12) is not None and codec.transpose(x, -13) is None
    assert codec.transpose(x, 100) is None


def test_dict_round_trip_and_sizes():
    codec = PianoRollCodec(steps_per_beat=2, low_pitch=36, high_pitch=95, tracks="instruments:2")
    d = json.loads(json.dumps(codec.to_dict()))
    assert d["name"] == "pianoroll"
    again = Codec.from_dict(d)
    assert isinstance(again, PianoRollCodec) and again == codec
    assert again.feature_dim == 2 * 60 and again.steps_for_bars(2) == 16
    assert PianoRollCodec().steps_for_bars(1.5) == 24
    with pytest.raises(AttributeError):
        _ = codec.vocab_size


@pytest.mark.parametrize(
    "bad",
    [
        {"tracks": "voices"},
        {"tracks": "instruments:0"},
        {"low_pitch": 90, "high_pitch": 80},
        {"steps_per_beat": 0},
    ],
)
def test_bad_params_raise_config_error(bad):
    with pytest.raises(ConfigError):
        PianoRollCodec(**bad)


def test_decoding_frames_of_another_width_says_what_it_expected() -> None:
    codec = PianoRollCodec()
    with pytest.raises(ValueError, match=r"expected frames \[T, 88\] .* got \[4, 7\]"):
        codec.decode(torch.zeros(4, 7))
