"""How the two MIDI readers of `cadenza.io.midi` agree on one file: `read_score` (symusic, bulk
ingestion) against `load_midi` (pretty_midi, the public API). For corpus-wide checks: the test
over every real file (tests/io/test_midi_readers.py) and benchmarks/ingest.py's report."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.errors import BadMidiError
from cadenza.io.midi import (
    load_midi_bytes,
    read_score_bytes,
    time_to_beats,
    tracks_of,
)


def reader_agreement(path: str | os.PathLike[str], tolerance_ticks: float = 1.0) -> dict[str, Any]:
    """How `read_score` (symusic) and `load_midi` (pretty_midi) read one file: notes matched on
    (drum, program, pitch) with onset and offset within `tolerance_ticks` ticks (positions in
    beats times the file's resolution, so a tempo map read differently does not count), and the
    reasons they differ.

    Returns {"notes": pretty_midi's count, "symusic_notes", "matched", "identical" (every note
    matched, both counts equal), "reasons": [...]}; a file neither can read gives its reason
    in "bad" (and both must agree on that)."""
    data = Path(path).read_bytes()
    out: dict[str, Any] = {"file": str(path), "reasons": []}
    results = []
    for reader in (load_midi_bytes, read_score_bytes):
        try:
            results.append(reader(data, name=str(path)))
        except BadMidiError as e:
            results.append(e.reason)
    pm, score = results
    if isinstance(pm, str) or isinstance(score, str):
        out |= {"bad": [pm if isinstance(pm, str) else None,
                        score if isinstance(score, str) else None]}  # fmt: skip
        out["identical"] = pm == score
        if pm != score:
            out["reasons"].append(f"bad file read differently: pretty_midi {out['bad'][0]}, "
                                  f"symusic {out['bad'][1]}")  # fmt: skip
        return out
    a, b = _tick_notes(pm, pm.resolution), _tick_notes(score, score.resolution)
    matched = _match(a, b, tolerance_ticks)
    out |= {"notes": len(a), "symusic_notes": len(b), "matched": matched}
    out["identical"] = matched == len(a) == len(b)
    if not out["identical"]:
        out["reasons"].append(_why(a, b))
    order = lambda m: [(t.is_drum, t.program) for t in tracks_of(m) if len(t.notes)]  # noqa: E731
    if order(pm) != order(score):
        out["reasons"].append("instrument order: a track holds several channels or programs")
    if any(not len(t.notes) for t in tracks_of(pm)):
        out["reasons"].append("pretty_midi keeps an instrument without notes; read_score drops it")
    if len(score.tempo_ticks) != len(pm.get_tempo_changes()[0]):
        out["reasons"].append("tempo events outside the first track: seconds differ, beats agree")
    return out


def _tick_notes(midi: Any, resolution: int) -> np.ndarray:
    """[N, 5] float64 (is_drum, program, pitch, onset tick, offset tick), sorted."""
    rows = []
    for t in tracks_of(midi):
        beats = time_to_beats(midi, t.notes[:, :2].ravel()).reshape(-1, 2) * resolution
        head = np.tile([float(t.is_drum), float(t.program)], (len(t.notes), 1))
        rows.append(np.column_stack([head, t.notes[:, 2], beats]))
    arr = np.concatenate(rows) if rows else np.zeros((0, 5))
    return arr[np.lexsort((arr[:, 4], arr[:, 3], arr[:, 2], arr[:, 1], arr[:, 0]))]


def _match(a: np.ndarray, b: np.ndarray, tol: float) -> int:
    """Notes of `a` with a partner in `b`: same (drum, program, pitch), onset and offset within
    tol; each note of `b` partners one at most (greedy, in onset order)."""
    pool: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for d, p, k, on, off in b.tolist():
        pool[(d, p, k)].append((on, off))
    matched = 0
    for d, p, k, on, off in a.tolist():
        cands = pool.get((d, p, k), [])
        for i, (on2, off2) in enumerate(cands):
            if abs(on - on2) <= tol and abs(off - off2) <= tol:
                matched += 1
                del cands[i]
                break
    return matched


def _why(a: np.ndarray, b: np.ndarray) -> str:
    """The likeliest reason two readings of one file differ in their notes."""
    for d, p, k in {tuple(r[:3]) for r in b.tolist()}:
        same = b[(b[:, 0] == d) & (b[:, 1] == p) & (b[:, 2] == k)]
        if (same[1:, 3] < same[:-1, 4]).any():
            return "overlapping notes of one pitch: symusic ends the earliest, pretty_midi all"
    if len(a) != len(b):
        return f"note count: pretty_midi {len(a)}, symusic {len(b)}"
    diff = np.abs(a[:, 3:] - b[:, 3:]).max(axis=1)
    i = int(diff.argmax())
    return f"note at tick {a[i, 3]:.0f} (pitch {a[i, 2]:.0f}) moves {diff[i]:.1f} ticks"
