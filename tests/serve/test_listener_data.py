"""Listeners' data (serve/privacy.py): pseudonyms wherever the service writes a listener down,
forgetting a listener (and that it holds across a restart), and jobs and uploads expiring."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from cadenza.errors import ConfigError
from cadenza.recommend.module import RecommenderModule
from cadenza.serve.app import create_app
from cadenza.serve.auth import OPEN, key_entry, new_key
from cadenza.serve.privacy import ListenerPaths, Pseudonyms
from cadenza.serve.settings import ServeSettings
from cadenza.serve.store import Store

MODEL = "smoke_recommender"


@pytest.fixture(scope="module")
def users(checkpoints: Path) -> list[str]:
    path = checkpoints / MODEL / "latest.ckpt"
    return [str(u) for u in RecommenderModule.load(path).hparams.user_keys]


@pytest.fixture(scope="module")
def service(checkpoints: Path, users: list[str], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("listener-data")
    keys = {"admin": new_key(), "token": new_key()}
    (root / "keys.yaml").write_text(yaml.safe_dump({"keys": [
        key_entry("admin", keys["admin"], ["admin"], None),
        key_entry("token", keys["token"], ["recommend", "generate"], users[3]),
    ]}))  # fmt: skip
    settings = ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(root / "work"),
        "keys_file": str(root / "keys.yaml"), "sample": {"n": 1, "sample_rate": 16000},
    })  # fmt: skip
    return settings, {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}


def picks(client: TestClient, headers: dict, **listener) -> list[tuple[str, float]]:
    r = client.post("/api/recommend", headers=headers,
                    json={"model": MODEL, "k": 5, "explain": False, **listener})  # fmt: skip
    assert r.status_code == 200, r.text
    return [(p["key"], round(p["score"], 5)) for p in r.json()["picks"]]


def test_a_forgotten_listener_has_no_history_to_recommend_from_after_a_restart(service, users):
    settings, keys = service
    listener = users[3]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert picks(client, keys["admin"], user=listener)
        history = client.get(f"/api/listeners/{listener}/history", headers=keys["token"],
                             params={"model": MODEL}).json()["items"]  # fmt: skip
        assert history
        # Their token's job, and a job an admin ran about them, both hold their data.
        own = client.post(
            "/api/recommend",
            headers=keys["token"],
            json={"model": MODEL, "k": 1, "generator": "smoke", "candidates": 2, "bars": 1},
        ).json()
        about = client.post("/api/recommend", headers=keys["admin"], json={
            "model": MODEL, "user": listener, "k": 1, "generator": "smoke", "candidates": 2,
            "bars": 1}).json()  # fmt: skip
        report = client.get(about["picks"][0]["midi"].rsplit("/", 1)[0] + "/picks.json",
                            headers=keys["admin"]).json()  # fmt: skip
        pseudonym = Pseudonyms.load(None, settings.work_dir.resolve()).of(listener)
        assert report["listener"]["user"] == pseudonym  # never the ID, in a file on disk

        r = client.delete(f"/api/listeners/{listener}", headers=keys["token"])
        assert r.status_code == 200, r.text
        gone = r.json()
        assert gone == {"listener": pseudonym, "models": [MODEL], "jobs": 2, "uploads": 0,
                        "found": True}  # fmt: skip
        # A mistyped id is answered as what it is: nothing of theirs was held.
        typo = client.delete(f"/api/listeners/{listener}x", headers=keys["admin"]).json()
        assert typo["found"] is False and typo["models"] == [] and typo["jobs"] == 0
        # Asked again, nothing of theirs is held any more (their token still names them).
        again = client.delete(f"/api/listeners/{listener}", headers=keys["admin"]).json()
        assert again == {"listener": pseudonym, "models": [], "jobs": 0, "uploads": 0,
                         "found": True}  # fmt: skip
        first, second = (client.delete(f"/api/listeners/{users[5]}", headers=keys["admin"]).json()
                         for _ in range(2))  # fmt: skip
        assert (first["models"], first["found"]) == ([MODEL], True)
        assert (second["models"], second["found"]) == ([], False)
        for job in (own, about):
            url = job["picks"][0]["midi"]
            assert client.get(url).status_code == 404
        assert_no_history(client, keys["admin"], user=listener)
        assert client.get(f"/api/listeners/{listener}/history", headers=keys["token"],
                          params={"model": MODEL}).json()["items"] == []  # fmt: skip
        # Everyone else is untouched.
        other = picks(client, keys["admin"], user=users[4])
    on_disk = (settings.work_dir / "forgotten.json").read_text()
    assert pseudonym in on_disk and listener not in on_disk
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:  # restart
        assert_no_history(client, keys["admin"], user=listener)
        assert picks(client, keys["admin"], user=users[4]) == other
        for method in ("userknn", "itemknn"):  # neighbourhoods refit without their history
            assert_no_history(client, keys["admin"], user=listener, method=method)
            assert picks(client, keys["admin"], user=users[4], method=method)


def assert_no_history(client: TestClient, headers: dict, **listener) -> None:
    """A forgotten listener has no taste left to recommend for: a 404 in the words of GET
    /api/listeners/{id}/history for a listener it holds nothing of, never picks that look
    personal (the catalog in key order, every score 0)."""
    r = client.post("/api/recommend", headers=headers, json={"model": MODEL, "k": 5, **listener})
    assert r.status_code == 404, r.text
    assert r.json()["error"].startswith(f"listener: {MODEL!r} holds no history for this listener")


def test_the_access_log_names_listeners_by_pseudonym_and_hides_link_signatures(tmp_path, caplog):
    pseudonyms = Pseudonyms.load(None, tmp_path)
    ListenerPaths.install(pseudonyms)
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    "/api/listeners/listener%2042/history?model=x", "1.1", 200)  # fmt: skip
    line = caplog.records[-1].getMessage()
    assert "listener%2042" not in line and "listener 42" not in line
    assert pseudonyms.of("listener 42") in line
    # A signed link opens its file to whoever holds it: its signature stays out of the log.
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        link = "/api/files/ab12/picks.json?expires=1796653715&sig=091b5b3fe0"
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", link, "1.1", 200)
    line = caplog.records[-1].getMessage()
    assert "/api/files/ab12/picks.json?expires=1796653715&sig=... " in line
    assert "091b5b3fe0" not in line
    # The app decodes the query's names: `%73ig` is `sig` to it, and to the mask.
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    "/api/files/ab12/a.mid?expires=1&%73Ig=091b5b3fe0", "1.1", 200)  # fmt: skip
    assert "091b5b3fe0" not in caplog.records[-1].getMessage()
    # The secret is made once, owner-only, and the same pseudonym comes back from it.
    assert (tmp_path / ".pseudonym_key").stat().st_mode & 0o077 == 0
    assert Pseudonyms.load(None, tmp_path).of("listener 42") == pseudonyms.of("listener 42")
    assert Pseudonyms.load("another secret " * 3, tmp_path).of("listener 42") != pseudonyms.of(
        "listener 42")  # fmt: skip


def test_an_emptied_pseudonym_secret_stops_the_service_instead_of_keying_with_nothing(tmp_path):
    """An empty secret would make every pseudonym (and every signed link) computable by anyone."""
    (tmp_path / ".pseudonym_key").write_text("")
    with pytest.raises(ConfigError, match=r"\.pseudonym_key \(delete it.* holds 0 characters"):
        Pseudonyms.load(None, tmp_path)


def test_a_short_pseudonym_secret_in_the_environment_fails_at_start_up(
    checkpoints, tmp_path, monkeypatch
):
    monkeypatch.setenv("MY_PSEUDONYM_KEY", "hunter2")
    with pytest.raises(ConfigError, match=r"\$MY_PSEUDONYM_KEY \(pseudonym_key_env\) holds 7"):
        ServeSettings.from_dict({"checkpoints": str(checkpoints), "work_dir": str(tmp_path),
                                 "pseudonym_key_env": "MY_PSEUDONYM_KEY"})  # fmt: skip
    # A long enough secret is used exactly as given (a trailing newline too): changing it would
    # change every pseudonym, and the forget list is written in pseudonyms.
    given = "k" * 40 + "\n"
    assert Pseudonyms.load(given, tmp_path).of("42") == Pseudonyms(given.encode()).of("42")
    monkeypatch.setenv("MY_PSEUDONYM_KEY", "0" * 64)
    ServeSettings.from_dict({"checkpoints": str(checkpoints), "work_dir": str(tmp_path),
                             "pseudonym_key_env": "MY_PSEUDONYM_KEY"})  # fmt: skip


def test_jobs_and_uploads_expire_after_keep_hours(tmp_path):
    store = Store(tmp_path, keep_jobs=100, keep_uploads=100, keep_hours=2)
    old_job, old_folder = store.new_job(OPEN)
    new_job, _ = store.new_job(OPEN)
    upload, path = store.save_upload(b"MThd", OPEN)
    three_hours_ago = time.time() - 3 * 3600
    os.utime(old_folder, (three_hours_ago, three_hours_ago))
    os.utime(path.parent, (three_hours_ago, three_hours_ago))
    assert store.expire() == 2
    assert [p.name for p in store.jobs.iterdir()] == [new_job]
    assert not any(store.uploads.iterdir())
    with pytest.raises(Exception, match="at most 2 h"):
        store.job_dir(old_job, OPEN)
    owner = json.loads((store.jobs / new_job / ".owner").read_text())
    assert owner == {"key": "open", "key_id": None, "listener": None}


def test_a_key_made_again_under_a_revoked_name_reads_nothing_of_the_old_one(tmp_path):
    """Jobs belong to the key (its fingerprint), not its name; what a listener's token made is
    stamped as that listener's, so forgetting them removes it after the token is revoked."""
    from cadenza.serve.auth import Caller
    from cadenza.serve.errors import RequestError

    pseudonyms = Pseudonyms.load(None, tmp_path)
    store = Store(tmp_path / "work", keep_jobs=10, keep_uploads=10, pseudonym_of=pseudonyms.of)
    old = Caller("app-a", frozenset({"generate"}), "listener1", key_id="aa" * 8)
    again = Caller("app-a", frozenset({"generate"}), "listener9", key_id="bb" * 8)
    job, _ = store.new_job(old)
    upload, _ = store.save_upload(b"MThd", old)
    assert store.job_dir(job, old)
    with pytest.raises(RequestError, match="another key"):
        store.job_dir(job, again)
    with pytest.raises(RequestError, match="another key"):
        store.upload_path(upload, again)
    # A record from before fingerprints is still its key name's.
    legacy = store.jobs / job / ".owner"
    legacy.write_text(json.dumps({"key": "app-a", "listener": None}))
    assert store.job_dir(job, again)
    # The old token is revoked (no token names listener1 now); forgetting still finds both.
    legacy.write_text(json.dumps({"key": "app-a", "key_id": "aa" * 8,
                                  "listener": pseudonyms.of("listener1")}))  # fmt: skip
    assert store.remove_listener(pseudonyms.of("listener1"), tokens=set()) == {
        "jobs": 1,
        "uploads": 1,
    }


