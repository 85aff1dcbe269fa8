"""What a producer hands a model: a primer to continue, a melody to accompany, a phrase to
reconstruct or interpolate. Each may be a file, a PrettyMIDI (or Waveform), or a tensor (or
NumPy array) already in the checkpoint's own codec; files are read with the data pipeline's
guards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.errors import BadMidiError, CadenzaError
from cadenza.models.base import GenerativeModule

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def read_music(model: GenerativeModule, source: Any) -> Any:
    """A path -> PrettyMIDI (or a Waveform, for an audio file given to a model of audio);
    anything else is taken to be music already."""
    if not isinstance(source, str | os.PathLike):
        return source
    path = Path(source)
    if model.codec.output == "audio" and not path.is_file():  # not "no such MIDI file"
        raise CadenzaError(f"{path}: no such file; check the path (a model of audio reads "
                           f"{'/'.join(AUDIO_SUFFIXES)} or MIDI files)")  # fmt: skip
    if model.codec.output == "audio" and path.suffix.lower() in AUDIO_SUFFIXES:
        from cadenza.io.audio import load_audio

        return load_audio(path, model.codec.sample_rate)
    from cadenza.io.midi import load_midi

    return load_midi(path)


def encode(model: GenerativeModule, source: Any) -> torch.Tensor:
    """A tensor (or a NumPy array of the codec's values) passes through; music is encoded with
    the checkpoint's own codec."""
    if isinstance(source, torch.Tensor):
        return source
    if isinstance(source, np.ndarray):
        return torch.as_tensor(source, dtype=model.codec.tensor_dtype)
    return model.codec.encode(read_music(model, source))


def primer_tensor(model: GenerativeModule, source: Any) -> torch.Tensor:
    """The music to continue, in the model's codec (the family drops what ends a piece)."""
    return encode(model, source)


def condition_tensor(model: GenerativeModule, source: Any) -> torch.Tensor:
    """The condition track [T, P] a track-conditional model plays against: a track given as
    such, the checkpoint's own track selection of a piece, or for a file without that track
    (a bare melody) the skyline of all its notes."""
    if isinstance(source, torch.Tensor) and source.dim() == 2:
        return source
    music = None if isinstance(source, torch.Tensor) else read_music(model, source)
    try:
        condition = model.condition_from_roll(encode(model, source if music is None else music))
    except BadMidiError as e:  # none of the checkpoint's tracks is in the file
        if e.reason != "no_notes":
            raise
        condition = torch.zeros(0)
    if not condition.any() and music is not None:
        codec = model.codec
        skyline = type(codec).from_dict({**codec.to_dict(), "tracks": ["top"] * codec.n_tracks})
        condition = skyline.encode(music)[:, 0]
    return condition


def window_tensor(model: GenerativeModule, source: Any) -> torch.Tensor:
    """The model-length window of a piece: its first bar-aligned window that is not mostly
    rests (else the first), padded with rests at the end if the piece is shorter."""
    codec, T = model.codec, model.declaration().window_steps
    x = encode(model, source).numpy()
    if len(x) < T:
        pad = np.full((T - len(x), *x.shape[1:]), codec.rest_value, dtype=x.dtype)
        x = np.concatenate([x, pad])
    bars = round(T / codec.steps_for_bars(1))
    starts = codec.window_starts(x, bars, 1, 0.5) or [0]
    return torch.as_tensor(np.asarray(codec.cut_window(x, starts[0], bars)))


def describe_input(source: Any) -> str | None:
    """How a report names an input: its path, or what kind of object it was."""
    if source is None:
        return None
    if isinstance(source, str | os.PathLike):
        return str(source)
    return f"<{type(source).__name__}>"
