"""The HTTP API and web page of ``dltools serve`` (FastAPI), over models loaded once.

Routes (JSON errors everywhere; OpenAPI docs at ``/docs``):

- ``GET /health``: status and how many requests are being worked on (never needs a token);
- ``GET /models``, ``GET /models/{name}``: name, kind, classes with colours, bands, tile size;
- ``POST /models/{name}/segment``: an image (raw body or a multipart file field) -> the
  label raster (class + 1, 0 = nodata) as PNG, or as a GeoTIFF on the input's grid when the
  input is georeferenced; ``?format=json``: class fractions and a confidence summary;
- ``POST /models/{name}/classify``: ``{"spectra": [[...], ...]}`` -> classes, probabilities;
- ``POST /models/{name}/encode``: ``{"spectra": [[...], ...]}`` -> the autoencoder's latent
  vectors;
- ``GET /``: the web page (static; it asks for the token when the server needs one).

With a token, every route but ``/health`` (the page and the API docs too) needs
``Authorization: Bearer <token>``: browsers reach the page through a reverse proxy that adds
the header (README). Inference runs on ``workers``
threads with at most ``queue`` requests waiting; beyond that, 503 with ``Retry-After``.
Bodies over the limit get 413 (by Content-Length, or while streaming). Each request works in
its own folder under the server's temporary folder, removed when the request is done.
"""

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError

from dltools.engines.refine import DEFAULT_REFINER
from dltools.errors import DltoolsError
from dltools.io.images import IMAGE_SUFFIXES
from dltools.pipeline.segment import METHODS
from dltools.server import inference
from dltools.server.registry import (
    FCN,
    SPECTRAL_AUTOENCODER,
    SPECTRAL_CLASSIFIER,
    TILE,
    ServedModel,
)
from dltools.server.uploads import TooLarge, read_body, save_body

LOCALHOST = "127.0.0.1"
RETRY_AFTER_S = 5
T = TypeVar("T")
log = logging.getLogger("dltools.serve")


@dataclass(frozen=True)
class ServerSettings:
    """``token``: the bearer token (None: no authentication, local use only);
    ``max_upload_bytes``: largest request body; ``workers``: inference threads;
    ``queue``: requests that may wait for a worker."""

    token: str | None = None
    max_upload_bytes: int = 200 * 2**20
    workers: int = 1
    queue: int = 8

    def __post_init__(self) -> None:
        if self.workers < 1 or self.queue < 0 or self.max_upload_bytes < 1:
            raise DltoolsError("--workers and --max-upload-mb must be positive, --queue >= 0")


