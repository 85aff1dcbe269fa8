"""What each model endpoint does: check the request against the model and the caps, run the
CLI's own function into a fresh job folder, and describe the files it wrote as download URLs.
A job that fails leaves no folder behind."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

from cadenza.errors import ConfigError
from cadenza.generation import Piece, check_tempo
from cadenza.serve.auth import Caller
from cadenza.serve.batching import Batcher
from cadenza.serve.errors import NotFoundError, RequestError
from cadenza.serve.registry import Served, modes, takes_filters
from cadenza.serve.schemas import (
    Classification,
    ClassifyRequest,
    ClassProbability,
    GenerateRequest,
    History,
    HistoryItem,
    InterpolateRequest,
    Item,
    Job,
    MidiSource,
    Pick,
    Recommendations,
    RecommendRequest,
    RenderRequest,
    Sampling,
)
from cadenza.serve.settings import ServeSettings
from cadenza.serve.store import Store

# The background queue's entry (serve/tasks.py), as the app binds it: the work -> its record.
Submit = Callable[[Callable[[], Any]], Any]
MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".png": "image/png",
               ".json": "application/json"}  # fmt: skip


def _fail(status: int, message: str) -> RequestError:
    return RequestError(status, message)


def _cap(field: str, value: float | None, cap: int, setting: str | None = None) -> None:
    """`field` is the request's name for the value; `setting` the limit's, where they differ."""
    if value is not None and value > cap:
        raise _fail(422, f"{field}: {value} is over the service's cap of {cap} "
                         f"(limits.{setting or f'max_{field}'})")  # fmt: skip


Slot = Callable[[], AbstractContextManager[Any]]


def _in_job(store: Store, caller: Caller, work: Callable[[str, Path], Any],
            listener: str | None = None, submit: Submit | None = None,
            slot: Slot = nullcontext) -> Any:  # fmt: skip
    """Run `work` in a fresh job folder now, holding `slot` (the immediate routes: a worker
    slot), or, with `submit`, hand it to the background queue (whose worker holds a slot) and
    return what `submit` returns. Everything before this call is the request's validation, so
    a bad request is its 4xx even while every worker is busy, never a 503."""

    def run() -> Any:
        job, folder = store.new_job(caller, listener)
        try:
            return work(job, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    if submit is not None:
        return submit(run)
    with slot():
        return run()


def _items(store: Store, job: str, pieces: list[Piece]) -> list[Item]:
    """One item per piece: the URLs of the files written for it, and what was measured."""
    # The seconds of the files written (at the tempo asked), not of the piece as sampled.
    return [Item(name=p.name, notes=p.notes, seconds=p.written.get("seconds", p.seconds),
                 **{kind: store.url(job, p.files.get(kind)) for kind in ("midi", "png", "audio")})
            for p in pieces]  # fmt: skip


def _render(req_render: bool, s: Served | None = None) -> str | None:
    """Audio beside each MIDI piece when asked (a model of audio writes audio anyway)."""
    return "wav" if req_render and (s is None or s.model.codec.output == "midi") else None


def save_upload(store: Store, caller: Caller, data: bytes, filename: str) -> dict[str, Any]:
    """Parse with the data pipeline's guards (BadMidiError -> 422) before anything is kept."""
    from cadenza.io.midi import load_midi_bytes, tracks_of

    name = Path(filename).name[:100] or "upload.mid"
    pm = load_midi_bytes(data, name=f"file {name}")
    upload, _ = store.save_upload(data, caller)
    tracks = tracks_of(pm)
    return {"upload": upload, "filename": name, "notes": sum(len(t.notes) for t in tracks),
            "seconds": round(pm.get_end_time(), 3), "tracks": len(tracks)}  # fmt: skip


# --- generate -----------------------------------------------------------------------------
def _defaults(req: Any, settings: ServeSettings, keys: tuple[str, ...]) -> dict[str, Any]:
    """The request's sampling controls, the service's defaults (serve.yaml `sample.*`) where
    it left one out."""
    return {k: settings.sample[k] if getattr(req, k) is None else getattr(req, k) for k in keys}


