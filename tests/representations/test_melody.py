"""MelodyCodec: exact tokens for hand-made melodies, skyline round trips on real Nottingham tunes,
octave folding, training windows, transposition, persistence, clear errors."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, load_midi, time_to_beats, tracks_of
from cadenza.representations import Codec, MelodyCodec
from cadenza.representations.melody import HOLD, PAD, REST, windows
from tests.fixtures.data import NOTTINGHAM, data_root

H, R = HOLD, REST
C4, D4, E4 = 60, 62, 64
S = 0.125  # one 16th note in seconds at 120 bpm


def on(pitch: int, low: int = 48) -> int:
    return 3 + pitch - low


def track(rows, program: int = 0, is_drum: bool = False) -> TrackNotes:
    return TrackNotes(program, is_drum, "", np.array(rows, dtype=np.float64).reshape(-1, 4))


# C4 quarter, D4 eighth, eighth rest, E4 eighth struck twice.
TUNE = [(0.0, 0.5, C4, 90), (0.5, 0.75, D4, 90), (1.0, 1.25, E4, 90), (1.25, 1.5, E4, 90)]
TUNE_TOKENS = [on(C4), H, H, H, on(D4), H, R, R, on(E4), H, on(E4), H]


def decoded_steps(pm, spb: int = 4, tempo: float = 120.0) -> list[tuple[int, int, int]]:
    """Notes of a decoded PrettyMIDI as (on_step, off_step, pitch); they must sit on the grid."""
    (t,) = tracks_of(pm)
    sec = 60.0 / (tempo * spb)
    steps = np.round(t.notes[:, :2] / sec).astype(int)
    assert np.allclose(steps * sec, t.notes[:, :2])
    return [(int(a), int(b), int(p)) for (a, b), p in zip(steps, t.notes[:, 2])]


def test_hand_made_melody_tokens_and_back():
    codec = MelodyCodec()
    x = codec.encode(build_midi([track(TUNE)]))
    assert x.dtype == torch.int64
    assert x.tolist() == TUNE_TOKENS
    assert codec.vocab_size == 3 + 37 == 40
    # Re-struck E4 stays two notes; the rest is a gap.
    assert decoded_steps(codec.decode(x)) == [(0, 4, C4), (4, 6, D4), (8, 10, E4), (10, 12, E4)]
    (t,) = tracks_of(codec.decode(x))
    np.testing.assert_allclose(t.notes[:, :3], np.array(TUNE)[:, :3])


def test_decode_hold_without_note_is_rest_and_pad_ends():
    codec = MelodyCodec()
    x = torch.tensor([H, H, on(C4), H, R, H, on(D4), H, H, PAD, on(E4), H])
    assert codec.notes(x).tolist() == [[2, 4, C4], [6, 9, D4]]
    assert decoded_steps(codec.decode(x)) == [(2, 4, C4), (6, 9, D4)]
    assert codec.notes(torch.tensor([on(C4), H, R, R])).tolist() == [[0, 2, C4]]
    assert codec.notes(np.array([on(D4), H, H])).tolist() == [[0, 3, D4]]


def test_steps_per_beat_and_range_change_ids():
    codec = MelodyCodec(steps_per_beat=2, low_pitch=21, high_pitch=108)
    assert codec.vocab_size == 91 and codec.steps_for_bars(2) == 16
    x = codec.encode(build_midi([track(TUNE)]))
    assert x.tolist() == [on(C4, 21), H, on(D4, 21), R, on(E4, 21), on(E4, 21)]


def test_top_skyline_picks_higher_voice():
    upper = track([(0.0, 1.0, 67, 90)], program=73)  # G4 for two beats
    lower = track([(0.0, 2.0, C4, 90), (0.5, 1.0, 55, 90)], program=32)  # C4 four beats + G3
    pm = build_midi([lower, upper])
    x = MelodyCodec().encode(pm)
    # G4 on top; when it ends the still-sounding C4 becomes the melody as a new note.
    assert x.tolist() == [on(67)] + [H] * 7 + [on(C4)] + [H] * 7
    assert decoded_steps(MelodyCodec().decode(x)) == [(0, 8, 67), (8, 16, C4)]
    # One instrument only: by index (non-drum order) or by program.
    idx0 = MelodyCodec(instrument="index:0").encode(pm).tolist()
    assert idx0 == [on(C4)] + [H] * 15  # C4 covers G3 throughout; G3's onset is not the top's
    assert MelodyCodec(instrument="program:73").encode(pm).tolist() == [on(67)] + [H] * 7
    assert MelodyCodec(instrument="program:32").encode(pm).tolist() == idx0


def test_skyline_restrike_of_sounding_pitch_is_kept():
    # Overlapping notes of one pitch: the second onset is a new NOTE_ON.
    pm = build_midi([track([(0.0, 1.0, C4, 90)]), track([(0.25, 0.75, C4, 90)])])
    assert MelodyCodec().encode(pm).tolist() == [on(C4), H, on(C4)] + [H] * 5


def test_octave_folding():
    codec = MelodyCodec()  # 48..84
    pm = build_midi([track([(0.0, 0.5, 30, 90), (0.5, 1.0, 100, 90), (1.0, 1.5, 84, 90)])])
    assert codec.encode(pm).tolist() == [on(54), H, H, H, on(76), H, H, H, on(84), H, H, H]
    # A range too narrow for any octave of the pitch: the note is dropped.
    narrow = MelodyCodec(low_pitch=60, high_pitch=64)
    pm = build_midi([track([(0.0, 0.5, 66, 90), (0.5, 1.0, 75, 90)])])  # 66 no; 75 -> 63
    assert narrow.encode(pm).tolist() == [R, R, R, R, on(63, 60), H, H, H]
    with pytest.raises(BadMidiError) as info:
        narrow.encode(build_midi([track([(0.0, 0.5, 66, 90)])]))
    assert info.value.reason == "no_notes"


@pytest.mark.parametrize(
    "tracks",
    [
        [track([(0.0, 1.0, 40, 100)], is_drum=True)],
        [],
        [track([])],
    ],
    ids=["drums_only", "no_instruments", "empty_instrument"],
)
def test_no_melody_raises_bad_midi(tracks):
    with pytest.raises(BadMidiError) as info:
        MelodyCodec().encode(build_midi(tracks))
    assert info.value.reason == "no_notes"


def test_name_selection_picks_first_matching_pitched_track():
    def named(name: str, rows, is_drum: bool = False) -> TrackNotes:
        return TrackNotes(0, is_drum, name, np.array(rows, dtype=np.float64).reshape(-1, 4))

    pm = build_midi(
        [
            named("Melody", [(0.0, 0.5, 67, 90)], is_drum=True),  # drums never count
            named("PIANO", [(0.0, 1.0, 72, 90)]),
            named(" melody ", TUNE),
            named("MELODY", [(0.0, 0.5, 50, 90)]),  # a second match: the first one wins
        ]
    )
    for inst in ("name:MELODY", "name:melody", "name: Melody"):
        assert MelodyCodec(instrument=inst).encode(pm).tolist() == TUNE_TOKENS
    assert MelodyCodec(instrument="name:piano").encode(pm).tolist() == [on(72)] + [H] * 7
    assert MelodyCodec(instrument="name:MELODY").params()["instrument"] == "name:MELODY"
    with pytest.raises(BadMidiError) as info:
        MelodyCodec(instrument="name:BASS").encode(pm)
    assert info.value.reason == "no_notes"


def test_name_selection_on_pop909():
    path = data_root() / "pop909" / "midi" / "001.mid"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the data root")
    pm = load_midi(path)
    assert [t.name for t in tracks_of(pm)] == ["MELODY", "BRIDGE", "PIANO"]
    by_name = MelodyCodec(instrument="name:MELODY").encode(pm)
    assert torch.equal(by_name, MelodyCodec(instrument="index:0").encode(pm))
    assert not torch.equal(MelodyCodec(instrument="name:bridge").encode(pm), by_name)
    # Song 001's vocal line is monophonic within 61..70: every one of its 264 notes comes back.
    codec = MelodyCodec(instrument="name:MELODY")
    assert len(codec.notes(by_name)) == len(tracks_of(pm)[0].notes) == 264
    np.testing.assert_array_equal(codec.notes(by_name), codec.quantize(pm))


def test_missing_instrument_selection_raises_bad_midi():
    pm = build_midi([track(TUNE, program=0)])
    for inst in ("program:5", "index:1", "name:melody"):
        with pytest.raises(BadMidiError):
            MelodyCodec(instrument=inst).encode(pm)


# --- real Nottingham melodies ---------------------------------------------------------------
@cache
def _nottingham(name: str):
    path = data_root() / "nottingham" / "MIDI" / "melody" / f"{name}.mid"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the data root")
    return load_midi(path)


def reference_skyline(pm, spb: int, low: int, high: int) -> list[tuple[int, int, int]]:
    """Independent, step-by-step model of the spec: fold, quantize, take the highest sounding
    pitch at each step; a note begins where that pitch changes or one of its notes starts."""
    notes = np.concatenate([t.notes for t in tracks_of(pm, include_drums=False)])
    quant = []
    for p, b_on, b_off in zip(
        notes[:, 2], time_to_beats(pm, notes[:, 0]), time_to_beats(pm, notes[:, 1])
    ):
        p = int(p)
        while p < low:
            p += 12
        while p > high:
            p -= 12
        if p < low:
            continue
        a = int(np.floor(b_on * spb + 0.5))
        b = max(int(np.floor(b_off * spb + 0.5)), a + 1)
        quant.append((a, b, p))
    out: list[list[int]] = []
    prev = None
    for t in range(max(b for _, b, _ in quant)):
        sounding = [p for a, b, p in quant if a <= t < b]
        top = max(sounding, default=None)
        if top is not None and top == prev and not any(a == t and p == top for a, _, p in quant):
            out[-1][1] = t + 1
        elif top is not None:
            out.append([t, t + 1, top])
        prev = top
    return [tuple(n) for n in out]


@pytest.mark.parametrize("name", NOTTINGHAM)
def test_round_trip_on_nottingham_melodies(name):
    pm = _nottingham(name)
    codec = MelodyCodec()
    x = codec.encode(pm)
    assert x.dtype == torch.int64 and x.min() >= HOLD and x.max() < codec.vocab_size
    assert x[0] != HOLD and x[-1] != REST  # T ends on the last note-off: no trailing rest
    decoded = codec.decode(x)
    assert torch.equal(codec.encode(decoded), x)
    expected = reference_skyline(pm, 4, 48, 84)
    assert decoded_steps(decoded) == expected
    assert len(x) == expected[-1][1]
    assert int((x >= 3).sum()) == len(expected)


def test_windows_on_real_melody():
    x = MelodyCodec().encode(_nottingham("jigs1")).numpy().astype(np.int16)
    wins = MelodyCodec().windows(x, bars=2, max_rest_fraction=1.0)
    assert len(wins) == (len(x) - 32) // 16 + 1
    for k, w in enumerate(wins):
        assert w.dtype == np.int16 and w.shape == (32,) and w[0] != HOLD
        np.testing.assert_array_equal(w[1:], x[16 * k + 1 : 16 * k + 32])


# --- windows ---------------------------------------------------------------------------------
LONG = [on(C4)] + [H] * 19 + [on(D4)] + [H] * 11 + [R] * 16  # 3 bars: 20 + 12 + 16 steps


def test_windows_counts_and_leading_hold_fix():
    tokens = np.array(LONG, dtype=np.int16)
    wins = windows(tokens, bars=1)
    # Bar 3 is all rest and is left out; bar 2 starts inside the C4 held from bar 1.
    assert [w.tolist() for w in wins] == [LONG[:16], [on(C4), H, H, H, on(D4)] + [H] * 11]
    assert tokens.tolist() == LONG  # the input is not changed
    two = windows(tokens, bars=2)
    assert [w.tolist() for w in two] == [LONG[:32], [on(C4)] + LONG[17:48]]
    assert len(windows(tokens, bars=3)) == 1  # 16 of 48 steps rest: a third, kept
    assert windows(tokens, bars=4) == []  # shorter than one window
    assert len(windows(tokens, bars=1, hop_bars=2)) == 1  # bars 0 and 2; bar 2 is rest


def test_windows_rest_filter_and_hold_after_rest():
    tokens = np.array(LONG, dtype=np.int16)
    assert len(windows(tokens, bars=2, max_rest_fraction=0.5)) == 2  # 16/32 rest: not more
    assert len(windows(tokens, bars=2, max_rest_fraction=0.4)) == 1
    assert len(windows(tokens, bars=1, max_rest_fraction=1.0)) == 3
    stray = np.array([R] * 16 + [H] + [on(E4)] * 15)  # a HOLD continuing nothing reads as REST
    (w,) = windows(stray, bars=1, hop_bars=1, max_rest_fraction=1.0)[1:]
    assert w[0] == R
    # The codec's own bar length follows steps_per_beat.
    codec = MelodyCodec(steps_per_beat=2)
    assert len(codec.windows(tokens, bars=1, max_rest_fraction=1.0)) == 6
    with pytest.raises(ConfigError):
        windows(tokens, bars=0)


# --- transpose, persistence, params ----------------------------------------------------------
@pytest.mark.parametrize("k", [-12, -5, 0, 7, 20])
def test_transpose_matches_encoding_transposed_notes(k):
    codec = MelodyCodec()
    x = codec.encode(build_midi([track(TUNE)])).numpy().astype(np.int16)
    moved = [(s, e, p + k, v) for s, e, p, v in TUNE]
    want = codec.encode(build_midi([track(moved)])).numpy()
    got = codec.transpose(x, k)
    assert got is not None and got.dtype == np.int16
    np.testing.assert_array_equal(got, want)


def test_transpose_out_of_range_is_none():
    codec = MelodyCodec()  # 48..84; the tune spans 60..64
    x = np.array(TUNE_TOKENS + [PAD, PAD], dtype=np.int16)
    assert codec.transpose(x, 20).tolist()[:1] == [on(80)]  # 64 + 20 = 84, the top key
    assert codec.transpose(x, 20)[-2:].tolist() == [PAD, PAD]  # specials stay put
    assert codec.transpose(x, 21) is None
    assert codec.transpose(x, -12) is not None and codec.transpose(x, -13) is None
    assert codec.transpose(np.array([R, R, H]), 50).tolist() == [R, R, H]


def test_dict_round_trip_and_sizes():
    codec = MelodyCodec(steps_per_beat=2, low_pitch=21, high_pitch=108, instrument="program:73")
    d = json.loads(json.dumps(codec.to_dict()))
    assert d["name"] == "melody" and d["instrument"] == "program:73"
    again = Codec.from_dict(d)
    assert isinstance(again, MelodyCodec) and again == codec
    assert again.vocab_size == 91 and again.steps_for_bars(2) == 16 and again.kind == "tokens"
    assert again.storage_dtype == np.int16
    assert MelodyCodec().steps_for_bars(1.5) == 24
    with pytest.raises(AttributeError):
        _ = codec.feature_dim


@pytest.mark.parametrize(
    "bad",
    [
        {"instrument": "voice"},
        {"instrument": "program:200"},
        {"instrument": "index:-1"},
        {"instrument": "name:"},
        {"instrument": "name:   "},
        {"instrument": "Name:MELODY"},
        {"low_pitch": 90, "high_pitch": 80},
        {"steps_per_beat": 0},
        {"tempo": 0.0},
    ],
)
def test_bad_params_raise_config_error(bad):
    with pytest.raises(ConfigError):
        MelodyCodec(**bad)
