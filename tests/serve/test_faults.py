"""Bad requests get a clear 4xx naming what is wrong, and the next valid request succeeds;
no request reaches a file outside the service's folders; a crash inside a job is a 500 JSON
answer, not a dead service; a wrong setting fails at start-up naming the key."""

from __future__ import annotations

import pytest

from cadenza.errors import ConfigError
from cadenza.serve.app import POLICIES, Workers
from cadenza.serve.errors import RequestError
from cadenza.serve.settings import ServeSettings
from tests.fixtures.data import data_root

VALID = {"model": "smoke", "n": 1, "bars": 1}


def valid_generate_succeeds(client) -> None:
    r = client.post("/api/generate", json=VALID)
    assert r.status_code == 200, r.text
    assert client.get(r.json()["items"][0]["midi"]).content[:4] == b"MThd"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ('{"model": "smoke", "n": ', 422, "not valid JSON"),
        ('["model", "smoke"]', 422, "body"),
        ('{"model": "smoke", "n": "2"}', 422, "n: Input should be a valid integer"),
        ('{"model": "smoke", "temperature": "hot"}', 422, "temperature"),
        ('{"model": "smoke", "temperature": 0}', 422, "temperature"),
        ('{"model": "smoke", "render": "yes"}', 422, "render"),
        ('{"model": "smoke", "n": 1, "tempreature": 1.2}', 422, "tempreature"),
        ('{"n": 1}', 422, "model: Field required"),
        ('{"model": "nope"}', 404, "no model 'nope'"),
        ('{"model": "smoke_recommender"}', 400, "not a generator"),
        ('{"model": "smoke", "n": 5}', 422, "limits.max_n"),
        ('{"model": "smoke", "bars": 9}', 422, "limits.max_bars"),
        ('{"model": "smoke", "top_k": 5}', 400, "top_k"),
        ('{"model": "smoke_gan", "primer": "00000000000000000000000000000000"}', 400, "primer"),
        ('{"model": "smoke", "primer": "00000000000000000000000000000000"}', 404, "no upload"),
        ('{"model": "smoke", "primer": "../../etc/passwd"}', 404, "no upload"),
        ('{"model": "smoke", "bars": 1e-300}', 422, "less than one step"),
        ('{"model": "smoke_vae", "attribute": "density:nan"}', 422, "finite number"),
        ('{"model": "smoke_vae", "attribute": "density:-inf"}', 422, "finite number"),
        ('{"model": "smoke_vae", "attribute": "density:+11"}', 422, "between -10 and 10"),
    ],
    ids=[
        "truncated-json",
        "not-an-object",
        "string-for-int",
        "string-for-float",
        "zero-temp",
        "string-for-bool",
        "unknown-field",
        "missing-model",
        "unknown-model",
        "wrong-kind",
        "n-over-cap",
        "bars-over-cap",
        "top-k-on-frames",
        "primer-on-gan",
        "unknown-upload",
        "path-as-upload",
        "bars-under-a-step",
        "attribute-nan",
        "attribute-inf",
        "attribute-too-far",
    ],  # fmt: skip
)
def test_bad_generate_requests_get_a_clear_4xx(client, body, status, says) -> None:
    r = client.post("/api/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert says in r.json()["error"]
    valid_generate_succeeds(client)


def test_a_json_body_sent_without_its_content_type_is_told_so(client) -> None:
    r = client.post("/api/generate", content=b'{"model": "smoke"}')  # curl -d's default type
    assert r.status_code == 422, r.text
    assert "content-type: application/json" in r.json()["error"]


@pytest.mark.parametrize(
    ("make", "status", "says"),
    [
        (lambda real: b"", 422, "empty file"),
        (lambda real: b"RIFF....not midi", 422, "not midi"),
        (lambda real: real[: len(real) // 2], 422, "truncated"),
        (lambda real: b"MThd" + b"\x00" * 70_000, 413, "limits.max_upload_bytes"),
    ],
    ids=["empty", "not-midi", "truncated-real-midi", "oversize"],
)
def test_bad_uploads_are_refused_and_nothing_is_kept(client, settings, make, status, says):
    real = (data_root() / "nottingham" / "MIDI" / "melody" / "jigs1.mid").read_bytes()
    before = sorted((settings.work_dir / "uploads").iterdir())
    r = client.post("/api/uploads", files={"file": ("bad.mid", make(real), "audio/midi")})
    assert r.status_code == status, r.text
    assert says in r.json()["error"]
    assert sorted((settings.work_dir / "uploads").iterdir()) == before
    r = client.post("/api/uploads", files={"file": ("good.mid", real, "audio/midi")})
    assert r.status_code == 201
    valid_generate_succeeds(client)


def test_a_malformed_multipart_upload_is_a_documented_422(client) -> None:
    """The framework's own parse errors (no boundary, too many fields) are invalid requests,
    answered as the OpenAPI document says uploads can be."""
    documented = client.get("/openapi.json").json()["paths"]["/api/uploads"]["post"]["responses"]
    for headers, body in (
        ({"content-type": "multipart/form-data"}, b"--x\r\n"),  # no boundary
        ({"content-type": "multipart/form-data; boundary=b"},
         b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
                  for i in range(1001)) + b"--b--\r\n"),
    ):  # fmt: skip
        r = client.post("/api/uploads", content=body, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"].startswith("body: not a valid request body")
        assert str(r.status_code) in documented


def test_render_refuses_a_file_longer_than_its_cap_before_any_work(client, settings) -> None:
    """A few bytes of MIDI can ask for an hour of audio: refused, naming the setting."""
    import io

    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    organ = pretty_midi.Instrument(program=19)
    organ.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=3599.0))
    pm.instruments.append(organ)
    buf = io.BytesIO()
    pm.write(buf)
    assert len(buf.getvalue()) < 100
    up = client.post("/api/uploads", files={"file": ("long.mid", buf.getvalue(), "audio/midi")})
    assert up.status_code == 201, up.text
    jobs_before = sorted((settings.work_dir / "jobs").iterdir())
    r = client.post("/api/render", json={"upload": up.json()["upload"]})
    assert r.status_code == 422, r.text
    assert "3599 s" in r.json()["error"] and "limits.max_render_seconds" in r.json()["error"]
    assert sorted((settings.work_dir / "jobs").iterdir()) == jobs_before


def test_made_up_methods_are_counted_as_other_not_as_new_series(client) -> None:
    for i in range(3):
        client.request(f"M{i:05d}SECRET", "/api/health")
    text = client.get("/metrics").text
    assert "SECRET" not in text and 'method="other"' in text


def test_every_answer_forbids_framing_sniffing_and_referers(client) -> None:
    """And says what its page may run: the studio its own files, the API's answers nothing, the
    docs' pages inline script from this service only (the browser test sees none refused)."""
    policies = {"/": "studio", "/studio/studio.js": "studio", "/api/health": "api",
                "/api/no_such_route": "api", "/docs": "docs", "/redoc": "docs",
                "/api/files/nojob/a.wav": "files"}  # fmt: skip
    for path, page in policies.items():
        r = client.get(path)
        h = r.headers
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        policy = h["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert policy == POLICIES[page], path
        assert ("'unsafe-inline'" in policy) == (page in ("docs", "files")), path
        assert "script-src" not in policy or page == "docs", path
        assert h["referrer-policy"] == "no-referrer"
    assert POLICIES["api"].startswith("default-src 'none'")


def test_the_studio_page_runs_its_own_files_and_no_other(client) -> None:
    page = client.get("/").text
    assert "<script>" not in page and "<style>" not in page and " style=" not in page
    for name, media in (("studio.js", "text/javascript"), ("studio.css", "text/css")):
        r = client.get(f"/studio/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert f'"studio/{name}"' in page  # under the page's <base>: the root_path
    for name in ("studio.html", "..%2Fapp.py", "studio.jsx"):
        assert client.get(f"/studio/{name}").status_code == 404, name


def test_unknown_routes_and_methods_answer_in_the_same_shape(client) -> None:
    r = client.get("/api/no_such_route")
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "status": 404}
    r = client.get("/api/generate")
    assert r.status_code == 405 and r.json()["status"] == 405


def test_a_body_without_content_length_is_still_capped(client) -> None:
    def chunks():  # sent chunked: the cap must be counted as the body streams in
        for _ in range(20):
            yield b"x" * 8192

    r = client.post("/api/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]
    valid_generate_succeeds(client)


@pytest.mark.parametrize(
    "path",
    [
        "/api/files/../../etc/passwd",
        "/api/files/%2e%2e/%2e%2e%2fsettings",
        "/api/files/{job}/..%2f..%2fuploads",
        "/api/files/{job}/.hidden",
        "/api/files/{job}/%2fetc%2fpasswd",
        "/api/files/notahexid/sample_000.mid",
    ],  # fmt: skip
)
def test_no_path_from_a_request_leaves_the_job_folder(client, path) -> None:
    job = client.post("/api/generate", json=VALID).json()["job"]
    r = client.get(path.format(job=job))
    assert r.status_code == 404
    assert r.content[:4] != b"MThd" and b"root:" not in r.content


def test_a_crash_inside_a_job_is_a_500_and_the_service_keeps_serving(client, settings, monkeypatch):
    import cadenza.generation

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure deep inside a model")

    jobs_before = len(list((settings.work_dir / "jobs").iterdir()))
    monkeypatch.setattr(cadenza.generation, "generate", boom)  # drawn alone
    monkeypatch.setattr(cadenza.generation, "generate_batch", boom)  # or batched
    r = client.post("/api/generate", json=VALID)
    assert r.status_code == 500 and "RuntimeError" in r.json()["error"]
    assert len(list((settings.work_dir / "jobs").iterdir())) <= jobs_before  # no half job kept
    monkeypatch.undo()
    assert client.get("/api/health").json()["status"] == "ok"
    valid_generate_succeeds(client)


def test_a_crash_is_logged_with_the_path_as_sent(client, monkeypatch, caplog) -> None:
    """Decoded, a %0A in the path would start a line of the attacker's in the log."""
    import logging

    store = client.app.state.store

    def boom(*args, **kwargs):
        raise RuntimeError("simulated")

    monkeypatch.setattr(store, "job_file", boom)
    with caplog.at_level(logging.ERROR, logger="cadenza"):
        r = client.get("/api/files/x%0AINFO%3A%20forged/a.mid")
    assert r.status_code == 500
    (line,) = [rec.getMessage() for rec in caplog.records if "failed" in rec.getMessage()]
    assert "\n" not in line and "x%0AINFO%3A%20forged" in line


def test_workers_answer_busy_instead_of_queueing_forever() -> None:
    workers = Workers(1, timeout=0.05)
    with workers.slot():
        assert workers.busy == 1
        with pytest.raises(RequestError) as e, workers.slot():
            pass
        assert e.value.status == 503 and "busy" in str(e.value)
    with workers.slot():  # the slot came back
        assert workers.busy == 1


def test_old_jobs_are_pruned_so_the_disk_stays_bounded(client, settings) -> None:
    jobs = [client.post("/api/generate", json=VALID).json()["job"]
            for _ in range(settings.keep_jobs + 3)]  # fmt: skip
    kept = {p.name for p in (settings.work_dir / "jobs").iterdir()}
    assert len(kept) <= settings.keep_jobs and jobs[-1] in kept and jobs[0] not in kept
    r = client.get(f"/api/files/{jobs[0]}/sample_000.mid")
    assert r.status_code == 404 and "newest" in r.json()["error"]


@pytest.mark.parametrize(
    ("cfg", "says"),
    [
        ({"checkpoints": "/no/such/folder"}, "checkpoints=/no/such/folder"),
        ({"host": "example.com"}, "host="),
        ({"port": 70000}, "port"),
        ({"limits": {"max_n": 0}}, "limits.max_n"),
        ({"limits": {"max_m": 3}}, "limits.max_m"),
        ({"workers": "two"}, "workers"),
        ({"colour": "blue"}, "colour"),
        ({"synth": "moog"}, "synth"),
        ({"host": "0.0.0.0"}, "no API keys are configured: set keys_file"),
        ({"keep_hours": -1}, "keep_hours"),
        ({"device": "cuda:99"}, "device=cuda:99"),  # no GPU here, or not that many
        ({"device": "tpu"}, "device='tpu' is not a device"),
        ({"sample": {"tempo": 1000}}, "sample.tempo must be null or quarter notes a minute"),
        ({"sample": {"n": 50}}, "sample.n=50 is over limits.max_n=16"),
        ({"sample": {"temperature": -1}}, "sample.temperature must be > 0"),
        ({"sample": {"bars": 1000}}, "sample.bars=1000 is over limits.max_bars=64"),
        ({"sample": {"top_p": 2}}, "sample.top_p must be in"),
    ],
    ids=[
        "missing-folder",
        "hostname",
        "port",
        "zero-cap",
        "unknown-cap",
        "workers-type",
        "unknown-key",
        "synth",
        "open-beyond-loopback",
        "keep-hours",
        "unusable-device",
        "not-a-device",
        "tempo",
        "default-n-over-its-cap",
        "default-temperature",
        "default-bars-over-its-cap",
        "default-top-p",
    ],  # fmt: skip
)
def test_a_wrong_setting_fails_at_start_up_naming_the_key(checkpoints, cfg, says) -> None:
    with pytest.raises(ConfigError, match=says.replace(".", r"\.").replace("/", "/")):
        ServeSettings.from_dict({"checkpoints": str(checkpoints), **cfg})


def test_loopback_is_the_default_host(checkpoints) -> None:
    assert ServeSettings.from_dict({"checkpoints": str(checkpoints)}).host == "127.0.0.1"


def test_pruning_survives_entries_vanishing_under_it(tmp_path) -> None:
    """Processes of processes=N prune one folder: an entry another process just deleted (here a
    dangling link, which fails to stat the same way) must not fail this process's request."""
    from cadenza.serve.auth import OPEN
    from cadenza.serve.store import Store

    store = Store(tmp_path, keep_jobs=2, keep_uploads=2)
    (store.jobs / "gone").symlink_to(tmp_path / "deleted-by-another-process")
    jobs = [store.new_job(OPEN)[0] for _ in range(4)]
    kept = {p.name for p in store.jobs.iterdir() if p.is_dir()}
    assert jobs[-1] in kept and len(kept) <= 2


def test_a_numeric_listener_id_may_come_as_a_json_number() -> None:
    """Last.fm's listener IDs are numbers: `"user": 2` is the listener "2" (true is no ID)."""
    from pydantic import ValidationError

    from cadenza.serve.schemas import RecommendRequest

    assert RecommendRequest(model="lastfm_recommender", user=2).user == "2"
    with pytest.raises(ValidationError):
        RecommendRequest(model="lastfm_recommender", user=True)
