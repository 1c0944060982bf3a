"""diffusers schedule arithmetic: how many denoising steps an img2img/inpaint call runs.

diffusers img2img/inpaint pipelines build a schedule of ``steps`` timesteps and run only its last
``int(steps * strength)`` (their ``get_timesteps``); zero crashes deep in the VAE instead of
raising. The diffusers stages compute that number with the same expression *before* calling
diffusers (docs/refiner.md, "Steps").
"""

from __future__ import annotations

import math

__all__ = ["STEP_RULES", "schedule_for", "steps_that_run"]


def steps_that_run(steps: int, strength: float) -> int:
    """Denoising steps a diffusers img2img/inpaint call runs: ``int(steps * strength)``, capped
    at ``steps`` (the exact expression of diffusers' ``get_timesteps``, float round-off included)."""
    if steps < 0 or not (0.0 <= strength <= 1.0):
        raise ValueError(f"need steps >= 0 and strength in [0, 1]; got {steps}, {strength}")
    return min(int(steps * strength), steps)


#: what a stage's share of ``iterations`` counts: ``schedule`` (the diffusers schedule length, of
#: which ``int(steps × strength)`` run; our default) or ``denoising`` (the denoising steps that
#: run, the paper's n1 = n2 of eq. 10; the schedule is lengthened to fit)
STEP_RULES = ("schedule", "denoising")


def schedule_for(denoising_steps: int, strength: float) -> int:
    """The shortest schedule length ``S`` with ``steps_that_run(S, strength) == denoising_steps``
    (0 when ``strength`` or ``denoising_steps`` is 0: nothing runs)."""
    if denoising_steps < 0 or not (0.0 <= strength <= 1.0):
        raise ValueError(f"need steps >= 0 and strength in [0, 1]; got {denoising_steps}, {strength}")
    if denoising_steps == 0 or strength == 0.0:
        return 0
    length = max(denoising_steps, math.ceil(denoising_steps / strength) - 1)
    while steps_that_run(length, strength) < denoising_steps:
        length += 1
    return length
