"""Keys, scopes and listener tokens (serve/auth.py): every endpoint asked with no key, a key
without its scope, another listener's token and the right key; what the public health check
shows; start-up refusing an open service beyond loopback; and the keys file's tool."""

from __future__ import annotations

import hmac
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from cadenza.errors import ConfigError
from cadenza.serve.app import create_app
from cadenza.serve.auth import OPEN, Caller, Keyring, key_entry, new_key
from cadenza.serve.errors import RequestError
from cadenza.serve.fairness import KeyShare
from cadenza.serve.settings import ServeSettings
from tests.fixtures.data import data_root

MELODY = data_root() / "nottingham" / "MIDI" / "melody" / "jigs1.mid"


@dataclass
class Keyed:
    client: TestClient
    keys: dict[str, str]  # name -> the secret
    users: list[str]  # listeners the served recommender knows
    settings: ServeSettings

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}


def write_keys(path: Path, spec: dict[str, tuple[list[str], str | None]]) -> dict[str, str]:
    """name -> (scopes, listener) -> a keys file of digests; returns name -> secret."""
    secrets = {name: new_key() for name in spec}
    entries = [key_entry(n, secrets[n], scopes, listener) for n, (scopes, listener) in spec.items()]
    path.write_text(yaml.safe_dump({"keys": entries}))
    return secrets


