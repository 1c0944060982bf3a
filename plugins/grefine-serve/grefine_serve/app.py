"""The ASGI application: ``create_app(settings)`` (module docs in docs/serve.md).

Everything lives under ``/v1`` (``/v1/openapi.json``, ``/v1/docs``), plus the web page at
``/``. Errors are ``{"error": {"status", "code", "message"}}``. With a token, every ``/v1``
route but ``/v1/health`` needs ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grefine_kit.runs import atomic
from grefine_serve import __version__
from grefine_serve.catalog import Catalog, ModelStore
from grefine_serve.errors import ApiError
from grefine_serve.fields import ERRORS
from grefine_serve.jobs import Job, JobStore
from grefine_serve.schemas import (
    Health,
    MetricInfo,
    PartInfo,
    RecipeInfo,
)
from grefine_serve.settings import API_PREFIX, ServeSettings
from grefine_serve.uploads import BodyLimit, check_image, safe_upload_name
from grefine_serve.workers import WorkerPool

__all__ = ["Server", "create_app"]


class Server:
    """The state one app holds: settings, recipes, models, jobs and workers."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings)
        self.models = ModelStore()
        self.store = JobStore(settings.out, settings.keep_seconds)
        self.pool = WorkerPool(settings, self.store, self.catalog, self.models)

    def start(self) -> None:
        """Import torch, start the workers, queue the jobs a previous server left, preload."""
        # torch first, before any request: grefine_kit.images.loading looks torch up in sys.modules, and
        # a request thread must never see it half-imported by a worker building models
        import torch  # noqa: F401

        again = self.store.recover()
        self.pool.start()
        if again:  # jobs left queued or running: back in the queue, in order, however long it is
            threading.Thread(
                target=self.pool.requeue, args=(again,), name="grefine-serve-requeue", daemon=True
            ).start()
        for name in self.settings.preload:
            self.models.get(self.catalog.resolve(name))

    def job(self, job_id: str) -> Job:
        """The job ``job_id``; ApiError 404 when there is none (never made, or expired)."""
        job = self.store.get(job_id)
        if job is None:
            raise ApiError(404, "unknown_job", f"no job {job_id!r} (never made, or expired and deleted)")
        return job

    async def accept_upload(self, image: UploadFile) -> tuple[bytes, str]:
        """The upload's bytes and a safe file name, after the size and image checks."""
        data = await image.read()
        limits = {"max_bytes": self.settings.max_upload_bytes, "max_pixels": self.settings.max_pixels}
        await run_in_threadpool(check_image, data, **limits)
        return data, safe_upload_name(image.filename)

    def new_job(self, kind: str, data: bytes, name: str, **fields: Any) -> Job:
        """Save the upload and queue a job (ApiError 429 and nothing kept when the queue is full)."""
        job = self.store.create(kind, upload=name, **fields)
        atomic.write_bytes(job.upload_path, data)
        self.store.add(job)
        try:
            self.pool.submit(job)
        except ApiError:
            self.store.discard(job)
            raise
        return job

    def view(self, job: Job) -> dict[str, Any]:
        base = f"{API_PREFIX}/jobs/{job.id}"
        links = {"self": base, "cancel": f"{base}/cancel"}
        if job.status == "done":
            links.update(record=f"{base}/record", report=f"{base}/report")
        expires = job.finished + self.settings.keep_seconds if job.finished is not None else None
        fields = ("id", "kind", "status", "recipe", "prompt", "overrides", "progress", "phase", "phases")
        data = {k: getattr(job, k) for k in fields}
        data.update(created=job.created, started=job.started, finished=job.finished, expires=expires)
        data.update(error=job.error, result=job.result, links=links)
        return data


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def create_app(settings: ServeSettings, server: Server | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (its workers start with the app's lifespan)."""
    from grefine_kit import __version__ as core_version
    from grefine_serve.webpage import page_html

    srv = server or Server(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(srv.start)
        yield
        srv.pool.stop()

    app = FastAPI(
        title="grefine serve",
        version=__version__,
        description="Score and refine images with grefine_kit; models stay loaded. See docs/serve.md.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.server = srv
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error_response(ApiError(422, "bad_request", problems or "bad request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(ApiError(exc.status_code, code, str(exc.detail)))

    def authorized(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), settings.token.encode()
        ):
            what = "a wrong token" if given else "no token"
            raise ApiError(
                401,
                "unauthorized",
                f"{what}: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="grefine"'},
            )

    auth = [Depends(authorized)]

    # -- the page and the service's own routes -------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(srv.catalog.names, srv.catalog.default, settings.token is not None))

    @app.get(f"{API_PREFIX}/health", response_model=Health, tags=["service"])
    async def health() -> dict[str, Any]:
        from grefine_kit.stages.loading import cache_info

        return {
            "status": "ok",
            "version": __version__,
            "core_version": core_version,
            "auth": settings.token is not None,
            "device": settings.device,
            "workers": settings.workers,
            "queue_size": settings.queue_size,
            "queued": srv.pool.queue.qsize(),
            "running": len(srv.pool.running),
            "recipes": srv.catalog.names,
            "default_recipe": srv.catalog.default,
            "recipe_builds": dict(srv.models.builds),
            "pipeline_loads": len(cache_info()["loads"]),
            "jobs": dict(srv.pool.counts),
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels,
                "keep_seconds": settings.keep_seconds,
                "job_timeout": settings.job_timeout,
                "abandon_after": settings.abandon_after,
            },
        }

    @app.get(
        f"{API_PREFIX}/recipes",
        response_model=list[RecipeInfo],
        dependencies=auth,
        tags=["registry"],
        responses=ERRORS,
    )
    async def recipes() -> list[dict[str, Any]]:
        from grefine_kit.parts.roles import INDICATOR_ROLES

        out = []
        for name in srv.catalog.names:
            recipe = srv.catalog.base(name)
            parts = {role: spec.part for role, spec in recipe.parts.items()}
            indicators = [r for r in INDICATOR_ROLES if r in parts]
            out.append(
                {
                    "name": name,
                    "description": recipe.description,
                    "default": name == srv.catalog.default,
                    "parts": parts,
                    "indicators": indicators,
                }
            )
        return out

    @app.get(
        f"{API_PREFIX}/parts",
        response_model=dict[str, list[PartInfo]],
        dependencies=auth,
        tags=["registry"],
        responses=ERRORS,
    )
    async def parts() -> dict[str, list[dict[str, str]]]:
        from grefine_kit.parts.registry import KINDS, get_registry

        registry = get_registry()
        return {
            kind: [
                {"name": e.name, "summary": e.summary, "distribution": e.distribution}
                for e in (registry.get(kind, n) for n in registry.names(kind))
            ]
            for kind in KINDS
            if kind != "recipe"
        }

    @app.get(
        f"{API_PREFIX}/metrics",
        response_model=list[MetricInfo],
        dependencies=auth,
        tags=["registry"],
        responses=ERRORS,
    )
    async def metrics() -> list[dict[str, Any]]:
        from grefine_kit.parts.registry import get_registry

        registry = get_registry()
        out = []
        for name in registry.names("metric"):
            meta = registry.get("metric", name).metadata
            rng = meta.get("score_range")
            out.append(
                {
                    "name": name,
                    "summary": str(meta.get("summary", "")),
                    "lower_better": meta.get("lower_better"),
                    "score_range": list(rng) if rng is not None else None,
                    "needs_prompt": meta.get("needs_prompt"),
                }
            )
        return out

    from grefine_serve.routes import add_job_routes

    add_job_routes(app, srv, auth)
    return app
