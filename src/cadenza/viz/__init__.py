"""Pictures of music: piano rolls of MIDI, spectrograms of audio, a classifier's confusion
matrix (PNG files)."""

from __future__ import annotations

from cadenza.viz.confusion import save_confusion_png
from cadenza.viz.pianoroll import save_pianoroll_png, save_pianoroll_sheet
from cadenza.viz.spectrogram import save_spectrogram_png, save_spectrogram_sheet

__all__ = [
    "save_confusion_png", "save_pianoroll_png", "save_pianoroll_sheet", "save_spectrogram_png",
    "save_spectrogram_sheet",
]  # fmt: skip
