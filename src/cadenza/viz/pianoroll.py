"""Piano-roll pictures of MIDI: one note = one bar (seconds vs pitch), one colour per track.

`save_pianoroll_png` (one piece; the service writes one per generated piece, issue 21) is a
raster drawn directly in NumPy and encoded by Pillow, for speed: a few ms a piece against
matplotlib's ~100. `save_pianoroll_sheet` (a grid of small rolls) uses matplotlib's object API
with the Agg canvas, never pyplot: no global backend switch, no display needed. Both are safe to
call from worker threads.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image, ImageColor, ImageDraw, ImageFont

from cadenza.io.midi import tracks_of
from cadenza.viz.files import save_figure, save_image

_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
]


def _draw(ax: Axes, pm: Any, title: str | None, legend: bool) -> int:
    """Draw every note of `pm` on `ax`; returns the number of notes drawn."""
    tracks = [t for t in tracks_of(pm) if len(t.notes)]
    handles, lows, highs, ends = [], [], [], [0.0]
    for k, tr in enumerate(tracks):
        n = tr.notes  # [N, 4] start_s, end_s, pitch, velocity
        x0, x1, y = n[:, 0], n[:, 1], n[:, 2]
        # One PolyCollection of rectangles: thousands of notes draw in milliseconds (barh
        # would make one Artist per note).
        verts = np.stack(
            [
                np.stack([x0, y - 0.4], 1),
                np.stack([x1, y - 0.4], 1),
                np.stack([x1, y + 0.4], 1),
                np.stack([x0, y + 0.4], 1),
            ],
            axis=1,
        )
        colour = _COLOURS[k % len(_COLOURS)]
        ax.add_collection(PolyCollection(verts, facecolors=colour, edgecolors="none"))
        handles.append(Patch(color=colour, label=f"{k}: {_label(tr)}"))
        lows.append(y.min())
        highs.append(y.max())
        ends.append(x1.max())
    if lows:
        ax.set_ylim(min(lows) - 1.5, max(highs) + 1.5)
    ax.set_xlim(0, max(ends) * 1.01 or 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title, fontsize="medium")
    if legend and len(handles) > 1:
        ax.legend(handles=handles, loc="upper right", fontsize="small")
    ax.grid(True, axis="y", alpha=0.2)
    return sum(len(t.notes) for t in tracks)


# The single-piece PNG: 1200 x 500 px, notes in the plot area [_LEFT, _RIGHT) x [_TOP, _BOTTOM);
# the margins hold the labels, the top strip the title (first row) and the legend (second row).
_WIDTH, _HEIGHT = 1200, 500
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 1190, 44, 458
_SWATCH = 9  # legend swatch side, px
# A palette PNG rather than RGB: Pillow picks each row's filter of an RGB image by trying them
# before deflating it (~9 ms at 1200 x 500); a palette image, one byte a pixel, it deflates as is
# (~1 ms).
_GUIDE, _FRAME, _TRACK0, _TEXT0 = 1, 2, 8, 16  # palette indices; 0 is white
_PALETTE = np.full((256, 3), 255, np.uint8)
_PALETTE[_GUIDE] = 225
_PALETTE[_FRAME] = 150
_PALETTE[_TRACK0 : _TRACK0 + len(_COLOURS)] = [ImageColor.getrgb(c) for c in _COLOURS]
# Text is drawn antialiased, as darkness 0..255, on its own "L" layer, then put on a ramp of
# greys from white to black (indices _TEXT0..255): grey, so it never counts as a note's colour.
_PALETTE[_TEXT0:] = np.linspace(255, 0, 256 - _TEXT0).round().astype(np.uint8)[:, None]
_TEXT_INDEX = (_TEXT0 + np.round(np.arange(256) * (255 - _TEXT0) / 255)).astype(np.uint8)
_TITLE_INK, _LABEL_INK = 255, 200  # darkness: black, dark grey


def _label(track: Any) -> str:
    """A track's name in a legend: its own, else "drums" or its General MIDI program."""
    return track.name or ("drums" if track.is_drum else f"program {track.program}")


def _time_step(t_end: float) -> int:
    """Seconds between vertical guides: 1, else the first of 2, 5, 10, 20, 50, ... that keeps
    them to at most 20 (plus the one at 0)."""
    step, k = 1, 0
    while t_end / step > 20:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return step


