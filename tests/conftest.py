"""Session-wide test environment: no network logging, a shared cache of prepared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.smoke import SmokeRuns

# `make test` runs two pytest-xdist workers on a 2-core machine: one thread each for torch and
# for the BLAS under numpy / scipy / librosa (and in the scripts they start), or the two would
# fight over both cores. A BLAS pool sized before this file runs (a plugin imported numpy) is
# cut down by threadpoolctl: oversubscribed, one librosa test took 43 s instead of 4.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)

_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    # One cache for the whole session: a dataset prepared by one test is a cache hit for the
    # next (which is itself what the cache promises). Never the user's data/processed.
    # Subprocesses (the CLI tests) read the data root from the environment, as users do.
    if not os.environ.get("CADENZA_DATA") and _SHARED_DATA.is_dir():
        os.environ["CADENZA_DATA"] = str(_SHARED_DATA)
    os.environ["CADENZA_CACHE"] = str(tmp_path_factory.mktemp("cadenza-cache"))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> SmokeRuns:
    """Every smoke experiment, trained once per session on first use: `smoke["smoke_vae"]`."""
    return SmokeRuns(tmp_path_factory.mktemp("smoke-runs"))