def _length(s: Served, req: Sampling, settings: ServeSettings) -> float | None:
    """The bars a generator is asked for (None where steps say it, or where the model writes
    windows of its own length), checked against limits.max_steps as the model counts steps.
    The generate route and recommending generated pieces ask the same of a length."""
    lim = settings.limits
    _cap("bars", req.bars, lim.max_bars)
    _cap("steps", req.steps, lim.max_steps)
    window = s.model.declaration().window_steps  # a vae's own window length
    if window is not None:
        if req.bars is not None or req.steps is not None:
            raise _fail(400, f"bars/steps: the {s.family} model {s.name!r} writes windows of its "
                             f"own length ({window} steps); leave bars and steps out")  # fmt: skip
        return None
    if getattr(req, "condition", None) is not None:  # generate's melody (not recommend's)
        if req.bars is not None:
            raise _fail(400, "bars: an accompaniment is as long as its melody; leave bars out "
                             "(steps cuts it shorter)")  # fmt: skip
        return None
    if req.steps is not None:  # steps wins over bars
        return req.bars
    bars = req.bars or settings.sample["bars"]
    steps = s.model.codec.steps_for_bars(bars)
    if steps > lim.max_steps:
        raise _fail(422, f"bars: {bars:g} bars are {steps} model steps, over the service's "
                         f"cap of {lim.max_steps} (limits.max_steps)")  # fmt: skip
    if steps < 1:
        raise _fail(422, f"bars: {bars:g} bars are less than one step of this model; ask for "
                         f"at least {1 / s.model.codec.steps_for_bars(1):g} of a bar")  # fmt: skip
    return bars


def _cap_input(field: str, what: str, steps: int, s: Served, lim: Any) -> None:
    """An uploaded primer or melody is at most limits.max_bars bars and limits.max_steps steps
    of the model's codec, as a piece asked for by length is."""
    most = min(lim.max_steps, s.model.codec.steps_for_bars(lim.max_bars))
    if steps > most:
        raise _fail(422, f"{field}: {what} is {steps} model steps, over the service's cap of "
                         f"{most} (limits.max_bars={lim.max_bars}, "
                         f"limits.max_steps={lim.max_steps})")  # fmt: skip


def _tempo(s: Served, tempo: float | None, settings: ServeSettings) -> float | None:
    """The tempo a generator's MIDI is written at: the request's, else the service's default
    (serve.yaml `sample.tempo`) where the model writes MIDI, else the model's own (None)."""
    if tempo is None:
        return settings.sample["tempo"] if s.model.codec.output == "midi" else None
    try:
        return check_tempo(tempo, s.model.codec.output)
    except ConfigError as e:
        raise _fail(400, f"{e} (the {s.family} model {s.name!r})") from None


