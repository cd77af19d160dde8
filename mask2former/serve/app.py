"""The HTTP service: a FastAPI app around one ``Predictor``.

Requests are decoded and resized in Starlette's thread pool, run through the model in batches by
one ``Batcher`` thread (requests of one task and one padded size share a batch), and answered in
the community's formats (``answers``). Every refusal is a JSON body ``{"error": ...}`` with a 4xx
status naming the problem (503 with ``Retry-After`` when the queue is full); a failure inside the
model answers 500 to the requests of its batch and the service keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from mask2former.errors import ImageTooLargeError, Mask2FormerError
from mask2former.exported_model import ExportedModel
from mask2former.formats import TASKS
from mask2former.inference.predictor import Predictor
from mask2former.precision import precision_of
from mask2former.serve.answers import ANSWER_FORMATS, Labels, overlay_png, result_json, result_png
from mask2former.serve.batcher import Batcher, ClosedError, QueueFullError
from mask2former.serve.limits import BodyLimit, BodyTooLargeError
from mask2former.serve.metrics import Metrics
from mask2former.structures import ImageResult


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Limits and batching of the service (the CLI's options)."""

    max_batch: int = 4  # images run in one model call
    max_queue: int = 32  # requests waiting or running; more get 503
    window_ms: float = 10.0  # how long the first request of a batch waits for others
    max_upload_mb: float = 20.0  # request body
    max_image_pixels: int = 40_000_000  # decoded image, checked from the header before decoding
    score_threshold: float = 0.5  # instances drawn in overlays
    token: str | None = None  # bearer token for /v1/* and /metrics


class ApiError(Exception):
    """A refusal: ``status`` and the message the client reads."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _internal(error: Exception) -> JSONResponse:
    logging.getLogger(__name__).error("request failed", exc_info=error)
    return _error(500, f"internal error ({type(error).__name__}: {str(error)[:200]}); the service keeps running")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Service:
    """The model, its batcher and its counters; the app's routes call into it."""

    def __init__(self, predictor: Predictor, settings: ServeSettings, *, source: str) -> None:
        self.predictor, self.settings, self.source = predictor, settings, source
        self.config = predictor.config
        self.labels = Labels.of(self.config)
        self.batcher: Batcher[Any, ImageResult] = Batcher(self._run, max_batch=settings.max_batch,
                                                          max_queue=settings.max_queue,
                                                          window_s=settings.window_ms / 1000)
        self.metrics = Metrics(queue_depth=lambda: self.batcher.depth)

    def _run(self, key: tuple[str, tuple[int, int]], items: list[Any]) -> list[ImageResult]:
        self.metrics.batch_size.observe(len(items))
        return self.predictor.predict_batch(items, (key[0],))

    def model_info(self) -> dict:
        model = self.predictor.model
        inference, pixels = self.config.inference, self.config.pixels
        return {"source": self.source, "tasks": list(TASKS), "classes": self.labels.records(),
                "format": model.format if isinstance(model, ExportedModel) else "pytorch",
                "precision": precision_of(model), "device": str(self.predictor.device),
                "input": {"min_size": inference.min_size, "max_size": inference.max_size,
                          "channels": pixels.channels, "size_divisibility": pixels.size_divisibility},
                "limits": {"max_batch": self.settings.max_batch, "max_queue": self.settings.max_queue,
                           "max_upload_mb": self.settings.max_upload_mb,
                           "max_image_pixels": self.settings.max_image_pixels}}

    async def predict(self, data: bytes, source: str, task: str, answer: str) -> Response:
        from mask2former.data.image import decode_image

        start = time.perf_counter()
        if self.batcher.full:  # refuse before decoding: a burst costs the service next to nothing
            raise ApiError(503, f"busy: {self.settings.max_queue} requests are waiting already; retry shortly",
                           {"Retry-After": "1"})
        try:
            image = await run_in_threadpool(decode_image, data, source, max_pixels=self.settings.max_image_pixels,
                                            raise_hint="the service's limit (serve --max-pixels)")
            item = await run_in_threadpool(self.predictor.prepare, image, 0)
        except ImageTooLargeError as e:
            raise ApiError(413, str(e)) from None
        except Mask2FormerError as e:
            raise ApiError(400, str(e)) from None
        decoded = time.perf_counter()
        key = (task, self.predictor.batch_key(item))
        try:
            future = self.batcher.submit(key, item)
        except QueueFullError as e:
            raise ApiError(503, f"busy: {e}; retry shortly", {"Retry-After": "1"}) from None
        except ClosedError as e:
            raise ApiError(503, str(e)) from None
        try:
            result = await asyncio.wrap_future(future)
        except ClosedError as e:
            raise ApiError(503, str(e)) from None
        ran = time.perf_counter()
        if answer == "png":
            body = await run_in_threadpool(result_png, result, task)
            return Response(body, media_type="image/png")
        if answer == "overlay":
            body = await run_in_threadpool(overlay_png, image, result, task, self.labels, self.config,
                                           self.settings.score_threshold)
            return Response(body, media_type="image/png")
        payload = await run_in_threadpool(result_json, result, task, self.labels)
        done = time.perf_counter()
        payload["timings_ms"] = {"decode": round(1000 * (decoded - start), 1),
                                 "queue_and_model": round(1000 * (ran - decoded), 1),
                                 "encode": round(1000 * (done - ran), 1), "total": round(1000 * (done - start), 1)}
        return JSONResponse(payload)


