"""MuseGAN's music statistics of a Cadenza GAN against held-out real bars: POP909, JSB SATB.

Each dataset's GAN is trained by the real CLI (`cadenza-train experiment=pop909_gan` /
`jsb_gan`; the checkpoint kept is the one whose validation statistics sit closest to the
validation data's, `val/stat_gap`). Then:

- real: every non-overlapping 4-bar phrase of the test split (songs never seen in training);
- generated: `--phrases` phrases (4 bars each, so 2,000+ bars by default) from the EMA
  generator, hard-thresholded at 0.5, seed 0;
- every metric of `cadenza.metrics.music_sets.set_metrics` on both sets (EB, UPC, QN pooled over
  bars and notes of the non-drum tracks, per track too; TD, pitch-class entropy, scale and
  groove consistency, polyphony, pitch range, note density as means over phrases), and the
  overlapping area / KL of the per-phrase distributions (`music_compare.compare_sets`);
- the Fréchet distance of the generated phrases to half of the real ones, beside that of the
  other half, in the styles classifier's embedding (`frechet_sets.py`: which encoder and why).
  The classifier learned from 16-bar windows; a 4-bar phrase is a quarter of one.

The issue's bar (POP909): QN within 10 points of the real data's; EB and UPC within 20 % of it.

    python benchmarks/gan_metrics.py                        # both datasets
    python benchmarks/gan_metrics.py --datasets pop909 --minutes 40 model.objective=wgan_gp
    # two variants side by side, one core each, kept under their own names:
    python benchmarks/gan_metrics.py --datasets pop909 --threads 1 --name pop909_none \
        model.binarize=none &

Writes benchmarks/results/gan_metrics.json as {"<dataset>": {"real": {metric: value},
"generated": {...}, "overlap": {...}, "kl": {...}, "bar": {...}, ...}} (other datasets' entries
are kept) and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cadenza.data import MusicDataModule
from cadenza.data.sources import CoconetSource, Pop909Source
from cadenza.metrics.music import Roll
from cadenza.metrics.music_compare import compare_sets
from cadenza.metrics.music_sets import set_metrics
from cadenza.models import GANModule, GenerativeModule
from cadenza.models.gan import TOLERANCE, stat_gap
from cadenza.paths import data_root
from cli_runs import max_time, provenance, run_train, save_entry, use_threads
from frechet_sets import frechet_beside, print_frechet, real_halves

RESULTS = Path(__file__).parent / "results" / "gan_metrics.json"

# dataset -> (experiment, default minutes of training on this 2-core CPU)
DATASETS = {"pop909": ("pop909_gan", 30.0), "jsb": ("jsb_gan", 15.0)}
SHOWN = ("empty_bar_rate", "used_pitch_classes", "qualified_note_rate", "tonal_distance",
         "pitch_class_entropy", "scale_consistency", "groove_consistency", "polyphony",
         "pitch_range", "note_density")  # fmt: skip
# What MuseGAN (Dong et al., AAAI 2018) reports, as issue 4 summarises it: on Lakh Pianoroll
# Dataset bars, 82-90 % of real notes are qualified, 45-70 % of its models' notes. (LPD is
# five tracks at 24 steps/beat; not the same data. The per-track table was not available
# offline, so only these ranges are quoted.)
MUSEGAN_QN = {"real": [0.82, 0.90], "musegan_models": [0.45, 0.70]}


def train(dataset: str, minutes: float, root: Path, extra: list[str]) -> tuple[Path, str, float]:
    experiment = DATASETS[dataset][0]
    args = [
        f"experiment={experiment}", f"name={dataset}_bench",
        f"trainer.max_time={max_time(minutes)}",
        "trainer.enable_progress_bar=false", "test=false", "sample.n=0", "logger=csv",
        f"paths.root_dir={root}", *extra,
    ]  # fmt: skip
    command = "cadenza-train " + " ".join(args[:3] + extra)
    print(f"[{dataset}] {command}", flush=True)
    seconds = run_train(dataset, args, root / f"{dataset}.log")
    folder = root / "checkpoints" / f"{dataset}_bench"
    best = sorted(folder.rglob("epoch*.ckpt"))  # save_top_k=1 on val/stat_gap
    ckpt = best[0] if best else folder / "latest.ckpt"
    return ckpt, command, seconds


def real_phrases(dataset: str, model: GANModule) -> np.ndarray:
    source = (
        Pop909Source(data_root() / "pop909" / "midi")  # as configs/data/pop909_multitrack
        if dataset == "pop909"
        else CoconetSource()
    )
    dm = MusicDataModule(source, model.codec, window_bars=model.hparams.bars, transpose=None)
    ds = dm.dataset("test", training=False)
    return np.stack([ds[i][0].numpy() > 0.5 for i in range(len(ds))])


def generated_phrases(model: GANModule, n: int, batch: int = 64) -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    out = []
    for start in range(0, n, batch):
        out += [x.numpy() > 0.5 for x in model.sample(min(batch, n - start), generator=g)]
    return np.stack(out)


def latent_spread(model: GANModule, n: int = 256) -> dict[str, float]:
    """How much the EMA generator's output depends on its latents, per track: the standard
    deviation of each pixel's probability across n latents, averaged over pixels, and the
    share of pixels whose hard 0/1 value is not the same for every latent. A collapsed
    generator writes one phrase whatever the latent (issue 16's diagnosis)."""
    if model.conditional:
        return {}
    g = torch.Generator().manual_seed(1)
    model.eval()
    with torch.no_grad():
        probs = model.ema(model.latents(n, generator=g)).float()  # [n, K, N, S, P]
    hard = model.hard_rolls(probs, draw=False)
    names = [t.partition(":")[2] or t for t in model.codec.tracks]
    out = {}
    for k, name in enumerate(names):
        out[f"prob_std/{name}"] = float(probs[:, k].std(0).mean())
        varies = hard[:, k].amax(0) != hard[:, k].amin(0)
        out[f"hard_varies/{name}"] = float(varies.float().mean())
    return out


def rolls(phrases: np.ndarray, model: GANModule) -> list[Roll]:
    c = model.codec
    names = [t.partition(":")[2] if t.startswith("name:") else t for t in c.tracks]
    return [Roll(p, c.low_pitch, c.steps_per_beat, c.drums, names) for p in phrases]


def clean(d: dict) -> dict:
    """NaN -> None, so the JSON stays valid."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def evaluate(dataset: str, ckpt: Path, n_phrases: int, folder: Path, encoder: str | None = None
             ) -> dict:  # fmt: skip
    model = GenerativeModule.load(ckpt)
    assert isinstance(model, GANModule)
    real, gen = real_phrases(dataset, model), generated_phrases(model, n_phrases)
    # In the styles classifier's embedding, against held-out phrases, beside real-vs-real.
    a, b = real_halves(real, len(gen))
    frechet = frechet_beside({"generated": gen}, a, b, model.codec, folder, encoder)
    real_rolls, gen_rolls = rolls(real, model), rolls(gen, model)
    r, g = set_metrics(real_rolls), set_metrics(gen_rolls)
    comparison = compare_sets(gen_rolls, real_rolls)
    bar = {}
    for name, (kind, tol) in TOLERANCE.items():
        diff = g[name] - r[name]
        within = abs(diff) <= (tol if kind == "points" else tol * abs(r[name]))
        bar[name] = {"real": r[name], "generated": g[name], "difference": diff,
                     "tolerance": f"{tol:.0%} {kind}", "within": bool(within)}  # fmt: skip
    bar["stat_gap"] = stat_gap(g, r)
    bar["met"] = all(v["within"] for k, v in bar.items() if isinstance(v, dict))
    return {
        "real": clean(r),
        "generated": clean(g),
        "overlap": clean({k: v["overlap"] for k, v in comparison.items()}),
        "kl": clean({k: v["kl"] for k, v in comparison.items()}),
        "bar": bar,
        "frechet": frechet,
        "real_bars": int(len(real) * model.hparams.bars),
        "generated_bars": int(len(gen) * model.hparams.bars),
        "checkpoint": ckpt.name,
        "model": {k: model.hparams.get(k) for k in ("mode", "objective", "binarize", "monophonic",
                                                    "minibatch_std", "latent_size",
                                                    "generator_hidden", "critic_hidden")},
        "params": sum(p.numel() for p in model.generator.parameters()),
        "latent_spread": latent_spread(model),
        "codec": model.codec.to_dict(),
        "musegan_published_qn": MUSEGAN_QN,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--minutes", type=float, default=None, help="training budget per dataset")
    ap.add_argument("--phrases", type=int, default=512, help="generated 4-bar phrases")
    ap.add_argument("--root", type=Path, default=None, help="keep runs here (default: temp)")
    ap.add_argument("--ckpt", type=Path, default=None, help="evaluate this checkpoint instead")
    ap.add_argument("--encoder", default=None, help="classifier checkpoint for the Fréchet "
                    "distance (default: benchmarks/classify.py's styles classifier)")  # fmt: skip
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and in training (default: every core)",
    )
    ap.add_argument(
        "--name", default=None, help="results entry (default: the dataset; one dataset only)"
    )
    ap.add_argument("overrides", nargs="*", help="extra cadenza-train overrides")
    args = ap.parse_args()
    if args.name and len(args.datasets) != 1:
        ap.error("--name needs exactly one --datasets entry")
    threads = use_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.root or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            if args.ckpt is not None:
                ckpt, command, seconds = args.ckpt, f"(evaluated {args.ckpt})", None
            else:
                minutes = args.minutes or DATASETS[dataset][1]
                ckpt, command, seconds = train(dataset, minutes, root, args.overrides)
            entry = evaluate(dataset, ckpt, args.phrases, root / "frechet" / dataset, args.encoder)
            # The figure's command is this script's; the run it evaluated, its training's.
            entry.update(
                provenance(f"python benchmarks/gan_metrics.py {' '.join(sys.argv[1:])}", seconds)
            )
            entry["train_command"] = command
            entry["torch_threads"] = threads
            save_entry(args.results, args.name or dataset, entry)
            print(f"[{dataset}] bar met: {entry['bar']['met']}", flush=True)
    print_table(json.loads(args.results.read_text()) if args.results.is_file() else {})


def print_table(results: dict) -> None:
    for dataset, r in results.items():
        print(f"\n{dataset}: {r['real_bars']} held-out real bars vs {r['generated_bars']} "
              f"generated ({r['command']}, {r['date']})")  # fmt: skip
        print(f"{'metric':<22} {'real':>8} {'generated':>10} {'overlap':>8} {'KL':>7}")
        for m in SHOWN:
            vals = [r["real"].get(m), r["generated"].get(m), r["overlap"].get(m), r["kl"].get(m)]
            cells = ["—" if v is None else f"{v:.3f}" for v in vals]
            print(f"{m:<22} {cells[0]:>8} {cells[1]:>10} {cells[2]:>8} {cells[3]:>7}")
        b = r["bar"]
        verdicts = ", ".join(f"{k} {'ok' if b[k]['within'] else 'MISSED'}" for k in TOLERANCE)
        print(f"bar: {verdicts} (stat_gap {b['stat_gap']:.2f})")
        print_frechet(r.get("frechet"), "4-bar phrases")
    print(
        f"MuseGAN (published, LPD): qualified notes real {MUSEGAN_QN['real']}, "
        f"its models {MUSEGAN_QN['musegan_models']}"
    )


if __name__ == "__main__":
    main()
