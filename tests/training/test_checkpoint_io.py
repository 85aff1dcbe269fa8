from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadenza.training.checkpoint_io import AtomicCheckpointIO, link_latest


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1

    def killed_midway(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"partial bytes")
        raise KeyboardInterrupt  # as if the run were killed during the write

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1  # the old checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_latest_link_is_replaced(tmp_path: Path) -> None:
    a, b = tmp_path / "run1" / "a.ckpt", tmp_path / "run2" / "b.ckpt"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"x")
    link = tmp_path / "latest.ckpt"
    link_latest(a, link)
    link_latest(b, link)
    assert link.resolve() == b.resolve()
