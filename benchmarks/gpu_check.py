"""Every family on one device with bf16-mixed, in one prepared run (issue 17): a few hundred
optimizer steps each on real data at a realistic width, then the longest run that matters.

    python benchmarks/gpu_check.py                              # the GPU run, about 8 minutes
    python benchmarks/gpu_check.py --device cpu --minutes 1     # the same code paths on CPU (CI)
    python benchmarks/gpu_check.py --device cpu --minutes 15 --long none --results ...cpu.json

For each family it reports:
- the training loss over the steps (finite, and falling for the likelihood families; a GAN's
  losses are adversarial and are reported, not required to fall);
- throughput in codec steps per second (frames, tokens or mel frames: the real, unpadded steps
  of each batch) and windows per second, after the first steps (cuDNN autotuning, allocation);
- peak device memory;
- model FLOP utilisation for the LSTM and the Transformer, from the FLOP count in `flops_per_step`;
- a checkpoint written on the device (through the atomic checkpoint I/O) that a CPU-only process
  (CUDA_VISIBLE_DEVICES="") loads weights-only and samples from;
- sampling on the device twice with one seed, which must give the same notes;
- every ability the family declares (continuation, condition, reconstruct, interpolate,
  attributes, token filters, styles), asked for once on the device as `cadenza-sample
  device=cuda` and `cadenza-serve device=cuda` would: each must answer with music;
- whether the service's batched loop gives each request the notes it gets alone (reported).

The remaining minutes go to the long run (`--long vae`: the 16-bar hierarchical VAE at
MusicVAE-like width, 1024-unit LSTMs and batch 256), validated at its end on the same metrics as
BENCHMARKS.md's CPU run. Results: benchmarks/results/gpu_check.json (`--results`).

On a CPU the same models train at smaller batches (`CPU_BATCHES`): a CPU's throughput per step
is saturated long before a GPU batch, and the widths (the parameters) stay the same.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from cadenza.atomic import write_atomically
from cli_runs import compose_experiment, max_time

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Check:
    experiment: str
    width: list[str]  # the realistic width, on every device
    gpu_batch: list[str]  # batch and window on a GPU
    cpu_batch: list[str]  # batch and window on a CPU (same widths)
    files: str | None = None  # the data.source key that limits how many files are prepared
    max_files: int | None = None  # at most this many, whatever --files says
    loss: str = "train/loss"  # the step loss that must fall (None: adversarial)
    falls: bool = True


CHECKS = {
    "lstm": Check(
        "nottingham_lstm",
        # No validation in the check, so no schedule that waits on a validation plateau.
        ["model.hidden_size=1024", "model.nade_hidden=512", "model.scheduler=null"],
        ["data.batch_size=64"],
        ["data.batch_size=4", "data.train_window=50"],
    ),
    "transformer": Check(
        "pop909_transformer",
        [
            "model.d_model=512",
            "model.n_layers=8",
            "model.n_heads=8",
            "model.n_kv_heads=2",
            "model.warmup_steps=30",
            "model.cosine_steps=300",
        ],
        ["data.batch_size=32", "data.train_window=1024"],
        ["data.batch_size=2", "data.train_window=128"],
        files="data.source.limit",
    ),
    "vae": Check(
        "nottingham_vae_16bar",
        ["model.encoder_hidden=512", "model.decoder_hidden=512", "model.conductor_hidden=512"],
        ["data.batch_size=64"],
        ["data.batch_size=2"],
        files="data.source.limit",
    ),
    "gan": Check(
        "pop909_gan",
        ["model.generator_hidden=256", "model.critic_hidden=256"],
        ["data.batch_size=64"],
        ["data.batch_size=4"],
        files="data.source.limit",
        loss="train/critic_loss",
        falls=False,
    ),
    "mel_vae": Check(
        "pop909_audio_vae",
        [],
        ["data.batch_size=64"],
        ["data.batch_size=4", "data.source.max_seconds=20"],
        files="data.source.midi.limit",
        max_files=48,  # rendering audio is the slow part of preparing
    ),
}
# The long run: MusicVAE's hierarchical 16-bar model is 2048/1024-unit LSTMs at batch 512.
LONG = {
    "vae": Check(
        "nottingham_vae_16bar",
        [
            "model.encoder_hidden=1024",
            "model.decoder_hidden=1024",
            "model.conductor_hidden=1024",
            "model.decoder_layers=2",
        ],
        ["data.batch_size=256"],
        ["data.batch_size=4"],
    ),
}
# Dense bf16 matrix peak by the vendor's datasheet, TFLOP/s; `--peak-tflops` for anything else.
PEAKS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0}


def compose(experiment: str, overrides: list[str], root: Path) -> Any:
    """`compose_experiment`, with no sample sheets or checkpoints mid-run: the check writes its
    own."""
    from omegaconf import open_dict

    cfg = compose_experiment(experiment, overrides, root)
    with open_dict(cfg):
        cfg.callbacks = None
    return cfg


class StepClock(pl.Callback):
    """Step losses, and codec steps per second after the first steps (cuDNN autotuning, first
    allocations). The device is synchronised only at a few marked steps and at the end, so the
    timed steps run as training does; the timing starts at the latest mark within the first
    half of the steps taken."""

    MARKS = (1, 2, 5, 10)

    def __init__(self, loss_key: str) -> None:
        self.loss_key = loss_key
        self.losses: list[torch.Tensor] = []
        self.steps = 0
        self.units: torch.Tensor | int = 0  # real codec steps so far, kept on the device
        self.windows = 0
        self.marks: dict[int, tuple[float, float, int]] = {}  # step -> (time, units, windows)
        self.end: tuple[float, float, int] | None = None

    def _mark(self, module: Any) -> tuple[float, float, int]:
        _sync(module.device)
        return time.perf_counter(), float(self.units), self.windows

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        if self.steps in self.MARKS:
            self.marks[self.steps] = self._mark(module)
        self.units = self.units + batch.lengths.sum()  # no sync
        self.windows += len(batch)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        self.steps += 1
        value = trainer.callback_metrics.get(self.loss_key)
        if value is not None:
            self.losses.append(value.detach().float().clone())

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        self.end = self._mark(module)

    def timing(self) -> dict[str, Any]:
        """timed_steps, timed_seconds, codec_steps_per_s, windows_per_s (None: too few steps)."""
        start = max((m for m in self.marks if m <= self.steps // 2), default=None)
        if start is None or self.end is None:
            return {"timed_steps": 0, "timed_seconds": 0.0, "codec_steps_per_s": None,
                    "windows_per_s": None}  # fmt: skip
        (t0, u0, w0), (t1, u1, w1) = self.marks[start], self.end
        return {"timed_steps": self.steps - start, "timed_seconds": round(t1 - t0, 2),
                "codec_steps_per_s": (u1 - u0) / (t1 - t0),
                "windows_per_s": (w1 - w0) / (t1 - t0)}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_weights(model: nn.Module) -> int:
    """Weights that take part in one multiply-add per codec step: linear and LSTM matrices, the
    NADE's W and V, and a tied embedding once (as the output layer). Lookups, biases and norms
    are left out. Training costs 6 FLOPs per such weight per step (2 forward, 4 backward)."""
    seen, total = set(), 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            tensors = [module.weight]
        elif isinstance(module, nn.LSTM):
            tensors = [p for n, p in module.named_parameters() if n.startswith("weight_")]
        elif type(module).__name__ == "NADE":
            tensors = [module.W, module.V]
        else:
            continue
        for t in tensors:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel()
    return total


def flops_per_unit(model: nn.Module, family: str, cfg: Any) -> tuple[float, str] | None:
    """Training FLOPs per codec step, and the formula, for the sequence families."""
    n = matmul_weights(model)
    if family == "lstm":
        return 6.0 * n, f"6 x {n} matmul weights (LSTM, output layer, NADE W and V)"
    if family == "transformer":
        # Causal attention adds QK^T and AV: 2 x 2 x T x D multiply-adds per layer and token,
        # half of them masked away -> 6 L T D FLOPs with backward (PaLM's 12 L T D, halved).
        L, D, T = cfg.model.n_layers, cfg.model.d_model, cfg.data.train_window
        return 6.0 * n + 6.0 * L * T * D, f"6 x {n} matmul weights + 6 x L{L} x T{T} x D{D}"
    return None


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.started)


def train_family(
    family: str, check: Check, args: argparse.Namespace, root: Path, seconds: float
) -> dict[str, Any]:
    """Train one family for `args.steps` steps or `seconds`, whichever ends first."""
    from omegaconf import OmegaConf

    from cadenza.generation import generate
    from cadenza.models.base import Ability
    from cadenza.training.loop import build

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    n_files = min(args.files, check.max_files or args.files)
    files = [f"{check.files}={n_files}"] if check.files else []
    if on_gpu:  # the GPU machine's cores prepare the data
        files.append(f"data.prepare_workers={min(8, os.cpu_count() or 1)}")
    overrides = [
        f"trainer={'gpu' if on_gpu else 'cpu'}", "++trainer.precision=bf16-mixed",
        f"++trainer.max_steps={args.steps}", "++trainer.max_epochs=-1",
        f"++trainer.max_time={max_time(seconds / 60)}",
        "++trainer.min_epochs=0", "++trainer.limit_val_batches=0",
        # Two points make a loss curve: a loaded machine's time budget must not end a family
        # after one step (Lightning defers the time limit's stop until min_steps).
        f"++trainer.min_steps={min(2, args.steps)}",
        "++trainer.num_sanity_val_steps=0",
        "++trainer.enable_checkpointing=false", "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", "logger=none", "test=false", "sample.n=0",
        f"seed={args.seed}", *check.width, *(check.gpu_batch if on_gpu else check.cpu_batch),
        *files,
    ]  # fmt: skip
    cfg = compose(check.experiment, overrides, root)
    pl.seed_everything(args.seed, workers=True)
    started = time.perf_counter()
    datamodule, model, trainer = build(cfg)
    datamodule.prepare_data()
    prepare_seconds = time.perf_counter() - started
    clock = StepClock(check.loss)
    trainer.callbacks.append(clock)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(model, datamodule=datamodule)

    losses = [float(v) for v in torch.stack(clock.losses).cpu()] if clock.losses else []
    timing = clock.timing()
    rate = timing["codec_steps_per_s"]
    k = max(1, len(losses) // 10)
    first, last = _mean(losses[:k]), _mean(losses[-k:])
    row: dict[str, Any] = {
        "experiment": check.experiment, "overrides": overrides,
        "params": sum(p.numel() for p in model.parameters()),
        "steps": clock.steps, "prepare_seconds": round(prepare_seconds, 1),
        **timing,
        "loss_key": check.loss, "loss_first": first, "loss_last": last,
        "loss_finite": bool(losses) and all(math.isfinite(v) for v in losses),
        "loss_fell": (last < first) if check.falls and losses else None,
        "loss_curve": _thin(losses, 30),
    }  # fmt: skip
    row["peak_memory_gb"] = (
        torch.cuda.max_memory_allocated(device) / 2**30 if on_gpu else _max_rss_gb()
    )
    flops = flops_per_unit(model, family, cfg)
    if flops and rate:
        peak = peak_tflops(device, args.peak_tflops)
        row["flops_per_codec_step"], row["flop_formula"] = flops
        row["tflops"] = flops[0] * rate / 1e12
        row["mfu"] = row["tflops"] / peak if peak else None
        row["peak_tflops"] = peak

    # A checkpoint written on this device, as training writes them (atomically), for the
    # CPU-only process to load.
    ckpt = root / "checkpoints" / f"{family}.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # the full state, as training writes it
    row["checkpoint"] = str(ckpt)
    # The same seed twice on this device: the same notes (the generator is the CPU's; draws
    # move to the device, models/sampling.py).
    model = model.to(device).eval()
    controls: dict[str, Any] = {"n": 2, "seed": 7, "bars": 2}
    if not model.can(Ability.PRIOR):
        window, _ = datamodule.dataset("train", training=False)[0]
        controls["condition"] = window
    a, b = (generate(model, **controls) for _ in range(2))
    row["same_seed_same_notes"] = all(torch.equal(p.tensor, q.tensor) for p, q in zip(a, b))
    row["sampled_notes"] = [p.notes for p in a]
    if model.can(Ability.ATTRIBUTES):  # vectors from the training windows, on the device
        data = datamodule.dataset("train", training=False)
        windows = min(256 if on_gpu else 32, len(data))  # the CPU run only proves the path
        model.fit_attributes(torch.stack([data[i][0] for i in range(windows)]))
    row["abilities"] = abilities_on_device(model, root / "inputs")
    if model.can(Ability.PRIOR) and model.codec.output == "midi":  # what the service batches
        row["batched_same_as_alone"] = batched_same_as_alone(model)
    row["config"] = OmegaConf.to_container(cfg.model, resolve=True)
    return row


def abilities_on_device(model: Any, folder: Path) -> dict[str, str]:
    """Every ability the family declares, asked for once on the model's device: "ok" or the
    error. A producer's controls reach code that prior sampling never runs (a primer's prefix,
    a condition track, an encoder, an attribute vector, a style mix), and the service
    (`device=cuda`) runs all of it."""
    from cadenza.models.base import Ability

    if str(REPO) not in sys.path:  # run as a script: the fixtures that make the input MIDI
        sys.path.insert(0, str(REPO))
    from tests.fixtures.abilities import ability_inputs, use_ability

    folder.mkdir(parents=True, exist_ok=True)
    inputs = ability_inputs(folder)
    out: dict[str, str] = {}
    for ability in (a for a in Ability if model.can(a)):
        try:
            pieces = use_ability(ability, model, inputs)
            ok = pieces and all(p.tensor.numel() > 0 for p in pieces)
            out[str(ability)] = "ok" if ok else "no music"
        except Exception as e:  # noqa: BLE001 - reported per ability; the rest still run
            out[str(ability)] = f"{type(e).__name__}: {e}"[:300]
    return out


def batched_same_as_alone(model: Any) -> bool:
    """Whether two requests drawn in one batched loop (as the service batches them) give the
    notes each gives alone. Reported, not required: on a GPU a product's rounding may depend
    on the number of rows (docs/serving.md says what that means)."""
    from cadenza.generation import generate, generate_batch

    requests = [(1, 11), (2, 12)]
    batched = generate_batch(model, requests, bars=1)
    alone = [generate(model, n, seed=seed, bars=1) for n, seed in requests]
    return all(torch.equal(p.tensor, q.tensor)
               for xs, ys in zip(batched, alone) for p, q in zip(xs, ys))  # fmt: skip


def long_run(check: Check, args: argparse.Namespace, root: Path, seconds: float) -> dict:
    """The long run: train for `seconds`, validating as the experiment does, and report the
    validation metrics its CPU benchmark reports."""
    from cadenza.training.loop import build

    on_gpu = args.device.startswith("cuda")
    overrides = [
        f"trainer={'gpu' if on_gpu else 'cpu'}", "++trainer.precision=bf16-mixed",
        f"++trainer.max_time={max_time(seconds / 60)}", "++trainer.max_epochs=-1",
        "++trainer.min_epochs=0", "++trainer.enable_checkpointing=false",
        "++trainer.enable_progress_bar=false",
        "logger=none", "test=false", "sample.n=0", f"seed={args.seed}",
        *check.width, *(check.gpu_batch if on_gpu else check.cpu_batch),
        f"data.prepare_workers={min(8, os.cpu_count() or 1)}",
    ]  # fmt: skip
    cfg = compose(check.experiment, overrides, root)
    pl.seed_everything(args.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    clock = StepClock(check.loss)
    trainer.callbacks.append(clock)
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    return {
        "experiment": check.experiment, "overrides": overrides, "steps": clock.steps,
        "params": sum(p.numel() for p in model.parameters()),
        **clock.timing(),
        "loss_curve": _thin([float(v) for v in torch.stack(clock.losses).cpu()], 30),
        "valid": {k: float(v) for k, v in metrics.items()},
    }  # fmt: skip


def load_on_cpu(paths: list[str]) -> dict[str, Any]:
    """In a process that sees no GPU: each checkpoint loads weights-only and samples."""
    from cadenza.generation import generate
    from cadenza.models.base import Ability, GenerativeModule

    assert not torch.cuda.is_available(), "the loading process must not see a GPU"
    out = {}
    for path in paths:
        try:
            model = GenerativeModule.load(path)  # torch.load(weights_only=True)
            controls: dict[str, Any] = {"n": 1, "seed": 3, "bars": 2}
            if not model.can(Ability.PRIOR):
                window_steps = model.declaration().window_steps or 64
                controls["condition"] = torch.zeros(window_steps, model.codec.feature_dim)
            pieces = generate(model, **controls)
            out[path] = {"loaded": True, "notes": pieces[0].notes,
                         "seconds": round(pieces[0].seconds, 2)}  # fmt: skip
        except Exception as e:  # noqa: BLE001 - reported per checkpoint, the others go on
            out[path] = {"loaded": False, "error": f"{type(e).__name__}: {e}"}
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _thin(xs: list[float], n: int) -> list[float]:
    if len(xs) <= n:
        return [round(x, 4) for x in xs]
    return [round(xs[round(i * (len(xs) - 1) / (n - 1))], 4) for i in range(n)]


def _max_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, CPU")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole run's budget")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per family at most")
    ap.add_argument("--families", default=",".join(CHECKS), help="comma-separated")
    ap.add_argument("--long", choices=[*LONG, "none"], default=None,
                    help="the long run (default: vae on a GPU, none on a CPU)")  # fmt: skip
    ap.add_argument(
        "--files",
        type=int,
        default=None,
        help="MIDI files prepared per folder dataset (default 300 GPU, 16 CPU)",
    )
    ap.add_argument("--peak-tflops", type=float, default=None, help="for MFU off the table")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, default=None, help="runs here (default: a temp dir)")
    ap.add_argument("--load-on-cpu", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.load_on_cpu:
        print(json.dumps(load_on_cpu(args.load_on_cpu)))
        return

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no GPU is visible here (use --device cpu)")
    on_gpu = device.type == "cuda"
    args.long = args.long or ("vae" if on_gpu else "none")
    args.files = args.files or (300 if on_gpu else 16)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(CHECKS))
    if unknown:
        sys.exit(f"--families: unknown {unknown}; choose from {sorted(CHECKS)}")

    budget = Budget(args.minutes * 60)
    # What the families leave: the long run's share and the CPU-side loading (about 15 s).
    reserve = 15.0 + (0.45 * budget.seconds if args.long != "none" else 0.0)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    report: dict[str, Any] = {"device": _machine(device), "precision": "bf16-mixed",
                              "families": {}}  # fmt: skip
    for i, family in enumerate(families):
        # An equal share of what is left; about a third of each goes to preparing data,
        # building and sampling, so the run keeps to its budget.
        share = max(3.0, 0.65 * (budget.left() - reserve) / (len(families) - i))
        print(f"--- {family} ({share:.0f} s of training at most)", flush=True)
        try:
            row = train_family(family, CHECKS[family], args, work / family, share)
        except Exception as e:  # noqa: BLE001 - one family's fault is reported, the rest run
            import traceback

            traceback.print_exc()
            row = {"error": f"{type(e).__name__}: {e}"}
        report["families"][family] = row
        print(json.dumps({k: v for k, v in row.items() if k not in ("config", "overrides")}),
              flush=True)  # fmt: skip

    ckpts = [r["checkpoint"] for r in report["families"].values() if "checkpoint" in r]
    if ckpts:
        env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run([sys.executable, __file__, "--load-on-cpu", *ckpts], env=env,
                              capture_output=True, text=True)  # fmt: skip
        loaded = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
        for row in report["families"].values():
            if "checkpoint" in row:
                row["cpu_load"] = loaded.get(row["checkpoint"], {"loaded": False})

    if args.long != "none":
        seconds = budget.left() - 45  # validation at the end, and writing the results
        print(f"--- long run: {args.long} ({seconds:.0f} s)", flush=True)
        if seconds > 30:
            try:
                report["long"] = long_run(LONG[args.long], args, work / "long", seconds)
            except Exception as e:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                report["long"] = {"error": f"{type(e).__name__}: {e}"}

    report |= {"command": "python benchmarks/gpu_check.py " + " ".join(argv),
               "date": str(date.today()),
               "seconds": round(time.perf_counter() - budget.started, 1)}  # fmt: skip
    write_atomically(args.results, json.dumps(report, indent=1))
    print_table(report)
    failed = [f for f, r in report["families"].items() if not _passed(r)]
    if failed:
        sys.exit(f"gpu_check: {', '.join(failed)} failed a check (see {args.results})")


def _passed(row: dict[str, Any]) -> bool:
    return (
        "error" not in row and row["loss_finite"] and row["same_seed_same_notes"]
        and row.get("cpu_load", {}).get("loaded", False)
        and all(v == "ok" for v in row.get("abilities", {}).values())
    )  # fmt: skip


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['device']}, {report['precision']}")
    head = f"{'family':<12}{'steps':>6}{'loss first->last':>20}{'steps/s':>11}{'win/s':>9}"
    print(head + f"{'peak GB':>9}{'TFLOP/s':>9}{'MFU':>7}{'seed':>6}{'cpu load':>10}"
          f"{'abilities':>11}")  # fmt: skip
    for family, r in report["families"].items():
        if "error" in r:
            print(f"{family:<12} ERROR {r['error']}")
            continue
        loss = f"{_f(r['loss_first'])}->{_f(r['loss_last'])}"
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        tfl = f"{r['tflops']:.2f}" if r.get("tflops") is not None else "-"
        load = "ok" if r.get("cpu_load", {}).get("loaded") else "FAIL"
        abilities = r.get("abilities", {})
        bad = [a for a, v in abilities.items() if v != "ok"]
        abilities_cell = f"FAIL {','.join(bad)}" if bad else f"{len(abilities)} ok"
        print(f"{family:<12}{r['steps']:>6}{loss:>20}{_f(r['codec_steps_per_s'], 0):>11}"
              f"{_f(r['windows_per_s'], 1):>9}{_f(r['peak_memory_gb'], 2):>9}{tfl:>9}{mfu:>7}"
              f"{'same' if r['same_seed_same_notes'] else 'DIFF':>6}{load:>10}"
              f"{abilities_cell:>11}")  # fmt: skip
    if "long" in report:
        print(f"long run: {json.dumps(report['long'].get('valid', report['long']))}")


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    main()
