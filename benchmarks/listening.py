"""The producer's check: what a benchmark checkpoint's samples sound and look like.

Through the real `cadenza-sample`, into benchmarks/results/listening/<name>/:
- 8 prior samples as MIDI, piano-roll PNGs and audio rendered with the GM SoundFont
  (FluidSynth; the built-in synth where it is missing: the summary says which);
- for a VAE, an interpolation between two real held-out windows of the same data (the first and
  the middle test window), `steps` points, with a sheet PNG;
- summary.json: per sample and track, the notes, how long they are, how many are shorter than
  a 32nd note (fragments), the pitch range, chords, and the share of notes in the best-fitting
  major / natural-minor scale, so the note written beside the
  files can say what a producer hears without only a listener's word for it.

    python benchmarks/listening.py --name gan_pop909 --ckpt runs/.../epoch012.ckpt
    python benchmarks/listening.py --name vae_16bar_hier --ckpt ... --interpolate nottingham
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cadenza.atomic import write_atomically
from cadenza.data import MusicDataModule
from cadenza.data.sources import MidiFolderSource
from cadenza.io.midi import load_midi, save_midi, time_to_beats, tracks_of
from cadenza.metrics.music import default_qn_threshold
from cadenza.models import GenerativeModule
from cadenza.paths import data_root
from cli_runs import BIN, provenance

OUT = Path(__file__).parent / "results" / "listening"
INTERPOLATE = {"nottingham": "nottingham/MIDI/melody", "pop909": "pop909/midi"}


def sample(ckpt: Path, out: Path, *args: str) -> None:
    command = [str(BIN / "cadenza-sample"), f"ckpt_path={ckpt}", f"out_dir={out}",
               "render=ogg", "sample_rate=22050", "png=true", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def real_windows(model: GenerativeModule, data: str, out: Path) -> tuple[Path, Path]:
    """Two held-out windows of the model's own length, written as MIDI: the interpolation's
    endpoints."""
    dm = MusicDataModule(
        MidiFolderSource(str(data_root() / INTERPOLATE[data])), model.codec,
        window_bars=model.hparams.bars, transpose=None,
    )  # fmt: skip
    ds = dm.dataset("test", training=False)
    # The first window with a tune in it (at least one note per bar on average) in each half.
    bars = model.hparams.bars

    def tuneful(i: int) -> bool:
        return len(model.codec.notes(ds[i][0])) >= bars

    first = next(i for i in range(len(ds)) if tuneful(i))
    second = next(i for i in range(len(ds) // 2, len(ds)) if tuneful(i))
    paths = []
    for name, i in (("a", first), ("b", second)):
        path = out / f"endpoint_{name}.mid"
        save_midi(model.codec.decode(ds[i][0]), path)  # already the codec's shape
        paths.append(path)
    return paths[0], paths[1]


MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])  # its rotations are the natural minors too


def in_scale(pitches: np.ndarray) -> float:
    """The share of notes inside the best-fitting major (or natural minor) scale."""
    pcs = pitches % 12
    return max(float(np.isin(pcs, (MAJOR + t) % 12).mean()) for t in range(12))


def describe(midi_path: Path, steps_per_beat: int) -> dict:
    """Per track: notes, median length in 16ths, the share shorter than the qualified-note
    threshold (fragments), pitch range, and the share of onsets that start a chord."""
    pm = load_midi(midi_path)
    short = default_qn_threshold(steps_per_beat) / steps_per_beat  # beats
    tracks = {}
    for k, track in enumerate(tracks_of(pm)):
        name, notes = track.name or f"track{k}", track.notes
        if not len(notes):
            tracks[name] = {"notes": 0}
            continue
        on, off = time_to_beats(pm, notes[:, 0]), time_to_beats(pm, notes[:, 1])
        lengths = off - on
        tracks[name] = {
            "notes": len(notes),
            "median_sixteenths": round(float(np.median(lengths) * 4), 2),
            "fragments": round(float(np.mean(lengths < short - 1e-6)), 3),
            "pitch_range": [int(notes[:, 2].min()), int(notes[:, 2].max())],
            "chords": round(float(np.mean(np.unique(on, return_counts=True)[1] > 1)), 3),
            "in_scale": round(in_scale(notes[:, 2].astype(int)), 3),
        }
    return tracks


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--name", required=True, help="folder under benchmarks/results/listening")
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--bars", type=int, default=8, help="prior samples' length (GAN)")
    ap.add_argument("--interpolate", choices=list(INTERPOLATE), default=None)
    ap.add_argument("--steps", type=int, default=7)
    args = ap.parse_args()
    out = OUT / args.name
    out.mkdir(parents=True, exist_ok=True)
    model = GenerativeModule.load(args.ckpt)
    sample(args.ckpt.resolve(), out / "prior", "n=8", "seed=0", f"bars={args.bars}")
    summary: dict = {"checkpoint": args.ckpt.name, "family": model.family}
    spb = model.codec.steps_per_beat
    summary["prior"] = {p.name: describe(p, spb) for p in sorted((out / "prior").glob("*.mid"))}
    if args.interpolate:
        with tempfile.TemporaryDirectory() as tmp:
            a, b = real_windows(model, args.interpolate, Path(tmp))
            sample(args.ckpt.resolve(), out / "interpolation", "mode=interpolate", f"a={a}",
                   f"b={b}", f"steps={args.steps}", "prefix=interp")  # fmt: skip
            for p in (a, b):  # the real endpoints beside the path, to hear against
                (out / "interpolation" / p.name).write_bytes(p.read_bytes())
        summary["interpolation"] = {
            p.name: describe(p, spb) for p in sorted((out / "interpolation").glob("*.mid"))
        }
    summary.update(provenance("python benchmarks/listening.py " + " ".join(sys.argv[1:]), None))
    summary["torch"] = torch.__version__
    write_atomically(out / "summary.json", json.dumps(summary, indent=1))
    print(json.dumps(summary["prior"], indent=1)[:3000])


if __name__ == "__main__":
    main()
