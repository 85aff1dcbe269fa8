"""A training run killed with SIGKILL leaves a loadable checkpoint and resumes from it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import BIN, cli


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    common = ["experiment=smoke", "logger=none", "test=false", "sample.n=0"]
    proc = subprocess.Popen(
        [str(BIN / "cadenza-train"), *common, "trainer.max_epochs=1000"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        last: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            last = list((tmp_path / "checkpoints" / "smoke").glob("*/last.ckpt"))
            if last and torch.load(last[0], weights_only=True)["epoch"] >= 2:
                break
            time.sleep(0.2)
        assert last, "no checkpoint appeared within 2 minutes"
        os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up, as with a lost node
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    ckpt = torch.load(last[0], weights_only=True)  # intact despite the kill
    epoch = ckpt["epoch"]
    # Resumed as the CLI resumes, in this process (the kill needed a process of its own).
    resumed = cli("cadenza-train", *common, f"trainer.max_epochs={epoch + 3}",
                  f"ckpt_path={last[0]}", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # (tests.helpers.cli writes a run's checkpoints to checkpoints/run/)
    final = torch.load(tmp_path / "checkpoints" / "run" / "last.ckpt", weights_only=True)
    assert final["epoch"] == epoch + 2  # continued from the killed run's epoch, not from 0
    assert final["global_step"] > ckpt["global_step"]
