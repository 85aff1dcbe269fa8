"""Music statistics on hand-made piano rolls whose values can be worked out by hand."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from cadenza.io.midi import TrackNotes, build_midi, load_midi, save_midi
from cadenza.metrics.music import (
    Roll,
    default_qn_threshold,
    drum_pattern_rate,
    empty_bar_rate,
    groove_consistency,
    note_density,
    notes_of,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    qualified_note_rate,
    scale_consistency,
    tonal_distance,
    tonal_distances,
    used_pitch_classes,
)
from cadenza.metrics.music_compare import compare_sets, compare_values
from cadenza.metrics.music_rolls import load_rolls, roll_from_midi
from cadenza.metrics.music_sets import PIECE_METRICS, piece_metrics, set_metrics
from tests.fixtures.data import real_midi, real_midi_params
from tests.fixtures.midi_factory import scale_notes, write_two_tracks

BAR4 = 16  # steps per 4/4 bar at 4 steps per beat


def track(steps: int, notes: list[tuple[int, int, int]], n_pitches: int = 128) -> np.ndarray:
    """bool [steps, n_pitches] with each (on, off, pitch) sounding over [on, off)."""
    t = np.zeros((steps, n_pitches), bool)
    for on, off, p in notes:
        t[on:off, p] = True
    return t


def triad(root: int, steps: int = BAR4) -> list[tuple[int, int, int]]:
    return [(0, steps, root), (0, steps, root + 4), (0, steps, root + 7)]


# --- MuseGAN ---------------------------------------------------------------------------------
def test_notes_are_runs_and_a_restruck_note_merges() -> None:
    t = track(8, [(0, 2, 60), (2, 4, 60), (5, 6, 60), (1, 3, 64)])
    on, off, pitch = notes_of(t)
    assert sorted(zip(on.tolist(), off.tolist(), pitch.tolist())) == [
        (0, 4, 60),  # [0, 2) and [2, 4) touch: one held note
        (1, 3, 64),
        (5, 6, 60),
    ]


def test_empty_bar_rate() -> None:
    assert empty_bar_rate(track(2 * BAR4, [(0, 4, 60)]), BAR4) == 0.5  # bar 2 of 2 is silent
    # 20 steps = 1 bar + a partial bar, which counts as a (silent) bar
    assert empty_bar_rate(track(20, [(0, 4, 60)]), BAR4) == 0.5
    assert empty_bar_rate(track(3 * BAR4, []), BAR4) == 1.0
    assert math.isnan(empty_bar_rate(track(0, []), BAR4))  # no bars at all


def test_used_pitch_classes_skips_empty_bars() -> None:
    assert used_pitch_classes(track(BAR4, triad(60)), BAR4) == 3.0  # C E G
    # bar 1: C E G (3); bar 2: silent, skipped; bar 3: C4 + C5 = one class (1) -> (3 + 1) / 2
    t = track(3 * BAR4, [*triad(60), (32, 40, 60), (40, 48, 72)])
    assert used_pitch_classes(t, BAR4) == 2.0
    # column 1 with low_pitch 59 is C (60), column 13 is C5: one pitch class
    assert used_pitch_classes(track(BAR4, [(0, 4, 1), (4, 8, 13)], n_pitches=20), BAR4, 59) == 1.0
    assert math.isnan(used_pitch_classes(track(BAR4, []), BAR4))


def test_qualified_note_rate() -> None:
    assert default_qn_threshold(24) == 3  # MuseGAN's 32nd note at 24 steps/beat
    assert default_qn_threshold(12) == 2  # pypianoroll's default
    assert default_qn_threshold(4) == 1  # every note qualifies at 4 steps/beat
    t = track(12, [(0, 1, 60), (2, 4, 62), (5, 8, 64)])  # lengths 1, 2, 3
    assert qualified_note_rate(t, default_qn_threshold(12)) == pytest.approx(2 / 3)
    assert qualified_note_rate(t, default_qn_threshold(4)) == 1.0
    assert math.isnan(qualified_note_rate(track(12, []), 2))


def test_drum_pattern_rate() -> None:
    sixteenths = track(48, [(s, s + 1, 36) for s in range(0, 48, 3)])  # 12 steps/beat: every 3
    assert drum_pattern_rate(sixteenths, 12) == 1.0
    # one step late: every hit counts `tolerance`
    assert drum_pattern_rate(track(48, [(s, s + 1, 36) for s in range(1, 48, 3)]), 12) == (
        pytest.approx(0.1)
    )
    # halfway between 16ths at 24 steps/beat (3 steps off): 0
    assert drum_pattern_rate(track(96, [(s, s + 1, 36) for s in range(3, 96, 6)]), 24) == 0.0
    # a 2-step hit on the grid: its onset counts 1; pypianoroll's cell count gives (1 + 0.1) / 2
    held = track(48, [(0, 2, 36)])
    assert drum_pattern_rate(held, 12) == 1.0
    assert drum_pattern_rate(held, 12, onsets_only=False) == pytest.approx(0.55)
    assert math.isnan(drum_pattern_rate(track(48, []), 12))
    with pytest.raises(ValueError, match="steps per beat"):
        drum_pattern_rate(sixteenths, 5)


def test_tonal_distance() -> None:
    c, g, f_sharp = (track(BAR4, triad(r)) for r in (60, 67, 66))
    assert tonal_distance(c, c, BAR4) == 0.0
    assert tonal_distance(c, track(BAR4, triad(72)), BAR4) == pytest.approx(0.0)  # octave up
    # a tritone away is harmonically further than a fifth away
    assert tonal_distance(c, f_sharp, BAR4) > tonal_distance(c, g, BAR4) > 0
    # single notes C and F#: opposite on the fifths and minor-thirds circles (radius 1 each,
    # distance 2 on each), the same point on the major-thirds circle -> sqrt(2^2 + 2^2)
    single_c, single_fs = track(BAR4, [(0, BAR4, 60)]), track(BAR4, [(0, BAR4, 66)])
    assert tonal_distance(single_c, single_fs, BAR4) == pytest.approx(2 * math.sqrt(2))
    # bar 2, where only one track sounds, is left out of the mean
    a = track(2 * BAR4, [(0, 32, 60)])
    b = track(2 * BAR4, [(0, 16, 66)])
    assert tonal_distance(a, b, BAR4) == pytest.approx(2 * math.sqrt(2))
    assert math.isnan(tonal_distance(a, track(2 * BAR4, []), BAR4))


def test_tonal_distances_pairs_only_pitched_tracks() -> None:
    tracks = [track(BAR4, triad(60)), track(BAR4, triad(67)), track(BAR4, [(0, 1, 36)])]
    roll = Roll(np.stack(tracks, 1), steps_per_beat=4, drums=[False, False, True])
    assert list(tonal_distances(roll)) == ["track0-track1"]
    named = Roll(np.stack(tracks[:2], 1), steps_per_beat=4, names=["piano", "bass"])
    assert list(tonal_distances(named)) == ["piano-bass"]


# --- MusPy -----------------------------------------------------------------------------------
def one_track(steps: int, notes: list[tuple[int, int, int]], spb: int = 4) -> Roll:
    return Roll(track(steps, notes), steps_per_beat=spb)


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def test_pitch_class_entropy() -> None:
    assert pitch_class_entropy(one_track(8, [(0, 1, 60), (2, 3, 72)])) == 0.0  # one class
    twelve = one_track(12, [(i, i + 1, 60 + i) for i in range(12)])
    assert pitch_class_entropy(twelve) == pytest.approx(math.log2(12))  # uniform over 12
    # drums are ignored: a drum track of other pitches leaves the entropy at 0
    roll = Roll(
        np.stack([track(8, [(0, 1, 60)]), track(8, [(0, 1, 37), (2, 3, 42)])], 1),
        steps_per_beat=4,
        drums=[False, True],
    )
    assert pitch_class_entropy(roll) == 0.0
    assert math.isnan(pitch_class_entropy(one_track(8, [])))


def test_scale_consistency() -> None:
    scale = [(i, i + 1, p) for i, p in enumerate(C_MAJOR_SCALE)]
    assert scale_consistency(one_track(8, scale)) == 1.0
    # + F#: 8 of 9 notes fit C major (or G major), no scale holds all 9
    assert scale_consistency(one_track(9, [*scale, (8, 9, 66)])) == pytest.approx(8 / 9)
    assert math.isnan(scale_consistency(one_track(8, [])))


def test_groove_consistency() -> None:
    beats = [(s, s + 1, 60) for s in range(0, 4 * BAR4, 4)]  # an onset on every beat, 4 bars
    assert groove_consistency(one_track(4 * BAR4, beats)) == 1.0
    # bar 1 onsets at 0, 4, 8, 12; bar 2 only at 16: 3 of 16 positions differ
    t = [(0, 1, 60), (4, 5, 60), (8, 9, 60), (12, 13, 60), (16, 17, 60)]
    assert groove_consistency(one_track(2 * BAR4, t)) == pytest.approx(1 - 3 / 16)
    # trailing silence adds no bars (MusPy ends a piece at its last note)
    assert groove_consistency(one_track(6 * BAR4, beats)) == 1.0
    assert math.isnan(groove_consistency(one_track(BAR4, [(0, 1, 60)])))  # one bar: no pair


def test_polyphony_range_density() -> None:
    assert polyphony(one_track(BAR4, triad(60))) == 3.0  # a sustained triad
    # 2 steps of a triad, 2 steps of one note, then silence (not counted): (3+3+1+1) / 4
    roll = one_track(8, [(0, 2, 60), (0, 2, 64), (0, 4, 67)])
    assert polyphony(roll) == 2.0
    assert pitch_range(one_track(4, [(0, 1, 60), (1, 2, 72)])) == 12.0
    # low_pitch shifts columns, not the range; 3 notes over 2 bars
    shifted = Roll(track(2 * BAR4, [(0, 1, 39), (1, 2, 51), (20, 22, 40)]), 21, 4)
    assert pitch_range(shifted) == 12.0
    assert note_density(shifted) == 1.5
    assert math.isnan(polyphony(one_track(4, []))) and math.isnan(pitch_range(one_track(4, [])))
    assert math.isnan(note_density(one_track(0, [])))


# --- a piece, a set --------------------------------------------------------------------------
def test_piece_metrics_keys_and_values() -> None:
    tracks = [
        track(2 * BAR4, triad(60)),  # piano: bar 1 only
        track(2 * BAR4, [(0, 32, 48)]),  # bass: both bars
        track(2 * BAR4, [(s, s + 1, 36) for s in range(0, 32, 2)]),  # drums: every 8th note
    ]
    roll = Roll(np.stack(tracks, 1), steps_per_beat=4, drums=[False, False, True])
    m = piece_metrics(roll)
    assert set(PIECE_METRICS) <= set(m)
    assert m["empty_bar_rate/track0"] == 0.5 and m["empty_bar_rate/track1"] == 0.0
    assert m["empty_bar_rate"] == 0.25  # non-drum bars pooled: 1 of 4 empty
    assert m["empty_bar_rate/track2"] == 0.0  # drums get EB too ...
    assert "used_pitch_classes/track2" not in m  # ... but no pitch metrics
    assert m["used_pitch_classes"] == pytest.approx(5 / 3)  # (3 + 1 + 1) / 3 non-empty bars
    assert m["drum_pattern_rate"] == 1.0  # at 4 steps/beat the grid is every 8th: 2 steps
    assert m["pitch_range"] == 19.0  # 48 .. 67
    assert m["tonal_distance"] == m["tonal_distance/track0-track1"]


def test_degenerate_pieces_give_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        silent = piece_metrics(Roll(np.zeros((BAR4, 2, 12), bool), steps_per_beat=4))
        empty = piece_metrics(Roll(np.zeros((0, 1, 12), bool), steps_per_beat=4))
        odd = piece_metrics(Roll(np.ones((BAR4, 1, 12), bool), steps_per_beat=5, drums=[True]))
    assert silent["empty_bar_rate"] == 1.0
    for key in ("used_pitch_classes", "qualified_note_rate", "pitch_class_entropy", "polyphony"):
        assert math.isnan(silent[key]) and math.isnan(empty[key])
    assert math.isnan(empty["empty_bar_rate"]) and math.isnan(empty["note_density"])
    assert math.isnan(odd["drum_pattern_rate"])  # DP is undefined at 5 steps per beat


def test_set_metrics_pools_ratios_and_averages_the_rest() -> None:
    a = one_track(BAR4, [(0, 1, 60)], spb=12)  # one note, 1 step: not qualified
    b = Roll(
        np.stack([track(BAR4, [(0, 2, 60), (4, 6, 62), (8, 10, 64)]), track(BAR4, [])], 1),
        steps_per_beat=12,
    )  # three 2-step notes, all qualified; a second, silent track
    m = set_metrics([a, b])
    assert m["qualified_note_rate"] == 0.75  # 3 of 4 notes pooled; mean of ratios would be 0.5
    assert m["pitch_range"] == 2.0  # mean of 0 and 4
    assert m["empty_bar_rate/track1"] == 1.0  # only b has a track1
    assert set_metrics([]) == {}


# --- comparing sets --------------------------------------------------------------------------
def test_compare_values() -> None:
    values = np.random.default_rng(0).normal(size=40)
    overlap, kl, method = compare_values(values, values)
    assert method == "kde" and overlap == pytest.approx(1.0, abs=1e-6) and kl == 0.0
    overlap, kl, _ = compare_values(values, values + 100)
    assert overlap < 1e-3 and kl > 10  # far apart; KL stays finite (floored densities)
    near = compare_values(values, values + 0.5)
    assert 0.3 < near[0] < 1.0 and 0 < near[1] < kl
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compare_values([2, 2, 2], [2, 2]) == (1.0, 0.0, "histogram")  # all equal
        same_shape = compare_values([2, 2, 2], [5, 5])
        assert same_shape[0] == 0.0 and same_shape[2] == "histogram"
        assert math.isfinite(same_shape[1])
        too_few = compare_values([1.0, math.nan], [1.0, 2.0])  # one finite value
        assert math.isnan(too_few[0]) and too_few[2] == "too few values"


def test_compare_sets_of_rolls() -> None:
    pieces = [one_track(2 * BAR4, [(0, n, 60 + n)]) for n in range(1, 9)]
    same = compare_sets(pieces, pieces)
    assert same["pitch_range"]["method"] == "histogram"  # every piece has range 0
    assert same["pitch_range"]["overlap"] == 1.0
    assert same["note_density"]["overlap"] == 1.0  # all 0.5 notes per bar
    assert math.isnan(same["tonal_distance"]["overlap"])  # one track: no TD anywhere
    shifted = [one_track(2 * BAR4, [(0, 8, 60), (8, 16, 61 + n)]) for n in range(1, 9)]
    diff = compare_sets(shifted, pieces)
    assert diff["note_density"]["overlap"] == 0.0  # 0.5 vs 1.0 notes per bar


# --- MIDI files ------------------------------------------------------------------------------
def test_load_rolls_reads_files_and_reports_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_two_tracks(tmp_path / "a_two.mid")
    drums = TrackNotes(0, True, "kit", np.array([[0.0, 0.1, 36, 100], [0.25, 0.35, 38, 100]]))
    save_midi(build_midi([TrackNotes(0, False, "p", scale_notes()), drums]), tmp_path / "b.MIDI")
    (tmp_path / "c_corrupt.mid").write_bytes(np.random.default_rng(0).bytes(200))
    (tmp_path / "d_empty.mid").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        rolls, skipped = load_rolls(tmp_path, steps_per_beat=4)
    assert [Path(p).name for p, _ in skipped] == ["c_corrupt.mid", "d_empty.mid"]
    assert skipped[0][1].startswith("not_midi") and skipped[1][1] == "empty_file"
    assert "c_corrupt.mid" in caplog.text and "d_empty.mid" in caplog.text
    two, with_drums = rolls
    # 8 scale notes of one beat = 8 beats = 32 steps at 4 steps/beat; melody and bass
    assert two.roll.shape == (32, 2, 128) and two.drums == (False, False)
    assert two.roll[0:4, 0, 60].all() and not two.roll[4, 0, 60] and two.roll[4:8, 0, 62].all()
    assert with_drums.drums == (False, True)
    # drum hits at beat 0 and beat 0.5: steps 0 and 2, each max(round(0.2), 0 + 1) = 1 step long
    assert np.nonzero(with_drums.roll[:, 1, 36])[0].tolist() == [0]
    assert np.nonzero(with_drums.roll[:, 1, 38])[0].tolist() == [2]
    m = piece_metrics(two)
    assert m["scale_consistency"] == 1.0 and m["empty_bar_rate/track1"] == 0.0
    # a list of files, one missing: skipped, not raised
    rolls, skipped = load_rolls([tmp_path / "a_two.mid", tmp_path / "nope.mid"], 4)
    assert len(rolls) == 1 and skipped[0][1].startswith("missing")


@pytest.mark.parametrize("rel", real_midi_params())
def test_load_rolls_reads_real_files_as_pretty_midi_would(rel: str) -> None:
    """load_rolls parses with symusic (read_score): on real files with tempo maps, pickups,
    6/8 and three tracks it gives exactly the rolls of pretty_midi's reading."""
    path = real_midi(rel)
    (fast,), skipped = load_rolls([path], steps_per_beat=12)
    slow = roll_from_midi(load_midi(path), 12)
    assert skipped == [] and fast.drums == slow.drums
    assert fast.roll.shape == slow.roll.shape and np.array_equal(fast.roll, slow.roll)


def test_the_speed_benchmark_runs_on_two_folders(tmp_path: Path) -> None:
    """benchmarks/music_eval_speed.py end to end on real files: both timings and the report's
    digest, which says whether two runs computed the same numbers."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from music_eval_speed import main

    generated, reference = tmp_path / "generated", tmp_path / "reference"
    for folder, params in ((generated, real_midi_params()[:2]),
                           (reference, real_midi_params()[-2:])):  # fmt: skip
        folder.mkdir()
        for rel in (param.values[0] for param in params):
            (folder / Path(rel).name).write_bytes(real_midi(rel).read_bytes())
    out = tmp_path / "speed.json"
    args = ["--generated", str(generated), "--reference", str(reference), "--out", str(out)]
    entry = main([*args, "--name", "a"])
    again = main([*args, "--name", "b"])
    assert entry["files"] == entry["rolls"] == 4 and min(entry["total_s"], entry["read_s"]) >= 0
    assert entry["report_sha256"] == again["report_sha256"]
    assert set(json.loads(out.read_text())) == {"a", "b"}
