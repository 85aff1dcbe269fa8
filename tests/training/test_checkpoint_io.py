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


def test_latest_link_never_points_at_a_deleted_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ModelCheckpoint writes a new best, then deletes the old one. A run killed between the
    two (CI caught it with SIGKILL) must still leave a link to a file that exists."""
    from cadenza.training.loop import train
    from tests.helpers import compose_train

    latest = tmp_path / "checkpoints" / "smoke" / "latest.ckpt"
    seen: list[tuple[str, bool]] = []
    remove = AtomicCheckpointIO.remove_checkpoint

    def remove_and_look(self: AtomicCheckpointIO, path: str | Path) -> None:
        remove(self, path)  # the moment a kill would find the link as it is
        seen.append((Path(path).name, latest.exists()))

    monkeypatch.setattr(AtomicCheckpointIO, "remove_checkpoint", remove_and_look)
    overrides = ["experiment=smoke", "trainer.max_epochs=4", "test=false", "sample.n=0"]
    result = train(compose_train(tmp_path, overrides))
    removed_bests = [name for name, _ in seen if name.startswith("epoch")]
    assert removed_bests, f"no best checkpoint was replaced in 4 epochs: {seen}"
    assert all(exists for _, exists in seen), seen
    assert latest.resolve() == Path(result["best_ckpt"]).resolve()