def generate(s: Served, req: GenerateRequest, store: Store, settings: ServeSettings,
             caller: Caller, submit: Submit | None = None,
             batcher: Batcher | None = None) -> Job:  # fmt: skip
    """With `batcher` (the immediate route), pieces from the prior are sampled together with
    other requests' of the same model and controls, holding a worker slot only while they are
    drawn; otherwise (a background job, which holds its slot already) on their own."""
    from cadenza.generation import generate as draw
    from cadenza.generation import generate_batch, write_pieces
    from cadenza.generation.inputs import condition_tensor, primer_tensor

    lim, info_modes = settings.limits, modes(s)
    c = _defaults(req, settings, ("n", "seed", "temperature", "top_k", "top_p"))
    _cap("n", c["n"], lim.max_n)
    for field, mode in (("primer", "primer"), ("condition", "condition"),
                        ("attribute", "attribute"), ("style", "style")):  # fmt: skip
        if getattr(req, field) is not None and mode not in info_modes:
            raise _fail(400, f"{field}: the {s.family} model {s.name!r} takes no {field}; it "
                             f"offers {', '.join(info_modes)}")  # fmt: skip
    if (c["top_k"] is not None or c["top_p"] is not None) and not takes_filters(s):
        raise _fail(400, f"top_k/top_p filter the next token of a token model; the "
                         f"{s.family} model {s.name!r} takes temperature only")  # fmt: skip
    if req.primer and req.condition:
        raise _fail(400, "give primer or condition, not both")
    if "generate" not in info_modes and not req.condition:
        raise _fail(400, f"condition: the {s.family} model {s.name!r} accompanies a melody; "
                         "POST it to /api/uploads and give its id as condition")  # fmt: skip
    if req.style is not None:
        try:  # checked here, so a wrong name is the request's error, before any work
            s.model.style_weights(req.style)
        except ConfigError as e:
            raise _fail(422, str(e)) from None
    # A primer and a melody are encoded once, here, and capped like a length: the piece written
    # holds the whole primer, and an accompaniment is as long as its melody.
    primer = condition = None
    if req.primer:
        primer = primer_tensor(s.model, store.upload_path(req.primer, caller, "primer"))
        _cap_input("primer", "the music to continue", len(primer), s, lim)
    if req.condition:
        condition = condition_tensor(s.model, store.upload_path(req.condition, caller, "condition"))
        _cap_input("condition", "the melody", len(condition), s, lim)
    bars = _length(s, req, settings)
    tempo = _tempo(s, req.tempo, settings)
    controls = {**c, "bars": bars, "steps": req.steps, "tempo": tempo, "render": req.render,
                "primer": req.primer, "condition": req.condition,
                "attribute": req.attribute, "style": req.style}  # fmt: skip

    # Models of MIDI give a row the same notes in a batch of up to 16 as alone (tested per
    # family: tests/test_batched_sampling.py); a mel VAE's convolutions differ in the last float
    # bits between batch sizes, so its requests are drawn alone.
    batchable = s.model.codec.output == "midi"

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        audio = {"render": _render(req.render, s), "tempo": tempo, **settings.render_options}
        alone = batcher.slot if batcher is not None else nullcontext  # a slot, unless held
        unshifted: list[Piece] = []  # attribute=: the same draws without the shift
        change = None
        if req.attribute:
            from cadenza.generation.exploration import prior_with_attribute

            temperature = 1.0 if c["temperature"] is None else c["temperature"]
            with alone():
                shifted = prior_with_attribute(s.model, req.attribute, n=c["n"], seed=c["seed"],
                                               temperature=temperature)  # fmt: skip
                pieces, unshifted = shifted.write(folder, **audio), shifted.inputs
                change = shifted.report["attribute_change"]
        elif batcher is not None and primer is None and condition is None and batchable:
            shared = {"temperature": c["temperature"], "top_k": c["top_k"], "top_p": c["top_p"],
                      "steps": req.steps, "bars": bars, "style": req.style}  # fmt: skip
            key = (s.name, id(s.model), json.dumps(shared, sort_keys=True))
            pieces = batcher.draw(
                key, c["n"], c["seed"], lambda requests: generate_batch(s.model, requests, **shared)
            )
            write_pieces(pieces, folder, **audio)
        else:
            inputs = {"primer": req.primer, "condition": req.condition}  # as the report names them
            with alone():
                pieces = draw(s.model, c["n"], seed=c["seed"], temperature=c["temperature"],
                              top_k=c["top_k"], top_p=c["top_p"], steps=req.steps, bars=bars,
                              primer=primer, condition=condition, style=req.style,
                              record=inputs)  # fmt: skip
                write_pieces(pieces, folder, **audio)
        out = _job(store, job, s, folder, pieces, controls, t0, inputs=unshifted)
        out.attribute_change = change
        return out

    return _in_job(store, caller, work, submit=submit)


def _job(store: Store, job: str, s: Served | None, folder: Path, pieces: list[Piece],
         controls: dict[str, Any], t0: float, sheet: Path | None = None,
         inputs: list[Piece] | None = None) -> Job:  # fmt: skip
    report = folder / "samples.json"
    return Job(job=job, model=s.name if s else None, family=s.family if s else None,
               seconds=round(time.perf_counter() - t0, 3), controls=controls,
               items=_items(store, job, pieces), inputs=_items(store, job, inputs or []),
               sheet=store.url(job, sheet) if sheet and sheet.is_file() else None,
               report=store.url(job, report) if report.is_file() else None)  # fmt: skip


