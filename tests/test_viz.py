"""cadenza.viz: piano-roll PNGs are written, readable, and sized as asked."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from cadenza.io.midi import TrackNotes, build_midi, load_midi
from cadenza.viz import save_pianoroll_png, save_pianoroll_sheet
from tests.fixtures.data import real_midi
from tests.fixtures.midi_factory import chord_notes, scale_notes


def _coloured_fraction(img: np.ndarray) -> float:
    """Share of pixels that are clearly coloured (notes), not white/grey/black (axes, text)."""
    rgb = img[..., :3]
    return float(((rgb.max(-1) - rgb.min(-1)) > 0.3).mean())


def test_png_of_real_file(tmp_path):
    pm = load_midi(real_midi("pop909/midi/001.mid"))
    path = save_pianoroll_png(pm, tmp_path / "out" / "001.png", title="POP909 001")
    assert path == tmp_path / "out" / "001.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["001.png"]  # no temp file left
    img = imread(path)
    assert img.shape[:2] == (500, 1200)
    assert _coloured_fraction(img) > 0.02


def test_blank_roll_has_no_note_pixels(tmp_path):
    empty = build_midi([TrackNotes(0, False, "", np.zeros((0, 4)))])
    img = imread(save_pianoroll_png(empty, tmp_path / "empty.png"))
    assert _coloured_fraction(img) < 0.001


@pytest.mark.parametrize("n, shape", [(1, (300, 400)), (4, (300, 1600)), (5, (600, 1600))])
def test_sheet_grid_size(tmp_path, n, shape):
    pms = [
        build_midi([TrackNotes(0, False, "", scale_notes() if i % 2 else chord_notes())])
        for i in range(n)
    ]
    path = save_pianoroll_sheet(pms, tmp_path / "sheet.png", titles=[f"s{i}" for i in range(n)])
    img = imread(path)
    assert img.shape[:2] == shape
    assert _coloured_fraction(img) > 0.005


def test_sheet_needs_input(tmp_path):
    with pytest.raises(ValueError):
        save_pianoroll_sheet([], tmp_path / "x.png")
