"""`cadenza-<command> --help` starts with what the command does and a few command lines; every
one of those lines composes, so the help cannot drift from the configs it describes."""

from __future__ import annotations

import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from cadenza.paths import config_dir
from cadenza.training.config import register_resolvers

COMMANDS = ["train", "sample", "eval", "prepare", "recommend", "classify", "serve"]


def _compose(config: str, overrides: list[str]):  # noqa: ANN202 - a DictConfig
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
            return compose(config, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_says_what_the_command_does_with_examples_that_compose(command: str) -> None:
    help_cfg = _compose(command, []).hydra.help
    assert help_cfg.app_name == f"cadenza-{command}"
    assert help_cfg.header.startswith(f"cadenza-{command}: ")
    examples = [shlex.split(line, comments=True) for line in help_cfg.header.splitlines()
                if line.strip().startswith(f"cadenza-{command} ")]  # fmt: skip
    assert examples, help_cfg.header
    for words in examples:
        overrides = [w for w in words[1:] if not w.startswith("-")]
        if "-m" in words:  # a sweep: its first run
            overrides = [o.split(",")[0] for o in overrides]
        _compose(command, overrides)  # raises on a key or an option the configs do not have
    assert "docs/" in help_cfg.footer
