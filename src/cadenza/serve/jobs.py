"""What each model endpoint does: check the request against the model and the caps, run the
CLI's own function into a fresh job folder, and describe the files it wrote as download URLs.
A job that fails leaves no folder behind."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cadenza.serve.errors import RequestError
from cadenza.serve.registry import Served, modes, takes_filters
from cadenza.serve.schemas import (
    GenerateRequest,
    InterpolateRequest,
    Item,
    Job,
    Pick,
    Recommendations,
    RecommendRequest,
    RenderRequest,
)
from cadenza.serve.settings import ServeSettings
from cadenza.serve.store import Store

MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".png": "image/png",
               ".json": "application/json"}  # fmt: skip
DEFAULT_BARS = 8


def _fail(status: int, message: str) -> RequestError:
    return RequestError(status, message)


def _cap(field: str, value: float | None, cap: int) -> None:
    if value is not None and value > cap:
        raise _fail(422, f"{field}: {value} is over the service's cap of {cap} "
                         f"(limits.max_{field})")  # fmt: skip


def _url(job: str, path: Path | str | None) -> str | None:
    return None if path is None else f"/api/files/{job}/{Path(path).name}"


def _in_job(store: Store, work: Callable[[str, Path], Any]) -> Any:
    job, folder = store.new_job()
    try:
        return work(job, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _items(
    job: str, folder: Path, stems: list[str], measured: dict[str, dict[str, Any]] | None = None
) -> list[Item]:
    """One item per piece: its MIDI / PNG / audio files, and notes + seconds from the report
    (or as `_complete` measured them)."""
    meta: dict[str, dict[str, Any]] = {}
    report = folder / "samples.json"
    if report.is_file():
        for entry in json.loads(report.read_text()).get("samples", []):
            if isinstance(entry, dict) and "file" in entry:
                meta[Path(entry["file"]).stem] = entry
    for stem, m in (measured or {}).items():
        meta[stem] = {**m, **meta.get(stem, {})}
    items = []
    for stem in stems:
        files = {ext: folder / f"{stem}{ext}" for ext in (".mid", ".png", ".wav")}
        m = meta.get(stem, {})
        items.append(Item(
            name=stem, **{k: _url(job, p) if p.is_file() else None
                          for k, p in zip(("midi", "png", "audio"), files.values())},
            notes=m.get("notes"), seconds=m.get("seconds"),
        ))  # fmt: skip
    return items


def _complete(
    folder: Path, stems: list[str], settings: ServeSettings, render: bool
) -> dict[str, dict[str, Any]]:
    """Give every piece of a job the files the client expects (a piano roll each, audio when
    asked), whatever the CLI function wrote; a piece with no notes (a greedy VAE decode can
    be silent) keeps its MIDI file and gets no audio, it does not fail the job."""
    from cadenza.errors import BadMidiError
    from cadenza.io.midi import load_midi, tracks_of
    from cadenza.io.render import render_to_file
    from cadenza.viz import save_pianoroll_png

    measured: dict[str, dict[str, Any]] = {}
    for stem in stems:
        midi = folder / f"{stem}.mid"
        png, wav = midi.with_suffix(".png"), midi.with_suffix(".wav")
        # generate_to_files already wrote both (and its report has the notes): no second parse.
        if not midi.is_file() or (png.exists() and (not render or wav.exists())):
            continue
        try:
            pm = load_midi(midi)
        except BadMidiError as e:
            if e.reason != "no_notes":
                raise
            measured[stem] = {"notes": 0, "seconds": 0.0}
            continue
        notes = sum(len(t.notes) for t in tracks_of(pm))
        measured[stem] = {"notes": notes, "seconds": round(pm.get_end_time(), 3)}
        if not png.exists():
            save_pianoroll_png(pm, png, title=stem)
        if render and not wav.exists():
            render_to_file(pm, wav, **_synth(settings))
    return measured


def _scrub_report(folder: Path, paths: dict[Path | None, str | None]) -> None:
    """The report names uploads by their ids, not by where the server keeps them."""
    report = folder / "samples.json"
    if report.is_file():
        text = report.read_text()
        for path, upload in paths.items():
            if path is not None:
                text = text.replace(json.dumps(str(path))[1:-1], str(upload))
        report.write_text(text)


def _synth(settings: ServeSettings) -> dict[str, Any]:
    return {"sample_rate": settings.sample_rate, "synth": settings.synth,
            "soundfont": settings.soundfont}  # fmt: skip


def save_upload(store: Store, data: bytes, filename: str) -> dict[str, Any]:
    """Parse with the data pipeline's guards (BadMidiError -> 422) before anything is kept."""
    from cadenza.io.midi import load_midi_bytes, tracks_of

    name = Path(filename).name[:100] or "upload.mid"
    pm = load_midi_bytes(data, name=f"file {name}")
    upload, _ = store.save_upload(data)
    tracks = tracks_of(pm)
    return {"upload": upload, "filename": name, "notes": sum(len(t.notes) for t in tracks),
            "seconds": round(pm.get_end_time(), 3), "tracks": len(tracks)}  # fmt: skip


