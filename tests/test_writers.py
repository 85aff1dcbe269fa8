"""Writing pieces (generation/writers.py) on a real melody: a tempo changes the files written,
never the piece, so a second write is of the piece as the model made it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.generation.pieces import Piece
from cadenza.generation.writers import write_pieces
from cadenza.io.midi import load_midi_bytes
from tests.fixtures.data import data_root


def test_writing_at_a_tempo_leaves_the_piece_as_it_was(tmp_path: Path) -> None:
    melody = data_root() / "nottingham" / "MIDI" / "melody" / "jigs1.mid"
    piece = Piece.of_midi(load_midi_bytes(melody.read_bytes()), "jig", {"seed": 1})
    own = piece.seconds
    write_pieces([piece], tmp_path / "slow", png=False, tempo=60)
    slow = json.loads((tmp_path / "slow" / "samples.json").read_text())
    assert piece.seconds == own and piece.music.get_end_time() == pytest.approx(own, abs=1e-3)
    assert slow["controls"]["tempo"] == 60 and slow["samples"][0]["seconds"] > own
    assert piece.written["seconds"] == slow["samples"][0]["seconds"]

    write_pieces([piece], tmp_path / "own", png=False)
    again = json.loads((tmp_path / "own" / "samples.json").read_text())
    assert again["controls"]["tempo"] is None and again["samples"][0]["seconds"] == own
    written = load_midi_bytes((tmp_path / "own" / "jig.mid").read_bytes())
    assert written.get_end_time() == pytest.approx(own, abs=0.01)
