"""The job routes: ``POST /v1/score`` (answers when done), ``POST /v1/refine`` (a job to poll),
``/v1/jobs/{id}`` with its record, files, report page, cancel and delete."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.params import Depends
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from grefine_kit.parts.base import as_part
from grefine_kit.parts.roles import INDICATOR_ROLES
from grefine_serve.errors import ApiError
from grefine_serve.fields import ERRORS, check_prompt, parse_overrides, refine_prompt
from grefine_serve.jobs import FINISHED, Job
from grefine_serve.schemas import JobView, ScoreResponse
from grefine_serve.settings import API_PREFIX

__all__ = ["add_job_routes", "report_html"]

#: the HTTP status a failed synchronous score answers with, by the job's error code
_STATUS = {"missing_dependency": 503, "internal_error": 500, "cancelled": 409, "queue_full": 429}
_MEDIA = {".png": "image/png", ".npy": "application/octet-stream", ".json": "application/json"}


def _roles(recipe: Any, asked: str | None, prompt: str | None) -> list[str]:
    """The indicator roles to score: the asked ones (comma-separated), else every one of the
    recipe that can run (those needing a prompt only with a prompt)."""
    present = [r for r in INDICATOR_ROLES if recipe.part(r) is not None]
    if not present:
        raise ApiError(422, "no_indicator", f"recipe {recipe.name!r} has no indicator to score with")
    needs = {r: as_part(recipe.build_part(recipe.part(r))).needs_prompt for r in present}
    if asked:
        roles = [r.strip() for r in asked.split(",") if r.strip()]
        for role in roles:
            if role not in present:
                raise ApiError(
                    422,
                    "unknown_indicator",
                    f"recipe {recipe.name!r} has no indicator {role!r}; it has: {', '.join(present)}",
                )
            if needs[role] and not prompt:
                raise ApiError(422, "prompt_required", f"indicator {role!r} needs a prompt")
        return list(dict.fromkeys(roles))
    roles = [r for r in present if prompt or not needs[r]]
    if not roles:
        raise ApiError(422, "prompt_required", f"every indicator of {recipe.name!r} needs a prompt")
    return roles


def _failure(job: Job) -> ApiError:
    error = job.error or {"code": "job_failed", "message": "the job failed"}
    code = error.get("code", "job_failed")
    return ApiError(_STATUS.get(code, 422), code, error.get("message", "the job failed"))


def _public(record: dict[str, Any], job: Job) -> dict[str, Any]:
    """A record as a client sees it: the server's file path replaced by the upload's name."""
    out = dict(record)
    if "file" in out:
        out["file"] = job.upload
    out.pop("fingerprint", None)
    return out


def job_record(job: Job) -> dict[str, Any]:
    """The refine record (``<stem>.report.json``), or the score rows by indicator role."""
    from grefine_kit.runs.layout import OutputNames, output_stems

    if job.kind == "refine":
        names = OutputNames(output_stems([job.upload_path])[0])
        return _public(json.loads((job.result_dir / names.report).read_text("utf-8")), job)
    rows = {}
    for role in job.indicators:
        lines = (job.result_dir / role / "results.jsonl").read_text("utf-8").splitlines()
        rows[role] = _public(json.loads(lines[-1]), job)
    return {"indicators": rows}


def report_html(job: Job, max_size: int = 384) -> str:
    """The job's results as the HTML report of ``grefine report`` (grefine_kit.report)."""
    import attrs

    from grefine_kit.report import collect, render

    inputs = job.upload_path.parent
    if job.kind == "refine":
        kind, items = collect(job.result_dir, inputs)
    else:
        kind, merged = "score", None
        for role in job.indicators:
            _, found = collect(job.result_dir / role, inputs)
            for item in found:
                merged = (
                    item
                    if merged is None
                    else attrs.evolve(
                        merged,
                        heatmaps={**merged.heatmaps, **item.heatmaps},
                        scores={**merged.scores, **item.scores},
                        phrases=merged.phrases or item.phrases,
                    )
                )
        items = [merged] if merged is not None else []
    return render(kind, items, title=f"grefine {job.kind}: {job.upload}", max_size=max_size)


