"""MusicVAE reconstruction on held-out Nottingham melodies: 2 and 16 bars, flat vs hierarchical.

Each config is trained by the real CLI (`cadenza-train experiment=nottingham_vae_<2|16>bar
model.decoder=...`, the checkpoint chosen on validation sampled accuracy) and then scored on
every non-overlapping window of the test tunes (tunes split by content hash, never seen in
training):

- recon_acc_tf: per-step token accuracy of decode(mu) with teacher forcing;
- recon_acc_sampled: the same with the decoder reading only its own (greedy) outputs, the
  accuracy of what a producer hears when reconstructing;
- onset_f1: note onsets of the input against those of the sampled reconstruction (F1 over
  steps; onset_pitch_f1 also asks for the pitch), since HOLD dominates accuracy: all_hold_acc,
  the accuracy of writing HOLD everywhere on the same windows, is the floor a stalled decoder
  sits at, and it scores 0 onset F1;
- greedy decoding is the model's (`model.greedy`: event first, then pitch, by default);
- kl: KL(q(z|x) || p(z)) in nats per window; elbo; active latent units;
- interpolation smoothness: over pairs of test windows, the mean |change| per step of an
  attribute (note density, mean pitch) along the 9-point latent path (slerp of the codes,
  greedy decode) and along MusicVAE's naive data-space crossfade (each token from b with
  probability alpha, else from a), plus how far each path's total change exceeds the direct
  change between its endpoints (1.0 = monotone);
- the Fréchet distance of prior samples, and of reconstructions, to half of the test windows,
  beside that of the other half, in the styles classifier's embedding (`frechet_sets.py`). The
  classifier learned from 16-bar windows of whole pieces, not lone melodies; a 2-bar window is
  an eighth of one.

    python benchmarks/vae_reconstruction.py                         # all four configs
    python benchmarks/vae_reconstruction.py --configs melody_16bar_hier --minutes 30
    python benchmarks/vae_reconstruction.py --configs melody_16bar_flat --threads 1 &  # side by
    python benchmarks/vae_reconstruction.py --configs melody_16bar_hier --threads 1 &  # side
    python benchmarks/vae_reconstruction.py --configs melody_16bar_hier --name hier_fb1024 \
        model.free_bits=1024                                      # a variant, kept by its name

Writes benchmarks/results/vae_reconstruction.json as {"<config>": {"recon_acc_tf",
"recon_acc_sampled", "kl", ...}} (other configs' entries are kept) and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from cadenza.data import MusicDataModule
from cadenza.data.sources import MidiFolderSource
from cadenza.metrics.attributes import ATTRIBUTES, attribute_table
from cadenza.models import GenerativeModule, VAEModule
from cadenza.paths import data_root
from cli_runs import max_time, provenance, run_train, save_entry, use_threads
from frechet_sets import frechet_beside, print_frechet, real_halves

RESULTS = Path(__file__).parent / "results" / "vae_reconstruction.json"

# config -> (experiment, decoder, default minutes of training on this 2-core CPU)
CONFIGS = {
    "melody_2bar_flat": ("nottingham_vae_2bar", "flat", 6.0),
    "melody_2bar_hier": ("nottingham_vae_2bar", "hierarchical", 6.0),
    # Issue 16's budget: at most 60 CPU-minutes each (55 min on one core each, side by side:
    # --threads 1, one process per config).
    "melody_16bar_flat": ("nottingham_vae_16bar", "flat", 55.0),
    "melody_16bar_hier": ("nottingham_vae_16bar", "hierarchical", 55.0),
}
# MusicVAE (Roberts et al. 2018, Table 1) on Lakh MIDI melodies, for scale; not the same data.
MUSICVAE = {
    "melody_2bar_flat": (0.986, 0.951),
    "melody_16bar_flat": (0.883, 0.620),
    "melody_16bar_hier": (0.919, 0.812),
}
PAIRS, PATH_STEPS = 64, 9
FRECHET_PIECES = 512  # prior samples drawn for the Fréchet distance (at most half the windows)


def train(config: str, minutes: float, root: Path, extra: list[str]) -> tuple[Path, str, float]:
    experiment, decoder, _ = CONFIGS[config]
    args = [
        f"experiment={experiment}", f"model.decoder={decoder}", f"name={config}",
        f"trainer.max_time={max_time(minutes)}", "trainer.enable_progress_bar=false", "test=false",
        "sample.n=0", "logger=csv", f"paths.root_dir={root}", *extra,
    ]  # fmt: skip
    command = "cadenza-train " + " ".join(args[:4] + args[4:5] + extra)
    print(f"[{config}] {command}", flush=True)
    seconds = run_train(config, args, root / f"{config}.log")
    return root / "checkpoints" / config / "latest.ckpt", command, seconds


def test_windows(model: VAEModule, batch_size: int = 128) -> tuple[MusicDataModule, torch.Tensor]:
    dm = MusicDataModule(
        MidiFolderSource(str(data_root() / "nottingham" / "MIDI" / "melody")),
        model.codec,
        batch_size=batch_size,
        window_bars=model.hparams.bars,
        transpose=None,
    )
    ds = dm.dataset("test", training=False)
    return dm, torch.stack([ds[i][0] for i in range(len(ds))])


def crossfade(a: torch.Tensor, b: torch.Tensor, alphas: np.ndarray, rng: np.random.Generator):
    """MusicVAE's data-space baseline: token t from b with probability alpha, else from a."""
    return [torch.where(torch.from_numpy(rng.random(a.shape) < al), b, a) for al in alphas]


