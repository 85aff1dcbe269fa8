"""The FastAPI application: every trained family over HTTP, plus the studio page.

Endpoints are thin: they check a request against the model's declared abilities and the
configured caps, then call the same functions the CLI calls (`generation.generate`,
`generation.exploration`, `recommend.workflow`) and write the pieces into a job folder the client
downloads from. Model work runs in a bounded pool of workers; a request
that waits too long gets a 503, and a request that fails gets a JSON error, never a dead service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza import __version__
from cadenza.errors import BadFileError, CadenzaError, ConfigError
from cadenza.serve import jobs
from cadenza.serve.errors import NotFoundError, RequestError
from cadenza.serve.registry import Served, describe, load_all
from cadenza.serve.schemas import (
    GenerateRequest,
    InterpolateRequest,
    Job,
    Recommendations,
    RecommendRequest,
    RenderRequest,
    UploadInfo,
)
from cadenza.serve.settings import ServeSettings
from cadenza.serve.store import Store

log = logging.getLogger("cadenza")
STUDIO = Path(__file__).parent / "static" / "studio.html"


class Workers:
    """At most `n` model jobs at once; a request waits up to `timeout` seconds for a slot."""

    def __init__(self, n: int, timeout: float) -> None:
        self.n, self.timeout = n, timeout
        self._slots = threading.BoundedSemaphore(n)
        self.busy = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.timeout):
            raise RequestError(503, f"busy: all {self.n} workers stayed busy for "
                                    f"{self.timeout:g} s; retry later")  # fmt: skip
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self._slots.release()


class BodyLimit:
    """413 for a request body over `max_bytes`, from Content-Length before anything is read,
    or while a body without one streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._too_large(send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body over limits.max_upload_bytes={self.max_bytes} bytes"

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse({"error": self._message(), "status": 413}, status_code=413)
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(settings: ServeSettings) -> FastAPI:
    served, failed = load_all(settings.checkpoints, settings.max_models)
    if not served:
        raise ConfigError(
            f"checkpoints={settings.checkpoints}: no checkpoint could be served "
            f"({failed or 'no *.ckpt files'}); train one first, e.g. `make demo`"
        )
    store = Store(settings.work_dir, settings.keep_jobs, settings.keep_uploads)
    workers = Workers(settings.workers, settings.queue_timeout_s)
    started = time.monotonic()
    app = FastAPI(
        title="Cadenza",
        version=__version__,
        description="Sample, interpolate, render and recommend music with trained Cadenza "
        "checkpoints. Files are downloaded from /api/files/{job}/{file}.",
    )
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_upload_bytes)
    app.state.settings, app.state.store, app.state.served = settings, store, served

    def model(name: str, kind: str | None = None) -> Served:
        s = served.get(name)
        if s is None:
            raise NotFoundError(f"model: no model {name!r}; served: {sorted(served)}")
        if kind is not None and s.kind != kind:
            raise RequestError(400, f"model: {name!r} is a {s.family} checkpoint, not a {kind}")
        return s

    # --- errors: one JSON shape, one clear sentence -----------------------------------------
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, "status": status, **extra}, status_code=status,
                            headers={"Retry-After": "5"} if status == 503 else None)  # fmt: skip

    @app.exception_handler(CadenzaError)
    async def _cadenza(_: Request, e: CadenzaError) -> JSONResponse:
        if isinstance(e, RequestError):
            return error(e.status, str(e))
        if isinstance(e, NotFoundError):
            return error(404, str(e))
        if isinstance(e, BadFileError):
            return error(422, str(e))
        return error(400, str(e))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = [_describe(p) for p in e.errors()]
        return error(422, "; ".join(problems[:3]), detail=jsonable(e.errors()))

    # Starlette's own (unknown route 404, wrong method 405) as well as ours.
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.middleware("http")
    async def _contain(request: Request, call_next: Any) -> Any:
        # Caught here, not by an exception handler: Starlette re-raises to the server after
        # those, and uvicorn then drops the connection, failing the client's next request too.
        try:
            return await call_next(request)
        except Exception as e:  # noqa: BLE001 - any failure is one request's, not the service's
            log.exception("request %s %s failed", request.method, request.url.path)
            return error(500, f"internal error ({type(e).__name__}); the service is still up")

    # --- read-only ------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def studio() -> FileResponse:
        return FileResponse(STUDIO, media_type="text/html")

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(served), "failed": failed, "version": __version__,
                "uptime_s": round(time.monotonic() - started, 1), "busy": workers.busy,
                "workers": workers.n, "limits": asdict(settings.limits)}  # fmt: skip

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"models": [describe(served[k], settings.limits) for k in sorted(served)]}

    @app.get("/api/models/{name:path}")
    def model_info(name: str) -> dict[str, Any]:
        return describe(model(name), settings.limits)

    @app.get("/api/files/{job}/{name}")
    def download(job: str, name: str, download: bool = False) -> FileResponse:
        path = store.job_file(job, name)
        media = jobs.MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, filename=path.name if download else None)

    # --- model work -----------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201)
    def upload(file: Annotated[UploadFile, File(description="a MIDI file")]) -> UploadInfo:
        data = file.file.read(settings.limits.max_upload_bytes + 1)
        if len(data) > settings.limits.max_upload_bytes:
            raise RequestError(413, f"file: over limits.max_upload_bytes="
                                    f"{settings.limits.max_upload_bytes} bytes")  # fmt: skip
        return UploadInfo(**jobs.save_upload(store, data, file.filename or "upload.mid"))

    @app.post("/api/generate")
    def generate(req: GenerateRequest) -> Job:
        s = model(req.model, "generator")
        with workers.slot():
            return jobs.generate(s, req, store, settings)

    @app.post("/api/interpolate")
    def interpolate(req: InterpolateRequest) -> Job:
        s = model(req.model, "generator")
        with workers.slot():
            return jobs.interpolate(s, req, store, settings)

    @app.post("/api/render")
    def render(req: RenderRequest) -> Job:
        with workers.slot():
            return jobs.render(req, store, settings)

    @app.post("/api/recommend")
    def recommend(req: RecommendRequest) -> Recommendations:
        s = model(req.model, "recommender")
        generator = model(req.generator, "generator") if req.generator else None
        if generator is None:  # one matrix product: no need to queue behind sampling
            return jobs.recommend_catalog(s, req, settings)
        with workers.slot():
            return jobs.recommend_generated(s, generator, req, store, settings)

    return app


def _describe(problem: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
    if problem.get("type") == "json_invalid":
        return f"the body is not valid JSON ({problem.get('ctx', {}).get('error', 'parse error')})"
    return f"{where or 'body'}: {problem.get('msg', 'invalid')}"


def jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's error dicts minus values that are not JSON (exceptions in ctx, bytes)."""
    keep = ("type", "loc", "msg")
    return [{k: e[k] for k in keep if k in e} for e in errors]
