"""Does the Fréchet distance in our classifier's embedding say what it should? (issue 20, point 3)

Sets of 16-bar pieces, each compared with set A, 16-bar crops of held-out Nottingham tunes
(Boulanger-Lewandowski's valid and test splits, the roll the generators learn from):

- B: other crops of the same held-out tunes (the floor: real against real);
- another style: crops of JSB chorales (Boulanger's test split);
- B pitch-shuffled: every crop of B with the pitches it uses permuted among themselves;
- B time-scrambled: every crop of B with its bars, or its beats, in a random order;
- generated: `nottingham_lstm` trained 1 minute and 10 minutes (one core), 16 bars each.

A trustworthy distance puts B far below the other five, and the 10-minute model below the
1-minute one. Pieces are embedded by a styles classifier (`--encoder`, default the one
`benchmarks/classify.py` trained), every set as decoded MIDI files, as `cadenza-eval
mode=frechet` reads them.

    CADENZA_DATA=../shared/data python benchmarks/frechet.py [--n 100] [--encoder CKPT]

Results: benchmarks/results/frechet.json; sets and generators under benchmarks/runs/frechet/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cli_runs import BIN, provenance, save_entry, train_once
from frechet_sets import default_encoder, write_midi_set

RESULTS = Path(__file__).parent / "results" / "frechet.json"
RUNS = Path(__file__).parent / "runs" / "frechet"
BARS = 16


def crops(name: str, splits: tuple[str, ...], codec: Any, n: int, rng: np.random.Generator
          ) -> list[np.ndarray]:  # fmt: skip
    """n random 16-bar crops [T, 88] of a Boulanger set's pieces in `splits` (one per piece,
    cycling through the pieces in a random order)."""
    from cadenza.data.sources import BoulangerSource
    from cadenza.paths import data_root

    source = BoulangerSource(name, data_root())
    steps = codec.steps_for_bars(BARS)
    rolls = [codec.encode(source.load(it)).numpy() for it in source.items() if it.split in splits]
    rolls = [r for r in rolls if len(r) >= steps]
    out = []
    for i in range(n):
        r = rolls[rng.permutation(len(rolls))[0] if i >= len(rolls) else i]
        start = int(rng.integers(0, len(r) - steps + 1))
        out.append(r[start : start + steps])
    return out


def pitch_shuffled(roll: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The keys a crop uses, permuted among themselves: same rhythm, same pitch set, other
    lines."""
    used = np.flatnonzero(roll.any(0))
    out = roll.copy()
    out[:, used] = roll[:, rng.permutation(used)]
    return out


def time_scrambled(roll: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
    """The crop's blocks of `steps` steps in a random order: a bar's worth keeps every bar and
    loses the phrase; a beat's worth keeps the chords and loses the lines and the metre."""
    blocks = roll.reshape(-1, steps, roll.shape[1])
    return blocks[rng.permutation(len(blocks))].reshape(roll.shape)


def generator(minutes: float, seed: int, threads: int | None) -> Path:
    """nottingham_lstm trained `minutes` (reused if trained before) -> its checkpoint."""
    return train_once("nottingham_lstm", RUNS / f"nottingham_lstm_{minutes:g}min", minutes, seed,
                      threads)  # fmt: skip


def sample_set(ckpt: Path, folder: Path, n: int, seed: int) -> Path:
    import subprocess

    if not folder.is_dir() or len(list(folder.glob("*.mid"))) < n:
        done = subprocess.run(
            [str(BIN / "cadenza-sample"), f"ckpt_path={ckpt}", f"n={n}", f"bars={BARS}",
             f"seed={seed}", f"out_dir={folder}", "png=false"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"sampling {ckpt} failed:\n{done.stderr[-3000:]}")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--n", type=int, default=100, help="pieces per set")
    ap.add_argument("--encoder", default=None, help="classifier checkpoint (default: "
                    "benchmarks/classify.py's styles classifier)")  # fmt: skip
    ap.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0])
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    from cadenza.metrics.frechet import embed_folder, frechet_report
    from cadenza.models import ClassifierModule
    from cadenza.representations import PianoRollCodec

    started = time.perf_counter()
    encoder = args.encoder or default_encoder()
    model = ClassifierModule.load(encoder)
    rng = np.random.default_rng(args.seed)
    nott = PianoRollCodec(steps_per_beat=2, low_pitch=21, high_pitch=108)
    jsb = PianoRollCodec(steps_per_beat=1, low_pitch=21, high_pitch=108)
    real = crops("nottingham", ("valid", "test"), nott, 2 * args.n, rng)
    a, b = real[: args.n], real[args.n :]
    sets = RUNS / "sets"
    folders = {
        "A: held-out Nottingham crops": write_midi_set(sets / "a", a, nott),
        "B: other held-out Nottingham crops": write_midi_set(sets / "b", b, nott),
        "JSB chorales (another style)": write_midi_set(
            sets / "jsb", crops("jsb", ("test",), jsb, args.n, rng), jsb),
        "B, pitches shuffled": write_midi_set(
            sets / "b_pitch", [pitch_shuffled(r, rng) for r in b], nott),
        "B, bars scrambled": write_midi_set(
            sets / "b_bars", [time_scrambled(r, nott.steps_for_bars(1), rng) for r in b], nott),
        "B, beats scrambled": write_midi_set(
            sets / "b_beats", [time_scrambled(r, nott.steps_per_beat, rng) for r in b], nott),
    }  # fmt: skip
    for minutes in args.minutes:
        ckpt = generator(minutes, args.seed, args.threads)
        folders[f"nottingham_lstm, {minutes:g} min"] = sample_set(
            ckpt, RUNS / f"samples_{minutes:g}min", args.n, args.seed)  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    emb = {name: embed_folder(model, folder)[0] for name, folder in folders.items()}
    reference = emb.pop("A: held-out Nottingham crops")
    rows = {}
    for name, x in emb.items():
        rep = frechet_report(x, reference, bootstrap=args.bootstrap, seed=args.seed)
        rows[name] = {"frechet": rep["frechet"], "ci95": rep["ci95"], "n": rep["n"],
                      "median_outlier": float(np.median([o["mahalanobis"] for o in
                                                         rep["outliers"]]))}  # fmt: skip
    entry = {"encoder": str(encoder), "bars": BARS, "rows": rows,
             "provenance": provenance("python benchmarks/frechet.py " + " ".join(sys.argv[1:]),
                                      time.perf_counter() - started)}  # fmt: skip
    save_entry(args.results, "nottingham", entry)
    print(
        f"\nFréchet distance to A ({len(reference)} held-out Nottingham crops), "
        f"{model.hparams.hidden}-dim embedding of {Path(str(encoder)).name}"
    )
    print(f"{'set':40s} {'FD':>9s}  95% interval        median Mahalanobis")
    for name, r in rows.items():
        lo, hi = r["ci95"]
        print(f"{name:40s} {r['frechet']:9.2f}  {lo:8.2f}-{hi:<8.2f}  {r['median_outlier']:8.2f}")


if __name__ == "__main__":
    main()