def read_token(path: str | Path) -> str:
    """The bearer token: the first line of ``path``, stripped (not empty)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except OSError as err:
        raise DltoolsError(f"{path}: cannot read the token file ({err})") from None
    if not lines or not lines[0].strip():
        raise DltoolsError(f"{path}: the token file is empty")
    return lines[0].strip()


def check_binding(host: str, token: str | None) -> None:
    """DltoolsError for a server without a token on anything but :data:`LOCALHOST`."""
    if token is None and host != LOCALHOST:
        raise DltoolsError(
            f"without --token-file the server listens on {LOCALHOST} only, not {host}: "
            "give --token-file to serve other machines"
        )


class Gate:
    """At most ``workers`` jobs run (on their own threads) and ``queue`` wait; more are
    refused with 503. A job's slot is freed when the job ends, even if its client left."""

    def __init__(self, workers: int, queue: int) -> None:
        self.capacity = workers + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="dltools-serve")
        self._lock = threading.Lock()
        self.busy = 0

    def _release(self, _=None) -> None:
        with self._lock:
            self.busy -= 1
        self._slots.release()

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` on a worker thread; HTTP 503 when the workers and the queue are full."""
        if not self._slots.acquire(blocking=False):
            raise HTTPException(
                503,
                f"all workers are busy and {self.capacity} requests are taken: retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        with self._lock:
            self.busy += 1
        try:
            future = self._executor.submit(job)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class ClassifyRequest(BaseModel):
    """The body of ``/classify``."""

    spectra: list[list[float]] = Field(description="spectra, one list of band values each")
    unknown_below: float = Field(
        0.0, ge=0, le=1, description="top probabilities below this give the class 'unknown'"
    )
    features: str | None = Field(None, description="also return the outputs of this layer")


class EncodeRequest(BaseModel):
    """The body of ``/encode``."""

    spectra: list[list[float]] = Field(description="spectra, one list of band values each")


def _safe_stem(filename: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).stem)[:80] or "upload"


def _in_folder(folder: Path, names: dict[str, str], job: Callable[[], T]) -> Callable[[], T]:
    """``job`` that removes ``folder`` when done; its errors name files by ``names``
    (temporary path -> what the client called it), not by temporary paths."""

    def run() -> T:
        try:
            return job()
        except DltoolsError as err:
            message = str(err)
            for path, name in names.items():
                message = message.replace(path, name)
            raise DltoolsError(message) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return run


def create_app(models: dict[str, ServedModel], settings: ServerSettings) -> FastAPI:
    """The FastAPI application serving ``models`` (see the module docstring)."""
    work_root = Path(tempfile.mkdtemp(prefix="dltools-serve-"))
    gate = Gate(settings.workers, settings.queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gate.close()
        shutil.rmtree(work_root, ignore_errors=True)

    app = FastAPI(
        title="dltools serve",
        description="Segment images and classify spectra with trained dltools models.",
        lifespan=lifespan,
        docs_url=None,  # served below, behind the token like every route but /health
        openapi_url=None,
    )
    app.state.work_root, app.state.gate = work_root, gate
    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if settings.token is None:
            return
        given = b"" if credentials is None else credentials.credentials.encode()
        if not hmac.compare_digest(given, settings.token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def served(name: str, kinds: tuple[str, ...] | None = None) -> ServedModel:
        if name not in models:
            raise HTTPException(404, f"no model {name!r}; see GET /models")
        model = models[name]
        if kinds is not None and model.kind not in kinds:
            raise HTTPException(
                400, f"{name} is a {model.kind} model; this route takes {' or '.join(kinds)}"
            )
        return model

    async def run_in_folder(folder: Path, names: dict[str, str], job: Callable[[], T]) -> T:
        """``job`` on a worker (see :func:`_in_folder`); ``folder`` goes also when the gate
        refuses the job (HTTP 503), which then never runs."""
        try:
            return await gate.run(_in_folder(folder, names, job))
        except HTTPException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @app.middleware("http")
    async def limit_declared_size(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_upload_bytes:
            return _too_large(settings.max_upload_bytes)
        return await call_next(request)

    @app.exception_handler(DltoolsError)
    async def user_error(request: Request, err: DltoolsError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, 422)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, err: TooLarge) -> JSONResponse:
        return _too_large(settings.max_upload_bytes)

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(err).__name__})"}, 500)

    protected = [Depends(authorised)]

    @app.get("/openapi.json", dependencies=protected, include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/docs", dependencies=protected, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="dltools serve: API")

    @app.get("/", response_class=HTMLResponse, dependencies=protected, include_in_schema=False)
    def page() -> str:
        return resources.files("dltools.server").joinpath("static/index.html").read_text("utf-8")

    @app.get("/health")
    def health() -> dict:
        """Liveness: ``busy`` requests are running or waiting, of ``capacity``."""
        return {"status": "ok", "models": len(models), "busy": gate.busy, "capacity": gate.capacity}

    @app.get("/models", dependencies=protected)
    def list_models() -> list[dict]:
        """Every model: name, kind, classes with colours, bands, tile size."""
        return [model.describe() for model in models.values()]

    @app.get("/models/{name}", dependencies=protected)
    def one_model(name: str) -> dict:
        """One model, as in ``GET /models``."""
        return served(name).describe()

    @app.post(
        "/models/{name}/segment",
        dependencies=protected,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "the image: raw bytes, or a multipart/form-data file field",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"image": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            }
        },
        responses={
            200: {
                "content": {"image/png": {}, "image/tiff": {}},
                "description": "the label raster (class + 1, 0 = nodata), or JSON with "
                "?format=json; headers X-Class-Fractions and X-Confidence hold the summary",
            }
        },
    )
    async def segment(
        name: str,
        request: Request,
        format: Annotated[
            Literal["png", "tiff", "json"] | None,
            Query(description="png, tiff or json (default: tiff for georeferenced input)"),
        ] = None,
        refine: Annotated[
            Literal[METHODS], Query(description="tile models (step 6)")
        ] = DEFAULT_REFINER,
        tile: Annotated[int | None, Query(ge=8, description="tile side (default: model's)")] = None,
        prob_thres: Annotated[float, Query(ge=0, le=1)] = 0.5,
        decim: Annotated[int, Query(ge=1)] = 1,
        fct: Annotated[float, Query(gt=0, le=1)] = 0.25,
        tta: Annotated[
            bool, Query(description="FCN runs: average the four flips")
        ] = inference.SegmentOptions.tta,
        crf: Annotated[bool, Query(description="FCN runs: refine by the dense CRF")] = False,
        filename: Annotated[str | None, Query(description="name of a raw-body image")] = None,
    ) -> Response:
        """Segment an image (JPEG, PNG, TIFF, GeoTIFF) with a tile model or an FCN run."""
        model = served(name, (TILE, FCN))
        options = inference.SegmentOptions(refine, tile, prob_thres, decim, fct, tta, crf)
        folder = Path(tempfile.mkdtemp(dir=work_root))
        try:
            with open(folder / "upload", "wb") as out:
                given = await save_body(
                    request.stream(),
                    request.headers.get("content-type", ""),
                    out,
                    settings.max_upload_bytes,
                )
            label = given or filename or "upload"
            suffix = Path(label).suffix.lower()
            image = (folder / "upload").rename(
                folder / f"upload{suffix if suffix in IMAGE_SUFFIXES else ''}"
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = functools.partial(_segment_job, model, image, folder, options, format, label)
        return await run_in_folder(folder, {str(image): label}, job)

    async def spectra_job(
        name: str, request: Request, kind: str, schema: type[BaseModel], work: Callable
    ) -> dict:
        """Parse a spectra request of ``schema`` for a model of ``kind``; run ``work(model,
        spectra, folder, parsed)`` on a worker in a request folder."""
        model = served(name, (kind,))
        body = await read_body(request.stream(), settings.max_upload_bytes)
        try:
            parsed = schema.model_validate_json(body)
        except ValidationError as err:
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()[:3]
            )
            verb = schema.__name__.removesuffix("Request").lower()
            raise DltoolsError(f"not a {verb} request: {reasons}") from None
        spectra = inference.check_spectra(parsed.spectra, model.bands)
        folder = Path(tempfile.mkdtemp(dir=work_root))
        job = functools.partial(work, model, spectra, folder, parsed)
        return await run_in_folder(folder, {}, job)

    def body_schema(schema: type[BaseModel]) -> dict:
        content = {"application/json": {"schema": schema.model_json_schema()}}
        return {"requestBody": {"required": True, "content": content}}

    @app.post(
        "/models/{name}/classify",
        dependencies=protected,
        openapi_extra=body_schema(ClassifyRequest),
    )
    async def classify(name: str, request: Request) -> dict:
        """Classify spectra with a spectral classifier: class per spectrum ('unknown' below
        ``unknown_below``), probabilities in the order of ``class_names``, optional features."""

        def work(model, spectra, folder, parsed: ClassifyRequest) -> dict:
            return inference.classify(model, spectra, folder, parsed.unknown_below, parsed.features)

        return await spectra_job(name, request, SPECTRAL_CLASSIFIER, ClassifyRequest, work)

    @app.post(
        "/models/{name}/encode", dependencies=protected, openapi_extra=body_schema(EncodeRequest)
    )
    async def encode(name: str, request: Request) -> dict:
        """Encode spectra with a spectral autoencoder: the latent vector of each spectrum."""

        def work(model, spectra, folder, parsed: EncodeRequest) -> dict:
            return inference.encode(model, spectra, folder)

        return await spectra_job(name, request, SPECTRAL_AUTOENCODER, EncodeRequest, work)

    return app


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the request body exceeds the upload limit of {limit / 2**20:g} MB"},
        413,
        headers={"Connection": "close"},
    )


def _segment_job(
    model: ServedModel,
    image: Path,
    folder: Path,
    options: inference.SegmentOptions,
    format: str | None,
    label: str,
) -> Response:
    """Segment on a worker thread; the response holds the raster or the JSON summary."""
    result = inference.segment(model, image, folder, options)
    summary = {"fractions": result.fractions, "confidence": result.confidence}
    if format == "json":
        return JSONResponse(
            {"model": model.name, "image": label, "georeferenced": result.georeferenced, **summary}
        )
    if format is None:
        format = "tiff" if result.georeferenced else "png"
    path = result.label if format == "tiff" else inference.label_png(result.label, folder / "l.png")
    name = f"{_safe_stem(label)}_{model.name}_label.{'tif' if format == 'tiff' else 'png'}"
    return Response(
        path.read_bytes(),
        media_type="image/tiff" if format == "tiff" else "image/png",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Class-Fractions": json.dumps(result.fractions),
            "X-Confidence": json.dumps(result.confidence),
        },
    )
