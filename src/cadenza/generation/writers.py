"""Pieces -> files: MIDI for a DAW (+ a piano-roll PNG, + rendered audio), or for a model of
audio features a WAV (+ a spectrogram PNG); and `samples.json`, the report of what was made.
Each writer fills `piece.files` with what it wrote, so callers never look for their files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cadenza.atomic import write_atomically
from cadenza.errors import ConfigError
from cadenza.generation.pieces import Piece
from cadenza.progress import stop_if_cancelled

log = logging.getLogger("cadenza")
AUDIO_FORMATS = ("wav", "flac", "ogg")
REPORT = "samples.json"
TEMPO_RANGE = (20, 400)  # quarter notes a minute that `tempo=` may ask for


def check_render(render: str | None) -> str | None:
    if render is not None and render not in AUDIO_FORMATS:
        raise ConfigError(f"render must be null or one of {list(AUDIO_FORMATS)}, got {render!r}")
    return render


def check_tempo(tempo: Any, output: str = "midi") -> float | None:
    """A tempo to write MIDI at: null, or quarter notes a minute in TEMPO_RANGE. A model of
    audio writes what it heard: it has no notes to put on another tempo."""
    if tempo is None:
        return None
    lo, hi = TEMPO_RANGE
    if isinstance(tempo, bool) or not isinstance(tempo, int | float) or not lo <= tempo <= hi:
        raise ConfigError(f"tempo must be null or quarter notes a minute in {lo}..{hi}, "
                          f"got {tempo!r}")  # fmt: skip
    if output != "midi":
        raise ConfigError(f"tempo: this model writes {output}, which has no notes to put on a "
                          "tempo; leave tempo out")  # fmt: skip
    return float(tempo)


def write_piece(
    piece: Piece,
    out_dir: str | Path,
    *,
    png: bool = True,
    render: str | None = None,
    synth: str = "auto",
    soundfont: str | None = None,
    sample_rate: int = 44100,
    tempo: float | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Write one piece; returns its report entry (file names and what was measured).

    MIDI: `<name>.mid`, `<name>.png` with `png`, `<name>.<render>` with `render` (a silent
    piece keeps its MIDI file and gets no audio). Audio: `<name>.wav` and a spectrogram PNG.
    `tempo` (quarter notes a minute) writes the piece's notes on the same beats at that tempo;
    the piece itself is left as it was (another write without a tempo writes it as the model
    made it). The entry, also kept as `piece.written`, gives the written files' seconds."""
    out = Path(out_dir)
    title = title or piece.name.replace("_", " ")
    tempo = check_tempo(tempo, piece.output)  # a model of audio takes none: said here
    if piece.output == "audio":
        from cadenza.io.audio import save_audio

        piece.files["audio"] = save_audio(piece.music, out / f"{piece.name}.wav")
        if png:
            from cadenza.viz import save_spectrogram_png

            piece.files["png"] = save_spectrogram_png(
                piece.spectrogram_db, out / f"{piece.name}.png", piece.frames_per_second,
                title=title,
            )  # fmt: skip
        piece.written = {"file": piece.files["audio"].name, **piece.meta}
        return piece.written
    from cadenza.io.midi import at_tempo, save_midi

    music = piece.music if tempo is None else at_tempo(piece.music, tempo)
    path = save_midi(music, out / f"{piece.name}.mid")
    piece.files["midi"] = path
    if png:
        from cadenza.viz import save_pianoroll_png

        piece.files["png"] = save_pianoroll_png(music, path.with_suffix(".png"), title=title)
    entry = {"file": path.name, **piece.meta}
    if music is not piece.music:
        entry["seconds"] = round(music.get_end_time(), 3)
    if check_render(render) is not None and piece.notes:
        from cadenza.io.render import render_to_file

        piece.files["audio"] = render_to_file(
            music, path.with_suffix(f".{render}"), sample_rate=sample_rate, synth=synth,
            soundfont=soundfont,
        )  # fmt: skip
        entry["audio"] = piece.files["audio"].name
    piece.written = entry
    return entry


def write_report(out_dir: str | Path, report: dict[str, Any]) -> Path:
    return write_atomically(Path(out_dir) / REPORT, json.dumps(report, indent=2))


def write_pieces(
    pieces: list[Piece],
    out_dir: str | Path,
    *,
    png: bool = True,
    render: str | None = None,
    synth: str = "auto",
    soundfont: str | None = None,
    sample_rate: int = 44100,
    tempo: float | None = None,
    report: dict[str, Any] | None = None,
) -> list[Path]:
    """Write every piece (see `write_piece`) and `samples.json` ({"controls", "samples"}, plus
    `report`'s keys); returns each piece's main file (MIDI, or WAV for audio)."""
    out = Path(out_dir)
    check_render(render)
    for p in pieces:  # before any file is written
        check_tempo(tempo, p.output)
    out.mkdir(parents=True, exist_ok=True)
    seed = pieces[0].controls.get("seed") if pieces else None
    entries = []
    for p in pieces:
        stop_if_cancelled()  # a background job cancelled while it renders stops here
        title = f"{p.name.replace('_', ' ')} (seed {seed})" if seed is not None else None
        entries.append(write_piece(p, out, png=png, render=render, synth=synth,
                                   soundfont=soundfont, sample_rate=sample_rate, tempo=tempo,
                                   title=title))  # fmt: skip
    controls = {**(pieces[0].controls if pieces else {}), "render": render, "tempo": tempo}
    write_report(out, {"controls": controls, "samples": entries, **(report or {})})
    return [p.files.get("midi") or p.files["audio"] for p in pieces]


def write_sheet(pieces: list[Piece], path: str | Path, titles: list[str],
                tempo: float | None = None) -> Path:  # fmt: skip
    """One picture of several pieces (piano rolls, or spectrograms for audio); `tempo`: the
    pieces as write_piece wrote them at it."""
    if pieces and pieces[0].output == "audio":
        from cadenza.viz import save_spectrogram_sheet

        dbs = [p.spectrogram_db for p in pieces]
        return save_spectrogram_sheet(dbs, path, pieces[0].frames_per_second, titles)
    from cadenza.viz import save_pianoroll_sheet

    music = [p.music for p in pieces]
    if check_tempo(tempo) is not None:
        from cadenza.io.midi import at_tempo

        music = [at_tempo(m, tempo) for m in music]
    return save_pianoroll_sheet(music, path, titles)
