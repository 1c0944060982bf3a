"""Per-denoising-step events and intermediate previews of the diffusers stages.

A stage reports every denoising step it runs, through diffusers' ``callback_on_step_end``, to
the run's progress report (``grefine_kit.progress.active_progress``: the bar shows ``step k/n``)
and to the listeners registered with :func:`on_denoising_step` (process-wide). Listeners get a
:class:`StepEvent`; one that raises is skipped for that event, never breaking the refinement.
With the stage option ``previews = N`` the stage also decodes the latents at ``N`` evenly spaced
steps (the last one excluded: that is the result) into images at the request's size, one VAE
decode each.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import torch
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = ["StepEvent", "on_denoising_step", "preview_steps", "step_callback"]


@attrs.frozen
class StepEvent:
    """One finished denoising step: ``step`` of ``total`` (1-based) of a stage in ``role``."""

    role: str
    step: int
    total: int


_lock = threading.Lock()
_listeners: list[Callable[[StepEvent], None]] = []


@contextlib.contextmanager
def on_denoising_step(listener: Callable[[StepEvent], None]) -> Iterator[None]:
    """Call ``listener`` for every denoising step any stage runs inside the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def _run_progress(event: StepEvent) -> None:
    """The runner's progress report of this thread (``grefine_kit.progress``), if any."""
    from grefine_kit.progress import active_progress

    report = active_progress()
    if report is not None:
        report.step(event.step, event.total)


def notify(event: StepEvent) -> None:
    """Send ``event`` to the run's progress report and the current listeners (a failing one is
    ignored)."""
    with _lock:
        current = [_run_progress, *_listeners]
    for listener in current:
        try:
            listener(event)
        except Exception:  # a progress display must never fail a refinement
            continue


def preview_steps(total: int, count: int) -> list[int]:
    """The 1-based steps whose latents become previews: ``count`` evenly spaced steps before
    the last (the last step's image is the result itself)."""
    if count <= 0 or total <= 1:
        return []
    count = min(count, total - 1)
    return sorted({max(1, round(total * (i + 1) / (count + 1))) for i in range(count)} - {total})


def _decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> np.ndarray:
    """Latents -> (H, W, 3) floats in [0, 1] through the pipeline's VAE (SD, SDXL, SD3 layouts)."""
    import torch

    vae = pipe.vae
    config = vae.config
    with torch.no_grad():
        z = latents.to(vae.dtype) / float(config.scaling_factor)
        shift = getattr(config, "shift_factor", None)
        if shift:
            z = z + float(shift)
        image = vae.decode(z, return_dict=False)[0]
    image = (image[0].float() / 2 + 0.5).clamp(0, 1)
    return image.permute(1, 2, 0).cpu().numpy()


def step_callback(
    pipe: Any, role: str, total: int, previews: int, keep: list[tuple[int, Any]]
) -> Callable[..., dict[str, Any]]:
    """A ``callback_on_step_end`` for ``pipe``: notifies the listeners, and decodes the latents
    at :func:`preview_steps` into ``keep`` as ``(step, (H, W, 3) float array)``. Latents in a
    packed layout (FLUX) are not previewed."""
    plan: dict[str, Any] = {}

    def callback(called: Any, index: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not plan:  # second-order schedulers (Heun, DPM2) run more timesteps than steps
            plan["total"] = int(getattr(called, "_num_timesteps", 0) or total)
            plan["wanted"] = set(preview_steps(plan["total"], previews))
        step = index + 1
        notify(StepEvent(role, step, plan["total"]))
        latents = kwargs.get("latents")
        if step in plan["wanted"] and latents is not None and latents.ndim == 4:
            keep.append((step, _decode(pipe, latents)))
        return {}

    return callback
