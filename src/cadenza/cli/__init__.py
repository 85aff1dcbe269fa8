"""Thin @hydra.main wrappers: each composes a config and calls one library function."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from cadenza.errors import CadenzaError
from cadenza.paths import config_dir
from cadenza.training.config import missing_value_error, register_resolvers

CONFIG_DIR = str(config_dir())
register_resolvers()


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