STATIC = resources.files("mask2former.serve") / "static"  # the page: plain HTML, CSS and JS, nothing from outside


def _page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode())


def create_app(predictor: Predictor, settings: ServeSettings | None = None, *, source: str = "model") -> FastAPI:
    """The app serving ``predictor``; ``source`` (the checkpoint's name) is what ``/v1/model`` reports."""
    settings = settings or ServeSettings()
    service = Service(predictor, settings, source=source)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.batcher.close()

    app = FastAPI(title="mask2former", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.service = service
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 1024 * 1024))

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        start = time.perf_counter()
        if settings.token and (path.startswith("/v1/") or path == "/metrics") and not _bearer_ok(request,
                                                                                               settings.token):
            response: Response = _error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                                        {"WWW-Authenticate": "Bearer"})
        else:
            try:
                response = await call_next(request)
            except Exception as e:  # a bug or the model failing: this request fails, the service goes on
                response = _internal(e)
        if path == "/v1/predict":
            service.metrics.observe(response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message, e.headers)

    @app.exception_handler(BodyTooLargeError)
    async def too_large(request: Request, e: BodyTooLargeError) -> JSONResponse:
        return _error(413, str(e))

    @app.exception_handler(MultiPartException)
    async def bad_form(request: Request, e: MultiPartException) -> JSONResponse:
        return _error(400, f"malformed multipart form: {e.message}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, err.get('loc', ())))}: {err.get('msg')}" for err in e.errors())
        return _error(400, problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))


    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "queue_depth": service.batcher.depth}

    @app.get("/v1/model")
    async def model() -> dict:
        return service.model_info()

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.post("/v1/predict")
    async def predict(request: Request, task: str = "panoptic", format: str = "json") -> Response:
        """An image as a multipart field ``file`` or as the raw body -> the task's result."""
        if task not in TASKS:
            raise ApiError(400, f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if format not in ANSWER_FORMATS:
            raise ApiError(400, f"format must be one of {', '.join(ANSWER_FORMATS)}, got {format!r}")
        if format == "png" and task == "instance":
            raise ApiError(400, "instance results have no single PNG: ask for format=json (RLE masks) or overlay")
        data, source = await _upload(request)
        return await service.predict(data, source, task, format)

    return app


async def _upload(request: Request) -> tuple[bytes, str]:
    """The image bytes and a name for errors: the form field ``file``, else the raw body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise ApiError(400, "multipart request without a file field named 'file'")
        return await file.read(), f"upload {file.filename or 'file'!r}"
    data = await request.body()
    if not data:
        raise ApiError(400, "empty request: send an image as the body or as a multipart field 'file'")
    return data, "request body"
