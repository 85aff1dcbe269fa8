"""The FastAPI application: every trained family over HTTP, plus the studio page.

Endpoints are thin: they check who is asking (an API key and its scopes, `auth.py`), check a
request against the model's declared abilities and the configured caps, then call the same
functions the CLI calls (`generation.generate`, `generation.exploration`, `recommend.workflow`)
and write the pieces into a job folder only the asking key reads back. Model work runs in a
bounded pool of workers; a request that waits too long gets a 503, and a request that fails
gets a JSON error, never a dead service. A listener's data (stored history, recommendations
from it, jobs) is theirs: readable with their token or an admin key, deletable, and named by a
pseudonym wherever the service writes it down (`privacy.py`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, Security, UploadFile
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza import __version__
from cadenza.errors import BadFileError, CadenzaError, ConfigError
from cadenza.models.sampling import pick_device
from cadenza.serve import jobs
from cadenza.serve.auth import Caller, FileLinks
from cadenza.serve.batching import Batcher
from cadenza.serve.errors import NotFoundError, RequestError
from cadenza.serve.fairness import KeyShare
from cadenza.serve.logs import REQUEST_ID, request_id
from cadenza.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from cadenza.serve.metrics import ServiceMetrics
from cadenza.serve.privacy import ForgetList, Forgetting, ListenerPaths, Pseudonyms
from cadenza.serve.registry import Served, describe, load_all
from cadenza.serve.schemas import (
    ERRORS,
    Classification,
    ClassifyRequest,
    Forgotten,
    GenerateRequest,
    History,
    InterpolateRequest,
    Job,
    JobFiles,
    Recommendations,
    RecommendRequest,
    RenderRequest,
    TaskList,
    TaskStatus,
    UploadInfo,
)
from cadenza.serve.settings import ServeSettings
from cadenza.serve.store import Store, Sweeper
from cadenza.serve.tasks import Tasks

log = logging.getLogger("cadenza")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STUDIO = Path(__file__).parent / "static"
STUDIO_FILES = {"studio.js": "text/javascript", "studio.css": "text/css"}


# --- who is asking: module-level, since route annotations are resolved in this module ----------
BEARER = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="an API key from `cadenza-keys new`")  # fmt: skip


# The dependencies are `async`, though they do not wait on anything: FastAPI runs a plain
# function on its thread pool, two extra thread hops for every request (a few hashes and
# comparisons take microseconds; the hops took more than ranking the catalog under load).
async def _caller(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
                  ) -> Caller:  # fmt: skip
    """The request's caller (401 for no key or a wrong one), by the app's keyring."""
    who = request.app.state.keyring.caller(_token(credentials))
    request.state.caller = who.name
    return who


def needs(scope: str) -> Any:
    """A dependency: the caller, who must hold `scope` (403 otherwise)."""

    async def check(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
        caller.require(scope)
        return caller

    return check


def working(scope: str) -> Any:
    """A dependency: the caller, holding `scope`, whose model request counts against its key's
    share of the workers until it is answered (fairness.py; 429 over the share)."""
    # As a default, not in the annotation: annotations are strings here (the __future__
    # import), and FastAPI resolves them in the module, where `scope` is not.
    scoped = Depends(needs(scope))

    async def hold(request: Request, caller: Caller = scoped) -> AsyncIterator[Caller]:
        with request.app.state.key_share.hold(caller):
            yield caller

    return hold


AnyKey = Annotated[Caller, Depends(_caller)]
Generate = Annotated[Caller, Depends(needs("generate"))]
Recommend = Annotated[Caller, Depends(needs("recommend"))]
# The immediate model routes: the same scopes, within the key's share of the workers.
Generating = Annotated[Caller, Depends(working("generate"))]
Recommending = Annotated[Caller, Depends(working("recommend"))]


class Workers:
    """At most `n` model jobs at once; a request waits up to `timeout` seconds for a slot."""

    def __init__(self, n: int, timeout: float) -> None:
        self.n, self.timeout = n, timeout
        self._slots = threading.BoundedSemaphore(n)
        self.busy = self.waiting = 0  # read by /api/health and /metrics

    @contextmanager
    def slot(self, wait: bool = False) -> Iterator[None]:
        """wait: block until a slot frees (a background job) instead of a 503 after timeout."""
        self.waiting += 1
        try:
            got = self._slots.acquire(timeout=None if wait else self.timeout)
        finally:
            self.waiting -= 1
        if not got:
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


class UnderRoot:
    """A service behind a proxy at `root` (settings.root_path): every request as if the proxy
    kept the prefix. `root_path` in the scope is what the links in answers, /docs and the
    OpenAPI servers are made under; a path the proxy stripped gets the prefix back, since
    Starlette finds a mount's files (the docs' scripts) only under it. Set here rather than
    as FastAPI(root_path=...), which FastAPI deprecates in favour of the server's setting."""

    def __init__(self, app: ASGIApp, root: str) -> None:
        self.app, self.root, self.raw = app, root, root.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if not (path == self.root or path.startswith(self.root + "/")):
                raw = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": self.root + path, "raw_path": self.raw + raw}
            scope = {**scope, "root_path": self.root}
        await self.app(scope, receive, send)


