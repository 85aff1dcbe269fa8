"""audio_folder and rendered_midi through the same prepare / cache / split path as MIDI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadenza.data.audio_sources import AudioFolderSource, RenderedMidiSource
from cadenza.data.prepare import prepare
from cadenza.data.sources import MidiFolderSource
from cadenza.errors import CadenzaError, ConfigError
from cadenza.io.audio import save_audio
from cadenza.io.midi import TrackNotes, build_midi, save_midi
from cadenza.representations import MelCodec
from tests.io.test_audio import broken_files, tone


def _good_audio(folder: Path, n: int = 6) -> list[str]:
    names = []
    for i in range(n):
        name = f"good{i}.{['wav', 'flac', 'ogg'][i % 3]}"
        save_audio(tone(220.0 * (1 + i / 4), seconds=2.5), folder / name)
        names.append(name)
    return names


def test_audio_folder_keeps_good_files_and_lists_bad_ones(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    reasons = broken_files(folder)
    good = _good_audio(folder / "sub")
    (folder / "notes.txt").write_text("ignored: not an audio suffix")
    codec = MelCodec(n_mels=32)
    prepared = prepare(AudioFolderSource(folder), codec, tmp_path / "cache", workers=2)
    kept = {p["key"] for p in prepared.manifest["pieces"]}
    assert kept == {f"sub/{g}" for g in good}
    skipped = {s["key"]: s["reason"] for s in prepared.manifest["skipped"]}
    assert skipped == reasons
    assert prepared.skipped_counts == {"corrupt": 1, "empty_file": 1, "not_audio": 1, "silent": 1,
                                       "truncated": 1}  # fmt: skip
    # every piece is 2.5 s of log-mel frames, stored as float16
    train = prepared.load_split("train")
    assert train.data.dtype == np.float16 and train.data.shape[1] == 32
    assert set(train.lengths.tolist()) == {1 + int(2.5 * 22050) // 256}
    # the same config again is a cache hit
    assert prepare(AudioFolderSource(folder), codec, tmp_path / "cache").cache_hit


def test_audio_folder_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match="does not exist"):
        AudioFolderSource(tmp_path / "nope").items()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CadenzaError, match="holds no"):
        AudioFolderSource(tmp_path / "empty").items()
    with pytest.raises(ConfigError, match="data.source.max_seconds"):
        AudioFolderSource(tmp_path, max_seconds=-1)
    # Audio through a MIDI codec: said before anything is read, with the codec that reads it.
    from cadenza.data.datamodule import MusicDataModule
    from cadenza.representations import PianoRollCodec

    save_audio(tone(440.0, seconds=1.0), tmp_path / "a.wav")
    with pytest.raises(ConfigError, match="gives audio, and the pianoroll codec encodes MIDI: "
                                          "set representation=mel"):  # fmt: skip
        MusicDataModule(AudioFolderSource(tmp_path), PianoRollCodec(), window_bars=1)


def _midi_folder(folder: Path, n: int = 4) -> Path:
    for i in range(n):
        notes = np.array([[t * 0.5, t * 0.5 + 0.45, 60 + (i + t) % 12, 90] for t in range(8)])
        save_midi(build_midi([TrackNotes(0, False, "piano", notes)]), folder / f"p{i}.mid")
    (folder / "broken.mid").write_bytes(b"MThd not really")
    return folder


def test_rendered_midi_renders_once_and_reuses_the_render_cache(tmp_path: Path) -> None:
    midi = _midi_folder(tmp_path / "midi")
    source = RenderedMidiSource(
        MidiFolderSource(midi), sample_rate=22050, synth="builtin", cache_dir=tmp_path / "cache"
    )
    assert source.synth == "builtin" and source.name == "midi-audio"
    first = prepare(source, MelCodec(n_mels=40), tmp_path / "cache", workers=0)
    assert first.sizes()["train"][0] + first.sizes()["valid"][0] + first.sizes()["test"][0] == 4
    assert first.skipped_counts == {"not_midi": 1} or first.skipped_counts == {"truncated": 1}
    flacs = sorted(source.render_folder.glob("*.flac"))
    assert [p.name for p in flacs] == [f"p{i}.mid.flac" for i in range(4)]
    stamps = [p.stat().st_mtime_ns for p in flacs]
    # different features: a new feature cache, but nothing is rendered again
    second = prepare(source, MelCodec(n_mels=64), tmp_path / "cache", workers=2)
    assert second.folder != first.folder and not second.cache_hit
    assert [p.stat().st_mtime_ns for p in sorted(source.render_folder.glob("*.flac"))] == stamps
    # each piece is ~4 s of audio: 8 half-second notes
    lengths = np.concatenate([second.load_split(s).lengths for s in ("train", "valid", "test")])
    assert (abs(lengths / (22050 / 256) - 4.0) < 1.2).all()
    # another synthesizer or sample rate renders into another folder
    other = RenderedMidiSource(
        MidiFolderSource(midi), sample_rate=16000, synth="builtin", cache_dir=tmp_path / "cache"
    )
    assert other.render_folder != source.render_folder


def test_rendered_midi_bad_values_name_the_key(tmp_path: Path) -> None:
    midi = MidiFolderSource(_midi_folder(tmp_path / "midi", 1))
    with pytest.raises(ConfigError, match="data.source.synth"):
        RenderedMidiSource(midi, synth="casio")
    with pytest.raises(ConfigError, match="data.source.sample_rate"):
        RenderedMidiSource(midi, sample_rate=100)
    with pytest.raises(ConfigError, match="data.source.midi"):
        RenderedMidiSource("not a source")  # type: ignore[arg-type]
