"""Multi-node training as a cluster launches it: `torchrun --nnodes=2 --nproc_per_node=1` on
each "node" (two processes on this machine, a rendezvous on loopback, gloo), through the normal
`cadenza-train` entry point and trainer=multinode_cpu. Both ranks train on their own shard, end
with the same weights (their gradients were averaged), one checkpoint is written, and a second
launch of the same kind resumes from it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch

from tests.fixtures.data import data_root
from tests.helpers import BIN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, tag: str, extra: list[str]) -> list[str]:
    """Two torchrun "nodes" running cadenza-train (both must exit 0); -> each rank's record."""
    port = _free_port()
    seen = tmp_path / f"seen_{tag}"
    common = [
        "experiment=smoke", "trainer=multinode_cpu", "logger=none", "test=false", "sample.n=0",
        f"paths.root_dir={tmp_path}", f"paths.checkpoint_dir={tmp_path / 'ckpt'}",
        "+callbacks.seen._target_=cadenza.training.callbacks.SeenDataRecorder",
        f"+callbacks.seen.out_dir={seen}", *extra,
    ]  # fmt: skip
    procs = []
    for node in (0, 1):
        log = (tmp_path / f"{tag}_node{node}.log").open("w")
        procs.append(subprocess.Popen(
            [str(BIN / "torchrun"), "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}",
             "--master_addr=127.0.0.1", f"--master_port={port}", str(BIN / "cadenza-train"),
             *common, f"hydra.run.dir={tmp_path / f'{tag}_run{node}'}"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        ))  # fmt: skip
    for node, proc in enumerate(procs):
        try:
            code = proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = (tmp_path / f"{tag}_node{node}.log").read_text()
        assert code == 0, text[-3000:]
    return [json.loads((seen / f"seen_rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_torchrun_two_nodes_train_on_shards_average_gradients_and_resume(tmp_path: Path) -> None:
    data_root()
    ranks = _launch(tmp_path, "first", ["trainer.max_epochs=1"])
    assert [r["world_size"] for r in ranks] == [2, 2]
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and len(seen0 & seen1) <= 1  # DistributedSampler pads by <= 1
    assert seen0 | seen1 == set(range(ranks[0]["dataset_size"]))
    # Different data, the same weights after every step: the gradients were averaged.
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    ckpts = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and len(ckpts) == 2  # rank 0 alone wrote: best + last
    first = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)

    # Resume under the same launch: both nodes load the checkpoint and go on from its epoch.
    resume = f"ckpt_path={tmp_path / 'ckpt' / 'last.ckpt'}"
    ranks = _launch(tmp_path, "resumed", ["trainer.max_epochs=2", resume])
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    final = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert final["epoch"] == first["epoch"] + 1 and final["global_step"] > first["global_step"]
