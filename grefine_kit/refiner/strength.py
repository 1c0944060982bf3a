"""Stage strength and step arithmetic (docs/design.md 6.4-6.5, paper eq. 9).

diffusers img2img/inpaint pipelines build a schedule of ``steps`` timesteps and run only its last
``int(steps * strength)`` (their ``get_timesteps``); zero crashes deep in the VAE instead of
raising. We compute that number with the same expression *before* calling diffusers.
"""

from __future__ import annotations

import math

__all__ = [
    "STEP_RULES",
    "STRENGTH_RULES",
    "quality_of",
    "schedule_for",
    "split_iterations",
    "stage1_strength",
    "steps_that_run",
]

#: ``falling``: strength falls as quality rises (HQ images are barely touched; our default);
#: ``paper``: the paper's literal ``(p + a) / 2``; ``fixed``: always ``strength_max``.
STRENGTH_RULES = ("falling", "paper", "fixed")


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


def split_iterations(iterations: int, split: float) -> tuple[int, int]:
    """Split the iteration budget: ``round(iterations * split)`` to stage 1, the rest to stage 2
    (paper §4.2: 20 iterations, half each)."""
    if iterations < 0 or not (0.0 <= split <= 1.0):
        raise ValueError(f"need iterations >= 0 and split in [0, 1]; got {iterations}, {split}")
    first = round(iterations * split)
    return first, iterations - first


def quality_of(perceptual: float | None, alignment: float | None) -> float:
    """Mean of the available scores in [0, 1]; 0.5 (undecided) when neither is available."""
    scores = [s for s in (perceptual, alignment) if s is not None]
    if not scores:
        return 0.5
    q = sum(scores) / len(scores)
    if not math.isfinite(q):
        raise ValueError(f"scores must be finite; got {perceptual}, {alignment}")
    return min(max(q, 0.0), 1.0)


def stage1_strength(
    perceptual: float | None,
    alignment: float | None,
    rule: str = "falling",
    minimum: float = 0.3,
    maximum: float = 0.95,
) -> float:
    """Stage-1 (masked) strength in [0, 1] from the image scores ``p`` and ``a`` (higher = better).

    - ``falling``: ``minimum + (maximum − minimum) · (1 − q)`` with ``q`` the mean score.
    - ``paper``: ``q`` itself, the paper's literal ``(p + a)/2`` (it *rises* with quality).
    - ``fixed``: ``maximum``.
    A missing score is left out of the mean (``q`` = 0.5 when both are missing).
    """
    if rule not in STRENGTH_RULES:
        raise ValueError(f"strength rule must be one of {STRENGTH_RULES}; got {rule!r}")
    if not (0.0 <= minimum <= maximum <= 1.0):
        raise ValueError(f"need 0 <= minimum <= maximum <= 1; got {minimum}, {maximum}")
    q = quality_of(perceptual, alignment)
    if rule == "paper":
        return q
    if rule == "fixed":
        return maximum
    return minimum + (maximum - minimum) * (1.0 - q)