# --- generate -----------------------------------------------------------------------------
def generate(s: Served, req: GenerateRequest, store: Store, settings: ServeSettings) -> Job:
    from cadenza.generate import generate_to_files

    lim, info_modes = settings.limits, modes(s)
    _cap("n", req.n, lim.max_n)
    _cap("bars", req.bars, lim.max_bars)
    _cap("steps", req.steps, lim.max_steps)
    for field, mode in (("primer", "primer"), ("condition", "condition"),
                        ("attribute", "attribute")):  # fmt: skip
        if getattr(req, field) is not None and mode not in info_modes:
            raise _fail(400, f"{field}: the {s.family} model {s.name!r} takes no {field}")
    if (req.top_k is not None or req.top_p is not None) and not takes_filters(s):
        raise _fail(400, f"top_k/top_p filter the next event of an lstm on tokens; the "
                         f"{s.family} model {s.name!r} takes temperature only")  # fmt: skip
    if req.primer and req.condition:
        raise _fail(400, "give primer or condition, not both")
    primer = store.upload_path(req.primer, "primer") if req.primer else None
    condition = store.upload_path(req.condition, "condition") if req.condition else None
    if condition is not None:
        from cadenza.generate import load_condition

        # The accompaniment is as long as the melody: its length is capped like any other.
        length = len(load_condition(s.model, condition))
        if length > lim.max_steps:
            raise _fail(422, f"condition: the melody is {length} model steps, over the "
                             f"service's cap of {lim.max_steps} (limits.max_steps)")  # fmt: skip
    fixed = getattr(s.model, "window_steps", None) is not None  # a vae's own window length
    if fixed:
        bars = None
    elif req.steps is not None:  # steps wins over bars
        bars = req.bars
    else:
        bars = req.bars or DEFAULT_BARS
    if req.steps is None and not fixed:
        try:
            steps = s.model.codec.steps_for_bars(bars)
        except (AttributeError, NotImplementedError):
            steps = None
        if steps is not None and steps > lim.max_steps:
            raise _fail(422, f"bars: {bars} bars are {steps} model steps, over the service's "
                             f"cap of {lim.max_steps} (limits.max_steps)")  # fmt: skip
    controls = {"n": req.n, "seed": req.seed, "temperature": req.temperature, "top_k": req.top_k,
                "top_p": req.top_p, "bars": bars, "steps": req.steps, "render": req.render,
                "primer": req.primer, "condition": req.condition,
                "attribute": req.attribute}  # fmt: skip

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        if req.attribute:
            from cadenza.explore import prior_with_attribute_to_files

            paths, _ = prior_with_attribute_to_files(
                s.model, req.attribute, folder, n=req.n, seed=req.seed,
                temperature=1.0 if req.temperature is None else req.temperature,
            )  # fmt: skip
        else:
            paths = generate_to_files(
                s.model, folder, n=req.n, seed=req.seed, temperature=req.temperature,
                top_k=req.top_k, top_p=req.top_p, steps=req.steps, bars=bars,
                primer=primer, condition=condition,
                render="wav" if req.render and s.model.codec.kind != "features" else None,
                **_synth(settings),
            )  # fmt: skip
        stems = [p.stem for p in paths]
        _scrub_report(folder, {primer: req.primer, condition: req.condition})
        measured = _complete(folder, stems, settings, render=req.render)
        return _job(job, s, folder, stems, controls, t0, measured=measured)

    return _in_job(store, work)


def _job(job: str, s: Served | None, folder: Path, stems: list[str], controls: dict[str, Any],
         t0: float, sheet: Path | None = None,
         measured: dict[str, dict[str, Any]] | None = None) -> Job:  # fmt: skip
    report = folder / "samples.json"
    return Job(job=job, model=s.name if s else None, family=s.family if s else None,
               seconds=round(time.perf_counter() - t0, 3), controls=controls,
               items=_items(job, folder, stems, measured),
               sheet=_url(job, sheet) if sheet and sheet.is_file() else None,
               report=_url(job, report) if report.is_file() else None)  # fmt: skip


