"""The JSON shapes of the API (pydantic models: they make the OpenAPI schema at /v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "Health",
    "JobView",
    "MetricInfo",
    "PartInfo",
    "RecipeInfo",
    "ScoreResponse",
]


class ErrorBody(BaseModel):
    status: int = Field(description="the HTTP status, repeated")
    code: str = Field(description="stable error code, e.g. queue_full, unknown_recipe, too_many_pixels")
    message: str = Field(description="one line for people")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str = Field(description="'ok' while the workers run")
    version: str
    core_version: str
    auth: bool = Field(description="whether API calls need 'Authorization: Bearer <token>'")
    device: str | None = Field(description="the device every recipe runs on (null: each recipe's own)")
    workers: int
    queue_size: int = Field(description="jobs that may wait")
    queued: int
    running: int
    recipes: list[str]
    default_recipe: str
    recipe_builds: dict[str, int] = Field(
        description="recipe name -> times its models were built in this process (once each)"
    )
    pipeline_loads: int = Field(description="diffusion pipelines loaded by this process (core cache)")
    jobs: dict[str, int] = Field(description="finished jobs by status since the start")
    limits: dict[str, float]


class RecipeInfo(BaseModel):
    name: str
    description: str
    default: bool
    parts: dict[str, str] = Field(description="role -> part name")
    indicators: list[str] = Field(description="indicator roles /v1/score can use")


class PartInfo(BaseModel):
    name: str
    summary: str
    distribution: str


class MetricInfo(BaseModel):
    name: str
    summary: str
    lower_better: bool | None = None
    score_range: list[float] | None = None
    needs_prompt: bool | None = None


class JobView(BaseModel):
    id: str
    kind: str = Field(description="'score' or 'refine'")
    status: str = Field(description="queued, running, done, failed or cancelled")
    recipe: str
    prompt: str | None
    overrides: dict[str, Any]
    progress: float = Field(description="share of the job's steps finished, 0 to 1")
    phase: str | None = Field(
        description="the step running now (perceptual, alignment, combiner, stage1, ...)"
    )
    phases: list[str] = Field(description="the steps finished, in order")
    created: float
    started: float | None
    finished: float | None
    expires: float | None = Field(description="when a finished job's files are deleted (Unix time)")
    error: dict[str, str] | None
    result: dict[str, Any] | None = Field(description="file URLs and scores once done")
    links: dict[str, str]


class IndicatorScore(BaseModel):
    indicator: str | None
    status: str | None
    score: float | None
    details: dict[str, Any] = {}
    error: str | None = None
    heatmap: str | None = Field(default=None, description="URL of the heatmap overlay PNG")
    map: str | None = Field(default=None, description="URL of the raw map (.npy, float32 HxW, 1 = good)")


class ScoreResponse(BaseModel):
    id: str
    recipe: str
    width: int | None
    height: int | None
    indicators: dict[str, IndicatorScore] = Field(description="indicator role -> its score and maps")
    seconds: float = Field(description="time from upload to answer, queue wait included")
    links: dict[str, str]
