"""What the benchmark scripts share: training through the real CLI, and the provenance
(command, machine, date) every published figure carries."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

from cadenza.atomic import write_atomically

BIN = Path(sys.executable).parent


def max_time(minutes: float) -> str:
    """A trainer.max_time value (DD:HH:MM:SS) for `minutes`."""
    return "00:" + time.strftime("%H:%M:%S", time.gmtime(minutes * 60))


def run_train(label: str, args: list[str], log: Path, threads: int | None = None) -> float:
    """`cadenza-train *args` with its output in `log` (on `threads` torch threads: default, as
    this process's environment says); exits with the log's tail on failure. Returns the
    wall-clock seconds it took."""
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    started = time.perf_counter()
    with log.open("w") as f:
        done = subprocess.run(
            [str(BIN / "cadenza-train"), *args], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    if done.returncode != 0:
        sys.exit(f"training {label} failed; see {log}:\n" + log.read_text()[-3000:])
    return time.perf_counter() - started


def train_once(experiment: str, root: Path, minutes: float, seed: int, threads: int | None,
               overrides: list[str] = (), retrain: bool = False) -> Path:  # fmt: skip
    """`cadenza-train experiment=...` for `minutes` of wall-clock time, writing under `root`
    (log in root/train.log); a checkpoint already there is reused unless `retrain`. -> the
    run's latest.ckpt."""
    root = root.resolve()
    ckpt = root / "checkpoints" / "latest.ckpt"
    if ckpt.is_file() and not retrain:
        print(f"{experiment}: reusing {ckpt}")
        return ckpt
    root.mkdir(parents=True, exist_ok=True)
    print(f"{experiment}: training {minutes:g} min (log {root / 'train.log'})", flush=True)
    run_train(experiment, [
        f"experiment={experiment}", f"trainer.max_time={max_time(minutes)}",
        "trainer.max_epochs=100000", "logger=none", "sample.n=0", "test=false",
        "trainer.enable_progress_bar=false", f"seed={seed}", f"paths.root_dir={root}",
        f"paths.checkpoint_root={ckpt.parent}", *overrides,
    ], root / "train.log", threads)  # fmt: skip
    return ckpt


def provenance(command: str, seconds: float | None) -> dict[str, object]:
    """How a figure was made: the command, the machine (its CPU model: two VMs of one name can
    be an AMD and an Intel), the date, and the seconds spent training (None: none, or unknown;
    JSON has no NaN)."""
    known = seconds is not None and math.isfinite(seconds)
    return {
        "train_seconds": round(seconds, 1) if known else None,
        "command": command,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU",
        "date": str(date.today()),
    }


def cpu_model() -> str:
    """ "Intel(R) Xeon(R) Processor", "AMD EPYC 7B13", ...: /proc/cpuinfo's model name where
    there is one, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def use_threads(threads: int | None) -> int:
    """Torch threads here and in the training subprocess (default: every core), so two runs
    can train side by side, one core each. -> the number in use."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the training subprocess's torch
    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.get_num_threads()


def save_entry(results: Path, key: str, entry: dict) -> dict:
    """Write one entry into a results JSON, keeping the others; re-read first, since a run
    beside this one may have written its own entry meanwhile. -> every entry."""
    every = json.loads(results.read_text()) if results.is_file() else {}
    every[key] = entry
    write_atomically(results, json.dumps(every, indent=1))
    return every


def compose_experiment(experiment: str, overrides: list[str], root: Path) -> Any:
    """configs/train.yaml as `cadenza-train experiment=... overrides` builds it, for training
    in this process (`cadenza.training.loop.build`), writing under `root` (run/, checkpoints/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cadenza.paths import config_dir
    from cadenza.training.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = hydra_compose(
            config_name="train",
            overrides=[f"experiment={experiment}", f"paths.root_dir={root}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "run")
        cfg.paths.checkpoint_dir = str(root / "checkpoints")
    GlobalHydra.instance().clear()
    return cfg