def save_pianoroll_png(pm: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """One PrettyMIDI -> a 1200 x 500 PNG piano roll at `path` (written atomically); returns the
    path. Faint guides at every C (labelled, C4 = MIDI 60) and at whole seconds (a coarser step
    for long pieces); above the plot the title and, with several tracks, a "k: name" legend."""
    tracks = [t for t in tracks_of(pm) if len(t.notes)]
    if tracks:
        pitches = np.concatenate([t.notes[:, 2] for t in tracks])
        lo, hi = float(pitches.min()) - 1.5, float(pitches.max()) + 1.5
        t_end = max(float(t.notes[:, 1].max()) for t in tracks) * 1.01 or 1.0
    else:
        lo, hi, t_end = 58.5, 73.5, 1.0  # an empty piece: C4..C5 for one second, no notes
    w, h = _RIGHT - _LEFT, _BOTTOM - _TOP
    px_per_s, px_per_pitch = w / t_end, h / (hi - lo)
    canvas = np.zeros((_HEIGHT, _WIDTH), np.uint8)  # palette indices, all white
    plot = canvas[_TOP:_BOTTOM, _LEFT:_RIGHT]  # a view; plot[0, 0] is t = 0 at pitch `hi`
    ink = np.zeros((_HEIGHT, _WIDTH), np.uint8)  # the text's darkness

    step = _time_step(t_end)
    for s in range(0, int(t_end) + 1, step):
        x = min(round(s * px_per_s), w - 1)
        plot[:, x] = _GUIDE
        _put_text(ink, (_LEFT + x, _BOTTOM + 4), str(s), _LABEL_INK, 11, "mt")
    _put_text(ink, ((_LEFT + _RIGHT) / 2, _BOTTOM + 22), "time (s)", _LABEL_INK, 11, "mt")
    for c in range(math.ceil(lo / 12) * 12, math.floor(hi) + 1, 12):  # every C in range
        y = min(round((hi - c) * px_per_pitch), h - 1)
        plot[y, :] = _GUIDE
        _put_text(ink, (_LEFT - 5, _TOP + y), f"C{c // 12 - 1}", _LABEL_INK, 11, "rm")

    for k, tr in enumerate(tracks):
        n = tr.notes  # [N, 4] start_s, end_s, pitch, velocity
        # Every note's pixel box at once, at least 1 px each way; then one slice per note.
        x0 = np.clip(np.rint(n[:, 0] * px_per_s), 0, w - 1)
        x1 = np.clip(np.rint(n[:, 1] * px_per_s), x0 + 1, w)
        y0 = np.clip(np.rint((hi - n[:, 2] - 0.4) * px_per_pitch), 0, h - 1)
        y1 = np.clip(np.rint((hi - n[:, 2] + 0.4) * px_per_pitch), y0 + 1, h)
        colour = _TRACK0 + k % len(_COLOURS)
        for a, b, c, d in np.stack([y0, y1, x0, x1], 1).astype(np.int64).tolist():
            plot[a:b, c:d] = colour
    canvas[[_TOP - 1, _BOTTOM], _LEFT - 1 : _RIGHT + 1] = _FRAME
    canvas[_TOP - 1 : _BOTTOM + 1, [_LEFT - 1, _RIGHT]] = _FRAME

    if title:
        _put_text(ink, ((_LEFT + _RIGHT) / 2, 12), title, _TITLE_INK, 14, "mm")
    if len(tracks) > 1:
        _legend(canvas, ink, [f"{k}: {_label(tr)[:24]}" for k, tr in enumerate(tracks)])
    has_ink = ink > 0
    canvas[has_ink] = _TEXT_INDEX[ink[has_ink]]
    image = Image.fromarray(canvas)  # mode "L"; putpalette makes it "P"
    image.putpalette(_PALETTE.tobytes())
    return save_image(image, path)


def _legend(canvas: np.ndarray, ink: np.ndarray, entries: list[str]) -> None:
    """One row, right-aligned over the plot: a swatch in each track's colour, then its "k: name"
    in grey. Entries past the plot's width (a dozen long names) are left out."""
    widths = [_SWATCH + 4 + _text_mask(e, 11, "lm")[0].shape[1] for e in entries]
    while len(widths) > 1 and sum(widths) + 12 * (len(widths) - 1) > _RIGHT - _LEFT:
        widths.pop()
    y = _TOP - 12  # the row's middle
    x = _RIGHT - (sum(widths) + 12 * (len(widths) - 1))
    for k, (entry, width) in enumerate(zip(entries, widths)):
        colour = _TRACK0 + k % len(_COLOURS)
        canvas[y - _SWATCH // 2 : y + _SWATCH // 2 + 1, x : x + _SWATCH] = colour
        _put_text(ink, (x + _SWATCH + 4, y), entry, _LABEL_INK, 11, "lm")
        x += width + 12


@functools.lru_cache(maxsize=512)
def _text_mask(text: str, size: int, anchor: str) -> tuple[np.ndarray, int, int]:
    """`text` in Pillow's default font at `size`, antialiased: its coverage 0..255 [h, w], and
    where its top-left corner lies from the anchor point. Kept between calls: a service draws
    the same axis labels on every piece, and FreeType drawing them was half of a piano roll's
    time. The font is loaded on a miss only, never shared between threads."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor=anchor))
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(image).text((-left, -top), text, 255, font, anchor=anchor)
    mask = np.asarray(image)
    mask.flags.writeable = False
    return mask, left, top


def _put_text(ink: np.ndarray, at: tuple[float, float], text: str, darkness: int, size: int,
              anchor: str) -> None:  # fmt: skip
    """Draw `text` into the darkness layer `ink` [H, W] at the anchor point `at` (Pillow's
    anchors: "mt" middle-top, "rm" right-middle, ...), clipped to the image."""
    mask, left, top = _text_mask(text, size, anchor)
    x, y = round(at[0]) + left, round(at[1]) + top
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, ink.shape[1]), min(y + h, ink.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    cover = mask[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.uint16) * darkness // 255
    region = ink[y0:y1, x0:x1]
    np.maximum(region, cover.astype(np.uint8), out=region)


def save_pianoroll_sheet(
    pms: list[Any], path: str | os.PathLike[str], titles: list[str] | None = None
) -> Path:
    """Several PrettyMIDI objects -> one PNG grid of small rolls (up to 4 per row)."""
    if not pms:
        raise ValueError("save_pianoroll_sheet needs at least one MIDI object")
    titles = list(titles) if titles is not None else [f"#{i}" for i in range(len(pms))]
    cols = min(4, len(pms))
    rows = math.ceil(len(pms) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    for i, pm in enumerate(pms):
        _draw(fig.add_subplot(rows, cols, i + 1), pm, titles[i], legend=False)
    return save_figure(fig, path)
