"""MIDI ingestion speed and memory: `cadenza-prepare` against parse-only reading, per file.

    python benchmarks/ingest.py [--workers 2] [--name NAME] [--src DIR] [--skip-agreement]

For each corpus (POP909's 909 files; Nottingham's MIDI folder; every MIDI file in the data root
together; POP909 ten times over, as transposed copies whose content hashes all differ) it runs
the real CLI, `cadenza-prepare data=midi_folder data.root=<folder>` with the piano-roll codec
(representation=pianoroll) into an empty cache, and reports:
- ms per file and files per second, both for the whole command (Python start-up, imports and
  Hydra included) and for the preparation itself (the manifest's prepare_seconds: parse, encode,
  dedupe, split and write the cache);
- the peak resident memory of the largest process (the preparing process or a worker), which
  must stay flat when the folder is ten times larger;
- parse-only time per file on the same files, one process: `load_midi` (pretty_midi, what
  preparation used before) and `read_score` (symusic and the conversion to notes in seconds).
Then how far the two readers agree on every real MIDI file (cadenza.io.midi_agreement).

The OS page cache is not dropped (that needs root); every corpus is read once before it is
timed, so each run starts from the same warm page cache and an empty Cadenza cache.
`--src DIR` runs the CLI against another checkout's src/ (PYTHONPATH), to measure an earlier
commit on the same machine. Results: benchmarks/results/ingest.json under --name.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cadenza.data.sources import MIDI_SUFFIXES, list_files
from cadenza.io.midi import load_midi, read_score, write_transposed
from cadenza.io.midi_agreement import reader_agreement
from cadenza.paths import data_root
from cli_runs import BIN, provenance, save_entry

RESULTS = Path(__file__).parent / "results" / "ingest.json"
GOAL_MS = 2.0  # the goal: per file, wall clock, 2 workers, POP909, piano-roll codec
COPIES = range(-4, 6)  # POP909 x10: each file as is and moved -4..+5 semitones


def corpora(root: Path, scratch: Path) -> dict[str, Path]:
    return {
        "pop909": root / "pop909" / "midi",
        "nottingham": root / "nottingham" / "MIDI",
        "data_root": root,
        "pop909_x10": transposed_copies(root / "pop909" / "midi", scratch / "pop909_x10"),
    }


def transposed_copies(folder: Path, out: Path) -> Path:
    """Every file of `folder` once per shift in COPIES (0 = as is): a corpus ten times larger
    whose pieces are all distinct, so none is dropped as a duplicate."""
    for path in list_files(folder, MIDI_SUFFIXES, "MIDI", None):
        for k in COPIES:
            dst = out / f"{path.stem}_{k:+d}.mid"
            if not dst.is_file():
                write_transposed(path, dst, k)
    return out


def warm(files: list[Path]) -> None:
    for p in files:
        p.read_bytes()


def prepare_run(folder: Path, cache: Path, workers: int, src: Path | None) -> dict:
    """The real CLI on `folder` into the empty `cache`, its peak RSS from wait4."""
    args = [str(BIN / "cadenza-prepare"), "data=midi_folder", f"data.root={folder}",
            "representation=pianoroll", f"data.prepare_workers={workers}",
            f"paths.cache_dir={cache}", "force=true"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # wait4's ru_maxrss is the largest of the process and the children it waited for.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    log = proc.stdout.read().decode() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"cadenza-prepare failed on {folder}:\n{log[-3000:]}")
    (manifest,) = cache.glob("*/manifest.json")
    m = json.loads(manifest.read_text())
    pieces = len(m["pieces"])
    files = pieces + sum(m["skipped_counts"].values())
    return {
        "files": files,
        "pieces": pieces,
        "skipped": m["skipped_counts"],
        "command": " ".join(["cadenza-prepare", *args[1:5]]),
        "wall_s": round(wall, 2),
        "prepare_s": m["prepare_seconds"],
        "ms_per_file_wall": round(1000 * wall / files, 2),
        "ms_per_file_prepare": round(1000 * m["prepare_seconds"] / files, 2),
        "files_per_s_prepare": round(files / m["prepare_seconds"], 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def parse_only(files: list[Path]) -> dict[str, float]:
    """ms per file, one process, for each reader on the same files (bad files count too)."""
    out = {}
    for name, reader in (
        ("load_midi (pretty_midi)", load_midi),
        ("read_score (symusic)", read_score),
    ):
        started = time.perf_counter()
        for p in files:
            try:
                reader(p)
            except Exception:  # noqa: BLE001, S112 - a bad file costs its parse attempt too
                continue
        out[name] = round(1000 * (time.perf_counter() - started) / len(files), 3)
    return out


def agreement(files: list[Path], workers: int) -> dict:
    with ProcessPoolExecutor(workers) as ex:
        results = list(ex.map(reader_agreement, files, chunksize=32))
    notes = sum(r.get("notes", 0) for r in results)
    matched = sum(r.get("matched", 0) for r in results)
    return {
        "files": len(files),
        "files_identical": sum(r["identical"] for r in results),
        "notes": notes,
        "notes_matched": matched,
        "share_identical_notes": matched / notes if notes else None,
        "reasons": dict(Counter(x for r in results for x in r["reasons"])),
        "differing_files": [
            {"file": str(Path(r["file"]).relative_to(data_root())), "reasons": r["reasons"]}
            for r in results
            if r["reasons"]
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--name", default="symusic")
    ap.add_argument("--src", type=Path, default=None, help="another checkout's src/ to measure")
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--scratch", type=Path, default=None, help="keep copies here (default: temp)")
    args = ap.parse_args()
    root = data_root()
    entry: dict = {"workers": args.workers, "corpora": {}}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = (args.scratch or Path(tmp)).resolve()
        for name, folder in corpora(root, scratch).items():
            files = list_files(folder, MIDI_SUFFIXES, "MIDI", None)
            warm(files)
            run = prepare_run(folder, scratch / f"cache-{name}", args.workers, args.src)
            if name != "pop909_x10":  # the copies parse as their originals do
                run["parse_only_ms_per_file"] = parse_only(files)
            entry["corpora"][name] = run
            print(f"[{name}] {json.dumps(run)}", flush=True)
    c = entry["corpora"]
    entry["goal_ms_per_file"] = GOAL_MS
    entry["goal_met"] = c["pop909"]["ms_per_file_prepare"] <= GOAL_MS
    entry["memory_x10_over_x1"] = round(
        c["pop909_x10"]["peak_rss_mb"] / c["pop909"]["peak_rss_mb"], 2
    )
    if not args.skip_agreement:
        files = list_files(root, MIDI_SUFFIXES, "MIDI", None)
        entry["agreement"] = agreement(files, args.workers)
    entry.update(provenance("python benchmarks/ingest.py " + " ".join(sys.argv[1:]), 0.0))
    entry.pop("train_seconds")
    if args.src:
        entry["src"] = str(args.src)
    save_entry(args.results, args.name, entry)
    print_table(entry)


def print_table(e: dict) -> None:
    print(f"\n{'corpus':<12} {'files':>6} {'ms/file':>8} {'files/s':>8} {'CLI ms/file':>11} "
          f"{'peak MB':>8} {'pretty_midi ms':>14} {'symusic ms':>10}")  # fmt: skip
    for name, r in e["corpora"].items():
        p = r.get("parse_only_ms_per_file", {})
        pm, sy = p.get("load_midi (pretty_midi)"), p.get("read_score (symusic)")
        print(f"{name:<12} {r['files']:>6} {r['ms_per_file_prepare']:>8.2f} "
              f"{r['files_per_s_prepare']:>8.0f} {r['ms_per_file_wall']:>11.2f} "
              f"{r['peak_rss_mb']:>8.0f} {'—' if pm is None else f'{pm:.2f}':>14} "
              f"{'—' if sy is None else f'{sy:.3f}':>10}")  # fmt: skip
    verdict = "met" if e["goal_met"] else "MISSED"
    print(f"goal {e['goal_ms_per_file']} ms/file on POP909: {verdict}; "
          f"peak memory x10 / x1: {e['memory_x10_over_x1']}")  # fmt: skip
    a = e.get("agreement")
    if a:
        print(f"readers agree: {a['files_identical']}/{a['files']} files, "
              f"{a['notes_matched']}/{a['notes']} notes; reasons {a['reasons']}")  # fmt: skip


if __name__ == "__main__":
    main()
