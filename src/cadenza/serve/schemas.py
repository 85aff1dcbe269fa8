"""Request and response bodies. Strict: "2" is not a number, an unknown field is an error (a
typo in a control should not be silently ignored). Caps that depend on the service's config
(n, bars, steps, k, candidates) are checked by the app against `Limits`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cadenza.generation.writers import TEMPO_RANGE
from cadenza.metrics.attributes import parse_attribute

UploadId = str  # 32 hex characters, from POST /api/uploads
MAX_ATTRIBUTE_SHIFT = 10.0  # attribute=NAME:AMOUNT, |AMOUNT| at most this


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _tempo() -> Any:
    lo, hi = TEMPO_RANGE
    return Field(None, ge=lo, le=hi, description="write the MIDI (and its audio) at this many "
                 "quarter notes a minute: the same notes on the same beats (null: the service "
                 "default, else the model's own; models of MIDI only)")  # fmt: skip


# A control left out (null) takes the service's default: serve.yaml `sample.*`, which are
# configs/sampling/default.yaml's controls (GET /api/models lists them per model).
class Sampling(Request):
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="null: the service default")
    temperature: float | None = Field(None, gt=0, le=5.0, description="null: the model default")
    top_k: int | None = Field(None, ge=1, description="token models only")
    top_p: float | None = Field(None, gt=0, le=1.0, description="token models only")
    bars: float | None = Field(None, gt=0, description="4/4 bars (null: the service default)")
    steps: int | None = Field(None, ge=1, description="model steps; wins over bars")
    tempo: float | None = _tempo()


class GenerateRequest(Sampling):
    model: str = Field(..., min_length=1, max_length=200)
    n: int | None = Field(None, ge=1, description="null: the service default")
    primer: UploadId | None = Field(None, description="an upload to continue (lstm)")
    condition: UploadId | None = Field(None, description="a melody to accompany (conditional gan)")
    attribute: str | None = Field(None, max_length=40, description="vae: NAME:AMOUNT, e.g. "
                                  "density:+1.5 (one of the model's `attributes`; AMOUNT in "
                                  "its gaps, -10 to 10)")  # fmt: skip
    style: str | dict[str, float] | None = Field(
        None,
        description="a style-conditional model's style (one of its `styles`), or a mix of them "
        "(style -> non-negative weight)",
    )
    render: bool = Field(False, description="also render each piece to WAV")

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, attribute: str | None) -> str | None:
        """NAME:AMOUNT with a known name and a finite amount of at most MAX_ATTRIBUTE_SHIFT
        (in gaps between the data's quarters: far past the data, a code decodes to noise)."""
        if attribute is not None:
            _, amount = parse_attribute(attribute)  # ValueError: a 422 naming the field
            if abs(amount) > MAX_ATTRIBUTE_SHIFT:
                raise ValueError(f"the amount must be between -{MAX_ATTRIBUTE_SHIFT:g} and "
                                 f"{MAX_ATTRIBUTE_SHIFT:g}, got {amount:g}")  # fmt: skip
        return attribute


class InterpolateRequest(Request):
    model: str = Field(..., min_length=1, max_length=200)
    a: UploadId | None = Field(None, description="vae: the start phrase (an upload)")
    b: UploadId | None = Field(None, description="vae: the end phrase (an upload)")
    steps: int = Field(8, ge=2)
    temperature: float | None = Field(None, gt=0, le=5.0, description="null: greedy (vae)")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    tempo: float | None = _tempo()
    render: bool = False


class MidiSource(Request):
    """A MIDI file the service holds for the caller: an upload, or a .mid file of a job."""

    upload: UploadId | None = None
    job: str | None = None
    file: str | None = Field(None, description="a .mid file of `job`")


class RenderRequest(MidiSource):
    """The MIDI file to render to WAV."""


class ClassifyRequest(MidiSource):
    model: str = Field(..., min_length=1, max_length=200, description="a served classifier")
    top: int | None = Field(None, ge=1, description="only the `top` most likely classes "
                                                    "(null: every class)")  # fmt: skip


class RecommendRequest(Sampling):
    model: str = Field(..., min_length=1, max_length=200)
    user: str | None = Field(None, max_length=200, description="a listener the model knows")
    history: list[str] | None = Field(
        None, description="or: catalog tracks a new listener likes, by key or by name (a name "
        "matched whole, any case; Last.fm: artist names); at least one",
    )  # fmt: skip
    text: str | None = Field(
        None, min_length=1, max_length=500,
        description="or: what the listener likes, in words (a recommender with text: true)",
    )  # fmt: skip
    context: str | None = Field(None, max_length=200)
    k: int = Field(10, ge=1)
    method: Literal["hybrid", "content", "itemknn", "userknn"] = Field(
        "hybrid", description="the model, its content path alone, or a neighbourhood "
        "recommender over the training histories (catalog picks only)",
    )  # fmt: skip
    explain: bool = Field(True, description="give each catalog pick its reasons (a few ms)")
    generator: str | None = Field(None, description="score pieces sampled from this model")
    candidates: int = Field(16, ge=1)
    render: bool = False

    @field_validator("user", mode="before")
    @classmethod
    def _numeric_id(cls, user: Any) -> Any:
        """Last.fm's listener IDs are numbers: `"user": 2` means the listener "2"."""
        return str(user) if isinstance(user, int) and not isinstance(user, bool) else user


class Item(BaseModel):
    name: str
    midi: str | None = None
    png: str | None = None
    audio: str | None = None
    notes: int | None = None
    seconds: float | None = None


class Job(BaseModel):
    job: str
    model: str | None
    family: str | None
    seconds: float
    controls: dict[str, Any]
    items: list[Item]
    inputs: list[Item] = Field(default_factory=list, description="what the items were made "
                               "from, where the job wrote it: with `attribute`, the same draws "
                               "unshifted (`base_NNN`), one per item, to hear what the shift "
                               "changed")  # fmt: skip
    attribute_change: dict[str, Any] | None = Field(
        None, description="with `attribute`: the attribute's mean over the items and over the "
        "same draws unshifted (`before`, `after`, `change`, its `unit`, the amount `asked`)",
    )  # fmt: skip
    sheet: str | None = None
    report: str | None = None


class Pick(BaseModel):
    rank: int
    key: str = Field(description="the catalog track's stable key, or a generated file's name")
    name: str | None = Field(None, description="what a listener calls it (Last.fm: the "
                             "artist), where the catalog names its tracks")  # fmt: skip
    score: float
    catalog_percentile: float | None = None
    midi: str | None = None
    png: str | None = None
    audio: str | None = None
    reasons: dict[str, Any] | None = Field(
        None, description="why: `summary` in words; `played` tracks that pulled it up, "
        "`listeners` like this one, matching `features`, each with its `share`",
    )  # fmt: skip


class Recommendations(BaseModel):
    job: str | None
    model: str
    listener: dict[str, Any]
    seconds: float
    picks: list[Pick]
    # Generated pieces: picks.json, every candidate's score and reasons (signed link).
    report: str | None = None


class ClassProbability(BaseModel):
    name: str
    probability: float


class Classification(BaseModel):
    model: str
    family: str
    source: dict[str, str] = Field(description="what was classified: {upload} or {job, file}")
    label: str = Field(description="the most likely class")
    classes: list[ClassProbability] = Field(description="the most likely first")
    seconds: float


class UploadInfo(BaseModel):
    upload: str
    filename: str
    notes: int
    seconds: float
    tracks: int


class HistoryItem(BaseModel):
    key: str
    name: str | None = None  # as a Pick's
    weight: float


class History(BaseModel):
    model: str
    listener: str
    items: list[HistoryItem] = Field(description="empty for a forgotten listener")


class JobFiles(BaseModel):
    job: str
    files: dict[str, str] = Field(description="each file of the job -> a download link signed "
                                  "afresh (valid for link_minutes)")  # fmt: skip


class Forgotten(BaseModel):
    listener: str = Field(description="the listener's pseudonym, as the service's logs name it")
    models: list[str] = Field(description="served recommenders that held their history")
    jobs: int = Field(description="job folders deleted")
    uploads: int = Field(description="uploads deleted")
    found: bool = Field(description="whether the service held anything of theirs (a history, "
                        "jobs, uploads or a key); false is also what a mistyped id gives. The "
                        "pseudonym is on the forget list either way, so a recommender loaded "
                        "later forgets them too")  # fmt: skip


class ErrorBody(BaseModel):
    """Every error the service answers: one sentence saying what to change, and its status."""

    error: str
    status: int
    detail: list[dict[str, Any]] | None = Field(None, description="422: each invalid field")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# What each error status means on this service (routes list the ones they can answer).
ERRORS: dict[int, dict[str, Any]] = {
    400: _error("a value this model cannot take (e.g. a control its family lacks)"),
    401: _error("no API key, or one that is not valid (WWW-Authenticate: Bearer)"),
    403: _error("the key lacks the route's scope, or the data is another listener's or key's"),
    404: _error("no such model, job, upload or file"),
    413: _error("the request body or upload is over limits.max_upload_bytes"),
    422: _error("a field is missing, of the wrong type, or over one of the service's caps"),
    429: _error(
        "this key already has max_requests_per_key model requests in flight (or its "
        "own max_requests); retry after Retry-After"
    ),
    503: _error("every worker stayed busy for queue_timeout_s; retry after Retry-After"),
}


class TaskStatus(BaseModel):
    """A background job (POST /api/jobs/...): poll `url` until `status` is done, failed or
    cancelled."""

    id: str
    kind: Literal["generate", "interpolate", "render", "recommend"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(description="0-1: the share of the current sampling loop done")
    submitted: float = Field(description="Unix time")
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = Field(
        None, description="once done: what the immediate endpoint answers (a Job, or "
        "Recommendations; read back, a recommendation's `listener.user` is the listener's ID "
        "to their own token, and null beside `user_pseudonym` to an admin)",
    )  # fmt: skip
    error: dict[str, Any] | None = Field(None, description="once failed: {status, error}")
    url: str


class TaskList(BaseModel):
    jobs: list[TaskStatus]
