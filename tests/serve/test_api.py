"""The HTTP API in-process (TestClient): every family served from real smoke checkpoints, the
files it returns read back, and the answers a producer's client relies on."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from cadenza.io.midi import clip_midi, load_midi, load_midi_bytes, midi_to_bytes, tracks_of
from cadenza.models import ClassifierModule
from cadenza.recommend.module import RecommenderModule
from cadenza.recommend.workflow import recommend_catalog
from cadenza.serve.app import create_app
from cadenza.serve.registry import load_all
from cadenza.serve.settings import ServeSettings
from tests.fixtures.data import data_root
from tests.fixtures.midi_factory import write_drums_only
from tests.serve.conftest import MARKER, SERVED


def melody(name: str) -> Path:
    return data_root() / "nottingham" / "MIDI" / "melody" / f"{name}.mid"


def upload(client: TestClient, data: bytes, name: str = "x.mid") -> dict:
    r = client.post("/api/uploads", files={"file": (name, data, "audio/midi")})
    assert r.status_code == 201, r.text
    return r.json()


def fetch(client: TestClient, url: str) -> bytes:
    r = client.get(url)
    assert r.status_code == 200, (url, r.text)
    return r.content


def test_health_counts_the_served_models_and_unsafe_checkpoints_are_refused(client, checkpoints):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["models"] == len(SERVED)
    assert health["device"] == "cpu"  # where generators sample (serve.yaml's device)
    assert health["not_served"] == 3 and "failed" not in health  # which files: admins only
    failed = client.get("/api/models").json()["failed"]  # an open service: everyone is admin
    refused = {Path(f["file"]).name: f["error"] for f in failed}
    assert set(refused) == {"garbage.ckpt", "evil.ckpt", "latest.ckpt"}
    assert "links outside" in refused["latest.ckpt"]
    # Loaded weights-only: the pickled callable in evil.ckpt never ran.
    assert "weights" in refused["evil.ckpt"].lower() or "unpickl" in refused["evil.ckpt"].lower()
    assert not (checkpoints.parent / MARKER).exists()


def test_device_moves_the_generators_and_leaves_the_others_on_the_cpu(checkpoints):
    """The device a service is given reaches every generator: "meta" stands in for a GPU (a
    device that holds no data, so nothing could have stayed behind on the CPU unnoticed)."""
    served, _ = load_all(checkpoints, 64, torch.device("meta"))
    devices = {name: {p.device.type for p in s.model.parameters()} for name, s in served.items()}
    assert devices.pop("smoke_recommender") == {"cpu"}  # one small matrix product
    assert devices.pop("smoke_classifier") == {"cpu"}  # one piece's windows
    assert devices and all(d == {"meta"} for d in devices.values()), devices


def test_models_describe_each_family_with_its_controls(client):
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert sorted(models) == ["smoke", "smoke_classifier", "smoke_gan", "smoke_gan_accompaniment",
                              "smoke_recommender", "smoke_styles", "smoke_transformer",
                              "smoke_vae"]  # fmt: skip
    # It only accompanies: nothing new from nothing.
    assert models["smoke_gan_accompaniment"]["modes"] == ["condition"]
    assert "condition" not in models["smoke_gan"]["modes"]
    lstm, vae, gan, rec = (models[k] for k in ("smoke", "smoke_vae", "smoke_gan",
                                                "smoke_recommender"))  # fmt: skip
    assert lstm["family"] == "lstm" and "primer" in lstm["modes"] and lstm["output"] == "midi"
    # The configured cap, and what a request without n gets (the service's sample.n).
    assert lstm["controls"]["n"] == {"min": 1, "max": 4, "default": 1}
    assert lstm["controls"]["top_k"] is None  # frames: temperature only
    assert lstm["controls"]["tempo"] == {"min": 20, "max": 400, "default": None}
    assert lstm["codec"]["name"] == "pianoroll" and lstm["codec"]["low_pitch"] == 36
    assert {"interpolate", "attribute"} <= set(vae["modes"]) and vae["controls"]["bars"] is None
    # What attribute= can move, in its units, and what an amount of 1.0 asks for.
    density = {a["name"]: a for a in vae["attributes"]}["density"]
    assert density["unit"] == "notes per bar" and density["gap"] > 0
    assert lstm["attributes"] == [] and models["smoke_transformer"]["attributes"] == []
    assert "latent_walk" in gan["modes"]
    tf = models["smoke_transformer"]  # tokens: the filters are offered
    assert tf["family"] == "transformer" and "primer" in tf["modes"] and tf["output"] == "midi"
    assert tf["controls"]["top_k"]["min"] == 1 and tf["controls"]["top_p"]["max"] == 1.0
    assert "style" not in tf["modes"] and tf["styles"] == []
    styled = models["smoke_styles"]
    assert "style" in styled["modes"]
    assert styled["styles"] == ["jsb", "nottingham", "pop909", "piano_midi"]
    assert rec["kind"] == "recommender" and "listener3" in rec["users"]
    assert rec["contexts"] == ["jsb", "nottingham", "pop909", "piano_midi"]
    clf = models["smoke_classifier"]
    assert clf["kind"] == "classifier" and clf["modes"] == ["classify"]
    assert clf["classes"] == ["jsb", "nottingham", "pop909", "piano_midi"]
    assert clf["hears"] == "midi" and clf["controls"] == {} and clf["users"] == []
    assert client.get("/api/models/smoke_vae").json()["family"] == "vae"
    r = client.get("/api/models/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]


def test_generate_returns_midi_png_and_wav_files_that_read_back(client):
    r = client.post("/api/generate", json={"model": "smoke", "n": 2, "bars": 2, "seed": 5,
                                           "render": True})  # fmt: skip
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["family"] == "lstm" and len(job["items"]) == 2
    for item in job["items"]:
        pm = load_midi_bytes(fetch(client, item["midi"]))
        assert sum(len(t.notes) for t in tracks_of(pm)) == item["notes"] > 0
        assert fetch(client, item["png"])[:8] == b"\x89PNG\r\n\x1a\n"
        wav, sr = sf.read(io.BytesIO(fetch(client, item["audio"])))
        assert sr == 16000 and np.abs(wav).max() > 0.01
    download = client.get(job["items"][0]["midi"] + "&download=true")  # after the signature
    assert download.headers["content-type"] == "audio/midi"
    assert "attachment" in download.headers["content-disposition"]
    assert "samples" in client.get(job["report"]).json()
    # The same seed and controls give the same notes; another seed does not.
    again = client.post("/api/generate", json={"model": "smoke", "n": 2, "bars": 2, "seed": 5})
    other = client.post("/api/generate", json={"model": "smoke", "n": 2, "bars": 2, "seed": 6})
    same = fetch(client, again.json()["items"][0]["midi"])
    assert same == fetch(client, job["items"][0]["midi"])
    assert fetch(client, other.json()["items"][0]["midi"]) != same

    # At another tempo: the same notes on the same beats, each beat 120/90 as long.
    slow = client.post("/api/generate", json={"model": "smoke", "n": 2, "bars": 2, "seed": 5,
                                              "tempo": 90})  # fmt: skip
    assert slow.status_code == 200 and slow.json()["controls"]["tempo"] == 90, slow.text
    a, b = (load_midi_bytes(fetch(client, j["items"][0]["midi"])) for j in (job, slow.json()))
    assert b.get_tempo_changes()[1] == pytest.approx([90.0], abs=1e-3)
    np.testing.assert_allclose([n.start for t in b.instruments for n in t.notes],
                               [n.start * 120 / 90 for t in a.instruments for n in t.notes],
                               atol=2e-3)  # fmt: skip
    assert slow.json()["items"][0]["seconds"] == pytest.approx(job["items"][0]["seconds"] * 4 / 3,
                                                               abs=2e-3)  # fmt: skip
    r = client.post("/api/generate", json={"model": "smoke", "tempo": 10})
    assert r.status_code == 422 and "tempo" in r.json()["error"], r.text


def test_a_primer_upload_is_continued(client):
    first = client.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 2}).json()
    primer_bytes = fetch(client, first["items"][0]["midi"])
    info = upload(client, primer_bytes, "idea.mid")
    assert info["notes"] > 0 and len(info["upload"]) == 32
    r = client.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 2,
                                           "primer": info["upload"]})  # fmt: skip
    assert r.status_code == 200, r.text
    primer = load_midi_bytes(primer_bytes)
    out = load_midi_bytes(fetch(client, r.json()["items"][0]["midi"]))
    end = primer.get_end_time()
    starts = {(n.pitch, round(n.start, 3)) for i in primer.instruments for n in i.notes}
    kept = {(n.pitch, round(n.start, 3)) for i in out.instruments for n in i.notes
            if n.start < end - 1e-6}  # fmt: skip
    assert kept == starts and out.get_end_time() > end + 1.0


def test_a_transformer_continues_a_primer_with_nucleus_sampling_reproducibly(client):
    first = client.post("/api/generate", json={"model": "smoke_transformer", "n": 1, "bars": 2,
                                               "seed": 1}).json()  # fmt: skip
    primer_bytes = fetch(client, first["items"][0]["midi"])
    tune = upload(client, primer_bytes)["upload"]
    body = {"model": "smoke_transformer", "n": 2, "bars": 2, "seed": 3, "top_p": 0.9,
            "top_k": 20, "temperature": 0.8, "primer": tune}  # fmt: skip
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["family"] == "transformer" and len(job["items"]) == 2
    primer = load_midi_bytes(primer_bytes)
    end = primer.get_end_time()
    starts = {(n.pitch, round(n.start, 2)) for i in primer.instruments for n in i.notes}
    for item in job["items"]:
        out = load_midi_bytes(fetch(client, item["midi"]))
        kept = {(n.pitch, round(n.start, 2)) for i in out.instruments for n in i.notes
                if n.start < end - 1e-6}  # fmt: skip
        assert kept == starts and item["notes"] >= len(starts)
    # Seeded: the same request gives the same pieces (the key/value cache is per request).
    again = client.post("/api/generate", json=body).json()
    assert fetch(client, again["items"][1]["midi"]) == fetch(client, job["items"][1]["midi"])


def test_a_style_model_writes_in_a_named_style_or_a_mix(client):
    base = {"model": "smoke_styles", "n": 2, "bars": 2, "seed": 4}
    for style in ("jsb", "pop909", {"jsb": 0.5, "piano_midi": 0.5}):
        r = client.post("/api/generate", json=base | {"style": style})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["controls"]["style"] == style and len(job["items"]) == 2
        assert all(load_midi_bytes(fetch(client, item["midi"])) for item in job["items"])
        # The pieces' report says which style they were asked in (that a learned prefix steers
        # the music: tests/models/test_transformer.py, on a model trained longer than this).
        assert client.get(job["report"]).json()["controls"]["style"] == style
    for bad, status, words in (("jazz", 422, "not one of"), ({"jsb": -1.0}, 422, "non-negative")):
        r = client.post("/api/generate", json=base | {"style": bad})
        assert r.status_code == status and words in r.json()["error"], r.text
    r = client.post("/api/generate", json={"model": "smoke", "style": "jsb"})
    assert r.status_code == 400 and "takes no style" in r.json()["error"]


def test_vae_interpolates_between_two_uploads_and_samples_with_an_attribute(client, settings):
    a = upload(client, melody("jigs1").read_bytes(), "jigs1.mid")["upload"]
    b = upload(client, melody("waltzes1").read_bytes(), "waltzes1.mid")["upload"]
    # Greedy decoding (the default) of a barely trained VAE can give a silent window: that
    # piece keeps its MIDI file and gets no audio; the job does not fail.
    r = client.post("/api/interpolate", json={"model": "smoke_vae", "a": a, "b": b, "steps": 3,
                                              "render": True})  # fmt: skip
    assert r.status_code == 200, r.text
    job = r.json()
    assert [i["name"] for i in job["items"]] == ["interp_000", "interp_001", "interp_002"]
    assert fetch(client, job["sheet"])[:4] == b"\x89PNG"
    for item in job["items"]:
        assert item["notes"] is not None and (item["audio"] is not None) == (item["notes"] > 0)
        assert item["png"] is not None  # a silent window gets its (empty) roll too
    report = fetch(client, job["report"]).decode()
    assert a in report and str(settings.work_dir) not in report  # ids, not server paths
    r = client.post("/api/generate", json={"model": "smoke_vae", "n": 2,
                                           "attribute": "density:+1.5"})  # fmt: skip
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    # The same draws unshifted are linked beside them, to hear what the shift changed.
    shifted = r.json()
    assert [i["name"] for i in shifted["inputs"]] == ["base_000", "base_001"]
    for base in shifted["inputs"]:
        assert load_midi_bytes(fetch(client, base["midi"])).instruments is not None
    report = json.loads(fetch(client, shifted["report"]))
    assert [s["base"] for s in report["samples"]] == ["base_000.mid", "base_001.mid"]
    # The answer says what the shift did, as the report does.
    assert shifted["attribute_change"] == report["attribute_change"]
    assert shifted["attribute_change"]["attribute"] == "density"
    assert shifted["attribute_change"]["asked"] == 1.5
    assert [s["file"] for s in report["inputs"]] == ["base_000.mid", "base_001.mid"]
    r = client.post("/api/interpolate", json={"model": "smoke_vae", "a": a, "steps": 3})
    assert r.status_code == 422 and "a and b" in r.json()["error"]
    # The cap names the request's field, and the setting behind it, as the other caps do.
    cap = settings.limits.max_interpolate_steps
    r = client.post("/api/interpolate", json={"model": "smoke_vae", "a": a, "b": b,
                                              "steps": cap + 1})  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.json()["error"] == (f"steps: {cap + 1} is over the service's cap of {cap} "
                                 "(limits.max_interpolate_steps)")  # fmt: skip
    # Its windows have their own length: a length asked for is refused, not ignored.
    for length in ({"bars": 4}, {"steps": 16}):
        r = client.post("/api/generate", json={"model": "smoke_vae", "n": 1, **length})
        assert r.status_code == 400 and "leave bars and steps out" in r.json()["error"], r.text


def test_gan_phrases_and_latent_walk(client):
    r = client.post("/api/generate", json={"model": "smoke_gan", "n": 1, "bars": 4})
    assert r.status_code == 200, r.text
    pm = load_midi_bytes(fetch(client, r.json()["items"][0]["midi"]))
    assert len(pm.instruments) >= 2  # one instrument per track
    walk = client.post("/api/interpolate", json={"model": "smoke_gan", "steps": 3, "seed": 1,
                                                 "tempo": 100})  # fmt: skip
    assert walk.status_code == 200 and len(walk.json()["items"]) == 3
    assert walk.json()["controls"]["tempo"] == 100
    pm = load_midi_bytes(fetch(client, walk.json()["items"][0]["midi"]))
    assert pm.get_tempo_changes()[1] == pytest.approx([100.0], abs=1e-3)
    a = upload(client, melody("jigs1").read_bytes())["upload"]
    r = client.post("/api/interpolate", json={"model": "smoke_gan", "a": a, "b": a})
    assert r.status_code == 400 and "no encoder" in r.json()["error"]


def test_a_conditional_gan_accompanies_an_uploaded_melody(client):
    # The tune's first 8 bars: the session's service caps a melody at limits.max_bars=8.
    opening = midi_to_bytes(clip_midi(load_midi(melody("hpps1")), 16.0))
    tune = upload(client, opening, "tune.mid")
    r = client.post("/api/generate", json={"model": "smoke_gan_accompaniment", "n": 1,
                                           "condition": tune["upload"]})  # fmt: skip
    assert r.status_code == 200, r.text
    job = r.json()
    pm = load_midi_bytes(fetch(client, job["items"][0]["midi"]))
    tune_pitches = {n.pitch for i in load_midi_bytes(opening).instruments
                    for n in i.notes}  # fmt: skip
    given = [i for i in pm.instruments if i.notes and {n.pitch for n in i.notes} <= tune_pitches]
    assert len(pm.instruments) >= 2 and given  # the melody is kept, tracks written around it
    assert abs(pm.get_end_time() - tune["seconds"]) < 0.25 * tune["seconds"]
    r = client.post("/api/generate", json={"model": "smoke", "condition": tune["upload"]})
    assert r.status_code == 400 and "condition" in r.json()["error"]
    r = client.post("/api/generate", json={"model": "smoke_gan_accompaniment", "n": 1})
    assert r.status_code == 400 and "accompanies a melody" in r.json()["error"], r.text
    r = client.post("/api/generate", json={"model": "smoke_gan_accompaniment", "n": 1,
                                           "condition": tune["upload"], "bars": 2})  # fmt: skip
    assert r.status_code == 400 and "as long as its melody" in r.json()["error"], r.text
    # The report gives the steps written: the melody's, or those steps= asks for.
    whole = json.loads(fetch(client, job["report"]))["controls"]["steps"]
    four = upload(client, midi_to_bytes(clip_midi(load_midi(melody("hpps1")), 8.0)), "four.mid")
    cut = {"model": "smoke_gan_accompaniment", "n": 1, "condition": four["upload"]}
    for steps, expected in ((None, whole // 2), (whole // 4, whole // 4)):
        r = client.post("/api/generate", json=cut | ({"steps": steps} if steps else {}))
        assert r.status_code == 200, r.text
        assert json.loads(fetch(client, r.json()["report"]))["controls"]["steps"] == expected
        assert r.json()["items"][0]["seconds"] <= 16.0 * expected / whole + 0.5


def test_a_melody_or_primer_longer_than_the_cap_is_refused(settings):
    from dataclasses import replace

    from cadenza.serve.app import create_app
    from cadenza.serve.settings import Limits

    short = replace(settings, limits=Limits(max_steps=32))
    with TestClient(create_app(short)) as c:
        # The form offers the bars that fit the steps: 32 steps are 4 bars of smoke's 2-a-beat
        # grid (not limits.max_bars, 8), and the default comes down with the cap.
        bars = c.get("/api/models/smoke").json()["controls"]["bars"]
        assert bars["max"] == 4 and bars["default"] == 4
        r = c.post("/api/generate", json={"model": "smoke", "bars": bars["max"]})
        assert r.status_code == 200, r.text
        tune = upload(c, melody("hpps1").read_bytes(), "tune.mid")
        r = c.post("/api/generate", json={"model": "smoke_gan_accompaniment",
                                          "condition": tune["upload"]})  # fmt: skip
        assert r.status_code == 422 and "limits.max_steps=32" in r.json()["error"]
        # The piece written holds its whole primer: the primer is capped as a length is.
        r = c.post("/api/generate", json={"model": "smoke", "primer": tune["upload"], "steps": 8})
        assert r.status_code == 422, r.text
        assert r.json()["error"].startswith("primer: the music to continue is ")
        # A length in bars is counted in the model's steps, for generated candidates too.
        pool = {"model": "smoke_recommender", "user": "listener3", "generator": "smoke",
                "candidates": 2, "k": 1}  # fmt: skip
        for route, body in [("/api/generate", {"model": "smoke"}), ("/api/recommend", pool)]:
            r = c.post(route, json={**body, "bars": 16})
            assert r.status_code == 422 and "16 bars are" in r.json()["error"], (route, r.text)
    # In bars too: 4 bars of the GAN's grid are well under its max_steps, the tune is longer.
    four = replace(settings, limits=Limits(max_bars=4), sample={**settings.sample, "bars": 4})
    with TestClient(create_app(four)) as c:
        tune = upload(c, melody("hpps1").read_bytes(), "tune.mid")
        r = c.post("/api/generate", json={"model": "smoke_gan_accompaniment",
                                          "condition": tune["upload"]})  # fmt: skip
        assert r.status_code == 422 and "limits.max_bars=4" in r.json()["error"], r.text
        opening = midi_to_bytes(clip_midi(load_midi(melody("jigs1")), 6.0))  # 3 bars of a jig
        short_tune = upload(c, opening, "jig.mid")
        r = c.post("/api/generate", json={"model": "smoke", "primer": short_tune["upload"],
                                          "steps": 8})  # fmt: skip
        assert r.status_code == 200, r.text


def test_render_an_upload_or_a_job_file_to_wav(client):
    up = upload(client, melody("jigs1").read_bytes())["upload"]
    r = client.post("/api/render", json={"upload": up})
    assert r.status_code == 200, r.text
    wav, sr = sf.read(io.BytesIO(fetch(client, r.json()["items"][0]["audio"])))
    assert sr == 16000 and len(wav) > sr
    job = client.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 2}).json()
    r = client.post("/api/render", json={"job": job["job"], "file": "sample_000.mid"})
    assert r.status_code == 200
    assert r.json()["items"][0]["audio"].split("?")[0].endswith("sample_000.wav")
    r = client.post("/api/render", json={"job": job["job"], "file": "sample_000.png"})
    assert r.status_code == 422
    # Neither source, or both: each is said as it is.
    r = client.post("/api/render", json={})
    assert r.status_code == 422, r.text
    assert "give one of upload" in r.json()["error"] and "neither" in r.json()["error"]
    r = client.post("/api/render", json={"upload": up, "job": job["job"],
                                         "file": "sample_000.mid"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "not both" in r.json()["error"] and "neither" not in r.json()["error"]


def test_every_model_route_checks_its_request_before_waiting_for_a_busy_worker(settings):
    """A bad request is its 4xx even while every worker is busy; only a good one waits for a
    worker, and is told the service is busy."""
    from dataclasses import replace

    from cadenza.serve.app import create_app

    app = create_app(replace(settings, workers=1, queue_timeout_s=0.2))
    with TestClient(app) as c:
        a = upload(c, melody("jigs1").read_bytes())["upload"]
        gone = "f" * 32
        recommend = {"model": "smoke_recommender", "user": "listener3", "generator": "smoke",
                     "candidates": 2}  # fmt: skip
        requests = [  # (route, bad request, its status and words, a good request)
            ("/api/interpolate", {"model": "smoke_vae", "a": gone, "b": a, "steps": 2},
             (404, "a: no upload"), {"model": "smoke_vae", "a": a, "b": a, "steps": 2}),
            ("/api/render", {"upload": gone}, (404, "no upload"), {"upload": a}),
            ("/api/classify", {"model": "smoke_classifier", "upload": gone},
             (404, "no upload"), {"model": "smoke_classifier", "upload": a}),
            ("/api/recommend", {**recommend, "k": 3}, (422, "more than candidates"),
             {**recommend, "k": 1}),
        ]  # fmt: skip
        jobs = app.state.store.jobs
        before = set(jobs.iterdir()) if jobs.is_dir() else set()  # the work_dir is shared
        with app.state.tasks.workers.slot():  # the only worker is busy
            for route, bad, (status, words), good in requests:
                r = c.post(route, json=bad)
                assert r.status_code == status and words in r.json()["error"], (route, r.text)
                r = c.post(route, json=good)
                assert r.status_code == 503 and "busy" in r.json()["error"], (route, r.text)
        assert set(jobs.iterdir()) == before, "a refused request left a job"
        for route, _, _, good in requests:  # and once the worker is free, they are answered
            r = c.post(route, json=good)
            assert r.status_code == 200, (route, r.text)


def test_classify_an_upload_and_a_generated_piece(client, checkpoints, tmp_path):
    """The service's classes for an upload are the CLI's for the same file (the same reader,
    the same windows); a generated piece is classified from its job; what cannot be
    classified is a 4xx naming why."""
    song = data_root() / "pop909" / "midi" / "003.mid"
    up = upload(client, song.read_bytes(), "003.mid")["upload"]
    r = client.post("/api/classify", json={"model": "smoke_classifier", "upload": up})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["family"] == "classifier" and out["source"] == {"upload": up}
    names = [c["name"] for c in out["classes"]]
    probs = [c["probability"] for c in out["classes"]]
    assert sorted(names) == sorted(["jsb", "nottingham", "pop909", "piano_midi"])
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert out["label"] == names[0]
    model = ClassifierModule.load(checkpoints / "smoke_classifier" / "latest.ckpt")
    cli = model.ranked(model.read_piece(song))  # what cadenza-classify prints for it
    assert names == [n for n, _ in cli]
    assert probs == pytest.approx([p for _, p in cli], abs=1e-6)
    top = client.post("/api/classify", json={"model": "smoke_classifier", "upload": up, "top": 2})
    assert [c["name"] for c in top.json()["classes"]] == names[:2]

    job = client.post("/api/generate", json={"model": "smoke", "n": 1, "bars": 2}).json()
    r = client.post("/api/classify", json={"model": "smoke_classifier", "job": job["job"],
                                           "file": "sample_000.mid"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["source"] == {"job": job["job"], "file": "sample_000.mid"}

    drums = upload(client, write_drums_only(tmp_path / "drums.mid").read_bytes())["upload"]
    for body, status, words in [
        ({"model": "smoke", "upload": up}, 400, "not a classifier"),
        ({"model": "nope", "upload": up}, 404, "no model 'nope'"),
        ({"model": "smoke_classifier", "upload": "0" * 32}, 404, "no upload"),
        ({"model": "smoke_classifier"}, 422, "give one of upload"),
        ({"model": "smoke_classifier", "upload": up, "job": job["job"]}, 422, "not both"),
        ({"model": "smoke_classifier", "job": job["job"], "file": "sample_000.png"}, 422, ".mid"),
        ({"model": "smoke_classifier", "upload": up, "top": 0}, 422, "top"),
        ({"model": "smoke_classifier", "upload": drums}, 422, "no notes"),  # no pitched note
    ]:  # fmt: skip
        r = client.post("/api/classify", json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["error"], (body, r.json()["error"])


def test_a_mel_classifier_is_served_and_hears_an_upload_rendered(tmp_path):
    """A classifier of recordings (mel frames) says so in /api/models and classifies a MIDI
    upload by hearing it rendered, at most limits.max_bars bars of it."""
    from cadenza.representations import MelCodec

    codec = MelCodec(n_mels=16, synth="builtin")
    model = ClassifierModule(codec.to_dict(), classes=["folk", "piano"], width=8, hidden=8,
                             use_features=False, window=64)  # fmt: skip
    ckpt = tmp_path / "ckpts" / "mel" / "latest.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {**model.hparams, "family": model.family},
                "state_dict": model.state_dict()}, ckpt)  # fmt: skip
    settings = ServeSettings.from_dict({"checkpoints": str(tmp_path / "ckpts"),
                                        "work_dir": str(tmp_path / "work"),
                                        "limits": {"max_bars": 4},
                                        "sample": {"bars": 4}})  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        info = client.get("/api/models/mel").json()
        assert info["kind"] == "classifier" and info["hears"] == "audio"
        up = upload(client, melody("jigs1").read_bytes())["upload"]
        r = client.post("/api/classify", json={"model": "mel", "upload": up})
        assert r.status_code == 200, r.text
        probs = [c["probability"] for c in r.json()["classes"]]
        assert sorted(c["name"] for c in r.json()["classes"]) == ["folk", "piano"]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_a_mel_vae_is_served_writing_audio(smoke, tmp_path):
    """A generator of audio: its pieces are WAV files with their spectrogram pictures, and its
    latent path between two MIDI uploads hears them rendered."""
    (tmp_path / "ckpts" / "mel_vae").mkdir(parents=True)
    shutil.copyfile(smoke["smoke_audio_vae"].ckpt, tmp_path / "ckpts" / "mel_vae" / "latest.ckpt")
    settings = ServeSettings.from_dict({"checkpoints": str(tmp_path / "ckpts"),
                                        "work_dir": str(tmp_path / "work"),
                                        "sample": {"n": 1, "sample_rate": 16000}})  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        info = client.get("/api/models/mel_vae").json()
        assert info["output"] == "audio" and {"generate", "interpolate"} <= set(info["modes"])
        assert info["controls"]["tempo"] is None  # audio has no notes to put on a tempo
        r = client.post("/api/generate", json={"model": "mel_vae", "n": 1, "tempo": 90})
        assert r.status_code == 400 and "leave tempo out" in r.json()["error"], r.text
        r = client.post("/api/generate", json={"model": "mel_vae", "n": 2, "seed": 1})
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            wav, sr = sf.read(io.BytesIO(fetch(client, item["audio"])))
            assert len(wav) > 0 and np.isfinite(wav).all() and item["midi"] is None
            assert fetch(client, item["png"])[:8] == b"\x89PNG\r\n\x1a\n"
        a = upload(client, melody("jigs1").read_bytes())["upload"]
        b = upload(client, melody("waltzes1").read_bytes())["upload"]
        r = client.post("/api/interpolate", json={"model": "mel_vae", "a": a, "b": b, "steps": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 3 and all(i["audio"] for i in r.json()["items"])


def test_recommend_matches_the_library_and_leaves_heard_tracks_out(client, checkpoints):
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "listener3",
                                            "k": 5})  # fmt: skip
    assert r.status_code == 200, r.text
    picks = r.json()["picks"]
    model = RecommenderModule.load(checkpoints / "smoke_recommender" / "latest.ckpt")
    expected = recommend_catalog(model, user="listener3", k=5)
    assert [p["key"] for p in picks] == [p.key for p in expected]
    assert [p["rank"] for p in picks] == [1, 2, 3, 4, 5]
    row = model.hparams.user_keys.index("listener3")
    heard = {model.hparams.item_keys[i] for i in model.history(torch.tensor([row]))[0].nonzero()}
    assert not heard & {p["key"] for p in picks}
    liked = [k for k in model.hparams.item_keys if k.startswith("jsb/")][:3]
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "history": liked,
                                            "context": "jsb", "k": 4})  # fmt: skip
    assert r.status_code == 200 and not {p["key"] for p in r.json()["picks"]} & set(liked)
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "nobody"})
    assert r.status_code == 404 and "does not know this listener" in r.json()["error"]
    # No taste at all is a 422, not the catalog in key order with every score 0.
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "history": []})
    assert r.status_code == 422 and r.json()["error"].startswith("history: empty"), r.text


def test_last_fm_picks_and_histories_carry_artists_names(tmp_path):
    """A Last.fm recommender's picks, their reasons and a listener's history name the artists
    (the key stays); `history` takes names; a name two artists share is a 400 listing both."""
    from cadenza.recommend.interactions import lastfm_artists
    from tests.recommend.lastfm_model import save_lastfm_checkpoint

    save_lastfm_checkpoint(tmp_path / "checkpoints" / "lastfm" / "latest.ckpt")
    settings = ServeSettings.from_dict({"checkpoints": str(tmp_path / "checkpoints"),
                                        "work_dir": str(tmp_path / "work")})  # fmt: skip
    artists = lastfm_artists(data_root())
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        named = {"model": "lastfm", "k": 3, "history": ["Duran Duran", "depeche mode"]}
        r = client.post("/api/recommend", json=named)
        assert r.status_code == 200, r.text
        for p in r.json()["picks"]:
            assert p["name"] == artists[int(p["key"])]
            played = {x["name"] for x in p["reasons"]["played"]}
            assert played and played <= {"Duran Duran", "Depeche Mode"}
        r = client.post("/api/recommend", json={"model": "lastfm", "history": ["Michel Teló"]})
        assert r.status_code == 400 and "names 2 catalog tracks" in r.json()["error"], r.text
        r = client.get("/api/listeners/2/history", params={"model": "lastfm"})
        items = r.json()["items"]
        assert items and all(i["name"] == artists[int(i["key"])] for i in items)


def test_recommend_from_words_and_bad_words_are_4xx(client, checkpoints):
    words = {"model": "smoke_recommender", "text": "  calm piano for studying ", "k": 4}
    r = client.post("/api/recommend", json=words)
    assert r.status_code == 200, r.text
    assert r.json()["listener"]["text"] == "calm piano for studying"
    model = RecommenderModule.load(checkpoints / "smoke_recommender" / "latest.ckpt")
    expected = recommend_catalog(model, text="calm piano for studying", k=4)
    assert [p["key"] for p in r.json()["picks"]] == [p.key for p in expected]
    assert client.get("/api/models/smoke_recommender").json()["text"] is True
    for bad, status, says in [
        ({"text": ""}, 422, "text"), ({"text": "x" * 501}, 422, "text"),
        ({"text": 42}, 422, "text"), ({"text": ["rock"]}, 422, "text"),
        ({"text": "?? 123 !!"}, 422, "no words"),
        ({"text": "rock", "user": "listener3"}, 422, "user, history, text: give exactly one"),
        ({"text": "rock", "context": "jsb"}, 422, "context: it shifts a listener's history"),
        ({}, 422, "give exactly one of them (a known listener, a new listener's catalog "
                  "tracks, or what they like in words); got none"),
        ({"user": "listener3", "context": "rock"}, 422, "context: 'rock' is not one"),
        ({"user": "listener3", "candidates": 8}, 422, "candidates: the number of pieces to "
                                                      "sample from a generator"),
    ]:  # fmt: skip
        r = client.post("/api/recommend", json={"model": "smoke_recommender", **bad})
        assert r.status_code == status and says in r.json()["error"], (bad, r.text)


def test_every_method_answers_with_reasons(client):
    for method, reason in [("hybrid", "played"), ("content", "features"),
                           ("itemknn", "played"), ("userknn", "listeners")]:  # fmt: skip
        r = client.post("/api/recommend", json={"model": "smoke_recommender", "k": 3,
                                                "user": "listener3", "method": method})  # fmt: skip
        assert r.status_code == 200, (method, r.text)
        for p in r.json()["picks"]:
            assert p["reasons"]["summary"] and p["reasons"][reason], (method, p)
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "listener3",
                                            "explain": False})  # fmt: skip
    assert r.status_code == 200 and all(p["reasons"] is None for p in r.json()["picks"])
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "listener3",
                                            "method": "magic"})  # fmt: skip
    assert r.status_code == 422 and "method" in r.json()["error"]
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "listener3",
                                            "method": "itemknn", "generator": "smoke"})  # fmt: skip
    assert r.status_code == 422 and "scored by the hybrid" in r.json()["error"]


def test_recommend_generated_pieces_returns_the_best_as_files(client):
    r = client.post("/api/recommend", json={"model": "smoke_recommender", "user": "listener3",
                                            "generator": "smoke", "candidates": 4, "k": 2,
                                            "bars": 2, "tempo": 80})  # fmt: skip
    assert r.status_code == 200, r.text
    picks = r.json()["picks"]
    assert [p["rank"] for p in picks] == [1, 2] and picks[0]["score"] >= picks[1]["score"]
    for p in picks:
        pm = load_midi_bytes(fetch(client, p["midi"]))
        assert pm.instruments and pm.get_tempo_changes()[1] == pytest.approx([80.0], abs=1e-3)
        assert fetch(client, p["png"])[:4] == b"\x89PNG" and 0 <= p["catalog_percentile"] <= 1
        assert p["reasons"]["summary"] and "content" in p["reasons"]
    # The report: every pick's score and reasons, as cadenza-recommend writes it.
    report = json.loads(fetch(client, r.json()["report"]))
    assert [p["rank"] for p in report["picks"]] == [1, 2]


def test_recommending_generated_pieces_asks_of_the_generator_what_generate_does(client):
    """The candidates are the generator's samples, so their controls are refused as the generate
    route refuses them, not silently dropped."""
    base = {"model": "smoke_recommender", "user": "listener3", "candidates": 2, "k": 1}
    for length in ({"bars": 4}, {"steps": 16}):
        r = client.post("/api/recommend", json={**base, "generator": "smoke_vae", **length})
        assert r.status_code == 400 and "leave bars and steps out" in r.json()["error"], r.text
    r = client.post("/api/recommend", json={**base, "generator": "smoke_vae"})
    assert r.status_code == 200 and len(r.json()["picks"]) == 1, r.text
    r = client.post("/api/recommend", json={**base, "generator": "smoke_gan", "top_p": 0.9})
    assert r.status_code == 400 and "temperature only" in r.json()["error"], r.text
    r = client.post("/api/recommend", json={**base, "generator": "smoke_gan_accompaniment"})
    assert r.status_code == 400 and "only accompanies a melody" in r.json()["error"], r.text


def test_openapi_schema_and_studio_page_are_published(client):
    schema = client.get("/openapi.json").json()
    assert {
        "/api/generate",
        "/api/interpolate",
        "/api/render",
        "/api/recommend",
        "/api/uploads",
        "/api/models",
        "/api/health",
        "/api/files/{job}/{name}",
    } <= set(schema["paths"])
    # 422 is documented where a request can be invalid, not on routes that take nothing.
    answers = {(m, p): set(op["responses"]) for p, ops in schema["paths"].items()
               for m, op in ops.items()}  # fmt: skip
    for route in ("/api/health", "/api/live", "/api/ready", "/api/models", "/api/jobs"):
        assert "422" not in answers["get", route], route
    for route in ("/api/generate", "/api/uploads"):
        assert "422" in answers["post", route]
    assert "422" in answers["get", "/api/files/{job}/{name}"]
    fields = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert {"model", "n", "temperature", "top_k", "top_p", "seed", "primer"} <= set(fields)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = client.get("/studio/studio.js").text  # the page's one script
    assert '<script src="studio/studio.js">' in page.text
    assert "api/jobs/" in script and '"api/recommend"' in script
