"""cadenza-render in.mid out.wav: hear a MIDI file (FluidSynth + GM SoundFont, or built-in).

Plain argparse with positional paths, unlike the Hydra CLIs: there is no config to compose,
and `cadenza-render a.mid a.wav` is what people type.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from cadenza.cli import _fail
from cadenza.errors import CadenzaError
from cadenza.io.render import DEFAULT_SAMPLE_RATE, SYNTHS, fluidsynth_status, render_to_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cadenza-render",
        description="Render a MIDI file to audio (.wav, .flac or .ogg, mono, peak -1 dBFS).",
    )
    p.add_argument("midi", type=Path, help="input .mid file")
    p.add_argument("out", type=Path, help="output audio file: .wav, .flac or .ogg")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="Hz (%(default)s)")
    p.add_argument(
        "--synth",
        choices=SYNTHS,
        default="auto",
        help="auto: FluidSynth when installed, else the built-in synthesizer (%(default)s)",
    )
    p.add_argument("--soundfont", type=Path, default=None, help="a General MIDI .sf2 file")
    p.add_argument("--max-seconds", type=float, default=None, help="render only the start")
    return p


def render(args: argparse.Namespace) -> str:
    """Render as `args` say; returns the line to print (path, seconds, synthesizer)."""
    synth = args.synth
    if synth == "auto":  # which one "auto" picks, so the summary can say what was heard
        synth = "fluidsynth" if fluidsynth_status(args.soundfont)[0] else "builtin"
    path = render_to_file(
        args.midi, args.out, sample_rate=args.sample_rate, synth=args.synth,
        soundfont=args.soundfont, max_seconds=args.max_seconds,
    )  # fmt: skip
    from cadenza.io.audio import load_audio  # read back what was written, not what was meant

    seconds = load_audio(path).seconds
    via = synth
    if synth == "fluidsynth":
        via += f" ({Path(fluidsynth_status(args.soundfont)[1]).name})"
    return f"{path}  {seconds:.2f} s at {args.sample_rate} Hz, synth {via}"


def main(argv: Sequence[str] | None = None) -> None:
    # The fallback warning goes through the "cadenza" logger; show it as one plain line.
    logging.basicConfig(level=logging.WARNING, format="cadenza: warning: %(message)s")
    args = _parser().parse_args(argv)
    try:
        print(render(args), flush=True)
    except CadenzaError as e:
        _fail(str(e))


if __name__ == "__main__":
    main()