def path_stats(model: VAEModule, paths: list[list[torch.Tensor]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for col, name in enumerate(ATTRIBUTES):
        if name not in ("density", "mean_pitch"):
            continue
        steps, excess = [], []
        for path in paths:
            vals = attribute_table(model.codec, [model.as_piece(torch.as_tensor(w)).numpy()
                                                 for w in path])[:, col]  # fmt: skip
            if not np.isfinite(vals).all():
                continue
            d = np.abs(np.diff(vals))
            steps.append(d.mean())
            direct = abs(vals[-1] - vals[0])
            if direct > 1e-6:
                excess.append(d.sum() / direct)
        # None, not NaN, when no path qualifies (e.g. every decode is the same): valid JSON.
        out[f"{name}_step"] = float(np.mean(steps)) if steps else None
        out[f"{name}_excess"] = float(np.median(excess)) if excess else None
    return out


def interpolation(model: VAEModule, x: torch.Tensor, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    pairs = [tuple(rng.choice(len(x), 2, replace=False)) for _ in range(PAIRS)]
    alphas = np.linspace(0, 1, PATH_STEPS)
    latent, data = [], []
    for i, j in pairs:
        latent.append(list(model.interpolate(x[i], x[j], PATH_STEPS)))
        xa, xb = model.as_tracks(x[i][None])[0], model.as_tracks(x[j][None])[0]
        data.append(crossfade(xa, xb, alphas, rng))
    return {"latent": path_stats(model, latent), "crossfade": path_stats(model, data)}


def onset_scores(model: VAEModule, x: torch.Tensor, batch: int = 64) -> dict[str, float]:
    """Note onsets of every input window against those of its greedy sampled reconstruction,
    pooled over windows: F1 on the step alone, and on step + pitch. Beside them, the accuracy
    of writing HOLD everywhere (the baseline a stalled decoder sits at; its onset F1 is 0)."""
    events = torch.tensor(model.codec.token_events)
    note = int(events.max())  # NOTE_ON is the last event class
    hold = int((events == 1).nonzero()[0])  # HOLD's id
    truth = model.as_tracks(x)
    guess = torch.cat([model.reconstruct(truth[i : i + batch]) for i in range(0, len(x), batch)])
    on_t, on_g = events[truth] == note, events[guess] == note
    tp_step = (on_t & on_g).sum().item()
    tp_pitch = (on_t & on_g & (truth == guess)).sum().item()
    n_t, n_g = on_t.sum().item(), on_g.sum().item()

    def f1(tp: int) -> float:
        return 2 * tp / (n_t + n_g) if n_t + n_g else float("nan")

    return {
        "onset_f1": f1(tp_step),
        "onset_pitch_f1": f1(tp_pitch),
        "onsets_per_window": {"input": n_t / len(x), "reconstruction": n_g / len(x)},
        "all_hold_acc": (truth == hold).float().mean().item(),
    }


def frechet(model: VAEModule, x: torch.Tensor, folder: Path, encoder: str | None) -> dict:
    """Prior samples (temperature 1, seed 0), and the greedy reconstructions of real set B,
    against real set A (`frechet_sets.real_halves`), beside B itself: how far the model's own
    music is from held-out melodies, and how much of that the reconstruction alone loses."""
    a, b = real_halves(list(x), FRECHET_PIECES)
    prior = model.sample(len(b), generator=torch.Generator().manual_seed(0))
    batch = torch.stack(b)
    recon = torch.cat([model.reconstruct(batch[i : i + 64]) for i in range(0, len(b), 64)])
    generated = {"prior samples": prior, "reconstructions of B": [model.as_piece(r) for r in recon]}
    return frechet_beside(generated, a, b, model.codec, folder, encoder)


def evaluate(ckpt: Path, folder: Path, encoder: str | None = None) -> dict:
    model = GenerativeModule.load(ckpt)
    assert isinstance(model, VAEModule)
    dm, x = test_windows(model)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (m,) = trainer.test(model, dataloaders=dm.test_dataloader(), verbose=False)
    return {
        "recon_acc_tf": m["test/recon_acc_tf"],
        "recon_acc_sampled": m["test/recon_acc_sampled"],
        "kl": m["test/kl"],
        "elbo": m["test/elbo"],
        "active_units": m["test/active_units"],
        **onset_scores(model, x),
        "greedy": model.hparams.get("greedy", "token"),
        "test_windows": len(x),
        "params": sum(p.numel() for p in model.parameters()),
        "interpolation": interpolation(model, x),
        "frechet": frechet(model, x, folder, encoder),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="the JSON written (default: the tracked results file)")  # fmt: skip
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--minutes", type=float, default=None, help="training budget per config")
    ap.add_argument("--root", type=Path, default=None, help="keep runs here (default: temp)")
    ap.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="evaluate this checkpoint instead of training (one config)",
    )
    ap.add_argument(
        "--encoder",
        default=None,
        help="classifier checkpoint for the Fréchet "
        "distance (default: benchmarks/classify.py's styles classifier)",
    )
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads here and in training (default: every core); two "
                    "configs can then train side by side, one core each")  # fmt: skip
    ap.add_argument(
        "--name",
        default=None,
        help="results entry for a variant (default: the config; one config only)",
    )
    ap.add_argument("overrides", nargs="*", help="extra cadenza-train overrides")
    args = ap.parse_args()
    if (args.name or args.ckpt) and len(args.configs) != 1:
        ap.error("--name and --ckpt need exactly one --configs entry")
    threads = use_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.root or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for config in args.configs:
            if args.ckpt is not None:
                ckpt, command, seconds = args.ckpt, f"(evaluated {args.ckpt})", None
            else:
                minutes = args.minutes or CONFIGS[config][2]
                ckpt, command, seconds = train(config, minutes, root, args.overrides)
            entry = evaluate(ckpt, root / "frechet" / config, args.encoder)
            # The figure's command is this script's; the run it evaluated, its training's.
            entry.update(
                provenance(
                    f"python benchmarks/vae_reconstruction.py {' '.join(sys.argv[1:])}", seconds
                )
            )
            entry["train_command"] = command
            entry["torch_threads"] = threads
            entry["config"] = config
            save_entry(args.results, args.name or config, entry)
            print(
                f"[{config}] "
                + json.dumps({k: entry[k] for k in ("recon_acc_tf", "recon_acc_sampled", "kl")}),
                flush=True,
            )
    print_table(json.loads(args.results.read_text()))


def print_table(results: dict) -> None:
    print(
        "\nHeld-out Nottingham melody windows (test tunes), greedy decoding from the posterior mean"
    )
    head = f"{'config':<26} {'acc TF':>7} {'acc sampled':>11} {'all-HOLD':>8} {'onset F1':>8} "
    head += f"{'KL nats':>8} {'AU':>4} "
    head += f"{'density/step lat|xfade':>23} {'excess lat|xfade':>17} {'MusicVAE TF|samp':>17}"
    print(head)
    # The four configs first, then named variants (--name) in the order they were written.
    for config in sorted(
        results, key=lambda k: (k not in CONFIGS, list(CONFIGS).index(k) if k in CONFIGS else 0)
    ):
        r = results[config]
        il, ix = r["interpolation"]["latent"], r["interpolation"]["crossfade"]
        ref = MUSICVAE.get(r.get("config", config))
        ref_s = f"{ref[0]:.3f}|{ref[1]:.3f}" if ref else "-"
        print(
            f"{config:<26} {r['recon_acc_tf']:>7.3f} {r['recon_acc_sampled']:>11.3f} "
            f"{_f(r.get('all_hold_acc')):>8} {_f(r.get('onset_f1')):>8} "
            f"{r['kl']:>8.1f} {r['active_units']:>4.0f} "
            f"{_f(il['density_step']):>11}|{_f(ix['density_step']):<11} "
            f"{_f(il['density_excess']):>8}|{_f(ix['density_excess']):<8} {ref_s:>17}"
        )
    for config, r in results.items():
        if r.get("frechet"):
            print(f"\n{config}: ", end="")
            print_frechet(r["frechet"], f"{r['config'].split('_')[1]} melody windows")


def _f(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"


if __name__ == "__main__":
    main()
