"""Time of `cadenza-eval mode=music` on two folders of real MIDI: reading the files into rolls,
then the statistics (each piece's, each set's, and the two sets compared), as
`cadenza.metrics.music_eval.evaluate_music` computes them.

    python benchmarks/music_eval_speed.py [--generated DIR] [--reference DIR] [--name NAME]

Defaults: POP909's 909 songs as "generated" against Nottingham's folder ($CADENZA_DATA: 1,034
tunes with their melody and chord versions, 3,998 files),
at 12 steps per beat. An earlier checkout runs this same script with PYTHONPATH=<checkout>/src
and --name before. The report's digest says whether two runs computed the same numbers.
Results: benchmarks/results/music_eval_speed.json, one entry per --name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import cadenza
from cadenza.metrics.music_eval import evaluate_music
from cadenza.metrics.music_rolls import load_rolls, midi_paths
from cadenza.paths import data_root
from cli_runs import provenance, save_entry

RESULTS = Path(__file__).parent / "results" / "music_eval_speed.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generated", type=Path, default=data_root() / "pop909" / "midi")
    ap.add_argument("--reference", type=Path, default=data_root() / "nottingham" / "MIDI")
    ap.add_argument("--steps-per-beat", type=int, default=12)
    ap.add_argument("--name", default="current")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    files = len(midi_paths(args.generated)) + len(midi_paths(args.reference))
    started = time.perf_counter()
    rolls = [load_rolls(folder, args.steps_per_beat)[0] for folder in (args.generated,
                                                                      args.reference)]  # fmt: skip
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    report = evaluate_music(args.generated, args.reference, args.steps_per_beat)
    total_s = time.perf_counter() - started
    digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()
    row = {
        "files": files, "rolls": sum(len(r) for r in rolls),
        "read_s": round(read_s, 2), "statistics_s": round(total_s - read_s, 2),
        "total_s": round(total_s, 2), "ms_per_file": round(1000 * total_s / files, 2),
        "report_sha256": digest[:16], "cadenza": str(Path(cadenza.__file__).parent),
    }  # fmt: skip
    command = "python benchmarks/music_eval_speed.py " + " ".join(argv or sys.argv[1:])
    entry = {"generated": str(args.generated), "reference": str(args.reference),
             "steps_per_beat": args.steps_per_beat, **row, **provenance(command, 0.0)}  # fmt: skip
    entry.pop("train_seconds")
    save_entry(args.out, args.name, entry)
    print(f"{'name':<10}{'files':>7}{'rolls':>7}{'read s':>9}{'stats s':>9}{'total s':>9}"
          f"{'ms/file':>9}  report")  # fmt: skip
    print(f"{args.name:<10}{files:>7}{row['rolls']:>7}{row['read_s']:>9}{row['statistics_s']:>9}"
          f"{row['total_s']:>9}{row['ms_per_file']:>9}  {row['report_sha256']}")  # fmt: skip
    return entry


if __name__ == "__main__":
    main()