# --- interpolate --------------------------------------------------------------------------
def interpolate(s: Served, req: InterpolateRequest, store: Store, settings: ServeSettings,
                caller: Caller, submit: Submit | None = None,
                slot: Slot = nullcontext) -> Job:  # fmt: skip
    from cadenza.generation import exploration

    _cap("steps", req.steps, settings.limits.max_interpolate_steps, "max_interpolate_steps")
    can = modes(s)
    if "interpolate" in can:
        if not (req.a and req.b):
            raise _fail(422, f"a and b: the {s.family} model {s.name!r} interpolates between "
                             "two uploaded MIDI phrases; POST them to /api/uploads "
                             "first")  # fmt: skip
        a, b = store.upload_path(req.a, caller, "a"), store.upload_path(req.b, caller, "b")
    elif "latent_walk" in can:
        if req.a or req.b:
            raise _fail(400, f"a/b: the {s.family} model {s.name!r} has no encoder; it walks "
                             "between two random latents drawn from seed (leave a and b "
                             "out)")  # fmt: skip
    else:
        raise _fail(400, f"model: the {s.family} model {s.name!r} cannot interpolate; use one "
                         "that encodes phrases (a vae) or walks its latents (a gan)")  # fmt: skip
    tempo = _tempo(s, req.tempo, settings)
    controls = req.model_dump() | {"tempo": tempo}

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        if "interpolate" in can:
            path = exploration.interpolate(s.model, a, b, steps=req.steps,
                                           temperature=req.temperature, seed=req.seed)  # fmt: skip
            path.report |= {"a": req.a, "b": req.b}  # uploads by id, not where they are kept
        else:
            path = exploration.latent_walk(s.model, steps=req.steps, seed=req.seed,
                                           temperature=req.temperature)  # fmt: skip
        pieces = path.write(folder, render=_render(req.render, s), tempo=tempo,
                            **settings.render_options)  # fmt: skip
        return _job(store, job, s, folder, pieces, controls, t0, sheet=folder / "interp_sheet.png")

    return _in_job(store, caller, work, submit=submit, slot=slot)


# --- render and classify: a MIDI file the caller holds ---------------------------------------
def _midi_source(req: MidiSource, store: Store, caller: Caller) -> tuple[bytes, str]:
    """The caller's upload, or a .mid file of one of their jobs -> (its bytes, the name to
    parse it by: an error message never shows where the server keeps files)."""
    if req.upload is None and req.job is None:
        raise _fail(422, "give one of upload (an uploaded MIDI file) or job + file (a MIDI file "
                         "of a job); the request names neither")  # fmt: skip
    if req.upload is not None and req.job is not None:
        raise _fail(422, "give upload or job + file, not both: upload is an uploaded MIDI file, "
                         "job + file a MIDI file of a job")  # fmt: skip
    if req.upload is not None:
        return store.upload_path(req.upload, caller).read_bytes(), f"upload {req.upload}"
    if not req.file or not req.file.endswith(".mid"):
        raise _fail(422, "file: name a .mid file of the job, e.g. sample_000.mid")
    return store.job_file(req.job, req.file, caller).read_bytes(), req.file


def _source(req: MidiSource) -> dict[str, str]:
    return {"upload": req.upload} if req.upload is not None else {"job": req.job, "file": req.file}


def classify(s: Served, req: ClassifyRequest, store: Store, settings: ServeSettings,
             caller: Caller, slot: Slot = nullcontext) -> Classification:  # fmt: skip
    """The classes of one MIDI file, the most likely first (BadMidiError -> 422 for a file the
    classifier's codec cannot read, e.g. no note in its range). A mel classifier renders what
    it hears: at most limits.max_bars bars of it (4/4 at 120 bpm, 2 s a bar)."""
    from cadenza.representations.events import SECONDS_PER_BAR

    t0 = time.perf_counter()
    hears = settings.limits.max_bars * SECONDS_PER_BAR
    source = _midi_source(req, store, caller)  # a wrong id or name: its 4xx before the slot
    with slot():
        ranked = s.model.ranked(s.model.read_midi_bytes(*source, hears))
    shown = ranked if req.top is None else ranked[: req.top]
    return Classification(
        model=s.name, family=s.family, source=_source(req), label=ranked[0][0],
        classes=[ClassProbability(name=n, probability=p) for n, p in shown],
        seconds=round(time.perf_counter() - t0, 4),
    )  # fmt: skip


