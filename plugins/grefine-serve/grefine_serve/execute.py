"""Carrying out one job with the shared models, through the core's own runners.

A refine job runs ``grefine_kit.runner.refine.refine_items`` (the run folder, its record log, the
refined image, mask, heatmaps and raw maps: exactly what ``grefine refine --maps`` writes) on a
per-job view of the shared Refiner whose blocks report progress and stop a cancelled job
between steps. A score job runs ``grefine_kit.runner.score.score_items`` once per indicator role,
each into its own run folder (``result/<role>/``), with the recipe's already loaded indicator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from grefine_kit.errors import UserError
from grefine_serve.jobs import Job

__all__ = ["JobStopped", "Steps", "run_refine", "run_score", "stop_reason"]


class JobStopped(UserError):
    """The job was cancelled, ran past ``--job-timeout`` or was abandoned; it stops between
    steps. A ``UserError`` that is no ``ImageError``: the core runners let it through."""


def stop_reason(job: Job, job_timeout: float, abandon_after: float, now: float | None = None) -> str | None:
    """Why ``job`` must stop now, or None."""
    now = time.time() if now is None else now
    if job.cancel_reason:
        return job.cancel_reason
    if job.started is not None and now - job.started > job_timeout:
        return f"stopped: ran longer than the server's job timeout ({job_timeout:g} s)"
    if job.kind == "refine" and now - job.last_seen > abandon_after:
        return f"abandoned: no client asked about this job for {abandon_after:g} s"
    return None


@attrs.define
class Steps:
    """Progress and stop checks of one job (``save``: persist the job after each change)."""

    job: Job
    save: Callable[[Job], None]
    job_timeout: float
    abandon_after: float

    def check(self) -> None:
        reason = stop_reason(self.job, self.job_timeout, self.abandon_after)
        if reason is not None:
            raise JobStopped(reason)

    def before(self, name: str) -> None:
        self.check()
        self.job.phase = name
        self.save(self.job)

    def after(self, name: str) -> None:
        self.job.phases.append(name)
        self.job.progress = round(len(self.job.phases) / max(1, self.job.total_phases), 4)
        self.save(self.job)


class _Tracked:
    """A Refiner block that reports to :class:`Steps` before and after it runs."""

    def __init__(self, block: Any, steps: Steps) -> None:
        self._block = block
        self._steps = steps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block, name)

    def run(self, states: Sequence[Any]) -> None:
        self._steps.before(self._block.name)
        self._block.run(states)
        self._steps.after(self._block.name)


def _tracked_refiner(shared: Any, steps: Steps) -> Any:
    from grefine_kit.refiner.refiner import Refiner

    return Refiner(
        blocks=[_Tracked(b, steps) for b in shared.blocks],  # type: ignore[misc]
        options=shared.options,
        seed=shared.seed,
        recipe_name=shared.recipe_name,
        recipe_hash=shared.recipe_hash,
        recipe_overrides=shared.recipe_overrides,
    )


def _url(job: Job, name: str) -> str:
    return f"/v1/jobs/{job.id}/files/{name}"


def run_refine(job: Job, refiner: Any, steps: Steps) -> dict[str, Any]:
    """Refine the job's upload; returns the job's ``result`` (file URLs, scores)."""
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runner.refine import refine_items
    from grefine_kit.runs.items import Item
    from grefine_kit.runs.layout import OutputNames, output_stems

    job.total_phases = len(refiner.blocks)
    item = Item(job.upload, job.upload_path.resolve(), job.prompt)
    steps.check()
    options = RunOptions(save_maps=True, progress=False)
    refine_items([item], _tracked_refiner(refiner, steps), job.result_dir, options)
    names = OutputNames(output_stems([item.image])[0])
    record = json.loads((job.result_dir / names.report).read_text("utf-8"))
    if record.get("status") != "ok":
        raise UserError(str(record.get("error") or "the refine failed"))
    outputs = [str(n) for n in record.get("outputs", [])]
    job.files = [f"result/{n}" for n in outputs]
    by_suffix = {n: _url(job, f"result/{n}") for n in outputs}
    return {
        "image": by_suffix.get(names.image),
        "mask": by_suffix.get(names.mask),
        "heatmaps": {tag: by_suffix[n] for tag in ("pq", "aq") if (n := names.heatmap(tag)) in by_suffix},
        "maps": {tag: by_suffix[n] for tag in ("pq", "aq") if (n := names.raw_map(tag)) in by_suffix},
        "record": f"/v1/jobs/{job.id}/record",
        "report": f"/v1/jobs/{job.id}/report",
        "scores": record.get("scores", {}),
        "mask_area": record.get("mask_area"),
    }


def run_score(job: Job, refiner: Any, steps: Steps, max_pixels: int) -> dict[str, Any]:
    """Score the job's upload with each of ``job.indicators`` (roles of the recipe)."""
    from grefine_kit.runner.options import RunOptions
    from grefine_kit.runner.score import score_items
    from grefine_kit.runs.items import Item

    job.total_phases = len(job.indicators)
    item = Item(job.upload, job.upload_path.resolve(), job.prompt)
    out: dict[str, Any] = {}
    for role in job.indicators:
        steps.before(role)
        folder = job.result_dir / role
        score_items(
            [item],
            refiner.part(role),
            folder,
            RunOptions(save_maps=True, progress=False),
            fmt="json",
            max_pixels=max_pixels,
            config={"recipe": refiner.recipe_hash},
        )
        row = json.loads((folder / "results.jsonl").read_text("utf-8").splitlines()[-1])
        entry: dict[str, Any] = {
            "indicator": row.get("indicator"),
            "status": row.get("status"),
            "score": row.get("score"),
            "details": row.get("details", {}),
            "error": row.get("error"),
        }
        for key in ("heatmap", "map"):
            if row.get(key):
                name = f"result/{role}/{row[key]}"
                job.files.append(name)
                entry[key] = _url(job, name)
        if row.get("status") != "ok":
            raise UserError(f"{role}: {row.get('error') or 'scoring failed'}")
        out[role] = entry
        steps.after(role)
    return {
        "width": row.get("width"),
        "height": row.get("height"),
        "indicators": out,
        "report": f"/v1/jobs/{job.id}/report",
    }
