"""One folder of real (smoke-trained) checkpoints of every family for the whole session, plus
two that must not be served (garbage bytes, and a pickle that would run code if unpickled);
the service in-process (TestClient) and as a real `cadenza-serve` process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from cadenza.serve.app import create_app
from cadenza.serve.settings import ServeSettings
from tests.fixtures.smoke import SmokeRuns

# The served checkpoints: the session's smoke runs of every family (trained once per session).
SERVED = ("smoke", "smoke_vae", "smoke_gan", "smoke_gan_accompaniment", "smoke_recommender",
          "smoke_transformer", "smoke_styles", "smoke_classifier")  # fmt: skip
MARKER = "cadenza_pickle_ran"  # the file a malicious checkpoint would create


class _RunsCode:
    """Unpickled without weights_only, this would create a file: the service must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="session")
def checkpoints(smoke: SmokeRuns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    for name in SERVED:
        (root / "checkpoints" / name).mkdir(parents=True)
        shutil.copyfile(smoke[name].ckpt, root / "checkpoints" / name / "latest.ckpt")
    (root / "checkpoints" / "garbage.ckpt").write_bytes(b"not a checkpoint")
    torch.save({"state_dict": _RunsCode(root / MARKER)}, root / "checkpoints" / "evil.ckpt")
    # A link out of the served folder (to a real checkpoint) is refused too.
    (root / "checkpoints" / "outside").mkdir()
    (root / "checkpoints" / "outside" / "latest.ckpt").symlink_to(smoke["smoke"].ckpt)
    return root / "checkpoints"


@pytest.fixture(scope="session")
def settings(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> ServeSettings:
    return ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(tmp_path_factory.mktemp("work")),
        "keep_jobs": 20, "limits": {"max_n": 4, "max_bars": 8, "max_upload_bytes": 64_000},
        "queue_timeout_s": 60, "sample": {"n": 1, "sample_rate": 16000},
    })  # fmt: skip


@pytest.fixture(scope="session")
def client(settings: ServeSettings) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a 500 must reach the test as the client would see it.
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@contextmanager
def running_server(checkpoints: Path, work: Path, *args: str) -> Iterator[tuple[str, int]]:
    """A real `cadenza-serve` process on a free loopback port -> (its URL, its pid); stopped
    (SIGTERM, then SIGKILL) on the way out."""
    exe = Path(sys.executable).parent / "cadenza-serve"
    proc = subprocess.Popen(
        [str(exe), f"checkpoints={checkpoints}", "port=0", f"work_dir={work}", *args],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"cadenza-serve: listening on (http://\S+)", line)
        url = match.group(1) if match else None
    if url is None:
        proc.kill()
        pytest.fail("cadenza-serve did not start:\n" + "".join(lines[-40:]))
    # Keep reading its log, or a full pipe would block the server.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def serve_url(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service as a real process, shared by the tests that need one."""
    work = tmp_path_factory.mktemp("served-process")
    with running_server(checkpoints, work, "sample.sample_rate=16000") as (url, _):
        yield url