def render(req: RenderRequest, store: Store, settings: ServeSettings, caller: Caller,
           submit: Submit | None = None, slot: Slot = nullcontext) -> Job:  # fmt: skip
    from cadenza.generation.writers import write_piece
    from cadenza.io.midi import load_midi_bytes

    pm = load_midi_bytes(*_midi_source(req, store, caller))
    seconds, cap = pm.get_end_time(), settings.limits.max_render_seconds
    if seconds > cap:  # before any work: its audio's time, memory and disk grow with it
        what = "upload" if req.upload else "file"
        raise _fail(422, f"{what}: the MIDI file lasts {seconds:.0f} s, over the service's cap "
                         f"of {cap} s for rendering (limits.max_render_seconds); clip it "
                         "first")  # fmt: skip

    def work(job: str, folder: Path) -> Job:
        t0 = time.perf_counter()
        piece = Piece.of_midi(pm, "upload" if req.upload else Path(req.file).stem)
        write_piece(piece, folder, render="wav", **settings.render_options)
        return _job(store, job, None, folder, [piece], req.model_dump(), t0)

    return _in_job(store, caller, work, submit=submit, slot=slot)


# --- recommend ----------------------------------------------------------------------------
def _listener(s: Served, req: RecommendRequest, settings: ServeSettings) -> dict[str, Any]:
    _one_listener(s, req)
    lim = settings.limits
    _cap("k", req.k, lim.max_k)
    if req.history is not None:
        _cap("history", len(req.history), lim.max_history)
    if req.k > s.model.hparams.n_items:
        raise _fail(422, f"k: {req.k} is more than the catalog's {s.model.hparams.n_items} tracks")
    if req.text is None:
        _has_taste(s, req.user, req.history)
    text = req.text
    if text is not None:
        from cadenza.recommend.text import check_description

        try:
            text = check_description(text)
        except ConfigError as e:
            raise _fail(422, str(e)) from e
        if s.model.text_map is None:
            raise _fail(400, f"text: {s.name!r} was trained without text (model.text=false); "
                             "name a user or a history instead")  # fmt: skip
    return {"user": req.user, "history": req.history, "context": req.context, "text": text}


def _one_listener(s: Served, req: RecommendRequest) -> None:
    """Who to recommend for, said in the request's own fields (the workflow's errors name the
    command line's `user=`, `history=[...]`); and no field that only a generator uses."""
    if req.generator is None and "candidates" in req.model_fields_set:
        raise _fail(422, "candidates: the number of pieces to sample from a generator; with "
                         "no generator the picks are catalog tracks")  # fmt: skip
    given = [f for f in ("user", "history", "text") if getattr(req, f) is not None]
    if len(given) != 1:
        raise _fail(422, "user, history, text: give exactly one of them (a known listener, a "
                         "new listener's catalog tracks, or what they like in words); got "
                         f"{', '.join(given) or 'none'}")  # fmt: skip
    if req.context is None:
        return
    if req.text is not None:
        raise _fail(422, "context: it shifts a listener's history; with text, say it in the "
                         "words instead")  # fmt: skip
    if req.context not in s.model.contexts:
        raise _fail(422, f"context: {req.context!r} is not one {s.name!r} was trained with: "
                         f"{s.model.contexts or 'none (it takes no context)'}")  # fmt: skip


def _has_taste(s: Served, user: str | None, history: list[str] | None) -> None:
    """A listener with plays to recommend from, checked before any work: a forgotten listener
    (their stored history emptied) is 404, as their history is to GET /api/listeners/{id}/
    history, and an empty `history` a 422; a known listener's or tracks' own errors stay 400."""
    from cadenza.recommend.workflow import NoTasteError, listener_history

    if user is None and history is None:
        return  # a text (_one_listener has checked that exactly one is given)
    if user is not None and str(user) not in s.model.user_rows:
        # Not the workflow's error, which lists a few of the model's listeners as examples.
        raise NotFoundError(f"listener: {s.name!r} does not know this listener; name a "
                            "history or text instead")  # fmt: skip
    try:
        listener_history(s.model, user, history if user is None else None)
    except NoTasteError as e:
        if e.user is None:
            raise _fail(422, "history: empty; name at least one catalog track the listener "
                             "likes (by key or name), or a user or text") from e  # fmt: skip
        raise NotFoundError(f"listener: {s.name!r} holds no history for this listener, so "
                            "there is nothing to recommend from; name a history or text "
                            "instead") from e  # fmt: skip


def _fields(pick: Any) -> dict[str, Any]:
    """A workflow Pick's fields, not copied: `dataclasses.asdict` deep-copies every reason and
    took as long as ranking the catalog (the response model validates them anyway)."""
    return {f.name: getattr(pick, f.name) for f in fields(pick)}


