"""How fast Cadenza turns real MIDI into audio and audio into features, on this CPU.

On the first `--songs` POP909 songs (sorted by name), the first `--seconds` of each:

- rendering: real-time factor (seconds of audio per wall second) of `io.render.render_midi` with
  FluidSynth and with the built-in synthesizer, at 22050 and 44100 Hz. The MIDI is parsed
  beforehand, so parsing is not counted; FluidSynth's time includes its process start and the
  WAV it writes and Cadenza reads back, as every real render pays them;
- features: seconds of audio per wall second of every feature of `io.audio` (default
  AudioFeatures: 22050 Hz, hop 256) on the FluidSynth renders at 22050 Hz, Griffin-Lim
  (`mel_to_audio`, 64 iterations) from each song's log-mel, and `recommend.audio_summary`
  (from the Waveform, and end to end from the MIDI file, FluidSynth render included).

Every measurement first makes one warm-up call on the first song (numba JIT, filter banks,
FluidSynth loading its SoundFont from disk), timed and reported on its own as `warmup_s`: the
whole first call, so its overhead is warmup_s minus one song's steady time (seconds / speed).
Then it times `--repeats` passes over all songs. A pass's figure is (audio seconds) / (wall
seconds) summed over the songs; the table shows the median pass and the slowest-fastest range.
Warm-ups run in the table's order in one process, so a later feature's warm-up is shorter where
it reuses what an earlier one compiled.

Threads are left as installed (reported in the JSON): librosa's FFTs (scipy.fft) run on one
thread, OpenBLAS and numba on as many as there are cores, FluidSynth renders on one core.

    CADENZA_DATA=/work/shared/data python benchmarks/audio_throughput.py
    python benchmarks/audio_throughput.py --songs 4 --seconds 30 --repeats 1

Writes benchmarks/results/audio_throughput.json and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import threadpoolctl

from cadenza.atomic import write_atomically
from cadenza.io import audio
from cadenza.io.audio import AudioFeatures, Waveform
from cadenza.io.midi import load_midi
from cadenza.io.render import fluidsynth_status, render_midi
from cadenza.paths import data_root
from cadenza.recommend.audio_features import audio_summary
from cli_runs import provenance

RESULTS = Path(__file__).parent / "results" / "audio_throughput.json"
SAMPLE_RATES = (22050, 44100)
SYNTHS = ("fluidsynth", "builtin")
GRIFFIN_LIM_ITERATIONS = 64
FEATURES = ("log_mel", "cqt", "chroma", "onset_strength", "beats", "mfcc", "spectral_stats")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def measure(
    calls: list[Callable[[], Any]], audio_seconds: list[float] | None, repeats: int
) -> dict[str, Any]:
    """One warm-up call (calls[0]), then `repeats` timed passes over all calls. Without
    `audio_seconds`, each call returns the seconds of audio it made.
    -> {"speed": median audio s per wall s, "per_repeat": [...], "warmup_s": ...}."""
    _, warmup = timed(calls[0])
    speeds = []
    for _ in range(repeats):
        outs, walls = zip(*(timed(call) for call in calls), strict=True)
        audio_seconds = list(outs) if audio_seconds is None else audio_seconds
        speeds.append(sum(audio_seconds) / sum(walls))
    return {
        "speed": statistics.median(speeds),
        "per_repeat": [round(s, 2) for s in speeds],
        "warmup_s": round(warmup, 3),
        "audio_seconds": round(sum(audio_seconds), 2),
    }


def render_rows(midis: list, seconds: float, repeats: int) -> dict[str, dict]:
    rows = {}
    for synth in SYNTHS:
        for sr in SAMPLE_RATES:
            calls = [
                (lambda pm=pm, sr=sr, synth=synth: render_midi(pm, sr, synth=synth,
                                                               max_seconds=seconds).seconds)
                for pm in midis
            ]  # fmt: skip
            # Lengths from the renders themselves: a song may end before `seconds`.
            rows[f"render/{synth}@{sr}"] = measure(calls, None, repeats)
            print(f"render/{synth}@{sr}: {rows[f'render/{synth}@{sr}']}", flush=True)
    return rows


def feature_rows(
    waves: list[Waveform], paths: list[Path], seconds: float, repeats: int
) -> dict[str, dict]:
    p = AudioFeatures()
    lengths = [w.seconds for w in waves]
    rows = {}
    for name in FEATURES:
        fn = getattr(audio, name)
        calls = [lambda w=w, fn=fn: fn(w, p) for w in waves]
        rows[f"features/{name}"] = measure(calls, lengths, repeats)
        print(f"features/{name}: {rows[f'features/{name}']}", flush=True)
    mels = [audio.log_mel(w, p) for w in waves]  # after log_mel's own warm-up was timed
    griffin_lim = [
        lambda m=m: audio.mel_to_audio(m, p, n_iter=GRIFFIN_LIM_ITERATIONS) for m in mels
    ]
    rows["features/mel_to_audio"] = measure(griffin_lim, lengths, repeats)
    print(f"features/mel_to_audio: {rows['features/mel_to_audio']}", flush=True)
    summaries = [lambda w=w: audio_summary(w, p, max_seconds=None) for w in waves]
    rows["features/audio_summary"] = measure(summaries, lengths, repeats)
    end_to_end = [
        lambda path=path: audio_summary(path, p, max_seconds=seconds, synth="fluidsynth")
        for path in paths
    ]
    rows["features/audio_summary_from_midi"] = measure(end_to_end, lengths, repeats)
    print(f"features/audio_summary(_from_midi): {rows['features/audio_summary']} "
          f"{rows['features/audio_summary_from_midi']}", flush=True)  # fmt: skip
    return rows


def thread_settings() -> dict[str, Any]:
    pools = threadpoolctl.threadpool_info()
    return {
        "cpu_count": os.cpu_count(),
        "blas_and_openmp_pools": [
            {k: pool.get(k) for k in ("user_api", "internal_api", "num_threads")} for pool in pools
        ],
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "scipy_fft_workers": 1,  # scipy.fft's default; librosa does not pass `workers`
        "fluidsynth": "one render process at a time, its default (synth.cpu-cores=1)",
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--songs", type=int, default=8, help="first N POP909 songs")
    ap.add_argument("--seconds", type=float, default=60.0, help="first S seconds of each")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per measurement")
    args = ap.parse_args()
    usable, why = fluidsynth_status()
    if not usable:
        sys.exit(f"FluidSynth is needed for this benchmark: {why}")
    folder = data_root() / "pop909" / "midi"
    paths = sorted(folder.glob("*.mid"))[: args.songs]
    if len(paths) < args.songs:
        sys.exit(f"found {len(paths)} POP909 MIDI files in {folder}; set CADENZA_DATA")
    load_before = os.getloadavg()
    started = time.perf_counter()

    midis = [load_midi(path) for path in paths]
    rows = render_rows(midis, args.seconds, args.repeats)
    waves = [render_midi(pm, AudioFeatures().sample_rate, synth="fluidsynth",
                         max_seconds=args.seconds) for pm in midis]  # fmt: skip
    rows.update(feature_rows(waves, paths, args.seconds, args.repeats))

    command = "python benchmarks/audio_throughput.py " + " ".join(sys.argv[1:])
    info = provenance(command.strip(), time.perf_counter() - started)
    info["wall_seconds"] = info.pop("train_seconds")
    info["load_average_before_after"] = [round(x, 2) for x in (load_before[0], os.getloadavg()[0])]
    results = {
        "parameters": {
            "songs": [p.stem for p in paths],
            "seconds": args.seconds,
            "repeats": args.repeats,
            "features": AudioFeatures().to_dict(),
            "griffin_lim_iterations": GRIFFIN_LIM_ITERATIONS,
        },  # fmt: skip
        "threads": thread_settings(),
        **info,
        "measurements": rows,
    }
    write_atomically(args.results, json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    prm = results["parameters"]
    print(f"\n{len(prm['songs'])} POP909 songs x first {prm['seconds']:.0f} s, "
          f"{prm['repeats']} timed passes ({results['command']}, {results['date']}; "
          f"{results['machine']}; load avg {results['load_average_before_after']})")  # fmt: skip
    print(f"{'measurement':<36} {'audio s / wall s':>16} {'range':>17} {'warm-up s':>10}")
    for key, r in results["measurements"].items():
        lo, hi = min(r["per_repeat"]), max(r["per_repeat"])
        print(f"{key:<36} {r['speed']:>16.1f} {f'{lo:.1f}-{hi:.1f}':>17} {r['warmup_s']:>10.3f}")


if __name__ == "__main__":
    main()
