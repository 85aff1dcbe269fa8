"""Audio sources: a folder of sound files, or any MIDI source rendered once to audio.

Both hand `prepare` a Waveform per piece, so audio goes through the same prepare / cache /
split path as MIDI (a codec such as MelCodec turns it into frames); unreadable, empty and
silent files are skipped with their reason like bad MIDI files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cadenza.data.sources import FolderSource, Source, SourceItem, _slug
from cadenza.errors import ConfigError
from cadenza.io.audio import AUDIO_SUFFIXES, load_audio
from cadenza.paths import cache_root


def _check_seconds(key: str, value: Any, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"data.source.{key} must be a positive number of seconds, got {value!r}")
    return float(value)


class AudioFolderSource(FolderSource):
    """Every WAV/FLAC/OGG/MP3/AIFF file under `root`, recursively, sorted by path. Pieces are
    read at their own sample rate (the codec resamples) and cut at `max_seconds`."""

    suffixes = AUDIO_SUFFIXES
    kind = "audio"
    gives = "audio"

    def __init__(
        self,
        root: str | Path,
        limit: int | None = None,
        max_seconds: float | None = None,
        min_seconds: float = 0.5,
    ) -> None:
        super().__init__(root, limit)
        self.max_seconds = _check_seconds("max_seconds", max_seconds)
        self.min_seconds = float(_check_seconds("min_seconds", min_seconds, optional=False) or 0)

    def load(self, item: SourceItem) -> Any:
        return load_audio(item.payload, max_seconds=self.max_seconds, min_seconds=self.min_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "max_seconds": self.max_seconds,
                "min_seconds": self.min_seconds}  # fmt: skip


class RenderedMidiSource(Source):
    """Any MIDI source heard through a synthesizer: each piece is rendered once (FluidSynth
    with the GM SoundFont, or the built-in synth) to a FLAC file in a render cache and read from
    there afterwards, so changing the features (mel bands, hop) never renders again.

    The render cache folder is keyed by the MIDI source (with its file fingerprint), the
    synthesizer actually used, the sample rate and `max_seconds`.
    """

    gives = "audio"

    def __init__(
        self,
        midi: Source,
        sample_rate: int = 22050,
        synth: str = "auto",
        soundfont: str | None = None,
        max_seconds: float | None = 60.0,
        cache_dir: str | Path | None = None,
    ) -> None:
        from cadenza.io.render import SYNTHS, find_soundfont, fluidsynth_status

        if not isinstance(midi, Source):
            raise ConfigError(
                f"data.source.midi must be a cadenza MIDI Source, got {type(midi).__name__}"
            )
        if synth not in SYNTHS:
            raise ConfigError(f"data.source.synth must be one of {list(SYNTHS)}, got {synth!r}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
            raise ConfigError(
                f"data.source.sample_rate must be an integer >= 8000 Hz, got {sample_rate!r}"
            )
        self.midi = midi
        self.sample_rate = sample_rate
        self.max_seconds = _check_seconds("max_seconds", max_seconds)
        # "auto" is resolved now: a cache rendered by one synthesizer is never served for another.
        usable, _ = fluidsynth_status(soundfont)
        self.synth = ("fluidsynth" if usable else "builtin") if synth == "auto" else synth
        sf2 = find_soundfont(soundfont) if self.synth == "fluidsynth" else None
        self.soundfont = str(sf2) if sf2 else None
        self.cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir else cache_root()
        self.name = f"{midi.name}-audio"

    def _render_spec(self) -> dict[str, Any]:
        sf2 = Path(self.soundfont) if self.soundfont else None
        return {
            "synth": self.synth,
            "soundfont": sf2.name if sf2 else None,
            "soundfont_bytes": sf2.stat().st_size if sf2 and sf2.is_file() else None,
            "sample_rate": self.sample_rate,
            "max_seconds": self.max_seconds,
        }

    @property
    def render_folder(self) -> Path:
        spec = {"midi": self.midi.to_dict(), **self._render_spec()}
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return self.cache_dir / "rendered" / f"{self.midi.name}-{key}"

    def items(self) -> list[SourceItem]:
        folder = str(self.render_folder)
        # The wrapped item travels inside the payload, so workers can load and render it.
        return [
            SourceItem(key=it.key, split=it.split, payload=(it, folder)) for it in self.midi.items()
        ]

    def load(self, item: SourceItem) -> Any:
        from cadenza.io.audio import save_audio
        from cadenza.io.render import render_midi

        inner, folder = item.payload
        path = Path(folder) / f"{_slug(inner.key)}.flac"
        if path.is_file():
            return load_audio(path)
        wave = render_midi(
            self.midi.load_for_render(inner), self.sample_rate, synth=self.synth,
            soundfont=self.soundfont, max_seconds=self.max_seconds,
        )  # fmt: skip
        save_audio(wave, path)  # atomic: a killed run never leaves half a file to read later
        # What the file holds (16-bit), so a first run and a cached one encode the same samples.
        return load_audio(path)

    def file_of(self, item: SourceItem) -> Path | None:
        inner, _ = item.payload
        return self.midi.file_of(inner)  # heard through any synthesizer, split as its MIDI

    def to_dict(self) -> dict[str, Any]:
        return {"type": "rendered_midi", "midi": self.midi.to_dict(), **self._render_spec()}

    def describe(self) -> str:
        return f"{self.midi.describe()} rendered with {self.synth} at {self.sample_rate} Hz"
