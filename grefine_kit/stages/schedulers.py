"""Per-stage scheduler choice: diffusers class names and the sampler names people type.

A stage's ``scheduler`` option is either a diffusers scheduler class name
(``"DPMSolverMultistepScheduler"``) or a sampler name as the AUTOMATIC1111 / ADetailer UIs show
it (``"Euler a"``, ``"DPM++ 2M Karras"``), matched case- and space-insensitively. The new
scheduler is built from the loaded pipeline's own scheduler configuration (``from_config``), so
the model's beta schedule, prediction type and timestep spacing carry over and only what the
name says changes (the class and, for ``Karras``/``SDE`` names, a few settings).

Flow-matching families (SD3, FLUX) have their own schedulers; the noise-prediction sampler
names do not apply there, except ``Euler`` and ``Heun`` (their flow-matching versions).
``""`` keeps the model's scheduler.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs

from grefine_kit.errors import UserError
from grefine_kit.parts.registry import suggest

if TYPE_CHECKING:
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

__all__ = ["SAMPLERS", "SchedulerChoice", "apply_scheduler", "resolve_scheduler"]


@attrs.frozen
class SchedulerChoice:
    """A diffusers scheduler class and the configuration entries that change."""

    cls: str
    config: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.config)
        return f"{self.cls}({extra})" if extra else self.cls


def _k(cls: str, **config: Any) -> SchedulerChoice:
    return SchedulerChoice(cls, tuple(sorted(config.items())))


#: sampler name (as the A1111 / ADetailer UI shows it) -> diffusers scheduler (docs/refiner.md)
SAMPLERS: dict[str, SchedulerChoice] = {
    "Euler": _k("EulerDiscreteScheduler"),
    "Euler a": _k("EulerAncestralDiscreteScheduler"),
    "Heun": _k("HeunDiscreteScheduler"),
    "LMS": _k("LMSDiscreteScheduler"),
    "LMS Karras": _k("LMSDiscreteScheduler", use_karras_sigmas=True),
    "DPM2": _k("KDPM2DiscreteScheduler"),
    "DPM2 Karras": _k("KDPM2DiscreteScheduler", use_karras_sigmas=True),
    "DPM2 a": _k("KDPM2AncestralDiscreteScheduler"),
    "DPM2 a Karras": _k("KDPM2AncestralDiscreteScheduler", use_karras_sigmas=True),
    "DPM++ 2M": _k("DPMSolverMultistepScheduler", algorithm_type="dpmsolver++"),
    "DPM++ 2M Karras": _k(
        "DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", use_karras_sigmas=True
    ),
    "DPM++ 2M SDE": _k("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"),
    "DPM++ 2M SDE Karras": _k(
        "DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", use_karras_sigmas=True
    ),
    "DPM++ SDE": _k("DPMSolverSinglestepScheduler"),
    "DPM++ SDE Karras": _k("DPMSolverSinglestepScheduler", use_karras_sigmas=True),
    "DDIM": _k("DDIMScheduler"),
    "PLMS": _k("PNDMScheduler"),
    "UniPC": _k("UniPCMultistepScheduler"),
    "DEIS": _k("DEISMultistepScheduler"),
    "LCM": _k("LCMScheduler"),
}
#: sampler names with no diffusers equivalent (an error says so instead of guessing)
UNSUPPORTED = {
    "DPM fast": "diffusers has no DPM-fast scheduler",
    "DPM adaptive": "diffusers has no adaptive-step DPM scheduler",
    "DPM++ 2S a": "diffusers has no DPM++ 2S ancestral scheduler",
    "DPM++ 2S a Karras": "diffusers has no DPM++ 2S ancestral scheduler",
    "DPM++ 3M SDE": "diffusers has no third-order SDE DPM++ scheduler",
    "DPM++ 3M SDE Karras": "diffusers has no third-order SDE DPM++ scheduler",
}
#: flow-matching pipelines (SD3, FLUX): the sampler names that have a flow-matching version
FLOW_SAMPLERS = {"Euler": "FlowMatchEulerDiscreteScheduler", "Heun": "FlowMatchHeunDiscreteScheduler"}


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def _scheduler_classes() -> list[str]:
    import diffusers

    return sorted(n for n in dir(diffusers) if n.endswith("Scheduler") and not n.startswith("_"))


def resolve_scheduler(name: str, *, flow: bool = False) -> SchedulerChoice:
    """The scheduler ``name`` stands for; ``flow``: the pipeline is a flow-matching one.

    Raises ``UserError`` (one line, with a suggestion) for an unknown or unsupported name."""
    text = name.strip()
    by_norm = {_norm(k): k for k in SAMPLERS}
    key = by_norm.get(_norm(text))
    if flow:
        if key in FLOW_SAMPLERS:
            return SchedulerChoice(FLOW_SAMPLERS[key])
        if text in _scheduler_classes():
            if not text.startswith("FlowMatch"):
                raise UserError(
                    f"scheduler {name!r} is a noise-prediction scheduler; this model is a "
                    f"flow-matching one (SD3/FLUX): use a FlowMatch* scheduler, 'Euler' or 'Heun'"
                )
            return SchedulerChoice(text)
        raise UserError(
            f"scheduler {name!r} has no flow-matching version; for SD3/FLUX use "
            f"'Euler', 'Heun' or a FlowMatch* diffusers scheduler class"
        )
    if key is not None:
        return SAMPLERS[key]
    unsupported = {_norm(k): (k, why) for k, why in UNSUPPORTED.items()}
    if _norm(text) in unsupported:
        label, why = unsupported[_norm(text)]
        raise UserError(f"scheduler {label!r} is not available: {why}; see the table in docs/refiner.md")
    classes = _scheduler_classes()
    if text in classes:
        if text.startswith("FlowMatch"):
            raise UserError(f"scheduler {name!r} is for flow-matching models (SD3/FLUX), not this one")
        return SchedulerChoice(text)
    hint = suggest(text, [*SAMPLERS, *classes])
    raise UserError(
        f"unknown scheduler {name!r}{hint}; give a sampler name from the table in docs/refiner.md "
        f"(e.g. 'Euler a', 'DPM++ 2M Karras') or a diffusers scheduler class name"
    )


def is_flow_matching(scheduler: Any) -> bool:
    """True for a flow-matching scheduler (SD3 and FLUX pipelines use one)."""
    return type(scheduler).__name__.startswith("FlowMatch")


def apply_scheduler(pipe: DiffusionPipeline, name: str) -> SchedulerMixin:
    """A new scheduler for ``pipe`` per ``name``, built from its current scheduler's config."""
    import diffusers

    choice = resolve_scheduler(name, flow=is_flow_matching(pipe.scheduler))
    cls: Any = getattr(diffusers, choice.cls)
    return cls.from_config(pipe.scheduler.config, **dict(choice.config))


def check_scheduler_name(_inst: object, _attribute: Any, value: str) -> None:
    """attrs validator, cheap (no diffusers import): a sampler name from :data:`SAMPLERS`, or a
    name ending in ``Scheduler`` (checked against diffusers when the stage loads), or ``""``."""
    if not value or value.strip().endswith("Scheduler"):
        return
    norm = _norm(value)
    if norm in {_norm(k) for k in SAMPLERS}:
        return
    if norm in {_norm(k) for k in UNSUPPORTED}:
        resolve_scheduler(value)  # raises the "not available" error
    raise ValueError(
        f"unknown scheduler {value!r}{suggest(value, SAMPLERS)}; give a sampler name from the "
        f"table in docs/refiner.md (e.g. 'Euler a', 'DPM++ 2M Karras') or a diffusers scheduler class name"
    )