@pytest.fixture(scope="module")
def keyed(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    from cadenza.recommend.module import RecommenderModule

    users = [str(u) for u in RecommenderModule.load(
        checkpoints / "smoke_recommender" / "latest.ckpt").hparams.user_keys]  # fmt: skip
    root = tmp_path_factory.mktemp("keyed")
    keys = write_keys(root / "keys.yaml", {
        "admin": (["admin"], None),
        "producer": (["generate"], None),
        "platform": (["recommend"], None),
        "listener-a": (["recommend", "generate"], users[0]),
        "listener-b": (["recommend", "generate"], users[1]),
        "listener-c": (["recommend"], users[2]),
    })  # fmt: skip
    settings = ServeSettings.from_dict({
        "checkpoints": str(checkpoints), "work_dir": str(root / "work"),
        "keys_file": str(root / "keys.yaml"), "limits": {"max_n": 2, "max_bars": 4},
        "sample": {"n": 1, "bars": 4, "sample_rate": 16000},  # defaults within the limits
    })  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Keyed(client, keys, users, settings)


def upload(k: Keyed, who: str) -> str:
    r = k.client.post("/api/uploads", headers=k.headers(who),
                      files={"file": ("m.mid", MELODY.read_bytes(), "audio/midi")})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["upload"]


def job_of(k: Keyed, who: str) -> dict:
    r = k.client.post("/api/generate", headers=k.headers(who),
                      json={"model": "smoke", "n": 1, "bars": 1, "seed": 3})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


def task_of(k: Keyed, who: str) -> str:
    r = k.client.post("/api/jobs/generate", headers=k.headers(who),
                      json={"model": "smoke", "n": 1, "bars": 1, "seed": 3})  # fmt: skip
    assert r.status_code == 202, r.text
    return r.json()["url"]


# One row per endpoint: (method, path, body(k) -> request kwargs, the right key, a key without
# the scope (None: any valid key will do), and a key of another listener or owner).
Request = Callable[[Keyed], dict]
ROUTES: list[tuple[str, Callable[[Keyed], str], Request, str, str | None, str | None]] = [
    ("GET", lambda k: "/api/models", lambda k: {}, "platform", None, None),
    ("GET", lambda k: "/api/models/smoke", lambda k: {}, "producer", None, None),
    ("POST", lambda k: "/api/uploads",
     lambda k: {"files": {"file": ("m.mid", MELODY.read_bytes(), "audio/midi")}},
     "producer", "platform", None),
    ("POST", lambda k: "/api/generate",
     lambda k: {"json": {"model": "smoke", "n": 1, "bars": 1}}, "producer", "platform", None),
    ("POST", lambda k: "/api/interpolate",
     lambda k: {"json": {"model": "smoke_gan", "steps": 2}}, "producer", "platform", None),
    ("POST", lambda k: "/api/render",
     lambda k: {"json": {"upload": upload(k, "producer")}}, "producer", "platform",
     "listener-a"),
    ("POST", lambda k: "/api/classify",
     lambda k: {"json": {"model": "smoke_classifier", "upload": upload(k, "producer")}},
     "producer", "platform", "listener-a"),
    ("GET", lambda k: (lambda j: j["items"][0]["midi"].split("?")[0])(job_of(k, "producer")),
     lambda k: {}, "producer", None, "listener-a"),
    ("GET", lambda k: f"/api/files/{job_of(k, 'producer')['job']}", lambda k: {}, "producer",
     None, "listener-a"),
    ("POST", lambda k: "/api/recommend",
     lambda k: {"json": {"model": "smoke_recommender", "user": k.users[0], "k": 3}},
     "listener-a", "producer", "listener-b"),
    ("GET", lambda k: f"/api/listeners/{k.users[0]}/history",
     lambda k: {"params": {"model": "smoke_recommender"}}, "listener-a", "producer",
     "listener-b"),
    ("POST", lambda k: "/api/jobs/generate",
     lambda k: {"json": {"model": "smoke", "n": 1, "bars": 1}}, "producer", "platform", None),
    ("POST", lambda k: "/api/jobs/interpolate",
     lambda k: {"json": {"model": "smoke_gan", "steps": 2}}, "producer", "platform", None),
    ("POST", lambda k: "/api/jobs/render",
     lambda k: {"json": {"upload": upload(k, "producer")}}, "producer", "platform",
     "listener-a"),
    ("POST", lambda k: "/api/jobs/recommend",
     lambda k: {"json": {"model": "smoke_recommender", "user": k.users[0], "k": 1,
                         "generator": "smoke", "candidates": 2, "bars": 1}},
     "listener-a", "producer", "listener-b"),
    ("GET", lambda k: "/api/jobs", lambda k: {}, "producer", None, None),
    ("GET", lambda k: task_of(k, "producer"), lambda k: {}, "producer", None, "listener-a"),
    ("DELETE", lambda k: task_of(k, "producer"), lambda k: {}, "producer", None, "listener-a"),
    # Any key bound to the listener (or admin) may forget them; here listener-c, whom no
    # other test of this module reads.
    ("DELETE", lambda k: f"/api/listeners/{k.users[2]}", lambda k: {}, "listener-c", None,
     "listener-a"),
]  # fmt: skip
ROUTE_IDS = ["models", "model", "uploads", "generate", "interpolate", "render", "classify", "files",
             "job-files", "recommend", "history", "job-submit", "job-interpolate", "job-render",
             "job-recommend", "jobs", "job-status", "job-cancel",
             "forget"]  # fmt: skip


# Public by design (probes and metrics: test_health_and_probes_are_public_and_tell_nothing_secret).
PUBLIC = ("/api/health", "/api/live", "/api/ready", "/metrics")


def test_the_table_asks_every_route_of_the_api(keyed):
    """A new route cannot go without its who-is-calling cases: every operation of the
    service's own OpenAPI document but the public ones has its row in ROUTES."""
    paths = keyed.client.get("/openapi.json").json()["paths"]
    operations = {(method.upper(), path) for path, ops in paths.items() for method in ops
                  if path not in PUBLIC}  # fmt: skip
    # A row's path with its IDs put back as the document's templates.
    templates = {"files": "/api/files/{job}/{name}", "job-files": "/api/files/{job}",
                 "job-status": "/api/jobs/{job}",
                 "job-cancel": "/api/jobs/{job}", "model": "/api/models/{name}",
                 "history": "/api/listeners/{listener}/history",
                 "forget": "/api/listeners/{listener}"}  # fmt: skip
    rows = {(route[0], templates.get(rid) or route[1](None))
            for route, rid in zip(ROUTES, ROUTE_IDS, strict=True)}  # fmt: skip
    assert operations == rows, f"without auth cases: {sorted(operations - rows)}"


CASES = [
    pytest.param(who, *route, id=f"{rid}-{who}")
    for route, rid in zip(ROUTES, ROUTE_IDS, strict=True)
    for who in ("no key", "wrong key", "wrong scope", "other", "right")
    # A route any valid key may call has no wrong scope; one that reads no one's data, no other.
    if not (who == "wrong scope" and route[4] is None) and not (who == "other" and route[5] is None)
]


@pytest.mark.parametrize(("who", "method", "path", "body", "right", "unscoped", "other"), CASES)
def test_every_endpoint_asks_who_is_calling(keyed, who, method, path, body, right, unscoped, other):
    k = keyed
    caller = {"no key": None, "wrong key": "forged", "wrong scope": unscoped, "other": other,
              "right": right}[who]  # fmt: skip
    headers = {"Authorization": f"Bearer {new_key()}"} if caller == "forged" else k.headers(caller)
    r = k.client.request(method, path(k), headers=headers, **body(k))
    expected = {"no key": 401, "wrong key": 401, "wrong scope": 403, "other": 403}.get(who)
    if expected is None:
        assert r.status_code in (200, 201, 202), r.text
    else:
        assert r.status_code == expected, r.text
        assert r.json()["status"] == expected and r.json()["error"]
        if expected == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # The answer names the caller's own key and listener, never another listener.
        own = {"listener-a": k.users[0], "listener-b": k.users[1], "listener-c": k.users[2]}
        others = set(k.users[:3]) - {own.get(caller)}
        assert not any(u in r.json()["error"] for u in others), r.json()["error"]


def test_a_listener_token_reads_its_own_listener_and_no_one_else(keyed):
    k = keyed
    mine, theirs = k.users[0], k.users[1]
    a = k.headers("listener-a")
    # Naming nobody asks for its own listener; naming another is refused.
    own = k.client.post("/api/recommend", headers=a, json={"model": "smoke_recommender", "k": 3})
    assert own.status_code == 200 and own.json()["listener"]["user"] == mine
    r = k.client.post("/api/recommend", headers=a,
                      json={"model": "smoke_recommender", "user": theirs, "k": 3})  # fmt: skip
    assert r.status_code == 403 and theirs not in r.json()["error"]
    # An unbound recommend key may not name a stored listener, but may bring a history.
    platform = k.headers("platform")
    r = k.client.post("/api/recommend", headers=platform,
                      json={"model": "smoke_recommender", "user": mine, "k": 3})  # fmt: skip
    assert r.status_code == 403
    history = [i["key"] for i in k.client.get(
        f"/api/listeners/{mine}/history", headers=a, params={"model": "smoke_recommender"}
    ).json()["items"]][:3]  # fmt: skip
    r = k.client.post("/api/recommend", headers=platform,
                      json={"model": "smoke_recommender", "history": history, "k": 3})  # fmt: skip
    assert r.status_code == 200, r.text
    # Listing a recommender's listeners: an admin sees them, a token its own, others none.
    for who, users, n in (("admin", k.users[:50], len(k.users)), ("listener-a", [mine], None),
                          ("platform", [], None)):  # fmt: skip
        info = k.client.get("/api/models/smoke_recommender", headers=k.headers(who)).json()
        assert (info["users"], info["n_users"]) == (users, n), who
    # Scoring generated pieces samples them: recommend alone is not enough.
    r = k.client.post("/api/recommend", headers=platform, json={
        "model": "smoke_recommender", "history": history, "k": 1, "generator": "smoke",
        "candidates": 2, "bars": 1})  # fmt: skip
    assert r.status_code == 403 and "generate" in r.json()["error"]


def test_jobs_and_uploads_are_read_back_only_by_their_key_or_by_signed_link(keyed):
    k = keyed
    job = job_of(k, "listener-a")
    signed = job["items"][0]["midi"]
    plain = signed.split("?")[0]
    assert "sig=" in signed and "expires=" in signed
    assert k.client.get(signed).status_code == 200  # a browser's <audio>: no key needed
    assert k.client.get(plain, headers=k.headers("listener-a")).status_code == 200
    assert k.client.get(plain, headers=k.headers("admin")).status_code == 200
    assert k.client.get(plain, headers=k.headers("listener-b")).status_code == 403
    assert k.client.get(plain).status_code == 401
    # A signature is for one file and one expiry: altered, it is no key at all.
    other = plain.rsplit("/", 1)[0] + "/samples.json?" + signed.split("?")[1]
    assert k.client.get(other).status_code == 401
    forged = signed.replace("expires=", "expires=9")
    assert k.client.get(forged).status_code == 401
    # Someone else's upload is not a primer for you.
    theirs = upload(k, "listener-a")
    r = k.client.post("/api/generate", headers=k.headers("listener-b"),
                      json={"model": "smoke", "n": 1, "bars": 1, "primer": theirs})  # fmt: skip
    assert r.status_code == 403


def test_an_expired_or_altered_file_link_says_so_and_how_to_get_a_new_one(keyed, monkeypatch):
    k = keyed
    links = k.client.app.state.store.links
    monkeypatch.setattr(links, "minutes", -1.0)  # links that expired as they were made
    expired = job_of(k, "listener-a")["items"][0]["midi"]
    task = task_of(k, "listener-a")
    monkeypatch.undo()
    r = k.client.get(expired)  # a browser following the link: no key
    assert r.status_code == 401, r.text
    said = r.json()["error"]
    assert "link expired" in said and "ask for a new link" in said and "GET /api/files/" in said
    assert "API key is required" not in said
    # A signature that does not match: altered, or the expiry moved on by hand.
    tampered = job_of(k, "listener-a")["items"][0]["midi"].replace("sig=", "sig=0")
    fresh_expiry = re.sub(r"expires=\d+", f"expires={int(time.time()) + 3600}", expired)
    for wrong in (tampered, fresh_expiry):
        r = k.client.get(wrong)
        assert r.status_code == 401 and "signature is wrong" in r.json()["error"], r.text
        assert "ask for a new link" in r.json()["error"]
    # With the key that made the job, the same link (or the bare path) still downloads.
    for url in (expired, tampered, expired.split("?")[0]):
        assert k.client.get(url, headers=k.headers("listener-a")).status_code == 200, url
    assert k.client.get(expired, headers=k.headers("listener-b")).status_code == 403
    # An immediate job's files, listed with the key that made it: links that work again.
    job = expired.split("/api/files/")[1].split("/")[0]
    r = k.client.get(f"/api/files/{job}", headers=k.headers("listener-a"))
    assert r.status_code == 200, r.text
    files = r.json()["files"]
    assert "sample_000.mid" in files and "samples.json" in files and ".owner" not in files
    assert k.client.get(files["sample_000.mid"]).status_code == 200  # no key: a fresh link
    assert k.client.get(f"/api/files/{job}", headers=k.headers("listener-b")).status_code == 403
    # A background job's record, read again, gives links that work.
    deadline = time.monotonic() + 60
    status = k.client.get(task, headers=k.headers("listener-a")).json()
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = k.client.get(task, headers=k.headers("listener-a")).json()
    assert status["status"] == "done", status
    assert k.client.get(status["result"]["items"][0]["midi"]).status_code == 200


def test_an_expiry_no_clock_can_name_is_a_401_not_a_500(keyed):
    r = keyed.client.get("/api/files/x/a.mid?expires=-99999999999999999999&sig=x")
    assert r.status_code == 401 and "link expired;" in r.json()["error"], r.text


def test_a_background_recommendation_is_recorded_under_a_pseudonym(keyed):
    """Its record on disk names the listener by pseudonym and keeps no signed link; read back,
    the listener's own token sees their ID, an admin the pseudonym (as the logs name them)."""
    k = keyed
    r = k.client.post("/api/jobs/recommend", headers=k.headers("listener-a"), json={
        "model": "smoke_recommender", "generator": "smoke", "candidates": 2, "k": 1,
        "bars": 1})  # fmt: skip
    assert r.status_code == 202, r.text
    url, task = r.json()["url"], r.json()["id"]
    deadline = time.monotonic() + 60
    while (status := k.client.get(url, headers=k.headers("listener-a")).json())["status"] in (
        "queued", "running") and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.05)
    assert status["status"] == "done", status
    record = (k.settings.work_dir / "tasks" / task / "task.json").read_text()
    assert k.users[0] not in record and "sig=" not in record
    pseudonym = k.client.app.state.pseudonyms.of(k.users[0])
    assert pseudonym in record
    assert status["result"]["listener"]["user"] == k.users[0]
    assert "user_pseudonym" not in status["result"]["listener"]
    assert k.client.get(status["result"]["picks"][0]["midi"]).status_code == 200  # signed again
    admin = k.client.get(url, headers=k.headers("admin")).json()["result"]["listener"]
    assert admin["user"] is None and admin["user_pseudonym"] == pseudonym