class Contained:
    """Every request: an ID (logs.py) in its logs and its X-Request-ID header, its metrics by
    route template and a log line (`record`), and any failure contained (`broke` makes the
    500). Caught here, not by an exception handler: Starlette re-raises to the server after
    those, and uvicorn then drops the connection, failing the client's next request too. Plain
    ASGI, not `@app.middleware("http")`: that runs every request through a task group and
    memory streams, which cost about a millisecond a request (benchmarks/service_load.py)."""

    def __init__(self, app: ASGIApp, record: Any, broke: Any) -> None:
        self.app, self.record, self.broke = app, record, broke

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id")
        rid = request_id(given.decode("latin-1") if given else None)
        token = REQUEST_ID.set(rid)
        t0 = time.perf_counter()
        status, started = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = [*message.get("headers", []), (b"x-request-id", rid.encode()),
                           *SECURITY_HEADERS,
                           (b"content-security-policy", _policy(scope))]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as e:  # noqa: BLE001 - any failure is one request's, not the service's
            response = self.broke(scope, e)
            if not started:  # else the answer was half sent: the log line is all that is left
                await response(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            self.record(scope, status, time.perf_counter() - t0, rid)


# On every answer: no page of the service framed by another site (clickjacking the studio's
# buttons), no content type guessed from a file's bytes, and no signed link sent on as a Referer.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]  # fmt: skip
# What a page may run and load (Content-Security-Policy), by what is answered. The studio runs
# its own two files and talks to this service only, so an injected script or style would not
# run. The API's answers run nothing; a job's file (MIDI, PNG, WAV) opened in a tab plays or
# shows in the browser's own viewer. /docs and /redoc are Swagger UI's
# and ReDoc's pages, whose inline script and styles need 'unsafe-inline': they may load and
# fetch from this service alone (no spec from elsewhere, nothing sent elsewhere).
_FRAMED = "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
POLICIES = {
    # base-uri 'self': the page's own <base> (the root_path), and no other.
    "studio": "default-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'self'; "
    "object-src 'none'; frame-ancestors 'none'",
    "docs": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; " + _FRAMED,
    "api": "default-src 'none'; form-action 'none'; " + _FRAMED,
    # A job's file opened in a tab (a signed link): the browser's own player or image viewer
    # loads the file and styles itself inline; nothing of the file's may run.
    "files": "default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'none'; " + _FRAMED,
}
DOCS_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def _policy(scope: Scope) -> bytes:
    """The Content-Security-Policy of the answer to this request (POLICIES)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    page = "studio" if path == "/" or path.startswith("/studio/") else None
    page = page or ("docs" if path in DOCS_PAGES else None)
    page = page or ("files" if path.startswith("/api/files/") else "api")
    return POLICIES[page].encode()


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _starlette_route(app: FastAPI, scope: Scope) -> BaseRoute | None:
    """The route of a request FastAPI's routes did not mark (Starlette's own: /openapi.json,
    /docs, the docs' files), so metrics name it rather than count it "unmatched". Matched as
    the request came in: a mount that served it moved its root_path."""
    entry = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    return next((r for r in app.routes if r.matches(entry)[0] == Match.FULL), None)


def create_app(settings: ServeSettings) -> FastAPI:
    device = pick_device(settings.device, "device")
    served, failed = load_all(settings.checkpoints, settings.max_models, device)
    if not served:
        raise ConfigError(
            f"checkpoints={settings.checkpoints}: no checkpoint could be served "
            f"({failed or 'no *.ckpt files'}); train one first, e.g. `make demo`"
        )
    keyring = settings.keyring()
    pseudonyms = Pseudonyms.load(_env(settings.pseudonym_key_env), settings.work_dir.resolve(),
                                 settings.pseudonym_key_env)  # fmt: skip
    root = settings.root_path  # links in answers are followed from outside, under it
    links = FileLinks(pseudonyms.derive("file-links"), settings.link_minutes, root)
    store = Store(settings.work_dir, settings.keep_jobs, settings.keep_uploads,
                  settings.keep_hours, links, pseudonym_of=pseudonyms.of)  # fmt: skip
    forgotten = Forgetting(served, ForgetList(store.root / "forgotten.json"), pseudonyms)
    ListenerPaths.install(pseudonyms)
    metrics = ServiceMetrics()
    # JSON logs carry one line per request (uvicorn's access log is off then); text logs have
    # uvicorn's, so ours would repeat it.
    request_level = logging.INFO if settings.log_format == "json" else logging.DEBUG
    workers = Workers(settings.workers, settings.queue_timeout_s)
    metrics.queued.set_function(lambda: workers.waiting)
    metrics.busy.set_function(lambda: workers.busy)
    recommending = CapacityLimiter(1)  # the catalog's rankings, one at a time
    batcher = Batcher(workers.slot, settings.batch_window_ms / 1000, settings.batch_rows,
                      metrics.observe_batch)  # fmt: skip
    sweeper = Sweeper(store, settings.keep_hours, metrics)
    tasks = Tasks(store, workers, settings.max_queued_jobs, metrics, pseudonym_of=pseudonyms.of,
                  max_queued_per_key=settings.max_queued_jobs_per_key)  # fmt: skip
    metrics.tasks_queued.set_function(tasks.depth)
    started = time.monotonic()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # After uvicorn stopped taking requests and let the open ones finish: the background
        # jobs that are running finish too (queued ones are cancelled, saying so).
        await asyncio.to_thread(tasks.shutdown)

    # /docs and /redoc load their scripts from this process (/static-offline-docs), as the
    # studio does: FastAPI's own pages fetch them from a CDN, and were blank offline.
    app = FastAPIOffline(
        lifespan=lifespan,
        title="Cadenza",
        version=__version__,
        description="Sample, interpolate, render, classify and recommend music with trained "
        "Cadenza checkpoints. Files are downloaded from /api/files/{job}/{file}. Every /api "
        "route but the health checks needs `Authorization: Bearer <API key>` when the service "
        "has keys (`cadenza-keys new`); each key holds scopes (generate, recommend, admin), "
        "and a listener token reads only its own listener's data.",
        responses={422: ERRORS[422]},
    )
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_upload_bytes)
    app.state.settings, app.state.store, app.state.served = settings, store, served
    app.state.pseudonyms, app.state.sweeper, app.state.metrics = pseudonyms, sweeper, metrics
    app.state.tasks, app.state.batcher = tasks, batcher
    app.state.key_share = KeyShare(settings.max_requests_per_key)

    def model(name: str, kind: str | None = None) -> Served:
        s = served.get(name)
        if s is None:
            raise NotFoundError(f"model: no model {name!r}; served: {sorted(served)}")
        if kind is not None and s.kind != kind:
            raise RequestError(400, f"model: {name!r} is a {s.family} checkpoint, not a {kind}")
        return s

    app.state.keyring = keyring

    def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
        return {code: ERRORS[code] for code in codes}

    keyed = (401, 403) if not keyring.open else ()

    # --- errors: one JSON shape, one clear sentence -----------------------------------------
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        # 429: the key's own requests answer within seconds; 503: every worker is busy.
        headers = {"Retry-After": {429: "1", 503: "5"}[status]} if status in (429, 503) else None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="cadenza"'}
        return JSONResponse({"error": message, "status": status, **extra}, status_code=status,
                            headers=headers)  # fmt: skip

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
        if e.status_code == 400:
            # The framework's only 400: a body it could not parse (a multipart form without
            # its boundary, with too many fields...), which is an invalid request like bad JSON.
            return error(422, f"body: not a valid request body ({e.detail})")
        response = error(e.status_code, str(e.detail))
        if e.headers:  # 405's Allow
            response.headers.update(e.headers)
        return response

    def record(scope: Scope, status: int, seconds: float, rid: str) -> None:
        route = getattr(scope.get("route") or _starlette_route(app, scope), "path", "unmatched")
        method = _method(scope)
        metrics.observe(route, method, status, seconds)
        log.log(request_level, "%s %s %d", method, route, status, extra={"fields": {
            "request_id": rid, "method": method, "route": route, "status": status,
            "ms": round(1000 * seconds, 1),
            "caller": scope.get("state", {}).get("caller")}})  # fmt: skip

    def broke(scope: Scope, e: Exception) -> Response:
        # The path as sent (percent-encoded): decoded, a %0A would start a forged log line.
        log.exception("request %s %s failed", _method(scope),
                      ListenerPaths.mask(quote(scope["path"]), pseudonyms))  # fmt: skip
        return error(500, f"internal error ({type(e).__name__}); the service is still up")

    app.add_middleware(Contained, record=record, broke=broke)
    if root:  # outermost: the metrics, logs and policies see the path as the proxy's
        app.add_middleware(UnderRoot, root=root)

    # --- read-only ------------------------------------------------------------------------
    # The page's links are relative to its <base>: the service's root_path, where a proxy
    # serves it (a page at /cadenza, without its slash, would resolve them against /).
    studio_page = (
        (STUDIO / "studio.html")
        .read_text()
        .replace('<base href="/">', f'<base href="{quote(root)}/">')
    )

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: proxies' checks
    def studio() -> HTMLResponse:
        return HTMLResponse(studio_page)

    @app.get("/studio/{name}", include_in_schema=False)
    def studio_file(name: str) -> FileResponse:
        """The studio's script and style: named here, so no request reaches another file."""
        if name not in STUDIO_FILES:
            raise NotFoundError(f"no studio file {name!r}")
        return FileResponse(STUDIO / name, media_type=STUDIO_FILES[name])

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Public: nothing in it is secret (no paths, keys or listeners)."""
        return {"status": "ok", "models": len(served), "not_served": len(failed),
                "version": __version__, "uptime_s": round(time.monotonic() - started, 1),
                "busy": workers.busy, "workers": workers.n, "auth": not keyring.open,
                "device": str(device), "limits": asdict(settings.limits)}  # fmt: skip

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        """Prometheus exposition: requests, latencies and errors by route, queue depth, busy
        workers, jobs. Public, like the probes: route templates and counts, nothing secret."""
        return Response(metrics.exposition(), media_type=METRICS_TYPE)

    @app.get("/api/live")
    def live() -> dict[str, str]:
        """Liveness: the process answers (a probe that fails this should restart it)."""
        return {"status": "alive"}

    @app.get("/api/ready", responses=documented(503))
    def ready() -> JSONResponse:
        """Readiness: models loaded and work_dir writable, so requests can be taken (a probe
        that fails this should send traffic elsewhere, not restart it)."""
        problems = [] if store.writable() else ["work_dir is not writable"]
        if problems:
            return error(503, "not ready: " + "; ".join(problems))
        return JSONResponse({"status": "ready", "models": len(served)})

    @app.get("/api/models", responses=documented(*keyed))
    def models(caller: AnyKey) -> dict[str, Any]:
        """Every served model; an admin also sees the checkpoints that could not be served."""
        out: dict[str, Any] = {"models": [
            describe(served[k], settings.limits, caller, settings.sample) for k in sorted(served)
        ]}  # fmt: skip
        if caller.admin:
            out["failed"] = failed
        return out

    @app.get("/api/models/{name:path}", responses=documented(*keyed, 404))
    def model_info(name: str, caller: AnyKey) -> dict[str, Any]:
        return describe(model(name), settings.limits, caller, settings.sample)

    @app.get("/api/files/{job}", responses=documented(*keyed, 404))
    def job_files(job: str, caller: AnyKey) -> JobFiles:
        """Fresh signed links to every file of a job: the key that made it, or an admin's.
        An immediate job's links expire (link_minutes); this gives new ones, as GET
        /api/jobs/{id} does for a background job's."""
        return JobFiles(job=job, files=store.job_links(job, caller))

    @app.get("/api/files/{job}/{name}", responses=documented(*keyed, 404),
             response_class=FileResponse)  # fmt: skip
    def download(
        job: str,
        name: str,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        expires: int | None = None,
        sig: Annotated[str | None, Query(max_length=64)] = None,
        download: bool = False,
    ) -> FileResponse:
        """A file of a job: by the signed link the job's answer gave (expires + sig, no key
        needed until it expires), or with the key that made the job (or an admin key). An
        expired or altered link without a key is a 401 that says which; a background job's
        record (GET /api/jobs/{id}) gives fresh links."""
        if sig is not None and links.valid(job, name, expires, sig):
            path = store.job_file(job, name, None)
        elif (sig is not None or expires is not None) and credentials is None and not keyring.open:
            # A browser following a link sends no key: "a key is required" would not help it.
            raise RequestError(401, _bad_link(job, expires))
        else:
            path = store.job_file(job, name, keyring.caller(_token(credentials)))
        media = jobs.MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, filename=path.name if download else None)

    # --- model work -----------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201, responses=documented(*keyed, 413, 422))
    def upload(file: Annotated[UploadFile, File(description="a MIDI file")],
               caller: Generate) -> UploadInfo:  # fmt: skip
        data = file.file.read(settings.limits.max_upload_bytes + 1)
        if len(data) > settings.limits.max_upload_bytes:
            raise RequestError(413, f"file: over limits.max_upload_bytes="
                                    f"{settings.limits.max_upload_bytes} bytes")  # fmt: skip
        sweeper.maybe()
        return UploadInfo(**jobs.save_upload(store, caller, data, file.filename or "upload.mid"))

    work_errors = (*keyed, 400, 404, 413, 422, 503)
    # What the immediate model routes may answer besides: a key over its share (fairness.py),
    # where some key has one.
    shared = settings.max_requests_per_key is not None or any(
        k.max_requests is not None for k in keyring.keys
    )
    immediate = documented(*work_errors, *((429,) if keyed and shared else ()))

    def for_listener(req: RecommendRequest, caller: Caller) -> RecommendRequest:
        if req.user is not None:
            caller.require_listener(req.user)
        elif caller.listener is not None and req.history is None and req.text is None:
            req = req.model_copy(update={"user": caller.listener})
        forgotten.refresh()
        return req

    @app.post("/api/generate", responses=immediate)
    def generate(req: GenerateRequest, caller: Generating
                 ) -> Job:  # fmt: skip
        s = model(req.model, "generator")
        sweeper.maybe()
        # No slot held here: the batcher takes one per sampling loop (serve/batching.py).
        out = jobs.generate(s, req, store, settings, caller, batcher=batcher)
        metrics.jobs.labels("generate").inc()
        return out

    @app.post("/api/interpolate", responses=immediate)
    def interpolate(req: InterpolateRequest,
                    caller: Generating) -> Job:  # fmt: skip
        s = model(req.model, "generator")
        sweeper.maybe()
        # The slot is taken inside, once the request is checked (as generate's batcher does),
        # here and in render, classify and recommend: a bad request is a 4xx, never a 503.
        out = jobs.interpolate(s, req, store, settings, caller, slot=workers.slot)
        metrics.jobs.labels("interpolate").inc()
        return out

    @app.post("/api/render", responses=immediate)
    def render(req: RenderRequest, caller: Generating) -> Job:
        sweeper.maybe()
        out = jobs.render(req, store, settings, caller, slot=workers.slot)
        metrics.jobs.labels("render").inc()
        return out

    @app.post("/api/classify", responses=immediate)
    def classify(req: ClassifyRequest, caller: Generating) -> Classification:
        """The classes a served classifier gives one MIDI file: an upload, or a .mid file of a
        job (a generated piece: is it in the style asked for?). The generate scope, as the
        uploads it reads."""
        s = model(req.model, "classifier")
        out = jobs.classify(s, req, store, settings, caller, slot=workers.slot)
        metrics.jobs.labels("classify").inc()
        return out

    @app.post("/api/recommend", responses=immediate)
    async def recommend(req: RecommendRequest, caller: Recommending
                        ) -> Recommendations:  # fmt: skip
        """For `user`: that listener's token or an admin key. A listener token that names no
        one (no user, history or text) asks for its own listener."""
        if req.generator is None:  # a few ms: no need to queue behind sampling
            # On one thread, the requests queued in the event loop: its ~100 small torch calls
            # each give up the GIL, and among 16 request threads every call waited to get it
            # back (p50 236 ms at 16 clients for ~4 ms of work).
            return await to_thread.run_sync(catalog, req, caller, limiter=recommending)
        return await to_thread.run_sync(generated, req, caller)

    def catalog(req: RecommendRequest, caller: Caller) -> Recommendations:
        req = for_listener(req, caller)
        return jobs.recommend_catalog(model(req.model, "recommender"), req, settings, caller)

    def generated(req: RecommendRequest, caller: Caller) -> Recommendations:
        req = for_listener(req, caller)
        s = model(req.model, "recommender")
        listener = pseudonyms.of(req.user) if req.user is not None else None
        caller.require("generate")  # it samples pieces too
        generator = model(req.generator, "generator")
        sweeper.maybe()
        out = jobs.recommend_generated(
            s, generator, req, store, settings, caller, listener, slot=workers.slot
        )
        metrics.jobs.labels("recommend").inc()
        return out

    # --- the same work in the background ---------------------------------------------------
    def queued(kind: str, caller: Caller, listener: str | None = None) -> jobs.Submit:
        def submit(work: Any) -> TaskStatus:
            return TaskStatus(**tasks.submit(kind, caller, listener, work).view(root))

        return submit

    def accepted(task: TaskStatus, response: Response) -> TaskStatus:
        response.headers["Location"] = task.url
        return task

    background = {"status_code": 202, "responses": documented(*work_errors)}

    @app.post("/api/jobs/generate", **background)
    def generate_later(req: GenerateRequest, caller: Generate, response: Response) -> TaskStatus:
        """POST /api/generate as a background job: 202 at once, then poll its `url`."""
        s = model(req.model, "generator")
        sweeper.maybe()
        return accepted(jobs.generate(s, req, store, settings, caller,
                                      queued("generate", caller)), response)  # fmt: skip

    @app.post("/api/jobs/interpolate", **background)
    def interpolate_later(req: InterpolateRequest, caller: Generate,
                          response: Response) -> TaskStatus:  # fmt: skip
        s = model(req.model, "generator")
        return accepted(jobs.interpolate(s, req, store, settings, caller,
                                         queued("interpolate", caller)), response)  # fmt: skip

    @app.post("/api/jobs/render", **background)
    def render_later(req: RenderRequest, caller: Generate, response: Response) -> TaskStatus:
        return accepted(jobs.render(req, store, settings, caller, queued("render", caller)),
                        response)  # fmt: skip

    @app.post("/api/jobs/recommend", **background)
    def recommend_later(req: RecommendRequest, caller: Recommend,
                        response: Response) -> TaskStatus:  # fmt: skip
        """POST /api/recommend with a `generator` (sampling many candidates) in the
        background; a catalog recommendation answers at once from /api/recommend."""
        req = for_listener(req, caller)
        s = model(req.model, "recommender")
        if req.generator is None:
            raise RequestError(422, "generator: a background recommendation scores generated "
                                    "pieces; POST /api/recommend answers catalog picks at "
                                    "once")  # fmt: skip
        caller.require("generate")
        g = model(req.generator, "generator")
        listener = pseudonyms.of(req.user) if req.user is not None else None
        submit = queued("recommend", caller, listener)
        return accepted(jobs.recommend_generated(s, g, req, store, settings, caller, listener,
                                                 submit), response)  # fmt: skip

    @app.get("/api/jobs", responses=documented(*keyed))
    def my_jobs(caller: AnyKey) -> TaskList:
        """This key's background jobs, newest first (an admin: everyone's)."""
        return TaskList(jobs=[TaskStatus(**t.view(root)) for t in tasks.mine(caller)])

    @app.get("/api/jobs/{job}", responses=documented(*keyed, 404))
    def job_status(job: str, caller: AnyKey) -> TaskStatus:
        """Status, progress, and once done the result (or the error) of a background job."""
        return TaskStatus(**tasks.get(job, caller).view(root))

    @app.delete("/api/jobs/{job}", responses=documented(*keyed, 404))
    def cancel_job(job: str, caller: AnyKey) -> TaskStatus:
        """Cancel: a queued job never starts; a running one stops at its next sampling step
        and what it wrote is deleted. One cancelled after its sampling, while it writes or
        renders its files, still answers `running`, then ends `cancelled` with its files
        deleted. A finished job is left as it is."""
        return TaskStatus(**tasks.cancel(job, caller).view(root))

    # --- a listener's own data --------------------------------------------------------------
    @app.get("/api/listeners/{listener}/history", responses=documented(*keyed, 400, 404))
    def history(listener: str, caller: Recommend,
                model_name: Annotated[str, Query(alias="model", min_length=1, max_length=200)]
                ) -> History:  # fmt: skip
        """The listening history a recommender holds for this listener (empty once they are
        forgotten): that listener's token or an admin key."""
        caller.require_listener(listener)
        forgotten.refresh()
        return jobs.listener_history(model(model_name, "recommender"), listener)

    @app.delete("/api/listeners/{listener}", responses=documented(*keyed))
    def forget(listener: str, caller: AnyKey) -> Forgotten:
        """Forget a listener: their stored history in every served recommender (their
        recommendations are then a new listener's with no history, also after a restart), and
        every job and upload holding their data or made with their token. That listener's token
        or an admin key."""
        caller.require_listener(listener)
        pseudonym = pseudonyms.of(listener)
        models = forgotten.forget(listener, pseudonym)
        tokens = keyring.listener_keys(listener)
        gone = store.remove_listener(pseudonym, tokens)
        metrics.forgotten.inc()
        log.info("forgot listener %s: %d model(s), %d job(s), %d upload(s)", pseudonym,
                 len(models), gone["jobs"], gone["uploads"])  # fmt: skip
        found = bool(models or tokens or gone["jobs"] or gone["uploads"])
        return Forgotten(listener=pseudonym, models=models, **gone, found=found)

    _document_422_where_answered(app)
    return app