def add_job_routes(app: FastAPI, srv: Any, auth: Sequence[Depends]) -> None:
    """Add the job routes to ``app`` for the ``Server`` ``srv``."""

    deps = list(auth)

    @app.post(
        f"{API_PREFIX}/score",
        response_model=ScoreResponse,
        dependencies=deps,
        tags=["score"],
        responses=ERRORS,
    )
    async def score(
        request: Request,
        image: Annotated[UploadFile, File(description="the image (PNG, JPEG, WebP, ...)")],
        prompt: Annotated[str | None, Form(description="the image's prompt (AQ-Map needs one)")] = None,
        recipe: Annotated[
            str | None, Form(description="a served recipe name (default: the server's)")
        ] = None,
        indicators: Annotated[str | None, Form(description="comma-separated roles, e.g. perceptual")] = None,
        overrides: Annotated[str | None, Form(description="JSON object of --set values")] = None,
    ) -> Any:
        """Score an image with the recipe's indicators; answers when done (maps as file URLs).
        A client that disconnects cancels its job."""
        started = time.perf_counter()
        prompt = check_prompt(prompt)
        values = parse_overrides(overrides)
        resolved = await run_in_threadpool(srv.catalog.resolve, recipe, values)
        roles = await run_in_threadpool(_roles, resolved, indicators, prompt)
        data, name = await srv.accept_upload(image)
        job = srv.new_job(
            "score",
            data,
            name,
            recipe=recipe or srv.catalog.default,
            prompt=prompt,
            overrides=values or {},
            indicators=roles,
        )
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def resolve() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake() -> None:  # called from the worker thread
            loop.call_soon_threadsafe(resolve)

        job.on_done(wake)
        while not finished.done():
            await asyncio.wait({finished}, timeout=0.5)
            if not finished.done() and await request.is_disconnected():
                srv.pool.cancel(job, "cancelled: the client disconnected")
                return Response(status_code=499)
        if job.status != "done":
            raise _failure(job)
        result = job.result or {}
        return {
            "id": job.id,
            "recipe": job.recipe,
            "width": result.get("width"),
            "height": result.get("height"),
            "indicators": result.get("indicators", {}),
            "seconds": round(time.perf_counter() - started, 4),
            "links": {
                "job": f"{API_PREFIX}/jobs/{job.id}",
                "record": f"{API_PREFIX}/jobs/{job.id}/record",
                "report": f"{API_PREFIX}/jobs/{job.id}/report",
            },
        }

    @app.post(
        f"{API_PREFIX}/refine",
        response_model=JobView,
        status_code=202,
        dependencies=deps,
        tags=["refine"],
        responses=ERRORS,
    )
    async def refine(
        image: Annotated[UploadFile, File(description="the image (PNG, JPEG, WebP, ...)")],
        prompt: Annotated[
            str | None,
            Form(description="what the image should show (needed when the recipe reads prompts)"),
        ] = None,
        recipe: Annotated[
            str | None, Form(description="a served recipe name (default: the server's)")
        ] = None,
        overrides: Annotated[str | None, Form(description="JSON object of --set values")] = None,
    ) -> JSONResponse:
        """Queue a refine job; poll ``GET /v1/jobs/{id}`` for progress and results."""
        values = parse_overrides(overrides)
        resolved = await run_in_threadpool(srv.catalog.resolve, recipe, values)
        checked = await run_in_threadpool(refine_prompt, resolved, prompt)
        data, name = await srv.accept_upload(image)
        job = srv.new_job(
            "refine", data, name, recipe=recipe or srv.catalog.default, prompt=checked, overrides=values or {}
        )
        view = srv.view(job)
        return JSONResponse(view, status_code=202, headers={"Location": view["links"]["self"]})

    @app.get(
        f"{API_PREFIX}/jobs/{{job_id}}",
        response_model=JobView,
        dependencies=deps,
        tags=["jobs"],
        responses=ERRORS,
    )
    async def get_job(job_id: str) -> dict[str, Any]:
        """A job's status, progress and (once done) result URLs. Asking keeps a refine job alive."""
        job = srv.job(job_id)
        job.last_seen = time.time()
        return srv.view(job)

    def finished_ok(job_id: str) -> Job:
        job = srv.job(job_id)
        job.last_seen = time.time()
        if job.status != "done":
            raise ApiError(409, "not_done", f"job {job_id} is {job.status}; results come once it is done")
        return job

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/record", dependencies=deps, tags=["jobs"], responses=ERRORS)
    async def record(job_id: str) -> dict[str, Any]:
        """The job's full record: what ``grefine refine`` writes as ``<stem>.report.json``, or
        the score rows of ``grefine score --format json`` by indicator role."""
        return await run_in_threadpool(job_record, finished_ok(job_id))

    @app.get(
        f"{API_PREFIX}/jobs/{{job_id}}/report",
        response_class=HTMLResponse,
        dependencies=deps,
        tags=["jobs"],
        responses=ERRORS,
    )
    async def report(
        job_id: str,
        max_size: Annotated[int, Query(ge=64, le=2048, description="long side of the pictures, px")] = 384,
    ) -> HTMLResponse:
        """The job's results as one self-contained HTML page (the page of ``grefine report``)."""
        return HTMLResponse(await run_in_threadpool(report_html, finished_ok(job_id), max_size))

    @app.get(
        f"{API_PREFIX}/jobs/{{job_id}}/files/{{name:path}}",
        dependencies=deps,
        tags=["jobs"],
        responses=ERRORS,
    )
    async def file(job_id: str, name: str) -> FileResponse:
        """One result file named in the job's result (PNG images, ``.npy`` maps)."""
        job = finished_ok(job_id)
        if name not in job.files:
            raise ApiError(404, "unknown_file", f"job {job_id} has no file {name!r}")
        path = job.folder / name
        return FileResponse(
            path,
            media_type=_MEDIA.get(Path(name).suffix, "application/octet-stream"),
            filename=Path(name).name,
        )

    @app.post(
        f"{API_PREFIX}/jobs/{{job_id}}/cancel",
        response_model=JobView,
        status_code=202,
        dependencies=deps,
        tags=["jobs"],
        responses=ERRORS,
    )
    async def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a job: a queued one at once, a running one before its next step."""
        job = srv.job(job_id)
        srv.pool.cancel(job, "cancelled by a client")
        return srv.view(job)

    @app.delete(
        f"{API_PREFIX}/jobs/{{job_id}}", status_code=204, dependencies=deps, tags=["jobs"], responses=ERRORS
    )
    async def delete(job_id: str) -> Response:
        """Delete a finished job and its files now (409 while it runs: cancel it first)."""
        job = srv.job(job_id)
        if job.status not in FINISHED:
            raise ApiError(409, "job_running", f"job {job_id} is {job.status}; cancel it first")
        srv.store.discard(job)
        return Response(status_code=204)