def test_health_and_probes_are_public_and_tell_nothing_secret(keyed, checkpoints):
    k = keyed
    r = k.client.get("/api/health")
    assert r.status_code == 200 and r.json()["auth"] is True
    assert k.client.get("/api/live").json() == {"status": "alive"}
    assert k.client.get("/api/ready").json()["status"] == "ready"
    text = r.text + k.client.get("/api/ready").text
    for secret in (*k.keys.values(), *k.keys, str(checkpoints), str(k.settings.work_dir),
                   *k.users[:5]):  # fmt: skip
        assert secret not in text
    assert "failed" not in r.json()


def test_the_openapi_document_names_the_key_and_the_401_and_403_answers(keyed):
    schema = keyed.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKey"]["scheme"] == "bearer"
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if path in PUBLIC:
                assert "security" not in op
                continue
            if path.startswith("/api/files"):
                continue  # a signed link needs no key: documented, not required
            assert op.get("security") == [{"APIKey": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            body = op["responses"]["403"]["content"]["application/json"]["schema"]
            assert body["$ref"].endswith("/ErrorBody")


def test_one_key_cannot_hold_every_worker(keyed):
    """max_requests_per_key: with a key's share of model requests in flight, its next one is a
    429 at once (Retry-After, documented), while another key's is served; each request gives
    its place back when answered, a refused or failed one too."""
    share = keyed.client.app.state.key_share
    producer = keyed.client.app.state.keyring.caller(keyed.keys["producer"])
    body = {"model": "smoke", "n": 1, "bars": 1, "seed": 1}
    assert share.cap(producer) == keyed.settings.max_requests_per_key == 8
    with ExitStack() as held:  # the producer's 8 requests, still running
        for _ in range(8):
            held.enter_context(share.hold(producer))
        refused = keyed.client.post("/api/generate", json=body, headers=keyed.headers("producer"))
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "this key (producer) already has 8" in refused.json()["error"]
        served = keyed.client.post("/api/generate", json=body, headers=keyed.headers("listener-a"))
        assert served.status_code == 200, served.text
    for model, answer in (("smoke", 200), ("no_such_model", 404)):  # a failed one lets go too
        r = keyed.client.post("/api/generate", json={**body, "model": model},
                              headers=keyed.headers("producer"))  # fmt: skip
        assert r.status_code == answer, r.text
        assert share.held(producer) == 0
    paths = keyed.client.get("/openapi.json").json()["paths"]
    for path in ("/api/generate", "/api/interpolate", "/api/render", "/api/classify",
                 "/api/recommend"):  # fmt: skip
        assert "429" in paths[path]["post"]["responses"], path
    assert "429" not in paths["/api/jobs/generate"]["post"]["responses"]  # its own share: 503


def test_a_keys_own_share_wins_and_a_service_without_keys_has_none():
    share = KeyShare(limit=8)
    backend = Caller("backend", frozenset({"generate"}), key_id="ab" * 8, max_requests=1)
    with share.hold(backend):
        second = share.hold(backend)
        with pytest.raises(RequestError, match="already has 1") as refused:
            second.__enter__()
    assert refused.value.status == 429
    assert share.held(backend) == 0
    with ExitStack() as held:
        for _ in range(20):
            held.enter_context(share.hold(OPEN))
    assert KeyShare(limit=None).cap(Caller("x", frozenset(), key_id="cd" * 8)) is None


def test_keys_compare_in_constant_time_over_every_stored_digest(monkeypatch):
    keys = {f"k{i}": new_key() for i in range(5)}
    ring = Keyring.load(None, yaml.safe_dump({"keys": [
        key_entry(n, s, ["generate"], None) for n, s in keys.items()]}), "TEST")  # fmt: skip
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    for presented in (keys["k0"], keys["k4"]):
        calls.clear()
        assert ring.caller(presented).name == ("k0" if presented == keys["k0"] else "k4")
        assert len(calls) == 5  # the first key's match did not stop the loop early
    calls.clear()
    with pytest.raises(Exception, match="not valid"):
        ring.caller("cdz_guess")
    assert len(calls) == 5


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("keys: [{name: a, sha256: abc, scopes: [admin]}]", "keys[0].sha256"),
        ("keys: [{name: a, sha256: " + "'" + "0" * 64 + "', scopes: [root]}]", "keys[0].scopes"),
        ("keys: [{name: a, sha256: " + "'" + "0" * 64 + "', scopes: [admin], key: x}]", "unknown"),
        (
            "keys: [{name: a, sha256: "
            + "'"
            + "0" * 64
            + "', scopes: [admin]}, {name: a, sha256: "
            + "'"
            + "1" * 64
            + "', scopes: [admin]}]",
            "unique",
        ),
        ("keys: {a: 1}", "list"),
        (
            "keys: [{name: a, sha256: '" + "0" * 64 + "', scopes: [admin], max_requests: 0}]",
            "keys[0].max_requests",
        ),
        (
            "keys: [{name: a, sha256: '" + "0" * 64 + "', scopes: [admin], max_requests: '8'}]",
            "keys[0].max_requests",
        ),
    ],
    ids=[
        "short-digest",
        "unknown-scope",
        "unknown-field",
        "duplicate-name",
        "not-a-list",
        "zero-requests",
        "requests-as-text",
    ],
)
def test_a_malformed_keys_file_fails_at_start_up_saying_where(checkpoints, tmp_path, text, says):
    (tmp_path / "keys.yaml").write_text(text)
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        ServeSettings.from_dict({"checkpoints": str(checkpoints), "keys_file": str(
            tmp_path / "keys.yaml")})  # fmt: skip