def _document_422_where_answered(app: FastAPI) -> None:
    """Every route got the app's 422 (our error shape in place of FastAPI's); a route with no
    parameter and no body has nothing to validate and never answers it, and a client generated
    from the document should not handle what cannot come."""
    for route in app.routes:
        if isinstance(route, APIRoute) and not (get_flat_params(route.dependant)
                                                or route.body_field):  # fmt: skip
            route.responses.pop(422, None)


def _method(scope: Scope) -> str:
    """The request's method as metrics and logs name it. Any token is a method to HTTP: one a
    client makes up is "other", or each would be a new metric series (and a label anyone
    could write)."""
    return scope["method"] if scope["method"] in HTTP_METHODS else "other"


def _bad_link(job: str, expires: int | None) -> str:
    """Why a signed file link was refused, and where a working one comes from. A past expiry
    is called expired whatever its signature: either way its holder needs a new link."""
    if expires is not None and expires < time.time():
        try:
            when = time.strftime(" at %Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
        except (OverflowError, OSError, ValueError):  # no time this platform can name
            when = ""
        why = f"this file link expired{when}"
    else:
        why = "this file link's signature is wrong (altered, or for another file or expiry)"
    return (f"{why}; ask for a new link: GET /api/files/{job} (with the key that made the "
            f"job) or, for a background job, GET /api/jobs/{{id}} gives fresh ones; or download "
            f"it with that key")  # fmt: skip


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials else None


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def _describe(problem: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
    if problem.get("type") == "json_invalid":
        return f"the body is not valid JSON ({problem.get('ctx', {}).get('error', 'parse error')})"
    if not where and isinstance(problem.get("input"), str | bytes):
        # FastAPI reads a body as JSON only when the request says it is.
        return "body: not read as JSON; send it with the header content-type: application/json"
    return f"{where or 'body'}: {problem.get('msg', 'invalid')}"


def jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's error dicts minus values that are not JSON (exceptions in ctx, bytes)."""
    keep = ("type", "loc", "msg")
    return [{k: e[k] for k in keep if k in e} for e in errors]
