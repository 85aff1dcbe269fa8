"""MultiTrackPianoRollCodec: exact [T, K, P] rolls for hand-made pieces, track selection,
decoding, transposition (drums stay put), bar windows, persistence, clear errors, and round
trips on real POP909 arrangements and the rest of the real test corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cadenza.errors import BadMidiError, ConfigError
from cadenza.io.midi import TrackNotes, build_midi, load_midi, tracks_of
from cadenza.paths import config_dir
from cadenza.representations import Codec, MultiTrackPianoRollCodec
from tests.fixtures.data import POP909, real_midi, real_midi_params

LOW, HIGH = 36, 84  # 49 pitches in the hand-made tests
S = 0.125  # one 16th note (a step at 4 steps per beat) in seconds at 120 bpm
POP909_TRACKS = ["name:MELODY", "name:BRIDGE", "name:PIANO"]


def part(name: str, rows, program: int = 0, is_drum: bool = False) -> TrackNotes:
    return TrackNotes(program, is_drum, name, np.array(rows, dtype=np.float64).reshape(-1, 4))


def codec(tracks, **kw) -> MultiTrackPianoRollCodec:
    return MultiTrackPianoRollCodec(tracks, **{"low_pitch": LOW, "high_pitch": HIGH, **kw})


# Piano: a C major triad for 4 steps, then E4 for 2 steps; bass: C2 for 8 steps.
PIANO = [(0.0, 0.5, 60, 90), (0.0, 0.5, 64, 90), (0.0, 0.5, 67, 90), (0.5, 0.75, 64, 90)]
BASS = [(0.0, 1.0, 36, 90)]
KICK = [(0.0, 0.125, 36, 100), (0.5, 0.625, 38, 100)]


def band_midi():
    drums = part("Drums", KICK, is_drum=True)  # first instrument, yet never index:0
    return build_midi([drums, part("Piano", PIANO), part("Bass", BASS, 33)])


def expected_band() -> np.ndarray:
    want = np.zeros((8, 2, HIGH - LOW + 1), np.float32)
    want[0:4, 0, [60 - LOW, 64 - LOW, 67 - LOW]] = 1
    want[4:6, 0, 64 - LOW] = 1
    want[0:8, 1, 0] = 1
    return want


def test_hand_made_roll_is_exact():
    c = codec(["index:0", "index:1"])
    x = c.encode(band_midi())
    assert x.dtype == torch.float32 and x.shape == (8, 2, 49)
    np.testing.assert_array_equal(x.numpy(), expected_band())
    assert c.row_shape == (2, 49) and c.feature_dim == 98 and c.n_tracks == 2
    assert c.n_pitches == 49 and c.steps_per_bar == 16 and c.storage_dtype == np.uint8
    # The E4 re-struck with no gap merges into one held note, as in any piano roll.
    assert [n.tolist() for n in c.notes(x)] == [[[0, 4, 60], [0, 6, 64], [0, 4, 67]], [[0, 8, 36]]]


def test_selection_by_name_program_index_and_missing_track_is_zeros():
    c = codec(["name:bass", "index:5", "name:PIANO", "program:33", "name:Drums"])
    x = c.encode(band_midi()).numpy()
    want = expected_band()
    np.testing.assert_array_equal(x[:, 0], want[:, 1])
    np.testing.assert_array_equal(x[:, 2], want[:, 0])
    np.testing.assert_array_equal(x[:, 3], want[:, 1])
    assert not x[:, 1].any()  # no sixth pitched instrument
    assert not x[:, 4].any()  # a pitched track never finds the drum kit


def test_drum_track_selects_drums_and_decodes_as_drums():
    c = codec(["index:0", "index:0"], drums=[False, True], programs=[0, 0])
    x = c.encode(band_midi()).numpy()
    assert len(x) == 6  # the piano's last note-off; the unselected bass does not count
    np.testing.assert_array_equal(x[:, 0], expected_band()[:6, 0])
    assert c.notes(x)[1].tolist() == [[0, 1, 36], [4, 5, 38]]
    tracks = tracks_of(c.decode(x))
    assert [(t.is_drum, t.name) for t in tracks] == [(False, "index:0"), (True, "index:0")]
    np.testing.assert_array_equal(c.encode(c.decode(x)).numpy(), x)


def test_out_of_range_notes_are_dropped_not_folded():
    low, high = part("a", [(0.0, 0.5, 35, 90), (0.0, 2.0, 85, 90)]), part("b", BASS)
    x = codec(["index:0", "index:1"]).encode(build_midi([low, high])).numpy()
    assert not x[:, 0].any()  # 35 and 85 do not move an octave in
    assert len(x) == 8  # the dropped 2-second note does not lengthen the piece


def test_overlapping_notes_of_one_pitch_union_and_top_takes_the_skyline():
    rows = [(0.0, 0.5, 60, 90), (0.25, 1.0, 60, 90), (0.0, 0.25, 72, 90)]
    pm = build_midi([part("a", rows), part("b", [(0.0, 0.75, 67, 90)])])
    x = codec(["index:0", "top"]).encode(pm).numpy()
    assert c_notes(x, 0) == [[0, 8, 60], [0, 2, 72]]
    # top: the highest sounding pitch of every step over all pitched instruments.
    assert c_notes(x, 1) == [[0, 2, 72], [2, 6, 67], [6, 8, 60]]
    assert x[:, 1].sum(axis=1).max() == 1


def c_notes(x: np.ndarray, k: int) -> list:
    return codec(["index:0", "top"]).notes(x)[k].tolist()


@pytest.mark.parametrize(
    "tracks",
    [
        [part("d", [(0.0, 1.0, 40, 100)], is_drum=True)],
        [],
        [part("a", []), part("b", [])],
        [part("a", [(0.0, 1.0, 100, 90)])],
        [part("a", []), part("b", []), part("late", [(0.0, 1.0, 60, 90)])],
    ],
    ids=["drums_only", "no_instruments", "empty_instruments", "out_of_range", "unselected"],
)
def test_no_notes_in_any_track_raises_bad_midi(tracks):
    with pytest.raises(BadMidiError) as info:
        codec(["index:0", "index:1"]).encode(build_midi(tracks))
    assert info.value.reason == "no_notes"


# --- decode ----------------------------------------------------------------------------------
def test_decode_names_programs_and_keeps_empty_tracks():
    c = codec(["name:Piano", "index:3", "name:Bass"], programs=[1, 2, 33])
    x = np.zeros((8, 3, 49), np.float32)
    x[:, 0, 24] = 1
    x[2:4, 2, 0] = 0.9  # probabilities above 0.5 count as on
    x[4:6, 2, 0] = 0.4
    pm = c.decode(torch.from_numpy(x))
    tracks = tracks_of(pm)
    assert [(t.name, t.program, t.is_drum, len(t.notes)) for t in tracks] == [
        ("Piano", 1, False, 1),
        ("index:3", 2, False, 0),
        ("Bass", 33, False, 1),
    ]
    np.testing.assert_allclose(tracks[0].notes[0, :3], [0.0, 8 * S, 60])
    np.testing.assert_allclose(tracks[2].notes[0, :3], [2 * S, 4 * S, 36])
    with pytest.raises(ValueError, match=r"\[T, 3, 49\]"):
        c.decode(np.zeros((8, 2, 49)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_rolls_round_trip_exactly(seed):
    rng = np.random.default_rng(seed)
    c = codec(["index:0", "index:1", "index:2"], steps_per_beat=3)
    roll = rng.random((40, 3, 49)) < 0.1
    roll[-1, 1, 5] = True  # the roll's last step sounds, so T comes back
    for x in (roll, roll.astype(np.float32), torch.from_numpy(roll)):
        np.testing.assert_array_equal(c.encode(c.decode(x)).numpy(), roll.astype(np.float32))
    flat = roll.reshape(40, -1)
    assert sum(map(len, c.notes(flat))) == sum(map(len, c.notes(roll)))


# --- transposition ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [-5, 0, 3, 8])
def test_transpose_matches_encoding_transposed_notes(k):
    c = codec(["index:0", "index:1"])
    bass = [(0.0, 1.0, 42, 90)]  # six semitones above the bottom key
    x = c.encode(build_midi([part("p", PIANO), part("b", bass)])).numpy().astype(np.uint8)
    moved = [(s, e, p + k, v) for s, e, p, v in PIANO]
    want = c.encode(build_midi([part("p", moved), part("b", [(0.0, 1.0, 42 + k, 90)])]))
    got = c.transpose(x, k)
    assert got is not None and got.dtype == np.uint8 and got.shape == x.shape
    np.testing.assert_array_equal(got, want.numpy())


def test_transpose_refuses_to_leave_the_range_and_leaves_drums_alone():
    c = codec(["index:0", "index:1"])
    x = c.encode(band_midi()).numpy()
    assert c.transpose(x, -1) is None  # the bass sits on the bottom key
    assert c.transpose(x, 17) is not None and c.transpose(x, 18) is None  # G4 (67) up to 84
    assert c.transpose(x, 100) is None
    drummed = codec(["index:0", "index:0"], drums=[False, True])
    y = drummed.encode(band_midi()).numpy()
    shifted = drummed.transpose(y, 5)
    assert shifted is not None
    np.testing.assert_array_equal(shifted[:, 1], y[:, 1])  # kick and snare stay kick and snare
    np.testing.assert_array_equal(shifted[:, 0, 5:], y[:, 0, :-5])
    # Only pitched tracks count: the drum kit on the bottom key does not block a shift down.
    assert drummed.transpose(y, -20) is not None


# --- windows ---------------------------------------------------------------------------------
def test_windows_are_bar_aligned_and_skip_silence():
    c = codec(["index:0", "index:1"])
    roll = np.zeros((80, 2, 49), np.uint8)  # 5 bars of 16 steps
    roll[0:16, 0, 10] = 1  # bar 0: track 0
    roll[16:24, 1, 3] = 1  # bar 1: track 1 for half the bar, the other half silent
    roll[24:32, 0, 3] = 1  # ... and track 0 the rest
    roll[52:56, 0, 0] = 1  # bar 3: a quarter of it sounds; bars 2 and 4 silent
    assert c.window_starts(roll, bars=1) == [0, 16]
    assert c.window_starts(roll, bars=1, max_rest_fraction=0.75) == [0, 16, 48]
    assert c.window_starts(roll, bars=2) == [0, 16]  # bar 1 + silent bar 2: half silent
    assert c.window_starts(roll, bars=2, max_rest_fraction=0.4) == [0]
    assert c.window_starts(roll, bars=1, hop_bars=2) == [0]
    assert c.window_starts(roll, bars=6) == []
    wins = c.windows(roll, bars=2)
    assert [w.shape for w in wins] == [(32, 2, 49)] * 2 and wins[1].dtype == np.uint8
    np.testing.assert_array_equal(wins[1], roll[16:48])
    tail = c.cut_window(roll, 64, bars=2)  # past the end is silence
    assert tail.shape == (32, 2, 49) and not tail[16:].any()
    with pytest.raises(ConfigError):
        c.window_starts(roll, bars=0)


# --- persistence, configs, errors ------------------------------------------------------------
def test_dict_round_trip_and_sizes():
    c = MultiTrackPianoRollCodec(POP909_TRACKS, steps_per_beat=12, programs=[73, 41, 0])
    d = json.loads(json.dumps(c.to_dict()))
    assert d == {
        "name": "multitrack_pianoroll",
        "tracks": POP909_TRACKS,
        "steps_per_beat": 12,
        "low_pitch": 24,
        "high_pitch": 107,
        "tempo": 120.0,
        "programs": [73, 41, 0],
        "drums": [False, False, False],
    }
    again = Codec.from_dict(d)
    assert isinstance(again, MultiTrackPianoRollCodec) and again == c and hash(again) == hash(c)
    assert again.row_shape == (3, 84) and again.steps_per_bar == 48 and again.kind == "frames"
    assert again.steps_for_bars(4) == 192
    assert again != MultiTrackPianoRollCodec(POP909_TRACKS, steps_per_beat=12)
    with pytest.raises(AttributeError):
        _ = c.vocab_size


def test_config_instantiates_musegan_defaults_with_plain_lists():
    c = instantiate(OmegaConf.load(config_dir() / "representation" / "multitrack_pianoroll.yaml"))
    assert c == MultiTrackPianoRollCodec(POP909_TRACKS, steps_per_beat=12, programs=[0, 0, 0])
    assert c.row_shape == (3, 84) and c.steps_per_bar == 48
    params = c.params()
    assert all(type(params[k]) is list for k in ("tracks", "programs", "drums"))
    json.dumps(c.to_dict())
    drummed = instantiate(
        OmegaConf.create({"_target_": "cadenza.representations.MultiTrackPianoRollCodec",
                          "tracks": ["index:0"], "drums": [True]})
    )  # fmt: skip
    assert drummed.drums == [True] and type(drummed.params()["drums"][0]) is bool


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"tracks": "index:0"}, "representation.tracks"),
        ({"tracks": []}, "representation.tracks"),
        ({"tracks": ["index:0", "voice"]}, r"representation.tracks\[1\]"),
        ({"tracks": ["program:200"]}, r"representation.tracks\[0\]"),
        ({"tracks": ["index:0", "index:1"], "programs": [0]}, "representation.programs"),
        ({"tracks": ["index:0"], "programs": [128]}, "representation.programs"),
        ({"tracks": ["index:0"], "programs": [True]}, "representation.programs"),
        ({"tracks": ["index:0"], "drums": [1]}, "representation.drums"),
        ({"tracks": ["index:0"], "drums": [True, False]}, "representation.drums"),
        ({"tracks": ["index:0"], "drums": True}, "representation.drums"),
        ({"low_pitch": 90, "high_pitch": 80}, "pitch range"),
        ({"high_pitch": 128}, "pitch range"),
        ({"steps_per_beat": 0}, "representation.steps_per_beat"),
        ({"tempo": 0.0}, "representation.tempo"),
        ({"tempo": "fast"}, "representation.tempo"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, dict) else "",
)
def test_bad_params_raise_config_error(bad, key):
    with pytest.raises(ConfigError, match=key):
        MultiTrackPianoRollCodec(**bad)


# --- real files ------------------------------------------------------------------------------
@pytest.mark.parametrize("stem", POP909, ids=lambda s: f"pop909:{s}")
def test_pop909_tracks_at_musegan_resolution(stem):
    pm = load_midi(real_midi(f"pop909/midi/{stem}.mid"))
    c = MultiTrackPianoRollCodec(POP909_TRACKS, steps_per_beat=12)
    x = c.encode(pm).numpy()
    assert x.shape[1:] == (3, 84) and set(np.unique(x)) == {0.0, 1.0}
    per_step = x.sum(axis=2)  # [T, K] notes sounding per step and track
    sounding = per_step > 0
    assert per_step[:, 2].max() >= 3  # the PIANO track plays chords
    assert (per_step[:, 0][sounding[:, 0]] > 1).mean() < 0.01  # MELODY is (nearly) one voice
    assert sounding.all(axis=1).any()  # all three tracks sound together somewhere
    # Every track's notes (all within 24..107 in POP909) come back, re-strikes merged.
    for k, track in enumerate(tracks_of(pm)):
        assert track.name == ["MELODY", "BRIDGE", "PIANO"][k]
        assert 0.8 * len(track.notes) <= len(c.notes(x)[k]) <= len(track.notes)
    np.testing.assert_array_equal(c.encode(c.decode(x)).numpy(), x)
    starts = c.window_starts(x, bars=4)
    assert starts and all(s % 48 == 0 for s in starts)
    assert len(starts) >= 0.7 * (len(x) // 48 - 3)  # a pop song is rarely silent
    w = c.cut_window(x.astype(np.uint8), starts[0], bars=4)
    assert w.shape == (192, 3, 84) and w.dtype == np.uint8
    up = c.transpose(w, 5)
    assert up is not None and up.sum() == w.sum()


@pytest.mark.parametrize("rel", real_midi_params())
def test_round_trip_on_the_real_corpus(rel):
    pm = load_midi(real_midi(rel))
    c = MultiTrackPianoRollCodec(steps_per_beat=4, low_pitch=21, high_pitch=108)
    x = c.encode(pm)
    assert x.shape[1:] == (4, 88) and len(x) == max(
        int(n[:, 1].max()) for n in c.notes(x) if len(n)
    )
    # Each selected instrument's notes land in its own channel, in the order of the file.
    pitched = tracks_of(pm, include_drums=False)
    for k in range(4):
        assert bool(x[:, k].any()) == (k < len(pitched) and len(pitched[k].notes) > 0)
    decoded = c.decode(x)
    assert len(decoded.instruments) == 4
    assert torch.equal(c.encode(decoded), x)
