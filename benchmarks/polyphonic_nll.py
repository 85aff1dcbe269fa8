"""Polyphonic music NLL on the four Boulanger-Lewandowski (2012) datasets, canonical splits.

Test NLL in nats per time step: -log p(frame) summed over the 88 keys, averaged over all test
frames, with the model chosen on validation (the definition of Boulanger-Lewandowski 2012 and
Bai et al. 2018). Trains our LSTM-NADE (LSTMModule, the same code as `cadenza-train`) and also
measures training throughput of the LightningModule against a bare PyTorch loop running the
same nn.Module on the same batches. `--family transformer` trains the frame Transformer with the
same NADE output (TransformerModule) instead; `--transpose K` shifts each training piece by a
random -K..K semitones (validation and test stay as published).

    python benchmarks/polyphonic_nll.py                    # all four datasets, LSTM-NADE
    python benchmarks/polyphonic_nll.py --dataset jsb      # one
    python benchmarks/polyphonic_nll.py --dataset jsb --family transformer --transpose 3
    python benchmarks/polyphonic_nll.py --dataset jsb --minutes 2 --threads 2

Writes benchmarks/results/polyphonic_nll.json as {"<dataset>/<family>[/transpose<K>]":
{"test_nll", "valid_nll", "params", "train_seconds", ...}} (other entries are kept), and prints
the table last.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from cadenza.atomic import write_atomically
from cadenza.data import MusicDataModule
from cadenza.data.sources import BoulangerSource
from cadenza.models import LSTMModule, TransformerModule
from cadenza.representations import PianoRollCodec
from cadenza.training.checkpoint_io import AtomicCheckpointIO
from cli_runs import cpu_model

RESULTS = Path(__file__).parent / "results" / "polyphonic_nll.json"

# Per dataset: steps per beat of the canonical rolls and training settings chosen on validation.
SETTINGS = {
    "jsb": dict(spb=1, window=None, batch=16, minutes=5.0, patience=20, dropout=0.5, lr=3e-3),
    "nottingham": dict(spb=2, window=100, batch=32, minutes=15.0, patience=8, dropout=0.3, lr=3e-3),
    "musedata": dict(spb=2, window=100, batch=32, minutes=15.0, patience=8, dropout=0.3, lr=3e-3),
    "piano_midi": dict(spb=2, window=100, batch=16, minutes=10.0, patience=8, dropout=0.5, lr=3e-3),
}

# The frame Transformer's settings per dataset, chosen on validation like SETTINGS (which it
# shares for steps per beat, windows and batches): width, depth, dropout, peak lr, epochs (the
# cosine schedule spans them), AdamW weight decay.
TRANSFORMER = {
    "jsb": dict(d_model=128, layers=3, heads=4, dropout=0.2, lr=3e-3, epochs=300, wd=0.0),
    "nottingham": dict(d_model=128, layers=3, heads=4, dropout=0.2, lr=3e-3, epochs=100, wd=0.0),
    "musedata": dict(d_model=128, layers=3, heads=4, dropout=0.2, lr=3e-3, epochs=100, wd=0.0),
    "piano_midi": dict(d_model=128, layers=3, heads=4, dropout=0.3, lr=3e-3, epochs=200, wd=0.0),
}

# Published test NLL (nats per time step). Boulanger-Lewandowski et al. 2012 (RNN-NADE),
# Bai et al. 2018 (LSTM, TCN), Vohra et al. 2015 (DBN-LSTM).
PUBLISHED = {
    "jsb": {"LSTM": 8.45, "TCN": 8.10, "RNN-NADE": 5.56, "DBN-LSTM": 3.47},
    "nottingham": {"LSTM": 3.29, "TCN": 3.07, "RNN-NADE": 2.31, "DBN-LSTM": 1.32},
    "musedata": {"RNN-NADE": 5.60},
    "piano_midi": {"RNN-NADE": 7.05},
}


def build(
    name: str, args: argparse.Namespace, cache: Path
) -> tuple[MusicDataModule, LSTMModule | TransformerModule]:
    s = SETTINGS[name]
    codec = PianoRollCodec(steps_per_beat=s["spb"], low_pitch=21, high_pitch=108)
    dm = MusicDataModule(
        BoulangerSource(name),
        codec,
        cache_dir=str(cache),
        batch_size=s["batch"],
        train_window=s["window"],
        transpose=[-args.transpose, args.transpose] if args.transpose else None,
    )
    if args.family == "transformer":
        return dm, build_transformer(name, args, codec)
    lr = args.lr or s["lr"]
    dropout = s["dropout"] if args.dropout is None else args.dropout
    model = LSTMModule(
        codec.to_dict(),
        hidden_size=args.hidden,
        nade_hidden=args.nade_hidden,
        dropout=dropout,
        embedding_dim=args.embedding,
        optimizer=partial(torch.optim.Adam, lr=lr),
        # Halve the step size when validation stalls: the last few tenths of a nat come late.
        scheduler=partial(
            torch.optim.lr_scheduler.ReduceLROnPlateau,
            mode="min",
            factor=0.5,
            patience=args.plateau,
        )
        if args.plateau
        else None,
    )
    return dm, model


def transformer_settings(name: str, args: argparse.Namespace) -> dict:
    t = dict(TRANSFORMER[name])
    for key in ("d_model", "layers", "dropout", "lr", "epochs"):
        if getattr(args, key, None) is not None:
            t[key] = getattr(args, key)
    return t


def build_transformer(
    name: str, args: argparse.Namespace, codec: PianoRollCodec
) -> TransformerModule:
    t = transformer_settings(name, args)
    return TransformerModule(
        codec.to_dict(),
        d_model=t["d_model"],
        n_layers=t["layers"],
        n_heads=t["heads"],
        n_kv_heads=1,  # as model/transformer.yaml
        dropout=t["dropout"],
        nade_hidden=args.nade_hidden,
        optimizer=partial(torch.optim.AdamW, lr=t["lr"], betas=(0.9, 0.98)),
        weight_decay=t["wd"],
        warmup_steps=args.warmup,
    )


def describe(name: str, args: argparse.Namespace) -> str:
    aug = f", transpose +-{args.transpose}" if args.transpose else ""
    if args.family == "transformer":
        t = transformer_settings(name, args)
        return (
            f"Transformer(d {t['d_model']}, {t['layers']} layers, {t['heads']} heads, 1 kv head)-"
            f"NADE({args.nade_hidden}), dropout {t['dropout']}, AdamW lr {t['lr']} wd {t['wd']}, "
            f"warm-up {args.warmup} steps, cosine over {t['epochs']} epochs, clip {args.clip}{aug}"
        )
    return (
        f"LSTM({args.hidden})-NADE({args.nade_hidden}), dropout {model_dropout(name, args)}, "
        f"Adam lr {args.lr or SETTINGS[name]['lr']}, clip {args.clip}, plateau patience "
        f"{args.plateau}{aug}"
    )


def train_and_test(name: str, args: argparse.Namespace, cache: Path) -> dict:
    pl.seed_everything(args.seed, workers=True)
    dm, model = build(name, args, cache)
    minutes = args.minutes or SETTINGS[name]["minutes"]
    # The Transformer's cosine schedule spans a fixed number of epochs; it keeps the best
    # validation epoch but does not stop early (the step size is still falling).
    transformer = args.family == "transformer"
    epochs = transformer_settings(name, args)["epochs"] if transformer else args.max_epochs
    patience = epochs if transformer else SETTINGS[name]["patience"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = ModelCheckpoint(dirpath=tmp, monitor="val/nll", mode="min", save_top_k=1)
        stop = EarlyStopping(monitor="val/nll", mode="min", patience=patience)
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=epochs,
            max_time={"minutes": minutes},
            gradient_clip_val=args.clip,
            logger=False,
            callbacks=[ckpt, stop],
            enable_progress_bar=False,
            enable_model_summary=False,
            plugins=[AtomicCheckpointIO()],
        )
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        train_seconds = time.perf_counter() - t0
        test = trainer.test(model, datamodule=dm, ckpt_path=ckpt.best_model_path, verbose=False)
    return {
        "test_nll": round(float(test[0]["test/nll"]), 4),
        "valid_nll": round(float(ckpt.best_model_score), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_seconds, 1),
        "epochs": trainer.current_epoch,
        "train_frames": dm.split("train").total_steps,
        "test_frames": dm.split("test").total_steps,
    }


class _StepTimer(Callback):
    """Wall time of training batches after `warmup` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.t1 = time.perf_counter()


