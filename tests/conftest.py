"""Session-wide test environment: no network logging, a shared cache of prepared datasets."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    # One cache for the whole session: a dataset prepared by one test is a cache hit for the
    # next (which is itself what the cache promises). Never the user's data/processed.
    os.environ["CADENZA_CACHE"] = str(tmp_path_factory.mktemp("cadenza-cache"))