@pytest.mark.slow
def test_serving_beyond_loopback_needs_keys_and_keys_may_come_from_the_environment(
    checkpoints, tmp_path, monkeypatch
):
    exe = Path(sys.executable).parent / "cadenza-serve"
    done = subprocess.run([str(exe), f"checkpoints={checkpoints}", "host=0.0.0.0", "port=0",
                           f"work_dir={tmp_path}"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "keys_file" in done.stderr + done.stdout and "CADENZA_API_KEYS" in done.stderr
    secret = new_key()
    monkeypatch.setenv("CADENZA_API_KEYS", yaml.safe_dump(
        {"keys": [key_entry("ops", secret, ["admin"], None)]}))  # fmt: skip
    settings = ServeSettings.from_dict({"checkpoints": str(checkpoints), "host": "0.0.0.0"})
    assert settings.keyring().caller(secret).admin


def test_cadenza_keys_makes_lists_and_revokes_keys(tmp_path):
    exe = Path(sys.executable).parent / "cadenza-keys"
    path = tmp_path / "keys.yaml"

    def keys(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)

    # A name that spells out its listener's ID would put the ID in every log line of its calls.
    for name, listener in (("listener-42", "42"), ("Listener_42", "listener42")):
        spelled = keys("new", "--name", name, "--scopes", "recommend", "--listener", listener,
                       "--file", str(path))  # fmt: skip
        assert spelled.returncode == 2 and "holds the listener's ID" in spelled.stderr
    assert not path.exists()
    made = keys("new", "--name", "app-7f3a", "--scopes", "recommend", "--listener", "42",
                "--file", str(path))  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("cdz_") and secret not in path.read_text()  # only its digest
    assert path.stat().st_mode & 0o077 == 0  # owner-only
    caller = Keyring.load(path, None, "X").caller(secret)
    assert caller.listener == "42" and caller.scopes == {"recommend"}
    assert (
        keys("new", "--name", "app-7f3a", "--scopes", "admin", "--file", str(path)).returncode == 2
    )
    backend = keys("new", "--name", "backend", "--scopes", "generate", "--max-requests", "64",
                   "--file", str(path))  # fmt: skip
    assert Keyring.load(path, None, "X").caller(backend.stdout.strip()).max_requests == 64
    listed = keys("list", "--file", str(path)).stdout
    assert "app-7f3a: recommend  listener 42" in listed
    assert "backend: generate  max_requests 64" in listed
    for name in ("app-7f3a", "backend"):
        assert keys("revoke", "--name", name, "--file", str(path)).returncode == 0
    assert Keyring.load(path, None, "X").open