def recommend_catalog(s: Served, req: RecommendRequest, settings: ServeSettings,
                      caller: Caller) -> Recommendations:  # fmt: skip
    """user-kNN's reasons name the like-minded listeners only to an admin; anyone else reads
    them ranked ("similar listener 1"), as another listener's ID is theirs to keep."""
    from cadenza.recommend.workflow import recommend_catalog as ranked

    listener = _listener(s, req, settings)
    t0 = time.perf_counter()
    # The served index is the hybrid's; the other methods cache their own on the model.
    picks = ranked(s.model, **listener, k=req.k, index=s.catalog, method=req.method,
                   explain=req.explain, name_listeners=caller.admin)  # fmt: skip
    return Recommendations(job=None, model=s.name, listener=listener,
                           seconds=round(time.perf_counter() - t0, 4),
                           picks=[Pick(**_fields(p)) for p in picks])  # fmt: skip


def recommend_generated(
    s: Served,
    g: Served,
    req: RecommendRequest,
    store: Store,
    settings: ServeSettings,
    caller: Caller,
    pseudonym: str | None,
    submit: Submit | None = None,
    slot: Slot = nullcontext,
) -> Recommendations:
    """The job folder is marked as `pseudonym`'s (the listener named by `user`), and its
    picks.json names them by it: deleting the listener deletes the job."""
    from cadenza.recommend.workflow import recommend_generated as best_of

    listener = _listener(s, req, settings)
    _cap("candidates", req.candidates, settings.limits.max_candidates)
    if g.model.codec.output != "midi":
        raise _fail(400, f"generator: {g.name!r} writes {g.model.codec.output}; the "
                         "recommender scores MIDI")  # fmt: skip
    if "generate" not in modes(g):
        raise _fail(400, f"generator: the {g.family} model {g.name!r} only accompanies a "
                         "melody; the candidates are new pieces drawn from nothing")  # fmt: skip
    if req.k > req.candidates:
        raise _fail(422, f"k: {req.k} is more than candidates={req.candidates}")
    if req.method != "hybrid":
        raise _fail(422, f"method: {req.method} ranks catalog tracks; generated pieces are "
                         "scored by the hybrid model")  # fmt: skip
    controls = _defaults(req, settings, ("seed", "temperature", "top_k", "top_p"))
    if (controls["top_k"] is not None or controls["top_p"] is not None) and not takes_filters(g):
        raise _fail(400, f"top_k/top_p filter the next token of a token model; the "
                         f"{g.family} model {g.name!r} takes temperature only")  # fmt: skip
    controls |= {"steps": req.steps, "bars": _length(g, req, settings)}
    tempo = _tempo(g, req.tempo, settings)

    def work(job: str, folder: Path) -> Recommendations:
        t0 = time.perf_counter()
        picks = best_of(s.model, g.model, folder, **listener, candidates=req.candidates, k=req.k,
                        render=_render(req.render), png=True, tempo=tempo,
                        **settings.render_options,
                        report_user=pseudonym, **controls)  # fmt: skip
        files = ("midi", "png", "audio")
        out = [
            Pick(**(_fields(p) | {f: store.url(job, getattr(p, f)) for f in files})) for p in picks
        ]
        report = folder / "picks.json"
        link = store.url(job, report) if report.is_file() else None
        return Recommendations(job=job, model=s.name, listener=listener,
                               seconds=round(time.perf_counter() - t0, 3), picks=out,
                               report=link)  # fmt: skip

    return _in_job(store, caller, work, listener=pseudonym, submit=submit, slot=slot)


def listener_history(s: Served, listener: str) -> History:
    """The catalog tracks (and weights) `s` holds as `listener`'s training history."""
    model = s.model  # one read: a forget swaps in a new model, never half of one
    row = model.user_rows.get(str(listener))
    if row is None:
        raise NotFoundError(f"listener: {s.name!r} holds no history for this listener")
    lo, hi = int(model.history_indptr[row]), int(model.history_indptr[row + 1])
    from cadenza.recommend.catalog_names import item_keys, item_names

    items, names = item_keys(model), item_names(model)
    return History(model=s.name, listener=str(listener), items=[
        HistoryItem(key=items[i], name=names[i] if names else None, weight=float(w))
        for i, w in zip(model.history_items[lo:hi].tolist(), model.history_weights[lo:hi].tolist())
    ])  # fmt: skip