def test_job_and_upload_folders_are_owner_only(tmp_path):
    """What jobs and uploads hold (a listener's picks, their music) is readable by the
    service's user alone, as its pseudonym secret is; also in a work_dir made world-readable."""
    (tmp_path / "jobs").mkdir(mode=0o755)
    (tmp_path / "jobs").chmod(0o755)
    store = Store(tmp_path, keep_jobs=10, keep_uploads=10)
    _, folder = store.new_job(OPEN)
    _, upload = store.save_upload(b"MThd", OPEN)
    for d in (store.jobs, store.uploads, store.tasks, folder, upload.parent):
        assert d.stat().st_mode & 0o077 == 0, (d, oct(d.stat().st_mode))


def test_other_listeners_are_named_only_to_an_admin(service, checkpoints: Path, users):
    """user-kNN's reasons rank the like-minded listeners for a listener's token ("similar
    listener 1"); only an admin reads who they are. A listener the model does not know is a 404
    that lists none of the ones it does."""
    settings, keys = service
    model = RecommenderModule.load(checkpoints / MODEL / "latest.ckpt")
    body = {"model": MODEL, "k": 3, "method": "userknn",
            "history": [str(k) for k in model.hparams.item_keys[:4]]}  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        named = client.post("/api/recommend", headers=keys["admin"], json=body).json()["picks"]
        ranked = client.post("/api/recommend", headers=keys["token"], json=body).json()["picks"]
        unknown = client.post("/api/recommend", headers=keys["admin"],
                              json={"model": MODEL, "user": "nobody-here"})  # fmt: skip
    assert named and [p["key"] for p in named] == [p["key"] for p in ranked]
    for admin, token in zip(named, ranked):
        assert {r["key"] for r in admin["reasons"]["listeners"]} <= set(users)
        assert [r["share"] for r in token["reasons"]["listeners"]] == [
            r["share"] for r in admin["reasons"]["listeners"]]  # fmt: skip
        assert all(r["key"].startswith("similar listener ") for r in token["reasons"]["listeners"])
        assert not set(users) & set(token["reasons"]["summary"].replace(",", " ").split())
    assert unknown.status_code == 404, unknown.text
    assert "does not know this listener" in unknown.json()["error"]
    assert not set(users) & set(unknown.json()["error"].replace("'", " ").split())
