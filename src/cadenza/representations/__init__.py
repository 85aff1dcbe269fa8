"""Codecs between music and tensors; importing this package registers them for from_dict."""

from __future__ import annotations

from cadenza.representations.base import Codec
from cadenza.representations.events import EventCodec
from cadenza.representations.mel import MelCodec
from cadenza.representations.melody import MelodyCodec
from cadenza.representations.miditok_codec import MidiTokCodec
from cadenza.representations.multitrack import MultiTrackMelodyCodec
from cadenza.representations.multitrack_pianoroll import MultiTrackPianoRollCodec
from cadenza.representations.pianoroll import PianoRollCodec

__all__ = [
    "Codec",
    "EventCodec",
    "MelCodec",
    "MelodyCodec",
    "MidiTokCodec",
    "MultiTrackMelodyCodec",
    "MultiTrackPianoRollCodec",
    "PianoRollCodec",
]
