"""cadenza.viz: piano-roll PNGs are written, readable, and sized as asked."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread
from PIL import ImageColor

from cadenza.io.midi import TrackNotes, build_midi, load_midi
from cadenza.viz import pianoroll as roll
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


def _rgb255(img: np.ndarray) -> np.ndarray:
    return np.round(img[..., :3] * 255).astype(int)


def _plot_area(img: np.ndarray) -> np.ndarray:
    return img[roll._TOP : roll._BOTTOM, roll._LEFT : roll._RIGHT]


def _two_notes() -> object:
    """Track 0: C3 for the first second; track 1: C5 from 3 s to 4 s (the roll spans 0..4.04 s)."""
    return build_midi([
        TrackNotes(0, False, "low", np.array([[0.0, 1.0, 48, 90]])),
        TrackNotes(32, False, "high", np.array([[3.0, 4.0, 72, 90]])),
    ])  # fmt: skip


def test_note_pixels_are_where_the_notes_are(tmp_path):
    plot = _rgb255(_plot_area(imread(save_pianoroll_png(_two_notes(), tmp_path / "two.png"))))
    h, w = plot.shape[:2]
    low, high = (np.array(ImageColor.getrgb(c)) for c in roll._COLOURS[:2])
    t_end, lo, hi = 4.0 * 1.01, 48 - 1.5, 72 + 1.5

    def at(t: float, pitch: float) -> np.ndarray:
        return plot[round((hi - pitch) / (hi - lo) * h), round(t / t_end * w)]

    assert (at(0.5, 48) == low).all() and (at(3.5, 72) == high).all()
    assert np.ptp(at(3.5, 48)) == np.ptp(at(0.5, 72)) == 0  # grey (a C's guide): no note there
    is_low, is_high = (plot == low).all(-1), (plot == high).all(-1)
    assert not is_low[:, w // 2 :].any() and not is_high[:, : w // 2].any()
    assert not is_low[: h // 2].any() and not is_high[h // 2 :].any()
    # One second of one pitch each: the same box size, about a quarter of the width wide.
    assert is_low.sum() == is_high.sum() > 0
    assert abs(is_low.any(0).sum() - w / t_end) <= 2


def test_title_and_legend_add_no_note_pixels(tmp_path):
    plain = imread(save_pianoroll_png(_two_notes(), tmp_path / "plain.png"))
    titled = imread(save_pianoroll_png(_two_notes(), tmp_path / "titled.png", title="Two notes"))
    np.testing.assert_array_equal(_plot_area(plain), _plot_area(titled))
    # Outside the plot, only the legend's two swatches are coloured, above the plot, right half.
    for img in (plain, titled):
        outside = (img[..., :3].max(-1) - img[..., :3].min(-1)) > 0.3
        outside[roll._TOP : roll._BOTTOM, roll._LEFT : roll._RIGHT] = False
        rows, cols = np.nonzero(outside)
        assert 0 < len(rows) <= 2 * roll._SWATCH**2
        assert rows.max() < roll._TOP and cols.min() > 1200 // 2

    # The title is dark text in the top rows (above the legend's), and only when asked for.
    def dark(img: np.ndarray) -> int:
        return int((img[: roll._TOP - 20, :, :3].max(-1) < 0.5).sum())

    assert dark(plain) == 0 and dark(titled) > 20
    one_track = build_midi([TrackNotes(0, False, "solo", scale_notes())])
    solo = imread(save_pianoroll_png(one_track, tmp_path / "solo.png"))
    assert (solo[: roll._TOP - 1, :, :3] == 1.0).all()  # one track: no legend, no title


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
