"""Config composition and CLI runners shared by the training and CLI tests."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
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


@dataclass
class CliResult:
    """What a console script would have given: exit status and its two streams."""

    returncode: int
    stdout: str
    stderr: str


def cli(command: str, *args: str, cwd: Path, timeout: float | None = None) -> CliResult:
    """Run a console script's task in this process, as the script would from `cwd` (Hydra
    composes the same config; `run_task` turns a user error into one line and exit status 2),
    without the ~5 s a new Python process spends importing torch. Each entry point keeps one
    real-process test of its exit status (tests/cli/test_entry_points.py)."""
    from cadenza.cli import run_task
    from cadenza.cli.typos import typo_hints

    task, config_name = _TASKS[command]()
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(stderr)
    logger = logging.getLogger("cadenza")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # as the CLI's logging config (hydra/job_logging) has it
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                if config_name == "train":
                    cfg = compose_train(Path(cwd), list(args))
                else:
                    GlobalHydra.instance().clear()
                    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
                        cfg = compose(config_name, overrides=list(args), return_hydra_config=True)
                    # As @hydra.main runs a task: Hydra's config is HydraConfig's (what was
                    # typed: `_typed()`), not the task's.
                    HydraConfig.instance().set_config(cfg)
                    with open_dict(cfg):
                        del cfg["hydra"]
                run_task(task, cfg)
                code = 0
            except SystemExit as e:
                code = int(e.code or 0)
            except HydraException as e:  # a bad override: as names_typos reports it
                hints = typo_hints(config_name, list(args))
                for line in hints:  # the keys meant, in place of Hydra's report
                    print(f"cadenza: error: {line}", file=sys.stderr)
                if not hints:
                    print(f"{type(e).__name__}: {e}", file=sys.stderr)
                code = 2 if hints else 1
    finally:
        os.chdir(here)
        logger.removeHandler(handler)
        logger.setLevel(level)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # no later test sees this command's
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def _train_task():  # noqa: ANN202 - (task, config name)
    from cadenza.training.loop import train

    return train, "train"


def _sample_task():  # noqa: ANN202
    from cadenza.cli.sample import sample

    return sample, "sample"


def _recommend_task():  # noqa: ANN202
    from cadenza.cli.recommend import recommend

    return recommend, "recommend"


def _eval_task():  # noqa: ANN202
    from cadenza.cli.eval import evaluate

    return evaluate, "eval"


def _classify_task():  # noqa: ANN202
    from cadenza.cli.classify import classify

    return classify, "classify"


def _prepare_task():  # noqa: ANN202
    from cadenza.cli.prepare import prepare

    return prepare, "prepare"


_TASKS = {"cadenza-train": _train_task, "cadenza-sample": _sample_task,
          "cadenza-recommend": _recommend_task, "cadenza-eval": _eval_task,
          "cadenza-prepare": _prepare_task, "cadenza-classify": _classify_task}  # fmt: skip


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


def start_cli(command: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """`run_cli` without waiting, so several scripts run side by side. stdout is discarded,
    stderr goes to `cwd/stderr.txt` (a file, not a pipe: no process can block on it)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    with (cwd / "stderr.txt").open("w") as err:
        return subprocess.Popen([str(BIN / command), *args], cwd=cwd, env=env, text=True,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip


def train_ddp_sim(
    tmp_path: Path, experiment: str, strategy: str = "ddp_fork", test: bool = False
) -> tuple[dict, list[dict]]:
    """train() one epoch of `experiment` on 2 CPU processes (trainer=ddp_sim), recording which
    training items each rank saw. -> (train's result, [rank 0's record, rank 1's record]).
    test: also test, logging to a CSVLogger in tmp_path/csv.

    strategy: ddp_fork by default: forked ranks start with this process's imports, where
    trainer=ddp_sim's ddp_spawn pays ~7 s of importing torch and Lightning per rank. The DDP
    code under test (sampler shards, gradient all-reduce, rank-0 checkpoints) is the same;
    the smoke test keeps ddp_spawn, the launcher the config gives users."""
    import json

    from cadenza.training.loop import train

    seen_dir = tmp_path / "seen"
    cfg = compose_train(
        tmp_path,
        [
            f"experiment={experiment}", "trainer=ddp_sim", f"trainer.strategy={strategy}",
            "trainer.max_epochs=1", f"test={str(test).lower()}",
            "sample.n=0", "+callbacks.seen._target_=cadenza.training.callbacks.SeenDataRecorder",
            f"+callbacks.seen.out_dir={seen_dir}",
        ],
    )  # fmt: skip
    if test:
        cfg = with_csv_logger(cfg, tmp_path)
    result = train(cfg)
    ranks = [json.loads((seen_dir / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    return result, ranks


def with_csv_logger(cfg: DictConfig, save_dir: Path) -> DictConfig:
    """cfg logging to a CSVLogger under save_dir (compose_train switches loggers off)."""
    with open_dict(cfg):
        cfg.logger = {"csv": {"_target_": "cadenza.training.csv_log.RunCSVLogger",
                              "save_dir": str(save_dir), "name": "csv"}}  # fmt: skip
    return cfg
