"""Config composition and CLI runners shared by the training and CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from cadenza.paths import config_dir
from cadenza.training.config import register_resolvers

BIN = Path(sys.executable).parent


def compose_train(tmp_path: Path, overrides: list[str]) -> DictConfig:
    """configs/train.yaml as the CLI would build it, with every output under tmp_path."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose(
            config_name="train",
            overrides=[f"paths.root_dir={tmp_path}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.checkpoint_dir = str(tmp_path / "checkpoints" / "run")
        cfg.logger = None
    GlobalHydra.instance().clear()
    return cfg


def run_cli(
    command: str, *args: str, cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script (cadenza-train ...) from `cwd` as a user would."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [str(BIN / command), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_ddp_sim(tmp_path: Path, experiment: str) -> tuple[dict, list[dict]]:
    """train() one epoch of `experiment` on 2 CPU processes (trainer=ddp_sim), recording which
    training items each rank saw. -> (train's result, [rank 0's record, rank 1's record])."""
    import json

    from cadenza.training.loop import train

    seen_dir = tmp_path / "seen"
    cfg = compose_train(
        tmp_path,
        [
            f"experiment={experiment}", "trainer=ddp_sim", "trainer.max_epochs=1", "test=false",
            "sample.n=0", "+callbacks.seen._target_=cadenza.training.callbacks.SeenDataRecorder",
            f"+callbacks.seen.out_dir={seen_dir}",
        ],
    )  # fmt: skip
    result = train(cfg)
    ranks = [json.loads((seen_dir / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    return result, ranks


def with_csv_logger(cfg: DictConfig, save_dir: Path) -> DictConfig:
    """cfg logging to a CSVLogger under save_dir (compose_train switches loggers off)."""
    with open_dict(cfg):
        cfg.logger = {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger",
                              "save_dir": str(save_dir), "name": "csv"}}  # fmt: skip
    return cfg