# --- interpolate --------------------------------------------------------------------------
def interpolate(s: Served, req: InterpolateRequest, store: Store, settings: ServeSettings) -> Job:
    from cadenza import explore

    _cap("interpolate_steps", req.steps, settings.limits.max_interpolate_steps)
    can = modes(s)
    if "interpolate" in can:
        if not (req.a and req.b):
            raise _fail(422, f"a and b: the vae {s.name!r} interpolates between two uploaded "
                             "MIDI phrases; POST them to /api/uploads first")  # fmt: skip
        a, b = store.upload_path(req.a, "a"), store.upload_path(req.b, "b")
    elif "latent_walk" in can:
        if req.a or req.b:
            raise _fail(400, f"a/b: the gan {s.name!r} has no encoder; it walks between two "
                             "random latents drawn from seed (leave a and b out)")  # fmt: skip
    else:
        raise _fail(400, f"model: the {s.family} model {s.name!r} cannot interpolate; use a vae "
                         "(two phrases) or a gan (a latent walk)")  # fmt: skip
    controls = req.model_dump()

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        if "interpolate" in can:
            paths = explore.interpolate_to_files(
                s.model, a, b, folder, steps=req.steps, temperature=req.temperature, seed=req.seed
            )
        else:
            paths = explore.latent_walk_to_files(s.model, folder, steps=req.steps, seed=req.seed,
                                                 temperature=req.temperature)  # fmt: skip
        stems = [p.stem for p in paths]
        if "interpolate" in can:
            _scrub_report(folder, {a: req.a, b: req.b})
        measured = _complete(folder, stems, settings, render=req.render)
        return _job(job, s, folder, stems, controls, t0, sheet=folder / "interp_sheet.png",
                    measured=measured)  # fmt: skip

    return _in_job(store, work)


# --- render -------------------------------------------------------------------------------
def render(req: RenderRequest, store: Store, settings: ServeSettings) -> Job:
    from cadenza.io.midi import load_midi_bytes, save_midi

    if (req.upload is None) == (req.job is None):
        raise _fail(422, "give upload (an uploaded MIDI file) or job + file (a MIDI file of a "
                         "job), not both")  # fmt: skip
    if req.upload is not None:
        source = store.upload_path(req.upload)
    else:
        if not req.file or not req.file.endswith(".mid"):
            raise _fail(422, "file: name the .mid file of the job to render, e.g. sample_000.mid")
        source = store.job_file(req.job, req.file)
    # Parsed by name, not by path: an error message never shows where the server keeps files.
    pm = load_midi_bytes(source.read_bytes(), name=req.file or f"upload {req.upload}")

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        stem = "upload" if req.upload else Path(req.file).stem
        save_midi(pm, folder / f"{stem}.mid")
        measured = _complete(folder, [stem], settings, render=True)
        return _job(job, None, folder, [stem], req.model_dump(), t0, measured=measured)

    return _in_job(store, work)


# --- recommend ----------------------------------------------------------------------------
def _listener(s: Served, req: RecommendRequest, settings: ServeSettings) -> dict[str, Any]:
    lim = settings.limits
    _cap("k", req.k, lim.max_k)
    if req.history is not None:
        _cap("history", len(req.history), lim.max_history)
    if req.k > s.model.hparams.n_items:
        raise _fail(422, f"k: {req.k} is more than the catalog's {s.model.hparams.n_items} tracks")
    return {"user": req.user, "history": req.history, "context": req.context}


def recommend_catalog(s: Served, req: RecommendRequest, settings: ServeSettings) -> Recommendations:
    from cadenza.recommend.workflow import recommend_catalog as ranked

    listener = _listener(s, req, settings)
    t0 = time.perf_counter()
    picks = ranked(s.model, **listener, k=req.k, index=s.catalog)
    return Recommendations(job=None, model=s.name, listener=listener,
                           seconds=round(time.perf_counter() - t0, 4),
                           picks=[Pick(**asdict(p)) for p in picks])  # fmt: skip


def recommend_generated(
    s: Served, g: Served, req: RecommendRequest, store: Store, settings: ServeSettings
) -> Recommendations:
    from cadenza.recommend.workflow import recommend_generated as best_of

    listener = _listener(s, req, settings)
    _cap("candidates", req.candidates, settings.limits.max_candidates)
    _cap("bars", req.bars, settings.limits.max_bars)
    _cap("steps", req.steps, settings.limits.max_steps)
    if g.model.codec.kind == "features":
        raise _fail(400, f"generator: {g.name!r} writes audio; the recommender scores MIDI")
    if req.k > req.candidates:
        raise _fail(422, f"k: {req.k} is more than candidates={req.candidates}")
    controls = {"seed": req.seed, "temperature": req.temperature, "top_k": req.top_k,
                "top_p": req.top_p, "steps": req.steps,
                "bars": req.bars if req.bars or req.steps else DEFAULT_BARS}  # fmt: skip

    def work(job: str, folder: Path) -> Recommendations:
        t0 = time.perf_counter()
        picks = best_of(s.model, g.model, folder, **listener, candidates=req.candidates, k=req.k,
                        render="wav" if req.render else None, png=True, **controls)  # fmt: skip
        files = ("midi", "png", "audio")
        out = [Pick(**(asdict(p) | {f: _url(job, getattr(p, f)) for f in files})) for p in picks]
        return Recommendations(job=job, model=s.name, listener=listener,
                               seconds=round(time.perf_counter() - t0, 3), picks=out)  # fmt: skip

    return _in_job(store, work)
