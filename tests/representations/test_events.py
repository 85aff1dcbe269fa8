"""EventCodec: exact round trips against independently quantized notes, vocab, robustness."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, load_midi, tracks_of
from cadenza.representations import Codec, EventCodec
from tests.fixtures.data import real_midi, real_midi_params
from tests.fixtures.midi_factory import chord_notes, scale_notes

REAL = real_midi_params()
ev = EventCodec()
ON, OFF, SHIFT, VEL = ev.on_offset, ev.off_offset, ev.shift_offset, ev.velocity_offset


@cache
def _load(rel: str):
    return load_midi(real_midi(rel))


def reference_notes(pm) -> list[tuple[int, int, int, int]]:
    """Plain-Python model of the quantization: 10 ms grid, >= 1 step, 32 velocity bins, and a
    note cut where the same pitch starts again (zero-length leftovers dropped)."""
    by_pitch: dict[int, list[list[int]]] = {}
    for t in tracks_of(pm, include_drums=False):
        for s, e, p, v in t.notes.tolist():
            if 21 <= p <= 108:
                on = int(np.floor(s * 100 + 0.5))
                off = max(int(np.floor(e * 100 + 0.5)), on + 1)
                by_pitch.setdefault(int(p), []).append([on, off, int(p), int(v) * 32 // 128])
    out = []
    for notes in by_pitch.values():
        notes.sort()
        for cur, nxt in zip(notes, notes[1:] + [None]):
            if nxt is not None and nxt[0] < cur[1]:
                cur[1] = nxt[0]
            if cur[1] > cur[0]:
                out.append(tuple(cur))
    return sorted(out, key=lambda n: (n[0], n[2]))


@pytest.mark.parametrize("rel", [p.values[0] for p in REAL], ids=[p.id for p in REAL])
def test_round_trip_exact_on_real_files(rel):
    pm = _load(rel)
    tokens = ev.encode(pm)
    assert tokens.dtype == torch.long and tokens[0] == 1 and tokens[-1] == 2
    assert int(tokens.min()) >= 1 and int(tokens.max()) < ev.vocab_size
    expected = reference_notes(pm)
    got = ev.decode_notes(tokens)
    bins = ev.velocity_bin(got[:, 3])
    assert [(a, b, p, v) for (a, b, p, _), v in zip(got.tolist(), bins.tolist())] == expected
    # Through PrettyMIDI: seconds on the 10 ms grid, velocities at bin centres.
    decoded = ev.decode(tokens)
    (track,) = tracks_of(decoded)
    np.testing.assert_allclose(track.notes[:, :2] * 100, np.round(track.notes[:, :2] * 100))
    assert set(track.notes[:, 3].astype(int)) <= set(ev.bin_velocity(np.arange(32)).tolist())
    assert torch.equal(ev.encode(decoded), tokens)
    assert ev.seconds_of(tokens) == pytest.approx(max(n[1] for n in expected) / 100)


def test_vocab_layout():
    assert ev.vocab_size == 3 + 88 + 88 + 100 + 32 == 311
    assert (ON, OFF, SHIFT, VEL) == (3, 91, 179, 279)
    for b in range(32):  # a bin centre falls back into its own bin
        assert ev.velocity_bin(ev.bin_velocity(b)) == b


def test_scale_tokens_spelled_out():
    pm = build_midi([TrackNotes(0, False, "", scale_notes()[:2])])  # 60 at 0-0.5 s, 62 at 0.5-1
    want = [
        1,
        VEL + 40 * 32 // 128,
        ON + 39,
        SHIFT + 49,
        OFF + 39,
        VEL + 50 * 32 // 128,
        ON + 41,
        SHIFT + 49,
        OFF + 41,
        2,
    ]
    assert ev.encode(pm).tolist() == want


def test_velocity_token_only_on_change_and_long_shifts_split():
    late = chord_notes().copy()
    late[:, :2] += 2.5  # first onset at 2.5 s = 250 steps = 100 + 100 + 50
    tokens = ev.encode(build_midi([TrackNotes(0, False, "", late)])).tolist()
    assert sum(VEL <= t < ev.vocab_size for t in tokens) == 1  # all velocities are 90
    assert tokens[1:4] == [SHIFT + 99, SHIFT + 99, SHIFT + 49]
    assert sum(ON <= t < OFF for t in tokens) == 12


def test_restrike_and_overlap_of_one_pitch():
    notes = np.array(
        [[0.0, 0.5, 60, 80], [0.5, 1.0, 60, 80], [2.0, 3.0, 64, 80], [2.5, 2.8, 64, 80]]
    )
    tokens = ev.encode(build_midi([TrackNotes(0, False, "", notes)])).tolist()
    at_half = tokens.index(SHIFT + 49) + 1
    assert tokens[at_half : at_half + 2] == [OFF + 39, ON + 39]  # off before on at 0.5 s
    got = ev.decode_notes(tokens)[:, :3].tolist()
    assert got == [[0, 50, 60], [50, 100, 60], [200, 250, 64], [250, 280, 64]]


def test_decode_tolerates_garbage():
    tokens = [1, OFF + 39, ON + 39, SHIFT + 9, 0, ON + 41, 2, ON + 43]
    assert ev.decode_notes(tokens).tolist() == [[0, 10, 60, 64], [10, 11, 62, 64]]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, ev.vocab_size + 5, size=2000)
    notes = ev.decode_notes(noise)
    assert len(notes) > 0 and (notes[:, 1] > notes[:, 0]).all()
    assert notes[:, 2].min() >= 21 and notes[:, 2].max() <= 108
    assert notes[:, 3].min() >= 1 and notes[:, 3].max() <= 127
    assert len(tracks_of(ev.decode(torch.from_numpy(noise)))[0].notes) == len(notes)


@pytest.mark.parametrize("k", [-7, -1, 2, 5])
def test_transpose_matches_encoding_transposed_notes(k):
    notes = np.concatenate([scale_notes(), chord_notes()])
    shifted = notes.copy()
    shifted[:, 2] += k
    x = ev.encode(build_midi([TrackNotes(0, False, "", notes)])).numpy().astype(np.int16)
    want = ev.encode(build_midi([TrackNotes(0, False, "", shifted)])).numpy()
    got = ev.transpose(x, k)
    assert got is not None and got.dtype == np.int16
    np.testing.assert_array_equal(got, want)


def test_transpose_out_of_range_is_none():
    x = ev.encode(build_midi([TrackNotes(0, False, "", scale_notes())])).numpy()  # 60..72
    assert ev.transpose(x, 36) is not None  # 72 + 36 = 108, the top key
    assert ev.transpose(x, 37) is None
    assert ev.transpose(x, -39) is not None and ev.transpose(x, -40) is None


def test_max_events_keeps_eos_and_no_notes():
    pm = build_midi([TrackNotes(0, False, "", chord_notes())])
    short = EventCodec(max_events=10).encode(pm)
    assert len(short) == 10 and short[0] == 1 and short[-1] == 2
    pm_low = build_midi([TrackNotes(0, False, "", np.array([[0.0, 1.0, 5, 80]]))])
    with pytest.raises(BadMidiError) as info:
        ev.encode(pm_low)
    assert info.value.reason == "no_notes"


def test_drums_included_on_request():
    hits = np.array([[0.0, 0.1, 36, 100], [0.5, 0.6, 38, 100]])
    pm = build_midi([TrackNotes(0, True, "", hits), TrackNotes(0, False, "", scale_notes())])
    assert (
        len(EventCodec(include_drums=True).decode_notes(EventCodec(include_drums=True).encode(pm)))
        == 10
    )
    assert len(ev.decode_notes(ev.encode(pm))) == 8


def test_dict_round_trip_and_estimates():
    codec = EventCodec(
        low_pitch=36,
        high_pitch=96,
        steps_per_second=50,
        max_shift_steps=25,
        velocity_bins=8,
        max_events=512,
    )
    d = json.loads(json.dumps(codec.to_dict()))
    again = Codec.from_dict(d)
    assert isinstance(again, EventCodec) and again == codec
    assert again.vocab_size == 3 + 61 * 2 + 25 + 8
    assert ev.steps_for_bars(4) == 240  # 4 bars x 2 s x 30 tokens/s
    with pytest.raises(AttributeError):
        _ = codec.feature_dim
    typo = {**d, "velocity_bin": 8}
    with pytest.raises(ConfigError, match="'velocity_bin' is not a setting of the events codec: "
                       "did you mean velocity_bins"):  # fmt: skip
        Codec.from_dict(typo)


def test_max_note_seconds_cuts_droning_generated_notes() -> None:
    from cadenza.representations.events import BOS, EOS

    free, capped = EventCodec(), EventCodec(max_note_seconds=2.0)
    on60 = free.on_offset + 60 - free.low_pitch
    shift_1s = free.shift_offset + 99  # TIME_SHIFT of 100 steps = 1 s
    tokens = torch.tensor([BOS, on60, *[shift_1s] * 10, EOS])  # NOTE_ON, 10 s, no NOTE_OFF
    assert free.decode_notes(tokens).tolist() == [[0, 1000, 60, 64]]
    assert capped.decode_notes(tokens).tolist() == [[0, 200, 60, 64]]
    assert Codec.from_dict(capped.to_dict()).max_note_seconds == 2.0
    with pytest.raises(ConfigError, match="max_note_seconds"):
        EventCodec(max_note_seconds=0)