def _bare_run(
    name: str, args: argparse.Namespace, cache: Path, batches: list, warmup: int
) -> float:
    """Seconds for batches[warmup:] in a plain PyTorch loop (Adam + clipping, as Lightning)."""
    torch.manual_seed(args.seed)
    _, model = build(name, args, cache)
    net = model.net.train()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr or SETTINGS[name]["lr"])
    sched = None
    if args.family == "transformer":  # its own AdamW, the schedule stepped as Lightning does
        conf = model.configure_optimizers()
        opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nll, count = net.loss(batch)
        (nll / count).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
        opt.step()
        if sched is not None:
            sched.step()
    return time.perf_counter() - t0


def _lightning_run(
    name: str, args: argparse.Namespace, cache: Path, batches: list, warmup: int
) -> float:
    """Seconds for batches[warmup:] through LSTMModule in a Trainer."""
    torch.manual_seed(args.seed)
    _, model = build(name, args, cache)
    timer = _StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        gradient_clip_val=args.clip,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(model, train_dataloaders=loader)
    return timer.t1 - timer.t0


def throughput(
    name: str, args: argparse.Namespace, cache: Path, n_batches: int = 60, repeats: int = 3
) -> dict:
    """Training frames per second: LightningModule in a Trainer vs a bare loop, same nn.Module
    and the same batches. The two alternate `repeats` times and the medians are compared, so
    drift on a shared machine hits both alike."""
    warmup = 5
    # Constant step size: a plateau scheduler needs val/nll, and this run has no validation.
    args = argparse.Namespace(**{**vars(args), "plateau": 0})
    dm, _ = build(name, args, cache)
    dm.setup("fit")
    torch.manual_seed(args.seed)
    loader = dm.train_dataloader()
    batches = []
    while len(batches) < n_batches:
        batches.extend(loader)
    batches = batches[:n_batches]
    frames = sum(int(b.lengths.sum()) for b in batches[warmup:])
    bare, lightning = [], []
    for _ in range(repeats):
        bare.append(frames / _bare_run(name, args, cache, batches, warmup))
        lightning.append(frames / _lightning_run(name, args, cache, batches, warmup))
    bare_fps, lightning_fps = statistics.median(bare), statistics.median(lightning)
    return {
        "bare_frames_per_s": round(bare_fps, 1),
        "lightning_frames_per_s": round(lightning_fps, 1),
        "lightning_over_bare": round(lightning_fps / bare_fps, 3),
        "throughput_runs": repeats,
        "throughput_batches_timed": n_batches - warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=[*SETTINGS, "all"], default="all")
    parser.add_argument("--family", choices=["lstm", "transformer"], default="lstm")
    parser.add_argument("--transpose", type=int, default=0, help="train on random +-K shifts")
    parser.add_argument("--d-model", type=int, default=None, help="transformer width")
    parser.add_argument("--layers", type=int, default=None, help="transformer depth")
    parser.add_argument("--epochs", type=int, default=None, help="transformer cosine length")
    parser.add_argument("--warmup", type=int, default=50, help="transformer warm-up steps")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per dataset")
    parser.add_argument("--max-epochs", type=int, default=500)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--nade-hidden", type=int, default=150)
    parser.add_argument("--embedding", type=int, default=0, help="0: raw frames into the LSTM")
    parser.add_argument("--dropout", type=float, default=None, help="default: per dataset")
    parser.add_argument("--lr", type=float, default=None, help="default: per dataset")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--clip", type=float, default=5.0, help="gradient norm clipping")
    parser.add_argument(
        "--plateau",
        type=int,
        default=5,
        help="ReduceLROnPlateau patience in epochs (0: constant lr)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="re-measure throughput, keep the stored NLL figures",
    )
    parser.add_argument("--cache", default=os.environ.get("CADENZA_CACHE", "data/processed"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON to update")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    names = list(SETTINGS) if args.dataset == "all" else [args.dataset]
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    # Entries written before the Transformer existed are keyed by dataset alone: LSTM-NADE.
    results = {(k if "/" in k else f"{k}/lstm"): v for k, v in results.items()}
    augment = f"/transpose{args.transpose}" if args.transpose else ""
    cache = Path(args.cache)
    for name in names:
        key = f"{name}/{args.family}{augment}"
        entry = results.get(key, {}) if args.throughput_only else train_and_test(name, args, cache)
        command = " ".join(["python benchmarks/polyphonic_nll.py", *sys.argv[1:]])
        machine = f"{cpu_model()}, {torch.get_num_threads()} threads, CPU"
        if not args.no_throughput:
            # Its own record: --throughput-only measures again without training again.
            entry.update(throughput(name, args, cache))
            entry.update({"throughput_command": command, "throughput_machine": machine,
                          "throughput_date": date.today().isoformat()})  # fmt: skip
        if not args.throughput_only:
            entry.update(
                {
                    "family": args.family,
                    "transpose": args.transpose,
                    "model": describe(name, args),
                    "machine": machine,
                    "date": date.today().isoformat(),
                    "command": command,
                }
            )
        results[key] = entry
        write_atomically(args.results, json.dumps(results, indent=2) + "\n")
    print_table(results)


def model_dropout(name: str, args: argparse.Namespace) -> float:
    return SETTINGS[name]["dropout"] if args.dropout is None else args.dropout


def print_table(results: dict) -> None:
    header = f"{'dataset':<11} {'family':<15} {'ours test':>9} {'valid':>7} {'params':>8} "
    header += f"{'train s':>8} {'L/bare':>7}  published (test NLL)"
    print(header)
    print("-" * len(header))
    for key in sorted(results, key=lambda k: (list(SETTINGS).index(k.split("/")[0]), k)):
        name, family = key.split("/")[:2]
        r = results[key]
        pub = ", ".join(f"{k} {v}" for k, v in PUBLISHED[name].items())
        ratio = r.get("lightning_over_bare", "-")
        family += f" +-{r['transpose']}" if r.get("transpose") else ""
        print(  # a throughput-only entry has no training figures: "-"
            f"{name:<11} {family:<15} {_f(r.get('test_nll'), '9.3f')} "
            f"{_f(r.get('valid_nll'), '7.3f')} {_f(r.get('params'), '8')} "
            f"{_f(r.get('train_seconds'), '8.0f')} {ratio:>7}  {pub}"
        )


def _f(value: float | int | None, spec: str) -> str:
    width = int(spec.split(".")[0].rstrip("df") or 0)
    return f"{value:>{spec}}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    main()
