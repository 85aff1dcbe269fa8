"""Thin @hydra.main wrappers: each composes a config and calls one library function."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from cadenza.errors import CadenzaError, ConfigError
from cadenza.paths import config_dir
from cadenza.training.config import missing_value_error, register_resolvers, require

CONFIG_DIR = str(config_dir())
register_resolvers()


class _NoAdverts(logging.Filter):
    """Lightning logs a tip to install its cloud logger at the start of every run; our runs
    log where their logger config says, so the line is noise in every command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())
# Lightning 2.6 builds torch pytree leaves the way torch 2.13 deprecates, once per run: nothing a
# user of ours can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run `task`; a user error prints one clear line (no traceback) and exits with status 2."""
    try:
        return task(cfg)
    except MissingMandatoryValue as e:
        _fail(str(missing_value_error(e)))
    except CadenzaError as e:
        _fail(str(e))


def _fail(message: str) -> None:
    logging.getLogger("cadenza").debug("user error", exc_info=True)
    print(f"cadenza: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def checkpoint_arg(cfg: DictConfig, kind: str = "file") -> str:
    """The checkpoint file of `ckpt=`, or of `ckpt_path=` as cadenza-train, -sample and -eval
    name it: a user who types the other commands' key gets what they meant, not Hydra's advice
    to append a new key. A missing file or a folder is said back under the key typed, before
    anything loads."""
    from cadenza.models.base import checkpoint_file  # torch: not for --help

    alias = cfg.get("ckpt_path")
    if alias is not None:
        given = None if OmegaConf.is_missing(cfg, "ckpt") else cfg.get("ckpt")
        if given is not None and str(given) != str(alias):
            raise ConfigError(f"give ckpt= or ckpt_path=, not both (ckpt={given}, "
                              f"ckpt_path={alias})")  # fmt: skip
        cfg.ckpt = alias
    given = str(require(cfg, "ckpt"))
    checkpoint_file(given, "ckpt" if alias is None else "ckpt_path", kind)
    return given
