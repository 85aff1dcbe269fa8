"""The transformer family through train() on 2 CPU processes (DDP, as trainer=ddp launches on a
cluster): each rank trains on its own shard, one checkpoint is written, and it samples with the
key/value cache after loading on one process."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cadenza.models import GenerativeModule, TransformerModule
from tests.fixtures.data import data_root
from tests.helpers import train_ddp_sim


@pytest.mark.slow
def test_transformer_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    data_root()
    result, ranks = train_ddp_sim(tmp_path, "smoke_transformer")
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and len(seen0 & seen1) <= 1
    assert seen0 | seen1 == set(range(ranks[0]["dataset_size"]))
    assert math.isfinite(result["metrics"]["val/nll"])
    model = GenerativeModule.load(result["latest_ckpt"])
    assert isinstance(model, TransformerModule) and not model.is_frames
    pieces = model.sample(2, max_len=24, generator=torch.Generator().manual_seed(0), top_p=0.9)
    assert len(pieces) == 2 and all(1 < len(p) <= 24 for p in pieces)
