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
    run = last[0].parent
    # The killed run's best checkpoint was linked while it trained, not only at its end.
    latest = tmp_path / "checkpoints" / "smoke" / "latest.ckpt"
    assert latest.is_symlink() and latest.resolve().parent == run.resolve()
    assert torch.load(latest, weights_only=True)["state_dict"]
    best = torch.load(latest, weights_only=True)["callbacks"]
    # What a write killed mid-way leaves (named as write_atomically names it, by a pid that is
    # no longer running): the resumed run removes it.
    stale = run / f".{latest.resolve().name}.{proc.pid}.1.0.tmp"
    stale.write_bytes(b"half a checkpoint")

    # Resumed as the CLI resumes, in this process (the kill needed a process of its own), and
    # as a requeued job does: the same command with ckpt_path=auto finds the newest run.
    resumed = cli("cadenza-train", *common, f"trainer.max_epochs={epoch + 3}", "ckpt_path=auto",
                  cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"ckpt_path=auto: resuming {last[0]}" in resumed.stderr
    final = torch.load(last[0], weights_only=True)  # in the same run's folder
    assert final["epoch"] == epoch + 2  # continued from the killed run's epoch, not from 0
    assert final["global_step"] > ckpt["global_step"]
    assert not stale.exists() and "left by a write that was killed" in resumed.stderr
    # One run, one best: the resumed part competed with the killed part's best score. (A kill
    # between writing a new best and deleting the one it replaces leaves both, a later state
    # than last.ckpt that nothing refers to: kept, as nothing a run wrote is thrown away.)
    files = list((tmp_path / "checkpoints" / "smoke").glob("*/*.ckpt"))
    assert {p.parent for p in files} == {run} and len(files) in (2, 3), files
    monitored = [v for k, v in final["callbacks"].items() if "val/nll" in k]
    before = [v for k, v in best.items() if "val/nll" in k]
    assert monitored[0]["best_model_score"] <= before[0]["best_model_score"]
    assert latest.resolve() == Path(monitored[0]["best_model_path"]).resolve()
