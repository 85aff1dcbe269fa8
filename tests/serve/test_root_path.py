"""Behind a reverse proxy at a path (root_path=/cadenza): the links in every answer, the studio
page and the OpenAPI document carry the prefix, and requests work whether the proxy strips it
or passes it on."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cadenza.errors import ConfigError
from cadenza.serve.app import create_app
from cadenza.serve.settings import ServeSettings
from tests.fixtures.smoke import SmokeRuns

ROOT = "/cadenza"


@pytest.fixture(scope="module")
def proxied(smoke: SmokeRuns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("rooted")
    (folder / "checkpoints" / "smoke").mkdir(parents=True)
    shutil.copyfile(smoke["smoke"].ckpt, folder / "checkpoints" / "smoke" / "latest.ckpt")
    settings = ServeSettings.from_dict({
        "checkpoints": str(folder / "checkpoints"), "work_dir": str(folder / "work"),
        "root_path": ROOT, "sample": {"n": 1, "bars": 1, "sample_rate": 16000},
    })  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("passed_on", ["/", f"{ROOT}/"], ids=["stripped", "kept"])
def test_the_studio_page_resolves_its_links_under_the_prefix(proxied, passed_on) -> None:
    page = proxied.get(passed_on)
    assert page.status_code == 200 and f'<base href="{ROOT}/">' in page.text
    assert '<script src="studio/studio.js">' in page.text  # relative: under the <base>
    assert proxied.get(f"{passed_on}studio/studio.js").status_code == 200
    assert "base-uri 'self'" in page.headers["content-security-policy"]
    assert proxied.head(passed_on).status_code == 200
    assert proxied.get(f"{passed_on}openapi.json").json()["servers"] == [{"url": ROOT}]
    # /docs and its scripts (a mount of static files, which Starlette finds under the prefix)
    docs = proxied.get(f"{passed_on}docs")
    assert docs.status_code == 200 and f"{ROOT}/static-offline-docs/" in docs.text
    script = proxied.get(f"{passed_on}static-offline-docs/swagger-ui-bundle.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_answers_link_under_the_prefix_and_the_links_work(proxied) -> None:
    job = proxied.post("/api/generate", json={"model": "smoke", "seed": 1}).json()
    link = job["items"][0]["midi"]
    assert link.startswith(f"{ROOT}/api/files/{job['job']}/"), link
    for passed_on in (link, link.removeprefix(ROOT)):  # a proxy that keeps it, one that strips it
        got = proxied.get(passed_on)
        assert got.status_code == 200 and got.content[:4] == b"MThd", passed_on
    later = proxied.post(f"{ROOT}/api/jobs/generate", json={"model": "smoke", "seed": 2})
    assert later.status_code == 202
    task = later.json()
    assert task["url"] == later.headers["location"] == f"{ROOT}/api/jobs/{task['id']}"
    for _ in range(200):
        task = proxied.get(task["url"]).json()
        if task["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert task["status"] == "done", task
    assert task["result"]["items"][0]["midi"].startswith(f"{ROOT}/api/files/")


@pytest.mark.parametrize("root", ["cadenza", "/cadenza/", "/ca denza", "/../x"])
def test_a_root_path_that_is_not_one_fails_at_start_up(tmp_path: Path, root: str) -> None:
    with pytest.raises(ConfigError, match="root_path="):
        ServeSettings.from_dict({"checkpoints": str(tmp_path), "root_path": root})
